"""Rasters a geologist reads: fault-parallel and fault-normal components for the trace's strike, significance.

* ``fault_components.tif``: 1 fault-parallel d.t (m), 2 fault-normal d.n (m), 3 and 4 their 1-sigma (m; NaN
  without ``displacement_sigma.tif``). t: the direction of the nearest trace segment (``local=True``, default:
  follows a curved trace) or the traces' length-weighted mean direction; n: its right-hand normal (t turned 90
  degrees clockwise). These are the displacements of each pixel, not differences: across a left-lateral rupture
  the right side moves along +t and the left side along -t (right-lateral: the reverse); d.n > 0 moves towards
  the right of the trace.
* ``significance.tif``: |d| / sigma_|d| of the 3-D displacement (sigma_|d| = sqrt(sum (d_i sigma_i)^2) / |d|,
  components independent); written only with ``displacement_sigma.tif``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .geodata import RunData, azimuth_deg, cumulative_length, load_run, right_normal

COMPONENTS_FILE, SIGNIFICANCE_FILE = "fault_components.tif", "significance.tif"


def mean_direction(lines: list[np.ndarray]) -> np.ndarray:
    """Length-weighted mean direction of polylines (axial mean: opposite segments do not cancel), oriented like
    the longest polyline's end-to-end direction."""
    acc = np.zeros(2)
    for line in lines:
        for v in np.diff(line, axis=0):
            a = math.atan2(v[0], v[1])
            acc += np.hypot(*v) * np.array([math.sin(2 * a), math.cos(2 * a)])
    a = 0.5 * math.atan2(acc[0], acc[1])
    t = np.array([math.sin(a), math.cos(a)])
    longest = max(lines, key=lambda x: cumulative_length(x)[-1])
    return t if float(t @ (longest[-1] - longest[0])) >= 0 else -t


def direction_field(run: RunData, lines: list[np.ndarray], local: bool = True) -> np.ndarray:
    """(2, H, W) unit trace direction t for every pixel: of the nearest trace segment, or the mean direction."""
    h, w = run.shape
    if not local:
        t = mean_direction(lines)
        return np.broadcast_to(t[:, None, None], (2, h, w)).astype(np.float32)
    from scipy.spatial import cKDTree

    pts, dirs = [], []
    step = run.pixel_size
    for line in lines:
        for a, b in zip(line[:-1], line[1:]):
            v = b - a
            L = float(np.hypot(*v))
            if L <= 0:
                continue
            s = np.arange(0.0, L + 1e-9, step)
            pts.append(a + s[:, None] * (v / L))
            dirs.append(np.repeat((v / L)[None], len(s), axis=0))
    tree = cKDTree(np.vstack(pts))
    d = np.vstack(dirs)
    X, Y = run.pixel_grid_xy()
    _, idx = tree.query(np.column_stack([X.ravel(), Y.ravel()]))
    return d[idx].T.reshape(2, h, w).astype(np.float32)


def component_arrays(run: RunData, lines: list[np.ndarray], local: bool = True) -> dict[str, np.ndarray]:
    """{"parallel", "normal", "parallel_sigma", "normal_sigma", "significance"} (H, W) float32 arrays."""
    t = direction_field(run, lines, local)
    n = right_normal(t)
    e, nn, u = run.disp
    out = {"parallel": e * t[0] + nn * t[1], "normal": e * n[0] + nn * n[1]}
    if run.sigma is not None:
        se, sn, su = run.sigma
        out["parallel_sigma"] = np.hypot(se * t[0], sn * t[1])
        out["normal_sigma"] = np.hypot(se * n[0], sn * n[1])
        mag = np.sqrt(e * e + nn * nn + u * u)
        smag = np.sqrt((e * se) ** 2 + (nn * sn) ** 2 + (u * su) ** 2) / np.maximum(mag, 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["significance"] = np.where(smag > 0, mag / smag, np.nan)
    else:
        out["parallel_sigma"] = out["normal_sigma"] = np.full(run.shape, np.nan, np.float32)
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def write_component_rasters(run_dir: str | Path, lines: list[np.ndarray], out_dir: str | Path | None = None,
                            local: bool = True) -> dict[str, Path]:
    """Write ``fault_components.tif`` (and ``significance.tif`` with sigmas) on the run's grid; returns paths."""
    import rasterio

    run = load_run(run_dir)
    out = Path(out_dir) if out_dir else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    arr = component_arrays(run, lines, local)
    h, w = run.shape
    prof = dict(driver="GTiff", width=w, height=h, dtype="float32", crs=run.crs_wkt, transform=run.transform,
                nodata=float("nan"), compress="deflate", tiled=w >= 256 and h >= 256)
    how = "nearest trace segment" if local else f"mean strike {azimuth_deg(*mean_direction(lines)):.1f} deg"
    files = {"components": (out / COMPONENTS_FILE, ["parallel", "normal", "parallel_sigma", "normal_sigma"],
                            ["fault-parallel displacement d.t", "fault-normal displacement d.n",
                             "1-sigma of fault-parallel", "1-sigma of fault-normal"], "m")}
    if run.sigma is not None:
        files["significance"] = (out / SIGNIFICANCE_FILE, ["significance"], ["|d| / sigma of |d| (3-D)"], "1")
    written = {}
    for key, (path, names, descs, units) in files.items():
        with rasterio.open(path, "w", count=len(names), **prof) as ds:
            for i, (nm, desc) in enumerate(zip(names, descs), start=1):
                ds.write(arr[nm], i)
                ds.set_band_description(i, desc)
                ds.update_tags(i, units=units)
            ds.update_tags(direction=f"t from the {how}; n = t turned 90 deg clockwise (right-hand normal)")
        written[key] = path
    return written
