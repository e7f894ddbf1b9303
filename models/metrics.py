"""Accuracy measures shared by the demo, the benchmarks and the tests (numpy/scipy only)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from backend.conventions import TWO_PI


def agreement_within_pi(unwrapped: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Share of pixels valid in both whose difference, after removing the median difference, lies within +-pi.

    Returns (share, number of pixels compared). Both in radians, same convention.
    """
    m = np.isfinite(unwrapped) & np.isfinite(reference)
    if not m.any():
        return float("nan"), 0
    d = unwrapped[m].astype(np.float64) - reference[m].astype(np.float64)
    d -= np.median(d)
    return float(np.mean(np.abs(d) <= np.pi)), int(m.sum())


def exact_cycle_share(unwrapped: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    """Share of valid pixels whose ambiguity is right, after removing the median integer cycle offset."""
    m = np.isfinite(unwrapped) & np.isfinite(truth)
    if not m.any():
        return float("nan"), 0
    k = np.rint((unwrapped[m].astype(np.float64) - truth[m]) / TWO_PI)
    k -= np.median(k)
    return float(np.mean(k == 0)), int(m.sum())


def rupture_sides(trace: np.ndarray, band_px: tuple[float, float] = (2.0, 8.0),
                  along_keep: float = 0.8) -> tuple[np.ndarray, np.ndarray] | None:
    """Pixels on either side of a (roughly straight) trace: masks (side_a, side_b), or None without a trace.

    ``trace``: boolean raster of the rupture trace. Sides are split by the trace's principal axis; only pixels
    ``band_px`` pixels from the trace and within the central ``along_keep`` of its length are kept.
    """
    rr, cc = np.nonzero(trace)
    if rr.size < 3:
        return None
    c = np.array([rr.mean(), cc.mean()])
    cov = np.cov(np.stack([rr - c[0], cc - c[1]]))
    evals, evecs = np.linalg.eigh(cov)
    axis = evecs[:, np.argmax(evals)]
    normal = np.array([-axis[1], axis[0]])
    h, w = trace.shape
    R, C = np.mgrid[0:h, 0:w]
    along = (R - c[0]) * axis[0] + (C - c[1]) * axis[1]
    across = (R - c[0]) * normal[0] + (C - c[1]) * normal[1]
    a_tr = (rr - c[0]) * axis[0] + (cc - c[1]) * axis[1]
    lo, hi = np.quantile(a_tr, [(1 - along_keep) / 2, 1 - (1 - along_keep) / 2])
    dist = ndimage.distance_transform_edt(~trace)
    band = (dist >= band_px[0]) & (dist <= band_px[1]) & (along >= lo) & (along <= hi)
    return band & (across > 0), band & (across < 0)


def cross_rupture_cycle_error(unwrapped: np.ndarray, truth: np.ndarray, trace: np.ndarray) -> float:
    """Error (cycles) of the unwrapped phase step across the rupture: median over each side, then the difference.

    NaN when a side has no valid pixel (e.g. all masked) or there is no trace.
    """
    sides = rupture_sides(trace)
    if sides is None:
        return float("nan")
    e = (unwrapped.astype(np.float64) - truth) / TWO_PI
    meds = []
    for s in sides:
        v = e[s & np.isfinite(e)]
        if v.size == 0:
            return float("nan")
        meds.append(np.median(v))
    return float(np.rint(meds[0]) - np.rint(meds[1]))


def true_cross_rupture_cycles(truth: np.ndarray, trace: np.ndarray) -> float:
    """The true phase step across the rupture, in cycles (median of each side)."""
    sides = rupture_sides(trace)
    if sides is None:
        return float("nan")
    return float((np.median(truth[sides[0]]) - np.median(truth[sides[1]])) / TWO_PI)


def classify_cross_rupture(unw: np.ndarray, regions: np.ndarray, truth: np.ndarray, trace: np.ndarray,
             gap_px: float) -> tuple[str, float]:
    """'exact' / 'separate' / 'wrong' for the cross-rupture count, and the cycle error (NaN if separate).

    Sides: pixels ``gap_px + 2`` to ``gap_px + 10`` px from the trace (outside the damage zone), central 80 % of its
    length (models.metrics.rupture_sides). Each side's region = its most common id; a side less than half
    trusted, or different ids, = separate. Else the error is the difference of the sides' median cycle errors.
    """
    sides = rupture_sides(trace, band_px=(gap_px + 2, gap_px + 10))
    if sides is None:
        return "no trace", float("nan")
    ids = []
    for s in sides:
        r = regions[s & np.isfinite(unw)]
        r = r[r > 0]
        if r.size < 0.5 * s.sum() or r.size == 0:
            return "separate", float("nan")
        ids.append(np.bincount(r).argmax())
    if ids[0] != ids[1]:
        return "separate", float("nan")
    e = (unw - truth) / (2 * np.pi)
    med = [np.median(e[s & (regions == ids[0])]) for s in sides]
    err = float(np.rint(med[0]) - np.rint(med[1]))
    return ("exact" if err == 0 else "wrong"), err
