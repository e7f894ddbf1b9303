"""One QuakeFusion run as the dialog's task and the Processing algorithm do it (no Qt widgets here).

``RunSpec`` (plain values: paths, bands, numbers, an optional extent) -> ``execute(spec, progress, cancel)``:

1. a fresh sub-folder ``<output folder>/<run name>`` (never reuses an existing one);
2. the output grid: the backend's grid of the reference input, cropped to the requested area (the layers'
   intersection, a map-canvas extent or a drawn rectangle), handed to the backend as a ``grid_like`` raster;
3. ``backend.pipeline.run_estimate`` (imported lazily: the plugin starts even when onnxruntime is missing);
4. derived products and ``.qml`` styles (``results.py``).

A cancelled or failed run leaves no files: the run folder is removed. Heavy modules are imported inside
functions so that importing this module is cheap.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODALITIES = ("optical_pre", "optical_post", "sar_pre", "sar_post", "phase", "coherence", "dem")
ANGLES = ("incidence", "heading")
GRID_ORDER = ("phase", "optical_post", "sar_post", "optical_pre", "sar_pre", "coherence", "dem")
LOG_TAG = "QuakeFusion"

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


@dataclass
class RunSpec:
    """What the user asked for. ``inputs``: name -> (path, 1-based band) for modalities and angle rasters.

    ``extent``: ``(xmin, ymin, xmax, ymax, crs_wkt)`` of a requested area, or None. ``intersection``: crop the
    output grid to the area covered by every given input (the default of the dialog).
    """

    out_root: Path
    run_name: str
    inputs: dict[str, tuple[str, int]] = field(default_factory=dict)
    incidence_deg: float | None = None
    heading_deg: float | None = None
    wavelength_m: float | None = None
    phase_sign: int = 1
    device: str = "auto"
    tile: int = 1024
    model_path: Path | None = None
    extent: tuple[float, float, float, float, str] | None = None
    intersection: bool = True


@dataclass
class RunOutcome:
    """Files of a finished run: backend outputs + derived products (key -> path), the device used, notes."""

    out_dir: Path
    files: dict[str, Path]
    device: str
    run: dict[str, Any]
    styles: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    valid_fraction: float = 1.0


def slug(name: str) -> str:
    """A file-system-safe folder name for a run name."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return s or "quakefusion_run"


def default_run_name() -> str:
    return time.strftime("QuakeFusion %Y-%m-%d %H%M%S")


def unique_run_dir(out_root: Path, run_name: str) -> Path:
    base = Path(out_root) / slug(run_name)
    cand, i = base, 2
    while cand.exists():
        cand = base.with_name(f"{base.name}_{i}")
        i += 1
    return cand


def overlap(spec: RunSpec) -> int:
    """Tile overlap for a tile size: a quarter of the tile, at most 256 px, at least 16 px.

    The shipped network (0.2.0) draws on ~200 px of context (U-Net down to 1/16 plus 41-px windows): on a
    768-px strong-event scene, 512-px tiles overlapping by 128 px left seams of 1-3 % of the signal (p99), 192 px
    0.1-0.5 %, 255 px < 0.1 %. Tiles of 1024 px overlapping by 256 px cost the same as 512/128 (step 3/4 of
    the tile) with the margins of 512/256 (BENCHMARKS.md)."""
    return max(16, min(256, int(spec.tile) // 4, (int(spec.tile) - 1) // 2))


# ----------------------------------------------------------------------------------------- output grid
def _bounds_of(path: str, dst_crs: Any) -> tuple[float, float, float, float]:
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        b = ds.bounds
        if ds.crs is None or ds.crs == dst_crs:
            return b.left, b.bottom, b.right, b.top
        return tuple(transform_bounds(ds.crs, dst_crs, *b, densify_pts=21))  # type: ignore[return-value]


def crop_bounds(spec: RunSpec, grid: Any) -> tuple[float, float, float, float] | None:
    """The requested area in the grid's CRS (None = the whole reference grid). Raises PipelineError if empty."""
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    from .backend.errors import PipelineError

    g = grid.bounds
    box = list(g)
    changed = False
    if spec.intersection:
        for name, (path, _band) in spec.inputs.items():
            try:
                b = _bounds_of(path, grid.crs)
            except Exception:  # unreadable: the backend reports it with the input's name
                continue
            box = [max(box[0], b[0]), max(box[1], b[1]), min(box[2], b[2]), min(box[3], b[3])]
            if box[0] >= box[2] or box[1] >= box[3]:
                raise PipelineError(f"{name} does not overlap the other inputs. Fix: choose layers of the same "
                                    "area (check their CRS)", name)
            changed = True
    if spec.extent is not None:
        xmin, ymin, xmax, ymax, wkt = spec.extent
        src = CRS.from_wkt(wkt) if wkt else grid.crs
        b = transform_bounds(src, grid.crs, xmin, ymin, xmax, ymax, densify_pts=21) if src != grid.crs \
            else (xmin, ymin, xmax, ymax)
        box = [max(box[0], b[0]), max(box[1], b[1]), min(box[2], b[2]), min(box[3], b[3])]
        if box[0] >= box[2] or box[1] >= box[3]:
            raise PipelineError("the chosen extent does not overlap the input layers. Fix: pan the map to the "
                                "layers or draw the rectangle over them", "extent")
        changed = True
    if not changed:
        return None
    return box[0], box[1], box[2], box[3]


def make_grid_like(spec: RunSpec, tmp_dir: Path) -> Path | None:
    """A tiny sparse GeoTIFF defining the cropped output grid, or None when the backend's default grid is it."""
    import rasterio
    from affine import Affine

    from .backend.errors import PipelineError
    from .backend.io import InputRaster, validate_input
    from .backend.io import grid_from as backend_grid_from

    ref_name = next((n for n in GRID_ORDER if n in spec.inputs), None)
    if ref_name is None:
        return None
    path, band = spec.inputs[ref_name]
    grid = backend_grid_from(validate_input(ref_name, InputRaster(path, band)))
    box = crop_bounds(spec, grid)
    if box is None:
        return None
    t = grid.transform
    px, py = abs(t.a), abs(t.e)
    c0 = max(0, math.floor((box[0] - t.c) / px + 1e-6))
    c1 = min(grid.width, math.ceil((box[2] - t.c) / px - 1e-6))
    r0 = max(0, math.floor((t.f - box[3]) / py + 1e-6))
    r1 = min(grid.height, math.ceil((t.f - box[1]) / py - 1e-6))
    if c1 - c0 < 16 or r1 - r0 < 16:
        raise PipelineError(f"the chosen area is only {max(c1 - c0, 0)} x {max(r1 - r0, 0)} pixels. Fix: choose a "
                            "larger extent (at least 16 x 16 pixels)", "extent")
    if (c0, r0, c1, r1) == (0, 0, grid.width, grid.height):
        return None
    out = Path(tmp_dir) / "grid_like.tif"
    tr = Affine(t.a, 0.0, t.c + c0 * t.a, 0.0, t.e, t.f + r0 * t.e)
    with rasterio.open(out, "w", driver="GTiff", width=c1 - c0, height=r1 - r0, count=1, dtype="uint8",
                       crs=grid.crs, transform=tr, sparse_ok=True, tiled=True, blockxsize=16, blockysize=16):
        pass
    return out


# ----------------------------------------------------------------------------------------- config
def build_config(spec: RunSpec, out_dir: Path, grid_like: Path | None) -> Any:
    from .backend.pipeline import EstimateConfig, InputRaster

    kw: dict[str, Any] = {}
    for name in MODALITIES:
        if name in spec.inputs:
            p, b = spec.inputs[name]
            kw[name] = InputRaster(p, int(b))
    for name in ANGLES:
        if name in spec.inputs:
            p, b = spec.inputs[name]
            kw[f"{name}_deg"] = InputRaster(p, int(b))
        else:
            kw[f"{name}_deg"] = getattr(spec, f"{name}_deg")
    return EstimateConfig(out_dir=out_dir, wavelength_m=spec.wavelength_m, phase_sign=int(spec.phase_sign),
                          grid_like=InputRaster(grid_like) if grid_like else None, device=spec.device,
                          tile=int(spec.tile), overlap=overlap(spec), model_path=spec.model_path, **kw)


def execute(spec: RunSpec, progress: ProgressFn | None = None, cancel: CancelFn | None = None,
            log: Callable[[str], None] | None = None, styles: bool = True) -> RunOutcome:
    """Run the pipeline and the derived products; raises PipelineError (user-fixable) or Cancelled."""
    from . import results
    from .backend.errors import Cancelled
    from .backend.pipeline import run_estimate

    t0 = time.perf_counter()

    def report(f: float, msg: str) -> None:
        if progress is not None:
            progress(min(max(f, 0.0), 1.0), msg)

    def check() -> None:
        if cancel is not None and cancel():
            raise Cancelled()

    out_dir = unique_run_dir(spec.out_root, spec.run_name)
    tmp = Path(tempfile.mkdtemp(prefix="quakefusion-grid-"))
    try:
        report(0.0, "preparing the output grid")
        grid_like = make_grid_like(spec, tmp)
        cfg = build_config(spec, out_dir, grid_like)
        check()
        res = run_estimate(cfg, progress=lambda f, m: report(0.9 * f, m), cancel=cancel)
        try:
            check()
            report(0.9, "derived layers: horizontal magnitude, uncertainty, re-wrapped phase, arrows")
            files = dict(res.outputs)
            files.update(results.write_derived(out_dir, res.outputs, cancel=cancel))
            check()
            style_info: dict[str, dict[str, Any]] = {}
            if styles:
                report(0.97, "styles")
                style_info = results.write_styles(files)
            check()
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        secs = time.perf_counter() - t0
        valid = results.valid_fraction(files["east"])
        if log is not None:
            log(f"valid displacement pixels: {100 * valid:.1f} %")
            log(f"run '{spec.run_name}' finished in {secs:.1f} s on {res.device}: {out_dir}")
            for note in res.run.get("notes", []):
                log(f"note: {note}")
        report(1.0, f"done in {secs:.1f} s ({res.device})")
        return RunOutcome(out_dir=out_dir, files=files, device=res.device, run=res.run, styles=style_info,
                          seconds=secs, valid_fraction=valid)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
