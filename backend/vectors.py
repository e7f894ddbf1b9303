"""Displacement arrows a geologist reads: lengths in map units, a reference arrow, optional sigma ellipses.

* Arrows start at pixel centres every ``step_px`` pixels (the density the caller chooses). ``mode="sample"``
  takes the pixel's value (never an average across the trace); ``mode="mean"`` averages the ``step_px`` x
  ``step_px`` block around it over the pixels **on the same side of the trace** as the arrow's pixel only (and
  farther than ``exclude`` from it), so no arrow mixes both sides of a rupture.
* ``scale``: map units per metre of displacement (e.g. 500 -> a 1 m displacement is drawn 500 m long); default:
  the 95th percentile of the horizontal displacement is drawn ``0.9 * step_px`` pixels long, rounded to a
  1-2-5 value. ``ref_m`` (a 1-2-5 value near that percentile) is the reference arrow's displacement.
* Layers (field names <= 10 characters so shapefile exports keep them): ``arrows`` (points at the arrow's base:
  ``de_m, dn_m, du_m, horiz_m, azimuth`` (degrees clockwise from north, the direction the ground moved),
  ``length`` (map units), ``sig_e, sig_n, sig_u``, ``signif`` = horizontal |d| / its sigma), ``arrow_line``
  (the same as line geometries base -> tip, so the arrow itself survives any export without a style),
  ``arrow_ref`` (one reference arrow in the lower-left corner, ``label`` e.g. "1 m") and optionally
  ``ellipses`` (1-sigma ellipse polygons around each tip, scaled like the arrows; E and N errors independent).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .geodata import Layer, RunData, load_run, nearest_signed_distance, write_layers

ARROW_FIELDS = {"de_m": "real", "dn_m": "real", "du_m": "real", "horiz_m": "real", "azimuth": "real",
                "length": "real", "sig_e": "real", "sig_n": "real", "sig_u": "real", "signif": "real"}


def nice_value(x: float) -> float:
    """The 1-2-5 value (..., 0.1, 0.2, 0.5, 1, 2, 5, ...) nearest to ``x`` from below (x > 0)."""
    if not (x > 0 and math.isfinite(x)):
        return 1.0
    e = math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * 10**e <= x:
            return float(m * 10**e)
    return float(10**e)


def side_raster(run: RunData, trace: list[np.ndarray]) -> np.ndarray:
    """(H, W) signed distance (m) of every pixel centre to the nearest trace polyline (+ right of it)."""
    X, Y = run.pixel_grid_xy()
    return nearest_signed_distance(X, Y, trace)


def make_arrows(run: RunData, step_px: int = 16, scale: float | None = None, trace: list[np.ndarray] | None = None,
                mode: str = "sample", exclude: float | None = None) -> dict:
    """Arrow records and their scale: {"arrows": [dict], "scale", "ref_m", "ref_len", "step_px"}."""
    h, w = run.shape
    pix = run.pixel_size
    r0 = c0 = step_px // 2
    rows, cols = np.meshgrid(np.arange(r0, h, step_px), np.arange(c0, w, step_px), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    disp, sig = run.disp, run.sigma
    if mode == "mean":
        side = side_raster(run, trace) if trace else None
        excl = 3 * pix if exclude is None else exclude
        vals = np.full((3, len(rows)), np.nan)
        sigs = np.full((3, len(rows)), np.nan)
        half = step_px // 2
        for k, (r, c) in enumerate(zip(rows, cols)):
            sl = (slice(max(r - half, 0), r + half + 1), slice(max(c - half, 0), c + half + 1))
            ok = np.all(np.isfinite(disp[(slice(None),) + sl]), axis=0)
            if side is not None:
                s = side[sl]
                ok &= (np.sign(s) == np.sign(side[r, c])) & (np.abs(s) > excl)
            if ok.any():
                vals[:, k] = disp[(slice(None),) + sl][:, ok].mean(axis=1)
                if sig is not None:
                    sigs[:, k] = np.sqrt((sig[(slice(None),) + sl][:, ok] ** 2).mean(axis=1) / ok.sum())
    elif mode == "sample":
        vals = disp[:, rows, cols].astype(float)
        sigs = sig[:, rows, cols].astype(float) if sig is not None else np.full_like(vals, np.nan)
    else:
        raise ValueError(f"mode must be 'sample' or 'mean', not {mode!r}")
    horiz = np.hypot(vals[0], vals[1])
    p95 = float(np.nanpercentile(horiz, 95)) if np.isfinite(horiz).any() else 1.0
    ref_m = nice_value(p95)
    if scale is None:
        scale = nice_value(0.9 * step_px * pix / max(p95, 1e-9))
    x, y = run.xy(rows, cols)
    arrows = []
    for k in range(len(rows)):
        if not np.isfinite(horiz[k]):
            continue
        sh = math.hypot(vals[0, k] * sigs[0, k], vals[1, k] * sigs[1, k]) / max(horiz[k], 1e-12)
        arrows.append({"x": float(x[k]), "y": float(y[k]), "de_m": vals[0, k], "dn_m": vals[1, k],
                       "du_m": vals[2, k], "horiz_m": horiz[k],
                       "azimuth": float(np.mod(np.degrees(np.arctan2(vals[0, k], vals[1, k])), 360.0)),
                       "length": horiz[k] * scale, "sig_e": sigs[0, k], "sig_n": sigs[1, k], "sig_u": sigs[2, k],
                       "signif": horiz[k] / sh if sh > 0 else math.nan})
    return {"arrows": arrows, "scale": float(scale), "ref_m": ref_m, "ref_len": ref_m * scale, "step_px": step_px}


def ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 24) -> np.ndarray:
    """Axis-aligned ellipse ring (semi-axes ``ax`` east, ``ay`` north) around (cx, cy)."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + ax * np.cos(a), cy + ay * np.sin(a)])


def arrow_layers(result: dict, bounds: tuple[float, float, float, float], ellipses: bool = False) -> list[Layer]:
    """The ``arrows``, ``arrow_line``, ``arrow_ref`` (and ``ellipses``) layers of :func:`make_arrows`' result."""
    sc = result["scale"]
    pts = Layer("arrows", "Point", ARROW_FIELDS)
    lns = Layer("arrow_line", "LineString", ARROW_FIELDS)
    ell = Layer("ellipses", "Polygon", {"sig_e": "real", "sig_n": "real"})
    for a in result["arrows"]:
        attrs = {k: a[k] for k in ARROW_FIELDS}
        tip = (a["x"] + a["de_m"] * sc, a["y"] + a["dn_m"] * sc)
        pts.features.append(((a["x"], a["y"]), attrs))
        lns.features.append((np.array([[a["x"], a["y"]], tip]), attrs))
        if ellipses and np.isfinite(a["sig_e"]) and np.isfinite(a["sig_n"]):
            ell.features.append((ellipse(*tip, a["sig_e"] * sc, a["sig_n"] * sc),
                                 {"sig_e": a["sig_e"], "sig_n": a["sig_n"]}))
    xmin, ymin, xmax, ymax = bounds
    x0, y0 = xmin + 0.05 * (xmax - xmin), ymin + 0.05 * (ymax - ymin)
    ref = Layer("arrow_ref", "LineString", {"disp_m": "real", "length": "real", "scale": "real", "label": "str"})
    ref.features.append((np.array([[x0, y0], [x0 + result["ref_len"], y0]]),
                         {"disp_m": result["ref_m"], "length": result["ref_len"], "scale": sc,
                          "label": f"{result['ref_m']:g} m"}))
    return [pts, lns, ref] + ([ell] if ellipses else [])


def write_arrows(run_dir: str | Path, out: str | Path, step_px: int = 16, scale: float | None = None,
                 trace: list[np.ndarray] | None = None, mode: str = "sample", ellipses: bool = False) -> list[Path]:
    """Arrows of a run folder written to ``out`` (``*.gpkg``, ``*.shp`` or a folder for shapefiles)."""
    run = load_run(run_dir)
    res = make_arrows(run, step_px, scale, trace, mode)
    return write_layers(out, arrow_layers(res, run.bounds, ellipses), run.crs_wkt)
