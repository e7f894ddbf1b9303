"""Surface rupture trace: extraction from a run's rasters, GeoPackage output, user-supplied traces.

Extraction (numpy/scipy only):

1. A rupture mask: ``rupture_probability >= prob_threshold`` (when the run has ``rupture_probability.tif``), and/or
   the **step map** ``S`` — the largest norm of the 3-D displacement difference between the pixels ``step_px``
   before and after each pixel, over the 4 directions (row, column, both diagonals), of the displacement smoothed
   by a Gaussian of ``smooth_px`` pixels (noise). Across a surface rupture ``S``
   is the full offset over a band about ``2 * step_px`` wide; elsewhere it is the smooth strain times
   ``2 * step_px`` pixels. The band is symmetric about the discontinuity. Threshold: ``step_threshold_m``, or
   automatically ``step_fraction`` of the 99.9th percentile of ``S`` (at least 3 times its median).
2. Closing (``close_px``), small holes filled, components shorter than ``min_length_m`` dropped.
3. Skeleton (Zhang-Suen thinning), then the longest path of every skeleton component (repeated for branches
   longer than ``min_length_m``), so spurs vanish.
4. Pixel centres -> map coordinates, Douglas-Peucker simplification (``simplify_px``), pieces whose ends are within
   ``join_gap_px`` and aligned within 45 degrees are joined.
5. Orientation: every polyline runs so that its end-to-end azimuth lies in [0, 180) (towards the east). The
   offsets' sign conventions refer to this direction (docs/geologist_tools.md).
6. When the run has an interferogram (``rewrapped_phase.tif``), every extracted trace is moved onto the band where
   its phase decorrelates across the rupture (backend/trace_band.py; ``band=None`` keeps it where the displacement
   puts it).

``rupture_trace.gpkg`` holds the layer ``rupture_trace`` (one editable polyline per trace: ``trace_id``,
``strike``, ``length_m``, ``source``) and ``trace_seg`` (each straight segment with its ``strike``, degrees
clockwise from north along the line's direction). Every tool reads the ``rupture_trace`` layer, or the first line
layer of a user's file (GeoPackage, shapefile, GeoJSON; any CRS, reprojected to the run's grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from .geodata import (
    Layer,
    RunData,
    ToolsError,
    azimuth_deg,
    cumulative_length,
    load_run,
    point_at,
    read_lines,
    signed_distance,
    simplify,
    write_layers,
)
from .trace_band import BandParams, coherent_along, decorrelation_map, move_onto_band, search_band
from .trace_search import LineSearchParams, search_lines

TRACE_FILE = "rupture_trace.gpkg"
TRACE_LAYER = "rupture_trace"
SEGMENT_LAYER = "trace_seg"


@dataclass
class TraceParams:
    """Parameters of :func:`extract_trace` (see the module docstring). Lengths in pixels unless named ``_m``."""

    method: str = "auto"  # auto (probability when it finds a trace, else line search, else the interferogram's
    # decorrelated lines) | probability | step | both | line | band
    prob_threshold: float = 0.5
    step_px: int = 2
    smooth_px: float = 1.0  # Gaussian pre-smoothing of the displacement for the step map (noise)
    step_threshold_m: float | None = None
    step_fraction: float = 0.3
    close_px: int = 2
    min_length_m: float | None = None  # default: 20 pixels
    simplify_px: float = 1.0
    join_gap_px: float = 15.0
    line: LineSearchParams = field(default_factory=LineSearchParams)  # method "line" (backend/trace_search.py)
    # every extracted trace moved onto the interferogram's decorrelation band when the run has a wrapped phase,
    # and "auto" falls back to the band's long lines (backend/trace_band.py); None: the phase is not used
    # (the trace stays where the displacement puts it)
    band: BandParams | None = field(default_factory=BandParams)


def step_map(disp: np.ndarray, step_px: int = 2, smooth_px: float = 0.0) -> np.ndarray:
    """(H, W) largest norm of the displacement difference across each pixel (m), over 4 directions, NaN-safe;
    the displacement is first smoothed by a Gaussian of ``smooth_px`` pixels (0 = none) against noise."""
    valid = np.all(np.isfinite(disp), axis=0)
    d = np.nan_to_num(np.asarray(disp, np.float32), nan=0.0)
    if smooth_px > 0:
        d = np.stack([ndimage.gaussian_filter(b, smooth_px) for b in d])
    k = int(step_px)
    h, w = d.shape[1:]
    pad = np.pad(d, ((0, 0), (k, k), (k, k)), mode="edge")
    vpad = np.pad(valid, k, mode="constant")
    out = np.zeros((h, w), np.float32)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = pad[:, k + dr * k:k + dr * k + h, k + dc * k:k + dc * k + w]
        b = pad[:, k - dr * k:k - dr * k + h, k - dc * k:k - dc * k + w]
        ok = vpad[k + dr * k:k + dr * k + h, k + dc * k:k + dc * k + w] & \
            vpad[k - dr * k:k - dr * k + h, k - dc * k:k - dc * k + w]
        out = np.maximum(out, np.where(ok, np.sqrt(((a - b) ** 2).sum(axis=0)), 0.0))
    return out


def rupture_mask(run: RunData, params: TraceParams | None = None) -> tuple[np.ndarray, str]:
    """Boolean (H, W) rupture band and the source used (``probability``, ``step`` or ``probability+step``)."""
    p = params or TraceParams()
    method = p.method
    if method == "auto":
        method = "probability" if run.prob is not None else "step"
    if method in ("probability", "both") and run.prob is None:
        raise ToolsError("this run has no rupture_probability.tif (models before Step 7, and models whose rupture head "
                         "has not learnt, do not write it: see the run's notes). Fix: use method 'auto' (line "
                         "search) or 'step'.", "trace")
    masks, names = [], []
    if method in ("probability", "both"):
        masks.append(np.nan_to_num(run.prob, nan=0.0) >= p.prob_threshold)
        names.append("probability")
    if method in ("step", "both"):
        s = step_map(run.disp, p.step_px, p.smooth_px)
        thr = p.step_threshold_m
        if thr is None:
            pos = s[s > 0]
            thr = max(p.step_fraction * float(np.percentile(pos, 99.9)), 3.0 * float(np.median(pos))) \
                if pos.size else np.inf
        m = s >= thr
        if masks:  # both: probability band confirmed by a nearby step
            m = ndimage.binary_dilation(m, iterations=p.step_px + 1)
        masks.append(m)
        names.append("step")
    if method not in ("probability", "step", "both"):
        raise ToolsError(f"unknown trace method {p.method!r}; use auto, probability, step or both.", "trace")
    mask = masks[0] if len(masks) == 1 else masks[0] & masks[1]
    return mask, "+".join(names)


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image to a one-pixel-wide 8-connected skeleton."""
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            c = img[1:-1, 1:-1]
            p2, p3, p4, p5 = img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:]
            p6, p7, p8, p9 = img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            b = sum(x.astype(np.int8) for x in ring[:-1])
            a = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int8) for i in range(8))
            rm = (c == 1) & (b >= 2) & (b <= 6) & (a == 1)
            rm &= ((p2 * p4 * p6) == 0) & ((p4 * p6 * p8) == 0) if step == 0 else \
                ((p2 * p4 * p8) == 0) & ((p2 * p6 * p8) == 0)
            if rm.any():
                c[rm] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def _longest_path(comp: np.ndarray) -> np.ndarray:
    """(k, 2) pixel (row, col) of the longest geodesic path through an 8-connected skeleton component."""
    rc = np.argwhere(comp)
    if len(rc) < 2:
        return rc
    idx = -np.ones(comp.shape, np.int64)
    idx[rc[:, 0], rc[:, 1]] = np.arange(len(rc))
    pad = np.pad(idx, 1, constant_values=-1)
    rows, cols, wts = [], [], []
    for dr, dc, wt in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, np.sqrt(2)), (1, -1, np.sqrt(2))):
        nb = pad[1 + rc[:, 0] + dr, 1 + rc[:, 1] + dc]
        ok = nb >= 0
        rows.append(np.arange(len(rc))[ok])
        cols.append(nb[ok])
        wts.append(np.full(int(ok.sum()), wt))
    r, c, wv = np.concatenate(rows), np.concatenate(cols), np.concatenate(wts)
    g = coo_matrix((np.concatenate([wv, wv]), (np.concatenate([r, c]), np.concatenate([c, r]))),
                   shape=(len(rc), len(rc))).tocsr()
    d0 = dijkstra(g, indices=0)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    da, pred = dijkstra(g, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(da), da, -1)))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    return rc[path[::-1]]


def skeleton_paths(skel: np.ndarray, min_px: float) -> list[np.ndarray]:
    """Longest paths ((k, 2) row/col) of every skeleton component, then of what remains (branches), while they
    are at least ``min_px`` pixels long."""
    remaining = skel.copy()
    paths = []
    eight = np.ones((3, 3), bool)
    while remaining.any():
        lab, n = ndimage.label(remaining, structure=eight)
        found = False
        for i, sl in enumerate(ndimage.find_objects(lab)):
            comp = lab[sl] == i + 1
            if comp.sum() < min_px:
                remaining[sl][comp] = False
                continue
            path = _longest_path(comp)
            length = float(np.hypot(*np.diff(path, axis=0).T).sum()) if len(path) > 1 else 0.0
            if length >= min_px:
                paths.append(path + [sl[0].start, sl[1].start])
                found = True
                remaining[sl][path[:, 0], path[:, 1]] = False
            else:
                remaining[sl][comp] = False
        if not found:
            break
    return paths


def orient(line: np.ndarray) -> np.ndarray:
    """The polyline reversed if needed so that its end-to-end azimuth lies in [0, 180)."""
    de, dn = line[-1] - line[0]
    return line if azimuth_deg(de, dn) < 180.0 else line[::-1]


def _end_dir(line: np.ndarray, at_end: bool, span: float) -> np.ndarray:
    """Unit vector pointing out of the polyline at one end, measured over ``span`` map units."""
    total = cumulative_length(line)[-1]
    v = line[-1] - point_at(line, total - span) if at_end else line[0] - point_at(line, span)
    n = float(np.hypot(*v))
    return v / n if n > 0 else v


def join_lines(lines: list[np.ndarray], gap: float, span: float) -> list[np.ndarray]:
    """Join polylines whose ends are within ``gap`` and whose directions there agree within 45 degrees."""
    lines = [np.asarray(x, float) for x in lines]
    changed = True
    while changed and len(lines) > 1:
        changed = False
        best = None
        for i in range(len(lines)):
            for j in range(len(lines)):
                if i == j:
                    continue
                a, b = lines[i], lines[j]  # try a's end -> b's start (with b reversed if needed)
                for brev in (False, True):
                    bb = b[::-1] if brev else b
                    v = bb[0] - a[-1]
                    d = float(np.hypot(*v))
                    if d > gap:
                        continue
                    ta, tb = _end_dir(a, True, span), -_end_dir(bb, False, span)
                    ok = float(ta @ tb) > np.cos(np.radians(45))
                    if d > 0:
                        ok &= float(ta @ (v / d)) > np.cos(np.radians(45))
                    if ok and (best is None or d < best[0]):
                        best = (d, i, j, brev)
        if best is not None:
            _, i, j, brev = best
            b = lines[j][::-1] if brev else lines[j]
            merged = np.vstack([lines[i], b])
            lines = [x for k, x in enumerate(lines) if k not in (i, j)] + [merged]
            changed = True
    return lines


def extract_trace(run: RunData, params: TraceParams | None = None) -> tuple[list[np.ndarray], str]:
    """Rupture trace polylines ((k, 2) map coordinates of the run's grid, oriented eastwards) and the source used.

    Raises :class:`ToolsError` when nothing long enough is found (with the thresholds to try)."""
    lines, source, _ = extract_trace_stats(run, params)
    return lines, source


def extract_trace_stats(run: RunData, params: TraceParams | None = None
                        ) -> tuple[list[np.ndarray], str, list[dict]]:
    """:func:`extract_trace` and, per polyline, what supports it: ``{"step_z": z, "signif": z / z_null}`` for the line
    search (backend/trace_search.py), and ``{"on_band": share}`` when the run's interferogram moved the trace
    (backend/trace_band.py). ``auto`` uses the rupture probability when the run has it and it yields a trace, else
    the line search (the source then says why)."""
    p = params or TraceParams()
    if p.method == "band":
        return _band_trace(run, p, "band")
    if p.method in ("line", "auto"):
        lines = None
        if p.method == "auto" and run.prob is not None:
            try:
                lines, source = _mask_trace(run, replace(p, method="probability"))
                stats = [{} for _ in lines]
            except ToolsError:
                pass
        if lines is None:
            why = "line" if p.method == "line" or run.prob is None else (
                f"line (rupture probability never forms a trace at {p.prob_threshold})")
            try:
                lines, source, stats = _line_trace(run, p, why)
            except ToolsError as exc:
                if p.method == "line" or p.band is None:
                    raise
                try:  # a run with an interferogram: the long decorrelated lines of its phase
                    return _band_trace(run, p, f"band ({why.split(' (')[0]} search found none)")
                except ToolsError:
                    raise exc from None
    else:
        lines, source = _mask_trace(run, p)
        stats = [{} for _ in lines]
    return _onto_band(run, lines, source, stats, p)


def _band_trace(run: RunData, p: TraceParams, source: str) -> tuple[list[np.ndarray], str, list[dict]]:
    """Traces from the long decorrelated lines of the run's wrapped phase (backend/trace_band.py search_band)."""
    band, files = decorrelation_map(run.run_dir, run.shape)
    if band is None:
        raise ToolsError("no rupture trace found: the band method needs an interferogram (rewrapped_phase.tif in "
                         "the run folder). Fix: use another method, or draw or load the trace.", "trace")
    pix = run.pixel_size
    min_px = (p.min_length_m / pix) if p.min_length_m else 20.0
    lines, stats = [], []
    for rc, signif, share in search_band(band):
        x, y = run.xy(rc[:, 0], rc[:, 1])
        line = orient(np.column_stack([x, y]))
        if cumulative_length(line)[-1] >= min_px * pix:
            lines.append(line)
            stats.append({"signif": round(signif, 2), "on_band": round(share, 2)})
    if not lines:
        raise ToolsError("no rupture trace found (band: no long line of the interferogram decorrelates "
                         "significantly more than lines of shuffled copies of it). Fix: draw or load the trace.",
                         "trace")
    return lines, f"{source}: long decorrelated line(s) of {', '.join(files)}", stats


def _onto_band(run: RunData, lines: list[np.ndarray], source: str, stats: list[dict], p: TraceParams
               ) -> tuple[list[np.ndarray], str, list[dict]]:
    """Extracted traces moved onto the decorrelation band of the run's wrapped phase, when it has one; the source
    says how many of the stations moved (backend/trace_band.py). When a line lies on the band, a line without any
    band along which the phase stays as coherent as the scene is dropped, and the source says why
    (``trace_band.coherent_along``)."""
    if p.band is None:
        return lines, source, stats
    band, files = decorrelation_map(run.run_dir, run.shape)
    if band is None:
        return lines, source, stats
    moved, swapped = [], 0
    ridges = None
    for line in lines:
        r, c = run.rowcol(line[:, 0], line[:, 1])
        rc0 = np.column_stack([r, c])
        rc, share = move_onto_band(rc0, band, p.band)
        if share == 0:  # the band is too faint piece by piece here: a long line of it along this trace?
            ridges = search_band(band) if ridges is None else ridges
            near = [(x, s) for x, _, s in ridges if _mean_distance(rc0, x) <= p.band.search_px]
            if near:
                rc, share = near[0]
                swapped += 1
        moved.append((rc0, rc, share))
    if max(m[2] for m in moved) == 0:
        return lines, source, [st | {"on_band": 0.0} for st in stats]
    # this event's rupture breaks the phase (a line lies on the band): a line along which the phase stays as
    # coherent as the scene is no rupture (trace_band.coherent_along)
    out, kept, dropped = [], [], []
    for line, st, (rc0, rc, share) in zip(lines, stats, moved):
        why = coherent_along(rc0, band, p.band) if share == 0 else None
        if why is not None:
            dropped.append(why)
            continue
        x, y = run.xy(rc[:, 0], rc[:, 1])
        out.append(orient(np.column_stack([x, y])) if share > 0 else line)
        kept.append(st | {"on_band": round(share, 2)})
    source += (f"; moved onto the interferogram's decorrelation band ({', '.join(files)}) at "
               + ", ".join(f"{100 * st['on_band']:.0f} %" for st in kept) + " of its stations"
               + (f" ({swapped} replaced by the band's own line along it)" if swapped else ""))
    if dropped:
        source += (f"; {len(dropped)} line(s) dropped: the phase stays as coherent along "
                   + ("it" if len(dropped) == 1 else "them") + " as in the scene (decorrelation "
                   + ", ".join(f"{d['decorrelation']:.2f}" for d in dropped) + f", scene {dropped[0]['scene']:.2f}) "
                   "while the rupture on the band decorrelates it: no surface rupture crosses there")
    return out, source, kept


def _mean_distance(rc: np.ndarray, other: np.ndarray) -> float:
    """Mean distance (px) from points every pixel along the polyline ``rc`` to the polyline ``other`` (row/col)."""
    cl = cumulative_length(rc)
    s_ = np.arange(0.0, cl[-1] + 1e-9, 1.0)
    return float(np.abs(signed_distance(np.interp(s_, cl, rc[:, 0]), np.interp(s_, cl, rc[:, 1]), other)).mean())


def _line_trace(run: RunData, p: TraceParams, source: str) -> tuple[list[np.ndarray], str, list[dict]]:
    pix = run.pixel_size
    min_px = (p.min_length_m / pix) if p.min_length_m else 20.0
    found = search_lines(run.disp, run.sigma, p.line)
    lines, stats = [], []
    for tr in found:
        x, y = run.xy(tr.rc[:, 0], tr.rc[:, 1])
        line = orient(np.column_stack([x, y]))
        if cumulative_length(line)[-1] >= min_px * pix:
            lines.append(line)
            stats.append({"step_z": round(tr.z, 2), "signif": round(tr.signif, 2)})
    if not lines:
        raise ToolsError(f"no rupture trace found (line search: no line of at least "
                         f"{p.line.min_length_frac:.0%} of the raster whose step is {p.line.min_ratio:g} times "
                         "the largest of shuffled copies of the data, with the same sense of slip all along it). "
                         "The displacement may be too noisy for its step. "
                         "Fix: draw or load the trace.", "trace")
    return lines, source, stats


def _mask_trace(run: RunData, p: TraceParams) -> tuple[list[np.ndarray], str]:
    pix = run.pixel_size
    min_px = (p.min_length_m / pix) if p.min_length_m else 20.0
    mask, source = rupture_mask(run, p)
    if p.close_px > 0:
        mask = ndimage.binary_closing(mask, structure=np.ones((3, 3), bool), iterations=p.close_px)
    mask = ndimage.binary_fill_holes(mask)
    skel = thin(mask)
    paths = skeleton_paths(skel, min_px)
    lines = []
    for rc in paths:
        x, y = run.xy(rc[:, 0], rc[:, 1])
        lines.append(simplify(np.column_stack([x, y]), p.simplify_px * pix))
    lines = [orient(x) for x in join_lines(lines, p.join_gap_px * pix, 5 * pix)]
    lines = [x for x in lines if cumulative_length(x)[-1] >= min_px * pix]
    if not lines:
        raise ToolsError(f"no rupture trace found ({source}; probability threshold {p.prob_threshold}, step "
                         f"threshold {p.step_threshold_m or 'auto'} m, minimum length {min_px * pix:.0f} m). Fix: "
                         "lower the thresholds, or draw or load the trace.", "trace")
    lines.sort(key=lambda x: -cumulative_length(x)[-1])
    return lines, source


def segment_strikes(line: np.ndarray) -> np.ndarray:
    """Strike (degrees clockwise from north, along the line's direction) of each segment of a polyline."""
    d = np.diff(line, axis=0)
    return azimuth_deg(d[:, 0], d[:, 1])


def trace_layers(lines: list[np.ndarray], source: str, stats: list[dict] | None = None) -> list[Layer]:
    """The ``rupture_trace`` polyline layer and the ``trace_seg`` segment layer. ``stats``: per line, the line
    search's ``step_z`` (significance of the step over the whole line) and ``signif`` (that z over the largest
    z of shuffled copies of the data: accepted from 1.15; backend/trace_search.py) and ``on_band`` (the share of
    its stations moved onto the interferogram's decorrelation band, backend/trace_band.py); empty (NULL) for drawn
    traces, as ``step_z``/``signif`` for the mask methods."""
    poly = Layer(TRACE_LAYER, "LineString", {"trace_id": "int", "strike": "real", "length_m": "real",
                                             "source": "str", "step_z": "real", "signif": "real",
                                             "on_band": "real"})
    stats = stats or [{} for _ in lines]
    segs = Layer(SEGMENT_LAYER, "LineString", {"trace_id": "int", "seg_id": "int", "strike": "real",
                                               "length_m": "real", "along_m": "real"})
    for i, line in enumerate(lines, start=1):
        cl = cumulative_length(line)
        de, dn = line[-1] - line[0]
        poly.features.append((line, {"trace_id": i, "strike": float(azimuth_deg(de, dn)), "length_m": cl[-1],
                                     "source": source, **stats[i - 1]}))
        for k, s in enumerate(segment_strikes(line)):
            segs.features.append((line[k:k + 2], {"trace_id": i, "seg_id": k + 1, "strike": float(s),
                                                  "length_m": cl[k + 1] - cl[k], "along_m": cl[k]}))
    return [poly, segs]


def write_trace(path: str | Path, lines: list[np.ndarray], crs_wkt: str, source: str = "user",
                stats: list[dict] | None = None) -> Path:
    """Write ``rupture_trace.gpkg`` (layers ``rupture_trace`` and ``trace_seg``) in ``crs_wkt``."""
    return write_layers(path, trace_layers(lines, source, stats), crs_wkt)[0]


def write_run_trace(run_dir: str | Path, params: TraceParams | None = None, out: str | Path | None = None
                    ) -> tuple[Path, list[np.ndarray], str, list[dict]]:
    """Extract a run's trace (:func:`extract_trace_stats`) and write it to ``out`` (default
    ``RUN_DIR/rupture_trace.gpkg``): ``python -m backend trace``. Returns (file, polylines, source, stats)."""
    run = load_run(run_dir)
    lines, source, stats = extract_trace_stats(run, params)
    path = write_trace(Path(out) if out else Path(run_dir) / TRACE_FILE, lines, run.crs_wkt, source, stats)
    return path, lines, source, stats


def read_trace(path: str | Path, crs_wkt: str, layer: str | None = None) -> list[np.ndarray]:
    """A user's trace file as polylines in ``crs_wkt`` (directions kept as drawn)."""
    return read_lines(path, crs_wkt, layer)


def trace_for_run(run: RunData, trace: str | Path | None = None, params: TraceParams | None = None,
                  reuse: bool = True) -> tuple[list[np.ndarray], str, list[dict]]:
    """The trace a tool uses: the user's file when given, else (with ``reuse``) ``rupture_trace.gpkg`` of the run
    folder when it exists (it may have been edited; source ``"run"``), else the trace the run's network was given
    (``run --trace``, source ``"run input"``), else an extracted one. Returns
    (polylines, source, per-line stats as :func:`extract_trace_stats`; empty dicts for a file)."""
    if trace is not None:
        lines = read_trace(trace, run.crs_wkt)
        return lines, "user", [{} for _ in lines]
    if reuse and run.run_dir is not None and (run.run_dir / TRACE_FILE).exists():
        lines = read_trace(run.run_dir / TRACE_FILE, run.crs_wkt, TRACE_LAYER)
        return lines, "run", [{} for _ in lines]
    given = ((run.run_json.get("parameters") or {}).get("rupture_trace") or {}).get("path")
    if reuse and given and Path(given).exists():  # the trace the network was given (run --trace)
        lines = read_trace(given, run.crs_wkt)
        return lines, "run input", [{} for _ in lines]
    return extract_trace_stats(run, params)
