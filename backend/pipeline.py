"""The QuakeFusion pipeline, as a short sequence of named stages, each in the module that owns it:

    validate (config.check) -> grid (io.output_grid) -> read/align (align.AlignedSource) -> infer (infer.infer_tiles)
    -> unwrap (unwrap.unwrap_grid) -> products (products, outputs.write_views) -> write (outputs.Staging, run.json)

Stable API for the dialog, the Processing algorithm and the CLI (see docs/architecture.md)::

    from backend.pipeline import EstimateConfig, InputRaster, run_estimate, CancelToken, PipelineError, Cancelled
    cfg = EstimateConfig(out_dir=Path("out"), phase=InputRaster("ifg.tif"), wavelength_m=0.0555,
                         incidence_deg=39.0, heading_deg=-12.0)
    token = CancelToken()
    try:
        result = run_estimate(cfg, progress=lambda fraction, message: ..., cancel=token)
    except PipelineError as err:   # err.message for the user, err.input_name = the input to highlight
        ...
    except Cancelled:              # token.cancel() was called: nothing was written
        ...
    result.outputs   # key -> path, keys of outputs.OUTPUT_NAMES ("displacement", "horizontal", "arrows", ...)
    result.device    # "cpu" or "cuda"

Robustness (docs/robustness.md): inputs are never written or removed (``outputs.check_not_overwritten``), one
run per output folder (a lock), outputs appear only complete (run.json last) and replace the previous run's files,
I/O failures are reported by file with the fix.

``progress(fraction in 0..1, message)`` is called from the worker thread; ``cancel`` is checked per tile and per
unwrapping block (a :class:`CancelToken`, or any callable returning True to cancel). Outputs are written to a
temporary folder inside ``out_dir`` and moved in only on success; a cancelled or failed run leaves nothing. Open
files are held by one context stack and closed on every exit path.
"""

from __future__ import annotations

import errno
import platform
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from . import features as feat
from . import outputs as out
from . import products
from .align import AlignedSource, Angles
from .config import GRID_ORDER, MIN_GRID_PX, CancelToken, EstimateConfig, angle_notes, check, raise_first
from .conventions import los_to_phase, phase_to_los
from .errors import Cancelled, PipelineError
from .infer import TilePlan, check_cancel, extra_outputs, infer_tiles
from .io import Grid, InputRaster, OpenedInput, check_overlap, open_inputs, output_grid
from .model import OnnxModel
from .outputs import OUTPUT_NAMES
from .unwrap import UnwrapParams, unwrap_grid

__all__ = ["EstimateConfig", "InputRaster", "run_estimate", "CancelToken", "PipelineError", "Cancelled",
           "EstimateResult", "OUTPUT_NAMES"]

STATS_FULL_MAX_PX = 2048 * 2048
STATS_BLOCK = 256
LOW_COVERAGE = 0.05  # an input covering less of the output grid gets a note
LOW_VALID = 0.05  # a displacement on less of the grid gets a note (none at all: the run fails, nothing is written)


@dataclass
class EstimateResult:
    outputs: dict[str, Path]
    device: str
    grid: Grid
    run: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    """What the stages share: the settings, the inputs, the grid, the model, progress, cancel and timings."""

    cfg: EstimateConfig
    progress: Callable[[float, str], None] | None
    cancel: Callable[[], bool] | None
    t_start: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    opened: dict[str, OpenedInput] = field(default_factory=dict)
    grid: Grid | None = None
    grid_ref: str = ""
    coverage: dict[str, float] = field(default_factory=dict)
    unwrap_info: dict[str, Any] = field(default_factory=dict)
    valid_fraction: float = 0.0
    skipped_tiles: int = 0
    log: list[str] = field(default_factory=list)  # -> run.log beside run.json

    def report(self, fraction: float, message: str) -> None:
        self.log.append(f"{time.perf_counter() - self.t_start:8.2f} s  {100 * fraction:5.1f} %  {message}")
        if self.progress is not None:
            self.progress(float(min(max(fraction, 0.0), 1.0)), message)

    def check_cancel(self) -> None:
        check_cancel(self.cancel)

    @contextmanager
    def clock(self, key: str) -> Any:
        t0 = time.perf_counter()
        yield
        self.timings[key] = time.perf_counter() - t0


# ----------------------------------------------------------------------------------------- stages
def _validate_and_grid(r: _Run) -> None:
    """validate -> grid: the settings, every input's georeferencing and values, the output grid."""
    cfg = r.cfg
    raise_first(check(cfg))
    r.notes += angle_notes(cfg)
    rasters = cfg.rasters()
    paths = {n: Path(inp.path) for n, inp in rasters.items()}
    if cfg.grid_like is not None:
        paths["grid_like"] = Path(cfg.grid_like.path)
    out.check_not_overwritten({n: p for n, p in paths.items() if p.exists()}, cfg.out_dir)
    r.opened = {}
    for i, (name, raster) in enumerate(rasters.items()):  # progress moves while the inputs are checked
        r.report(0.02 * i / max(len(rasters), 1), f"checking inputs: {name}")
        r.opened.update(open_inputs({name: raster}))
    r.grid, r.grid_ref = output_grid(cfg.grid_like, r.opened, GRID_ORDER, cfg.extent, cfg.intersection)
    if min(r.grid.width, r.grid.height) < MIN_GRID_PX:
        raise PipelineError(f"the output grid ({r.grid_ref}'s) is only {r.grid.width} x {r.grid.height} px: a strip "
                            f"that narrow holds no 2-D pattern to estimate displacement from (at least {MIN_GRID_PX} x "
                            f"{MIN_GRID_PX} px). Fix: give inputs covering a larger area, or a larger grid "
                            "(--grid-like, --extent)", r.grid_ref)
    r.coverage = {name: check_overlap(inp, r.grid) for name, inp in r.opened.items()}
    r.notes += [f"{n}: {x}" for n, inp in r.opened.items() for x in inp.notes]
    r.notes += [f"{n} covers only {100 * c:.2g} % of the output grid: the rest has no {n} (choose --grid-like or "
                "--extent over the area it covers)" for n, c in r.coverage.items() if c < LOW_COVERAGE]


def _model_notes(meta: Any, grid: Grid) -> list[str]:
    rng = meta.pixel_size_range_m
    if rng and not (rng[0] <= grid.pixel_size_m <= rng[1]):
        return [f"output pixel size {grid.pixel_size_m:.3g} m is outside the model's trained range "
                f"{rng[0]:g}-{rng[1]:g} m: expect lower accuracy (use --grid-like to choose another grid)"]
    return []


def _open_sources(r: _Run, stack: ExitStack) -> tuple[dict[str, AlignedSource], Angles]:
    """read/align: every input as an AlignedSource on the output grid (closed by ``stack``)."""
    kinds = {"phase": "phase"}
    sources = {n: stack.enter_context(AlignedSource(inp, r.grid, kinds.get(n, "continuous")))
               for n, inp in r.opened.items()}

    def angle(name: str) -> Any:
        v = getattr(r.cfg, f"{name}_deg")
        return sources.get(name) if isinstance(v, InputRaster) else v

    return sources, Angles(angle("incidence"), angle("heading"))


def _stats_arrays(sources: dict[str, AlignedSource], grid: Grid) -> dict[str, np.ndarray]:
    """Full-resolution samples for the global statistics: the whole grid if small, else a lattice of blocks."""
    h, w = grid.shape
    if h * w <= STATS_FULL_MAX_PX:
        blocks = [(0, 0, h, w)]
    else:
        n = 8
        rs = np.linspace(0, max(h - STATS_BLOCK, 0), n).astype(int)
        cs = np.linspace(0, max(w - STATS_BLOCK, 0), n).astype(int)
        blocks = [(r, c, min(STATS_BLOCK, h), min(STATS_BLOCK, w)) for r in rs for c in cs]
    return {key: np.concatenate([sources[key].read(*b).ravel() for b in blocks])
            for key in ("optical_pre", "optical_post", "sar_pre", "sar_post") if key in sources}


def _infer(r: _Run, model: OnnxModel, plan: TilePlan, sources: dict[str, AlignedSource], angles: Angles,
           stats: dict[str, Any], staging: out.Staging, tags: dict[str, str], frac: float) -> products.ArrowGrid:
    """infer: tiles -> model -> blended rows -> displacement, sigma, LOS (band 1), extra outputs, magnitudes.
    Sets ``r.valid_fraction`` (share of the grid with a displacement)."""
    with_phase = "phase" in sources and r.cfg.unwrap
    with out.InferenceWriter(staging, r.grid, tags, angles, extra_outputs(model.meta), with_phase) as writer:
        r.timings.update(infer_tiles(
            model, sources, angles, stats, r.grid, r.cfg, plan, writer, writer.channels,
            lambda i, n: r.report(0.05 + frac * i / n, f"inference: tile {i}/{n}"), r.cancel))
    r.skipped_tiles = int(r.timings.pop("tiles_without_data", 0))
    n_px = max(r.grid.width * r.grid.height, 1)
    r.valid_fraction = writer.valid_px / n_px
    if writer.valid_px == 0:
        raise PipelineError("no pixel of the output grid has usable data (every input is no data, NaN, 0-filled or "
                            "without texture there), so nothing was written. Fix: check the inputs' nodata values "
                            "and bands, and that they cover the output grid (--extent, --grid-like)", None)
    if writer.flat_px:
        r.notes.append(f"the optical pair has no texture (uniform, saturated, cloud or fill) on "
                       f"{100 * writer.flat_px / n_px:.2g} % of the grid and no SAR pair covers it: east and north "
                       "(and their sigma) are NaN there, no input measures horizontal motion (up too where no "
                       "interferogram covers it)")
    if r.valid_fraction < LOW_VALID:
        r.notes.append(f"only {100 * r.valid_fraction:.2g} % of the output grid has a displacement (the rest is NaN):"
                       " the inputs cover little of the grid or are mostly no data. Fix: crop the grid to the data "
                       "(--extent, --grid-like) or check the inputs' nodata")
    return writer.arrows


def _unwrap(r: _Run, sources: dict[str, AlignedSource], angles: Angles, staging: out.Staging,
            tags: dict[str, str], frac: float) -> None:
    """unwrap: the phase block by block with the fused LOS estimate; LOS band 2, unwrapped and re-wrapped phase."""
    cfg, grid = r.cfg, r.grid
    t0 = time.perf_counter()
    with ExitStack() as stack:
        ds_los = stack.enter_context(rasterio.open(staging.path("los_displacement"), "r+"))
        ds_sig = stack.enter_context(rasterio.open(staging.path("displacement_sigma")))
        ds_unw = stack.enter_context(out.open_out(
            staging.path("unwrapped_phase"), grid,
            ["unwrapped phase (input + 2 pi k; same sign convention as the input)"], ["rad"],
            {**tags, "phase_sign": str(cfg.phase_sign), "wavelength_m": str(cfg.wavelength_m)}))
        ds_rew = stack.enter_context(out.open_out(staging.path("rewrapped_phase"), grid,
                                                  ["unwrapped phase re-wrapped to [-pi, pi)"], ["rad"], tags))

        def read(r0: int, c0: int, h: int, w: int) -> tuple:
            win = Window(c0, r0, w, h)
            phi = sources["phase"].read(r0, c0, h, w)
            coh = sources["coherence"].read(r0, c0, h, w) if "coherence" in sources else None
            phi_m = los_to_phase(ds_los.read(1, window=win), cfg.wavelength_m, cfg.phase_sign)
            sg = ds_sig.read(window=win).astype(np.float64)
            lu = angles.los(r0, c0, h, w)
            los_sig = np.sqrt((lu[0] * sg[0]) ** 2 + (lu[1] * sg[1]) ** 2 + (lu[2] * sg[2]) ** 2)  # 1-sigma, m
            return phi, coh, phi_m, np.abs(los_to_phase(los_sig, cfg.wavelength_m, 1))

        def write(r0: int, c0: int, unw: np.ndarray) -> None:
            win = Window(c0, r0, unw.shape[1], unw.shape[0])
            ds_unw.write(unw, 1, window=win)
            ds_rew.write(products.rewrap(unw), 1, window=win)
            ds_los.write(phase_to_los(unw, cfg.wavelength_m, cfg.phase_sign).astype(np.float32), 2, window=win)

        r.unwrap_info = unwrap_grid(
            grid.height, grid.width, read, write, UnwrapParams(coh_min=cfg.coh_min), cfg.unwrap_block,
            lambda j, n: r.report(0.05 + frac + 0.15 * j / n, f"unwrapping: block {j}/{n}"), r.check_cancel)
    r.timings["unwrap_s"] = time.perf_counter() - t0
    share = r.unwrap_info.get("unwrapped_pixels", 0) / max(r.unwrap_info.get("valid_pixels", 0), 1)
    if share < LOW_VALID:
        r.notes.append(f"the unwrapped phase covers only {100 * share:.2g} % of the pixels that have a phase: the "
                       f"coherence is below --coh-min {cfg.coh_min:g} almost everywhere. Fix: lower --coh-min (e.g. "
                       "0.2) or check the coherence raster")


def _run_json(r: _Run, model: OnnxModel, plan: TilePlan, stats: dict[str, Any],
              produced: dict[str, Path], replaced: list[str]) -> dict[str, Any]:
    cfg, grid, meta = r.cfg, r.grid, model.meta
    r.timings["total_s"] = time.perf_counter() - r.t_start
    mpx = grid.width * grid.height / 1e6
    return {
        "software": "QuakeFusion backend", "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": {n: inp.to_json() for n, inp in r.opened.items()},
        "input_coverage_of_grid": r.coverage,
        "parameters": {"wavelength_m": cfg.wavelength_m, "phase_sign": cfg.phase_sign,
                       "incidence_deg": cfg.angle_value("incidence"), "heading_deg": cfg.angle_value("heading"),
                       "tile": cfg.tile, "overlap": plan.overlap, "batch": cfg.batch,
                       "tile_shape": [plan.tile_h, plan.tile_w], "n_tiles": plan.n_tiles, "threads": model.threads,
                       "device_requested": cfg.device, "intersection": cfg.intersection, "unwrap": r.unwrap_info},
        "grid": grid.to_json() | {"defined_by": r.grid_ref, "extent": None if cfg.extent is None
                                  else [str(v) if i == 4 else float(v) for i, v in enumerate(cfg.extent)]},
        "model": {"path": str(model.path), "version": meta.version, "outputs": meta.outputs,
                  "receptive_field_px": meta.receptive_field_px,
                  "channels": [feat.channel_name(c) for c in meta.channels]},
        "device": model.device, "providers": model.providers,
        "stats": stats, "timings": {k: round(v, 4) for k, v in r.timings.items()},
        "throughput_mpx_s": {"end_to_end": mpx / max(r.timings["total_s"], 1e-9),
                             "inference_only": mpx / max(r.timings["inference_onnx_s"], 1e-9)},
        "valid_fraction": r.valid_fraction, "notes": r.notes,
        "platform": {"python": platform.python_version(), "machine": platform.machine()},
        "outputs": {k: v.name for k, v in produced.items()} | {"run_json": OUTPUT_NAMES["run_json"]},
        "files": sorted([v.name for v in produced.values()] + [OUTPUT_NAMES["run_json"]]),
        "replaced_previous_run_files": replaced, "tiles_without_data": r.skipped_tiles,
        "conventions": {"displacement": "east, north, up (m)", "los": "m, positive towards the satellite",
                        "phase": "phase = phase_sign * 4*pi/wavelength * range_increase"},
    }


# ----------------------------------------------------------------------------------------- main entry
def run_estimate(cfg: EstimateConfig, progress: Callable[[float, str], None] | None = None,
                 cancel: CancelToken | Callable[[], bool] | None = None,
                 log: Callable[[str], None] | None = None) -> EstimateResult:
    """Run the whole pipeline; see the module docstring. Raises PipelineError (user-fixable) or Cancelled."""
    r = _Run(cfg, progress, cancel)
    # GDAL_PAM_ENABLED=NO: reading never leaves *.aux.xml files beside the user's inputs
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), ExitStack() as stack:
        r.report(0.0, "checking inputs")
        with r.clock("validate_s"):
            _validate_and_grid(r)
        r.check_cancel()
        # the output folder is created, locked and tested for writing before the model is loaded
        staging = stack.enter_context(out.Staging(cfg.out_dir, need_bytes=_need_bytes(r.grid)))
        try:
            return _run_staged(r, stack, staging)
        except (OSError, rasterio.errors.RasterioError) as exc:
            raise _io_error(exc, staging) from exc


def _run_staged(r: _Run, stack: ExitStack, staging: out.Staging) -> EstimateResult:
    cfg = r.cfg
    r.report(0.02, "loading the model")
    with r.clock("model_load_s"):
        model = OnnxModel(cfg.model_path, device=cfg.device, threads=cfg.threads)
    plan = TilePlan.make(cfg, model.meta, r.grid)
    r.notes += _model_notes(model.meta, r.grid) + plan.notes
    sources, angles = _open_sources(r, stack)
    r.report(0.03, "input statistics")
    with r.clock("stats_s"):
        stats = feat.compute_stats(_stats_arrays(sources, r.grid))
    r.check_cancel()
    tags = {"model_version": model.meta.version, "software": "QuakeFusion backend"}
    with_phase = "phase" in sources and cfg.unwrap and angles.given
    frac = 0.75 if "phase" in sources and cfg.unwrap else 0.95
    arrows = _infer(r, model, plan, sources, angles, stats, staging, tags, frac)
    if with_phase:
        _unwrap(r, sources, angles, staging, tags, frac)
    r.check_cancel()
    r.notes += out.write_views(staging, r.grid, arrows)
    replaced = staging.stale()
    if replaced:
        r.notes.append(f"replaced the previous run's files in {cfg.out_dir}: {', '.join(replaced)}")
    staging.file("run.log").write_text("\n".join(r.log + [f"note: {n}" for n in r.notes]) + "\n", encoding="utf-8")
    run = _run_json(r, model, plan, stats, staging.produced(), replaced)
    out.write_run_json(staging.path("run_json"), run)
    r.check_cancel()
    final = staging.commit()
    final.pop("run", None)  # run.log: listed in run.json's files, not a result layer
    r.report(1.0, f"done ({model.device}, {r.timings['total_s']:.1f} s)")
    return EstimateResult(outputs=final, device=model.device, grid=r.grid, run=run)


def _need_bytes(grid: Grid) -> int:
    """Disk space a run needs at least: every float32 band it writes, at a deflate ratio of 2."""
    return grid.width * grid.height * 4 * out.BANDS_WRITTEN // 2


def _io_error(exc: BaseException, staging: out.Staging) -> PipelineError:
    """A write failure as a message naming the file, the folder and the fix (full disk, read-only, vanished)."""
    text = str(exc)
    name = next((n for n in OUTPUT_NAMES.values() if n in text), None)
    if name is None:
        files = sorted(staging.tmp.glob("*"), key=lambda p: p.stat().st_mtime) if staging.tmp.is_dir() else []
        name = files[-1].name if files else "the outputs"
    try:
        free = shutil.disk_usage(staging.out_dir).free
    except OSError:
        free = -1
    err = getattr(exc, "errno", None)
    if err == errno.ENOSPC or "No space left" in text or 0 <= free < 2**20:
        return PipelineError(f"writing {name} into {staging.out_dir} failed: the disk is full ({free / 2**20:.1f} "
                             f"MiB free; {text}). Nothing was written. Fix: free some space or choose an output "
                             "folder on another disk", "out")
    if err in (errno.EROFS, errno.EACCES, errno.EPERM):
        return PipelineError(f"writing {name} into {staging.out_dir} failed: not writable ({text}). Nothing was "
                             "written. Fix: choose a folder you can write to", "out")
    return PipelineError(f"writing {name} into {staging.out_dir} failed ({text}). Nothing was written. Fix: check "
                         "the disk (space, permissions, a removed drive) or choose another output folder", "out")
