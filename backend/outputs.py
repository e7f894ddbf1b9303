"""The output files: names, GeoTIFF profile, the staging folder and the row writer of the tiled inference.

Outputs are written into a temporary folder inside ``out_dir`` (:class:`Staging`) and moved in only when the run
succeeds; a failed or cancelled run leaves nothing (and removes ``out_dir`` if the run created it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from . import products
from .conventions import enu_to_los
from .errors import PipelineError
from .io import Grid, OpenedInput

# key -> file name. The first five are the backend's core outputs; the rest are derived products (products.py).
OUTPUT_NAMES = {"displacement": "displacement.tif", "displacement_sigma": "displacement_sigma.tif",
                "los_displacement": "los_displacement.tif", "unwrapped_phase": "unwrapped_phase.tif",
                "run_json": "run.json", "rupture_probability": "rupture_probability.tif",
                "east": "displacement_east.vrt", "north": "displacement_north.vrt", "up": "displacement_up.vrt",
                "horizontal": "horizontal_magnitude.tif", "uncertainty": "uncertainty.tif",
                "rewrapped_phase": "rewrapped_phase.tif", "arrows": "displacement_arrows.gpkg"}
COLUMN_CHUNK = 2048  # the writer works on column chunks: temporaries stay small on wide rasters


def profile(grid: Grid, count: int) -> dict[str, Any]:
    """Float32 tiled deflate GeoTIFF, NaN = no data."""
    bs = 256 if min(grid.width, grid.height) >= 256 else 16 * max(1, min(grid.width, grid.height) // 16)
    prof: dict[str, Any] = dict(driver="GTiff", width=grid.width, height=grid.height, count=count, dtype="float32",
                                crs=grid.crs, transform=grid.transform, nodata=float("nan"), compress="deflate",
                                predictor=3, BIGTIFF="IF_SAFER")
    if bs >= 16:
        prof.update(tiled=True, blockxsize=bs, blockysize=bs)
    return prof


def open_out(path: Path, grid: Grid, descriptions: list[str], units: list[str], tags: dict[str, str]) -> Any:
    ds = rasterio.open(path, "w", **profile(grid, len(descriptions)))
    for i, (d, u) in enumerate(zip(descriptions, units), start=1):
        ds.set_band_description(i, d)
        ds.update_tags(i, units=u)
    ds.units = tuple(units)
    ds.update_tags(**tags)
    return ds


def check_not_overwritten(opened: dict[str, OpenedInput], out_dir: Path) -> None:
    """Never overwrite an input with an output."""
    out_dir = Path(out_dir).resolve()
    for inp in opened.values():
        if Path(inp.path).resolve().parent == out_dir and Path(inp.path).name in OUTPUT_NAMES.values():
            raise PipelineError(f"{inp.name} ({inp.path}) would be overwritten by an output. Fix: choose another "
                                "--out folder", inp.name)


class Staging:
    """Context manager: a temporary folder inside ``out_dir``; :meth:`commit` moves the files in."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir).resolve()
        self.created = not self.out_dir.exists()
        self.tmp = self.out_dir / f".quakefusion-tmp-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Staging:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        return self

    def path(self, key: str) -> Path:
        return self.tmp / OUTPUT_NAMES[key]

    def produced(self) -> dict[str, Path]:
        return {k: self.path(k) for k in OUTPUT_NAMES if self.path(k).exists()}

    def commit(self) -> dict[str, Path]:
        final: dict[str, Path] = {}
        for key, name in OUTPUT_NAMES.items():
            if (self.tmp / name).exists():
                os.replace(self.tmp / name, self.out_dir / name)
                final[key] = self.out_dir / name
        return final

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if exc_type is not None and self.created:
            try:
                self.out_dir.rmdir()
            except OSError:
                pass


class InferenceWriter:
    """Opens the per-pixel outputs of the inference and writes finished rows of the blended result.

    Block layout (``channels``): 0-2 displacement, 3-5 sigma, then one band per extra model output
    (``rupture_probability``), last the validity weight. Derived per-pixel products (horizontal magnitude,
    3-D uncertainty, arrows) are computed from the same in-memory rows.
    """

    def __init__(self, staging: Staging, grid: Grid, tags: dict[str, str], angles: Any, extra: list[str],
                 with_phase: bool) -> None:
        self.grid, self.angles, self.extra = grid, angles, extra
        self.ds: dict[str, Any] = {}
        self.ds["displacement"] = open_out(staging.path("displacement"), grid,
                                           ["east displacement", "north displacement", "up displacement"],
                                           ["m"] * 3, tags)
        self.ds["displacement_sigma"] = open_out(staging.path("displacement_sigma"), grid,
                                                 ["east 1-sigma", "north 1-sigma", "up 1-sigma"], ["m"] * 3, tags)
        if "rupture_probability" in extra:
            self.ds["rupture_probability"] = open_out(staging.path("rupture_probability"), grid,
                                                      ["probability that the pixel lies on a surface rupture"],
                                                      ["1"], tags)
        if angles.given:
            # band 1 fused estimate, band 2 (with a phase) from the unwrapped phase: the UI shows the last band
            desc = ["LOS displacement, fused estimate (positive towards the satellite)"]
            if with_phase:
                desc.append("LOS displacement from the unwrapped phase (positive towards the satellite)")
            self.ds["los_displacement"] = open_out(staging.path("los_displacement"), grid, desc, ["m"] * len(desc),
                                                   tags)
        self.ds["horizontal"] = open_out(staging.path("horizontal"), grid,
                                         ["horizontal displacement magnitude sqrt(E^2+N^2)"], ["m"], tags)
        self.ds["uncertainty"] = open_out(staging.path("uncertainty"), grid,
                                          ["3-D 1-sigma uncertainty sqrt(sE^2+sN^2+sU^2)"], ["m"], tags)
        self.arrows = products.ArrowGrid(grid.height, grid.width)
        self.valid_px = 0  # pixels with a displacement (run.json "valid_fraction")

    @property
    def channels(self) -> int:
        return 7 + len(self.extra)

    def __call__(self, row0: int, block: np.ndarray) -> None:
        n = block.shape[1]
        for c0 in range(0, self.grid.width, COLUMN_CHUNK):
            cw = min(COLUMN_CHUNK, self.grid.width - c0)
            sub = block[:, :, c0:c0 + cw]
            valid = sub[-1] > 0.5
            self.valid_px += int(np.count_nonzero(valid))
            disp = np.where(valid, sub[0:3], np.nan).astype(np.float32)
            sig = np.where(valid, sub[3:6], np.nan).astype(np.float32)
            win = Window(c0, row0, cw, n)
            self.ds["displacement"].write(disp, window=win)
            self.ds["displacement_sigma"].write(sig, window=win)
            for i, key in enumerate(self.extra):
                self.ds[key].write(np.where(valid, sub[6 + i], np.nan).astype(np.float32), 1, window=win)
            if "los_displacement" in self.ds:
                lu = self.angles.los(row0, c0, n, cw)
                self.ds["los_displacement"].write(enu_to_los(disp[0], disp[1], disp[2], lu).astype(np.float32), 1,
                                                  window=win)
            self.ds["horizontal"].write(products.horizontal_magnitude(disp), 1, window=win)
            self.ds["uncertainty"].write(products.uncertainty_3d(sig), 1, window=win)
            self.arrows.add(row0, c0, disp)

    def close(self) -> None:
        for ds in self.ds.values():
            ds.close()
        self.ds.clear()

    def __enter__(self) -> InferenceWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_views(staging: Staging, grid: Grid, arrows: products.ArrowGrid) -> list[str]:
    """One-band VRTs of displacement.tif and the arrows; returns notes (arrows skipped without GDAL bindings)."""
    for band, key in enumerate(products.COMPONENTS, start=1):
        products.band_vrt(staging.path("displacement"), band, staging.path(key), grid, f"{key} displacement (m)")
    if products.write_arrows(arrows.points(grid.transform), grid.crs.to_wkt(), staging.path("arrows")) is None:
        return ["displacement arrows not written: GDAL's Python bindings (osgeo) are not installed"]
    return []


def write_run_json(path: Path, run: dict[str, Any]) -> None:
    path.write_text(json.dumps(jsonable(run), indent=2))


def jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    return o
