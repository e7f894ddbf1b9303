"""Fault-offset metrics that a structural geologist reads (numpy only), shared by ``models.evaluate`` and the
profile figure.

Geometry: the rupture trace is a straight line of strike ``strike_deg`` (the simulator's patches of one event
share their strike) through the segments ``trace_segments`` (local metres, scene centre = 0, east/north).
Every pixel gets an along-strike coordinate and a **signed distance** to the trace (positive to the right of
the strike direction, i.e. on the hanging-wall side of the dip direction). The fault-parallel component of a
displacement (east, north) is its projection on the strike direction (sin s, cos s).

* :func:`profile_steps` — fault-perpendicular profiles stacked over ``width_px``-wide along-strike bins:
  per profile, the mean fault-parallel displacement on ``[inner, outer]`` metres on the positive side minus
  the same on the negative side (the offset a geologist measures on 50–500 m windows).
* :func:`robust_slope` — slope of estimated vs true displacement (Huber IRLS with intercept).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def pixel_coordinates(shape: tuple[int, int], pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(east, north) local metres of the pixel centres, scene centre = 0 (as ``models.scene``)."""
    H, W = shape
    le = ((np.arange(W) + 0.5) - W / 2.0) * pixel_size_m
    ln = (H / 2.0 - (np.arange(H) + 0.5)) * pixel_size_m
    return np.meshgrid(le, ln)


def fault_frame(shape: tuple[int, int], pixel_size_m: float, strike_deg: float, segments: np.ndarray
                ) -> dict[str, Any]:
    """Along-strike coordinate ``along`` (m), signed distance ``signed`` (m) of every pixel, the along-strike
    extent of the trace ``(a_min, a_max)`` and the fault-parallel unit vector ``unit_en`` (east, north)."""
    s = math.radians(strike_deg)
    te, tn = math.sin(s), math.cos(s)
    ne, nn = math.cos(s), -math.sin(s)
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2, 2)
    e0, n0 = seg[0, 0]
    E, N = pixel_coordinates(shape, pixel_size_m)
    ends = seg.reshape(-1, 2)
    a_ends = (ends[:, 0] - e0) * te + (ends[:, 1] - n0) * tn
    return {"along": (E - e0) * te + (N - n0) * tn, "signed": (E - e0) * ne + (N - n0) * nn,
            "a_range": (float(a_ends.min()), float(a_ends.max())), "unit_en": (te, tn)}


def fault_parallel(en: np.ndarray, frame: dict[str, Any]) -> np.ndarray:
    """Fault-parallel component of a (2, H, W) east/north field."""
    te, tn = frame["unit_en"]
    return en[0] * te + en[1] * tn


def profile_bins(frame: dict[str, Any], pixel_size_m: float, width_px: float) -> tuple[np.ndarray, int]:
    """Along-strike bin index of every pixel (-1 outside the trace's along-strike extent) and the bin count."""
    a0, a1 = frame["a_range"]
    w = width_px * pixel_size_m
    nb = max(int((a1 - a0) // w), 0)
    idx = np.floor((frame["along"] - a0) / w).astype(np.int64)
    idx[(idx < 0) | (idx >= nb)] = -1
    return idx, nb


def side_means(values: np.ndarray, frame: dict[str, Any], bins: np.ndarray, nb: int, valid: np.ndarray,
               lo_m: float, hi_m: float, min_px: int, weights: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per along-strike bin, the mean of ``values`` at signed distances in [lo, hi] (positive side) and
    [-hi, -lo] (negative side); NaN where fewer than ``min_px`` valid pixels. ``weights`` (e.g. 1 / sigma^2, as
    the offsets tool reads a profile) makes it a weighted mean."""
    d = frame["signed"]
    res = []
    for sign in (1.0, -1.0):
        m = valid & (bins >= 0) & (sign * d >= lo_m) & (sign * d <= hi_m) & np.isfinite(values)
        w = np.ones(int(m.sum())) if weights is None else weights[m].astype(np.float64)
        cnt = np.bincount(bins[m], minlength=nb).astype(np.float64)
        wsum = np.bincount(bins[m], weights=w, minlength=nb)
        tot = np.bincount(bins[m], weights=w * values[m].astype(np.float64), minlength=nb)
        res.append(np.where((cnt >= min_px) & (wsum > 0), tot / np.maximum(wsum, 1e-300), np.nan))
    return res[0], res[1]


def profile_steps(values: np.ndarray, frame: dict[str, Any], valid: np.ndarray, pixel_size_m: float,
                  inner_m: float = 50.0, outer_m: float = 500.0, width_px: float = 16.0,
                  min_px: int = 10) -> np.ndarray:
    """Per profile (along-strike bin), mean of ``values`` on [inner, outer] m one side minus the other side."""
    bins, nb = profile_bins(frame, pixel_size_m, width_px)
    plus, minus = side_means(values, frame, bins, nb, valid, inner_m, outer_m, min_px)
    return plus - minus


def robust_slope(x: np.ndarray, y: np.ndarray, iterations: int = 20, k: float = 1.345) -> float:
    """Slope of y against x, Huber IRLS regression with intercept (residual scale: 1.4826 MAD)."""
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    m = np.isfinite(x) & np.isfinite(y)
    x, y = x[m], y[m]
    if x.size < 3 or np.ptp(x) == 0:
        return float("nan")
    w = np.ones_like(x)
    slope = 0.0
    for _ in range(iterations):
        sw = w.sum()
        xm, ym = (w * x).sum() / sw, (w * y).sum() / sw
        sxx = (w * (x - xm) ** 2).sum()
        slope = float((w * (x - xm) * (y - ym)).sum() / max(sxx, 1e-300))
        r = y - ym - slope * (x - xm)
        scale = 1.4826 * np.median(np.abs(r - np.median(r)))
        if scale <= 0:
            break
        u = np.abs(r) / (k * scale)
        w = np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12))
    return slope


def binary_auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged)."""
    from scipy.stats import rankdata

    s = np.asarray(score, np.float64).ravel()
    y = np.asarray(label, bool).ravel()
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))
