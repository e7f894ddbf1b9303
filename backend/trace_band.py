"""A rupture trace moved onto the interferogram's decorrelation band, and ruptures found as long lines of it.

Across a surface rupture the line-of-sight displacement jumps by many fringes within a few pixels and the ground is
strained and broken: the wrapped phase there has no consistent gradient, in a band centred on the rupture a few
pixels wide. Geologists map ruptures from this band; its position is sharp even where the displacement estimate
smears the step over hundreds of metres (the model reads sub-pixel optical offsets; the band comes from the phase).

The trace found in the displacement (backend/trace.py: line search or masks) says *which* band; this module says
*where*. The band's evidence is ``1 - pseudo-coherence`` of the run's wrapped phase (``rewrapped_phase*.tif``, which
is the input phase; backend.unwrap.pseudo_coherence, 5 x 5 px; the mean over several interferograms). Along the
trace, at stations every half ``chunk_px``, the evidence is averaged along a piece ``chunk_px`` long (the trace's
local direction) for every across-strike offset within ``+-search_px``; the station moves to the sub-pixel peak of
that profile when the peak stands out of the profile's own spread (``(peak - median) / (1.4826 MAD)`` at least
``min_z``, the MAD taken more than ``peak_halfwidth_px`` from the peak) by at least ``min_contrast`` (coherence
units) and does not lie on the edge of the search. The trace moves only when the band is found at ``min_share``
of its stations (a band that follows the trace, not a decorrelated field it crosses: on 40 random lines over the
real Thessaly 2021 interferogram at most 31 % of the stations find a peak, 8 % on average). Stations without a
peak between moved ones take the interpolated offset; those beyond the first or last moved station stay where they
were. A running median of three moved offsets removes single-station jumps. Measured on the simulated Mw 6.9
rupture (docs/geologist_tools.md): the line search's trace from the model's output, 40 % within 2 px of the truth
(mean 55 m), moved onto the band: 98 % within 2 px (mean 6 m).

:func:`search_band` finds such bands on their own: the long straight lines whose 3-px strip of the band stands out
of its flanks far more than any line of block-shuffled copies of the band does, and all along them (the unwrapper
cuts the interferogram along them, backend/rupture_cut.py; measurements in docs/insar_fusion.md).

:func:`coherent_along` is the converse: whether the phase stays as coherent along a line as in the rest of the scene
(``1 - pseudo-coherence`` within ``strip_px`` of it: median at most ``coherent_max`` and at most the scene's median
+ ``coherent_margin``). The trace tool drops an extracted line that is coherent along its length when another line
of the same run lies on the band: this interferogram shows its rupture as a decorrelated band, and shows none there
(backend/trace.py). A pure jump of whole fringes leaves the wrapped phase coherent, so coherence alone would not
rule a rupture out; the other line's band is the evidence that this event's ruptures break the phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .trace_search import _Frame, _peak, distance_to_edge, line_band, shuffled_copies

PHASE_GLOB = "rewrapped_phase*.tif"


@dataclass
class BandParams:
    """Parameters of :func:`move_onto_band`; lengths in pixels of the run's grid."""

    chunk_px: float = 48.0
    search_px: int = 20
    min_z: float = 4.0
    min_contrast: float = 0.1
    peak_halfwidth_px: int = 4
    min_share: float = 0.5
    # coherent_along: a strip this coherent (1 - pseudo-coherence) shows no band
    strip_px: float = 3.0
    coherent_max: float = 0.3
    coherent_margin: float = 0.05


def decorrelation_map(run_dir: str | Path | None, shape: tuple[int, int]) -> tuple[np.ndarray | None, list[str]]:
    """``1 - pseudo-coherence`` (0..1) of the run's wrapped phase(s) on the run's grid, and the files read; (None,
    []) for a run without an interferogram."""
    import rasterio

    from .unwrap import pseudo_coherence

    if run_dir is None:
        return None, []
    maps, used = [], []
    for f in sorted(Path(run_dir).glob(PHASE_GLOB)):
        with rasterio.open(f) as ds:
            if (ds.height, ds.width) != tuple(shape):
                continue
            phase = ds.read(1, masked=True).filled(np.nan).astype(np.float64)
        maps.append(1.0 - pseudo_coherence(phase))
        used.append(f.name)
    if not maps:
        return None, []
    with np.errstate(invalid="ignore"):
        return (np.nanmean(np.stack(maps), axis=0) if len(maps) > 1 else maps[0]), used


def coherent_along(rc: np.ndarray, band: np.ndarray, p: BandParams | None = None) -> dict | None:
    """``{"decorrelation": median along the strip, "scene": the scene's median}`` when the phase is as coherent
    within ``strip_px`` of the polyline ``rc`` (row/col) as in the scene (see the module docstring); else None."""
    p = p or BandParams()
    strip = line_band(rc, band.shape, p.strip_px)
    if not strip.any():
        return None
    d_line, d_scene = float(np.nanmedian(band[strip])), float(np.nanmedian(band))
    if d_line <= p.coherent_max and d_line <= d_scene + p.coherent_margin:
        return {"decorrelation": round(d_line, 3), "scene": round(d_scene, 3)}
    return None


def _station_frames(rc: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stations every ``half`` pixels along the polyline ``rc`` (row, col): points, unit tangents, unit normals
    (the tangent turned to the right: the same convention as the line search)."""
    seg = np.diff(rc, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
    stations = np.arange(0.0, cum[-1] + 1e-9, half)
    if cum[-1] - stations[-1] > half / 4:
        stations = np.append(stations, cum[-1])

    def at(s: np.ndarray) -> np.ndarray:
        return np.column_stack([np.interp(s, cum, rc[:, 0]), np.interp(s, cum, rc[:, 1])])

    pts = at(stations)
    t = at(np.minimum(stations + half, cum[-1])) - at(np.maximum(stations - half, 0.0))
    t /= np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-9)[:, None]
    return pts, t, np.column_stack([t[:, 1], -t[:, 0]])


def _band_offset(band: np.ndarray, p0: np.ndarray, t: np.ndarray, n: np.ndarray, u: np.ndarray, vv: np.ndarray,
                 p: BandParams) -> float:
    """Across-strike offset (px, along ``n``) of the band's peak near ``p0``; NaN when there is no clear peak."""
    V, U = np.meshgrid(vv, u, indexing="ij")
    smp = ndimage.map_coordinates(band, [p0[0] + U * t[0] + V * n[0], p0[1] + U * t[1] + V * n[1]], order=1,
                                  mode="constant", cval=np.nan)
    enough = np.isfinite(smp).mean(axis=1) >= 0.5
    if not enough.all():
        return np.nan
    prof = np.nanmean(smp, axis=1)
    k = int(np.argmax(prof))
    if k == 0 or k == len(prof) - 1:
        return np.nan  # the largest value at the edge of the search: no peak inside it
    away = np.abs(vv - vv[k]) > p.peak_halfwidth_px
    base = float(np.median(prof[away]))
    spread = 1.4826 * float(np.median(np.abs(prof[away] - base)))
    contrast = float(prof[k]) - base
    if contrast < p.min_contrast or contrast < p.min_z * spread:
        return np.nan
    return float(vv[0] + _peak(prof - prof.min()))  # sub-pixel: a parabola through the peak (vv steps of 1 px)


def move_onto_band(rc: np.ndarray, band: np.ndarray, params: BandParams | None = None) -> tuple[np.ndarray, float]:
    """The polyline ``rc`` ((k, 2) fractional row/col) moved onto the decorrelation band ``band`` (H, W; NaN = no
    phase), and the share of its stations that the band moved; unchanged (share 0) unless the band is found at
    ``min_share`` of the stations (a band that follows the trace, not a decorrelated patch it passes). See the
    module docstring."""
    p = params or BandParams()
    rc = np.asarray(rc, float)
    if len(rc) < 2:
        return rc, 0.0
    half = p.chunk_px / 2.0
    pts, tang, nrm = _station_frames(rc, half)
    u = np.arange(-half, half + 1.0)
    vv = np.arange(-float(p.search_px), p.search_px + 1.0)
    offs = np.array([_band_offset(band, p0, t, n, u, vv, p) for p0, t, n in zip(pts, tang, nrm)])
    moved = np.flatnonzero(np.isfinite(offs))
    if moved.size < max(2, p.min_share * len(pts)):
        return rc, 0.0
    o = offs[moved]
    if o.size >= 3:
        o[1:-1] = np.median(np.stack([o[:-2], o[1:-1], o[2:]]), axis=0)
    # stations between moved ones: interpolated; beyond the first / last moved station (where the band was not
    # read: a strip off the raster's edge): the nearest moved station's shift, so that the line's ends do not
    # bend back to where the displacement's step put them
    full = np.interp(np.arange(len(pts)), moved, o)
    return pts + full[:, None] * nrm, float(moved.size / len(pts))


# ------------------------------------------------------------------------------------------- search on the band
@dataclass
class BandSearchParams:
    """Parameters of :func:`search_band`; lengths in pixels of the (block-averaged) band grid."""

    max_grid_px: int = 512
    half_px: int = 1  # the ridge: 2 half_px + 1 px wide
    gap_px: int = 2  # between the ridge and its flanks
    flank_px: int = 8  # each flank's width
    angle_step_deg: float = 2.0
    min_length_frac: float = 0.3
    chunk_px: float = 48.0
    min_share: float = 0.6  # the ridge stands above its flanks in this share of the line's pieces
    min_ratio: float = 1.3  # z / the largest z of the surrogates
    surrogates: int = 6
    surrogate_block_px: float = 48.0
    border_px: int = 8
    max_traces: int = 2


def _ridge_profile(s: np.ndarray, m: np.ndarray, p: BandSearchParams) -> tuple[np.ndarray, np.ndarray]:
    """Ridge contrast (mean of the ridge strip minus the mean of both flanks) for every offset of the last axis of
    row sums ``s`` / counts ``m`` (..., n), and the smaller of the ridge's and flanks' counts."""
    cs = np.concatenate([np.zeros(s.shape[:-1] + (1,)), np.cumsum(s, axis=-1)], axis=-1)
    cm = np.concatenate([np.zeros(m.shape[:-1] + (1,)), np.cumsum(m, axis=-1)], axis=-1)
    n = s.shape[-1]
    v = np.arange(n)

    def win(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.clip(a, 0, n), np.clip(b, 0, n)
        return cs[..., b] - cs[..., a], cm[..., b] - cm[..., a]

    h, g, f = p.half_px, p.gap_px, p.flank_px
    rs, rm = win(v - h, v + h + 1)
    ls, lm = win(v - h - g - f, v - h - g)
    hs, hm = win(v + h + g + 1, v + h + g + f + 1)
    ok = (rm > 0) & (lm > 0) & (hm > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(ok, rs / np.where(ok, rm, 1) - (ls + hs) / np.where(ok, lm + hm, 1), np.nan)
    return c, np.minimum(rm, np.minimum(lm, hm) * (2 * h + 1) / f)


def _ridge_z(vals: np.ndarray, cnt: np.ndarray, frame, phis: np.ndarray, p: BandSearchParams  # noqa: ANN001
             ) -> tuple[np.ndarray, np.ndarray]:
    """z of every line (angles, offsets): contrast x sqrt(ridge pixels) over its robust spread over all long lines;
    and the contrasts."""
    return _ridge_z_many([(vals, cnt)], frame, phis, p)[0]


def _ridge_z_many(grids: list, frame, phis: np.ndarray, p: BandSearchParams) -> list:  # noqa: ANN001
    """``_ridge_z`` of several (values, counts) grids of one shape (the null's copies), each angle's sums of all
    of them at once (``_Frame.line_sums``)."""
    stack = np.stack([a for g in grids for a in g])  # (2K, h, w)
    per_angle = [[_ridge_profile(rows[2 * k], rows[2 * k + 1], p) for k in range(len(grids))]
                 for rows in frame.line_sums(stack, phis)]
    out = []
    for k in range(len(grids)):
        c, cover = np.stack([pa[k][0] for pa in per_angle]), np.stack([pa[k][1] for pa in per_angle])
        longer = cover >= p.min_length_frac * cover.max()
        cn = c * np.sqrt(np.maximum(cover, 0))
        x = cn[longer & np.isfinite(cn)]
        scale = 1.4826 * float(np.median(np.abs(x - np.median(x)))) if x.size >= 10 else np.inf
        z = np.where(longer & np.isfinite(cn), (cn - (np.median(x) if x.size else 0.0)) / (scale or np.inf), 0.0)
        out.append((z, c))
    return out


def search_band(band: np.ndarray, params: BandSearchParams | None = None) -> list[tuple[np.ndarray, float, float]]:
    """Long straight ridges of the decorrelation band ``band`` (H, W; ``1 - pseudo-coherence``, NaN = no phase):
    the lines whose ridge stands out of their flanks far more than any line of block-shuffled copies of the band
    does, and all along them; each moved onto the band (:func:`move_onto_band`). Returns [(rc polyline of the full
    grid, signif, share of it moved onto the band)], most significant first."""
    p = params or BandSearchParams()
    b = np.asarray(band, np.float64)
    h, w = b.shape
    fct = max(1, int(np.ceil(max(h, w) / p.max_grid_px)))
    ok = np.isfinite(b)
    if fct > 1:
        hh, ww = h // fct * fct, w // fct * fct
        sv = np.where(ok, b, 0.0)[:hh, :ww].reshape(hh // fct, fct, ww // fct, fct).sum(axis=(1, 3))
        sm = ok[:hh, :ww].reshape(hh // fct, fct, ww // fct, fct).sum(axis=(1, 3)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals, cnt = np.where(sm > 0, sv / np.where(sm > 0, sm, 1), 0.0), (sm > 0).astype(np.float64)
    else:
        vals, cnt = np.where(ok, b, 0.0), ok.astype(np.float64)
    bd = p.border_px
    cnt[:bd], cnt[-bd:], cnt[:, :bd], cnt[:, -bd:] = 0, 0, 0, 0
    vals = vals * cnt
    phis = np.radians(np.arange(0.0, 180.0, p.angle_step_deg))
    z_null = _band_null(vals, cnt, phis, p)
    frame = _Frame(vals.shape)
    found: list[tuple[np.ndarray, float, float]] = []
    for _ in range(p.max_traces):
        z, c = _ridge_z(vals, cnt, frame, phis, p)
        a, rho = np.unravel_index(int(np.argmax(z)), z.shape)
        if not z[a, rho] >= p.min_ratio * z_null:
            break
        rc = _ridge_line(vals, cnt, frame, float(phis[a]), int(rho), p)
        if rc is None:
            break
        rc_full = (rc + 0.5) * fct - 0.5
        moved, share = move_onto_band(rc_full, b, BandParams(search_px=max(6, 3 * fct)))
        line = _to_edges(moved if share > 0 else rc_full, (h, w), (p.border_px + 2) * fct)
        found.append((line, float(z[a, rho] / z_null), share))
        gone = line_band(rc, vals.shape, p.half_px + p.gap_px + p.flank_px)
        vals, cnt = np.where(gone, 0.0, vals), np.where(gone, 0.0, cnt)
    return found


def _band_null(vals: np.ndarray, cnt: np.ndarray, phis: np.ndarray, p: BandSearchParams) -> float:
    """The largest ridge z over block-shuffled, randomly turned copies of the band grid."""
    copies = list(shuffled_copies(np.stack([vals, cnt]), int(p.surrogate_block_px), p.surrogates))
    if not copies:
        return np.inf
    zs = _ridge_z_many([(k[0], k[1]) for k in copies], _Frame(copies[0].shape[1:]), phis, p)
    best = max(float(z.max()) for z, _ in zs)
    return best if best > 0 else np.inf


def _ridge_line(vals: np.ndarray, cnt: np.ndarray, frame, phi: float, rho: int,  # noqa: ANN001
                p: BandSearchParams) -> np.ndarray | None:
    """The ridge line (phi, rho) as a (row, col) polyline from its first to its last piece with data, when the
    ridge stands above its flanks in ``min_share`` of its pieces; else None."""
    sv, sm = frame.sample(vals[None], phi)[0], frame.sample(cnt[None], phi)[0]  # (v, u)
    lo, hi = max(rho - p.half_px - p.gap_px - p.flank_px, 0), rho + p.half_px + p.gap_px + p.flank_px + 1
    cols = np.flatnonzero(sm[lo:hi].min(axis=0) > 0)
    if cols.size < 4 * p.chunk_px / 2:
        return None
    u0, u1 = int(cols[0]), int(cols[-1]) + 1
    k = max(4, int((u1 - u0) // p.chunk_px))
    edges = u0 + np.round(np.linspace(0, u1 - u0, k + 1)).astype(int)
    above = []
    for a, b in zip(edges[:-1], edges[1:]):
        c, _ = _ridge_profile(sv[:, a:b].sum(axis=1), sm[:, a:b].sum(axis=1), p)
        above.append(bool(np.isfinite(c[rho]) and c[rho] > 0))
    if np.mean(above) < p.min_share:
        return None
    u = np.array([u0, u1 - 1], float)
    return frame.to_rc(phi, u - frame.r, np.full(2, rho - frame.r, float))


def _to_edges(rc: np.ndarray, shape: tuple[int, int], reach: float) -> np.ndarray:
    """The polyline ``rc`` carried on along its end segments to the raster's edge from ends within ``reach`` px of
    an edge (the search ignores a border: a line that runs into it crosses the raster)."""
    h, w = shape
    out = [rc]
    for end, nxt in ((0, 1), (-1, -2)):
        p, t = rc[end], rc[end] - rc[nxt]
        n = float(np.hypot(*t))
        if n == 0 or min(p[0], p[1], h - 1 - p[0], w - 1 - p[1]) > reach:
            continue
        s = distance_to_edge(p, t / n, shape)
        if s > 0:
            edge = (p + s * t / n)[None]
            out = [edge, *out] if end == 0 else [*out, edge]
    return np.concatenate(out)
