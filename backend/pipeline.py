"""The QuakeFusion pipeline, as a short sequence of named stages, each in the module that owns it:

    validate (config.check) -> grid (io.output_grid) -> read/align (align.AlignedSource) -> infer (infer.infer_tiles)
    -> unwrap (per interferogram: rupture_cut.rupture_cut along the given trace and the phase's decorrelated lines,
    then mcf.unwrap_residual)
    -> 3-D inversion (inversion.invert_enu)
    -> products (products, outputs.write_views) -> write (outputs.Staging, run.json)

Interferograms (docs/insar_fusion.md): any number (``cfg.ifgs()``). The network sees the FIRST one (its feature
channels take one interferogram). Each is unwrapped with whirlwind's MCF on the residual against the fused
estimate's LOS (its sigma from displacement_sigma) -> ``unwrapped_phase[_k].tif``, ``rewrapped_phase[_k].tif``,
``los_displacement[_k].tif``, ``unwrap_regions[_k].tif`` (no suffix with one interferogram). Then E, N, U are
re-estimated per pixel by weighted least squares from the network's horizontal (when an optical or SAR pair is
given) and every unwrapped LOS; components the data do not constrain are NaN (one interferogram alone: LOS only).
An InSAR-only run does not run the network (its output would not be used). Grids above :data:`MCF_MAX_PX` keep
the block-wise unwrapper (unwrap.unwrap_grid) and the network's estimate (whirlwind needs the whole raster).
``trace_auto`` (``--trace auto``): the whole pipeline twice, a blind first pass whose rupture trace
(``trace.write_run_trace``) is given to the second (:func:`_with_found_trace`).

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from . import features as feat
from . import illumination, products
from . import outputs as out
from .align import AlignedSource, Angles
from .config import GRID_ORDER, MIN_GRID_PX, CancelToken, EstimateConfig, Interferogram, angle_notes, check, raise_first
from .conventions import enu_to_los, los_to_phase, phase_to_los
from .errors import Cancelled, PipelineError
from .infer import TilePlan, check_cancel, extra_outputs, infer_tiles
from .inversion import Horizontal, LosObservation, invert_enu, sar_up_coupling
from .io import Grid, InputRaster, OpenedInput, check_overlap, input_kind, open_inputs, output_grid
from .mcf import describe, unwrap_residual
from .model import OnnxModel
from .outputs import OUTPUT_NAMES
from .rupture_cut import rupture_cut
from .unwrap import UnwrapParams, pseudo_coherence, unwrap_grid

__all__ = ["EstimateConfig", "InputRaster", "run_estimate", "CancelToken", "PipelineError", "Cancelled",
           "EstimateResult", "OUTPUT_NAMES"]

STATS_FULL_MAX_PX = 2048 * 2048
STATS_BLOCK = 256
LOW_COVERAGE = 0.05  # an input covering less of the output grid gets a note
LOW_VALID = 0.05  # a displacement on less of the grid gets a note (none at all: the run fails, nothing is written)
MCF_MAX_PX = 16_000_000  # whirlwind unwraps the whole raster: ~1.4 GB peak at 10 Mpx; larger grids use blocks
MCF_NLOOKS = 5.0  # effective looks of the coherence estimate (LiCSAR-like multilooked products)
NO_NET_TAG = "none (InSAR only: the network was not run)"
PIPELINE_MAX_SIGMA_M = float("inf")  # 3-D inversion: NaN = set by the 10 m prior (posterior sigma > 5 m), no cut


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
    inversion: dict[str, Any] = field(default_factory=dict)
    valid_fraction: float = 0.0
    skipped_tiles: int = 0
    log: list[str] = field(default_factory=list)  # -> run.log beside run.json
    trace_lines: list[np.ndarray] | None = None  # the given rupture trace in the grid's CRS (cfg.trace)
    trace_tiles: int = 0  # tiles given the trace: those it crosses, or all for a model with trace weights of its own
    sar_share_median: float | None = None  # the SAR pair's median share of the horizontal (model output sar_share)
    found_trace: dict[str, Any] | None = None  # cfg.trace_auto: the trace found on the first pass (_with_found_trace)
    model: OnnxModel | None = None  # loaded by the first stage that needs it; given to a trace_auto second pass

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
    if cfg.trace is not None:
        r.trace_lines = _read_trace(cfg.trace, r.grid)
        given = (f"found on a first, blind pass: rupture_trace.gpkg, {r.found_trace['source']}"
                 if r.found_trace is not None else str(cfg.trace))
        r.notes.append(f"rupture trace given ({given}, {len(r.trace_lines)} line(s)): the network's windows stop "
                       "at it, each side is measured from its own pixels. Where the trace misses the rupture by k px, "
                       "those k px are smeared as without a trace; the geologist tools use this trace by default")
    r.coverage = {name: check_overlap(inp, r.grid) for name, inp in r.opened.items()}
    r.notes += [f"{n}: {x}" for n, inp in r.opened.items() for x in inp.notes]
    r.notes += [f"{n} covers only {100 * c:.2g} % of the output grid: the rest has no {n} (choose --grid-like or "
                "--extent over the area it covers)" for n, c in r.coverage.items() if c < LOW_COVERAGE]


def _read_trace(path: Path, grid: Grid) -> list[np.ndarray]:
    """The given rupture trace as polylines in the grid's CRS; it must cross the output grid."""
    from .geodata import read_lines  # osgeo, only when a trace is given

    lines = read_lines(path, grid.crs.to_wkt())
    x0, y0, x1, y1 = grid.bounds
    if not any(_crosses_box(ln, grid.bounds) for ln in lines):
        raise PipelineError(f"rupture trace ({path}): none of its {len(lines)} line(s) crosses the output grid "
                            f"({x0:.0f}, {y0:.0f}) - ({x1:.0f}, {y1:.0f}) in {grid.crs.to_string()}. Fix: give the "
                            "trace of this area (its CRS is read from the file) or leave it out", "trace")
    return lines


def _crosses_box(line: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """Whether a polyline has a vertex in ``box`` or passes through it (each segment sampled every 1/64: enough for
    a trace drawn across a grid)."""
    t = np.linspace(0.0, 1.0, 65)[:, None]
    pts = np.concatenate([a + t * (b - a) for a, b in zip(line[:-1], line[1:])]) if len(line) > 1 else line
    return bool(((pts[:, 0] >= box[0]) & (pts[:, 0] <= box[2]) & (pts[:, 1] >= box[1]) & (pts[:, 1] <= box[3])).any())


def _model_notes(meta: Any, grid: Grid) -> list[str]:
    notes = [f"{OUTPUT_NAMES.get(k, k)} not written: {why}" for k, why in meta.uninformative_outputs.items()]
    rng = meta.pixel_size_range_m
    if rng and not (rng[0] <= grid.pixel_size_m <= rng[1]):
        notes.append(f"output pixel size {grid.pixel_size_m:.3g} m is outside the model's trained range "
                     f"{rng[0]:g}-{rng[1]:g} m: expect lower accuracy (use --grid-like to choose another grid)")
    return notes


def _open_sources(r: _Run, stack: ExitStack) -> tuple[dict[str, AlignedSource], list[Angles]]:
    """read/align: every input as an AlignedSource on the output grid (closed by ``stack``); the geometry of each
    interferogram (without any: the incidence/heading given for the LOS output, possibly none)."""
    sources = {n: stack.enter_context(AlignedSource(inp, r.grid, "phase" if input_kind(n) == "phase"
                                                    else "continuous")) for n, inp in r.opened.items()}
    cfg = r.cfg

    def angles_of(ifg: Interferogram, k: int) -> Angles:
        nm = ifg.input_names(k)
        if ifg.los_vector is not None:
            return Angles(None, None, tuple(sources[nm[x]] for x in ("los_east", "los_north", "los_up")))
        return Angles(*(sources.get(nm[a]) if isinstance(v, InputRaster) else v
                        for a, v in (("incidence", ifg.incidence_deg), ("heading", ifg.heading_deg))))

    ifgs = cfg.ifgs()
    if ifgs:
        return sources, [angles_of(ifg, k) for k, ifg in enumerate(ifgs, start=1)]
    return sources, [angles_of(Interferogram(None, incidence_deg=cfg.incidence_deg, heading_deg=cfg.heading_deg), 1)]


def _stats_arrays(sources: dict[str, AlignedSource], grid: Grid, keys: list[str]) -> dict[str, np.ndarray]:
    """Full-resolution samples of ``keys`` for the global statistics and the illumination fit, 2-D: the whole grid
    if small, else a lattice of 8 x 8 blocks put side by side with a NaN row / column between them (so no gradient
    is taken across two blocks)."""
    h, w = grid.shape
    if h * w <= STATS_FULL_MAX_PX:
        return {key: np.asarray(sources[key].read(0, 0, h, w), np.float32) for key in keys}
    n = 8
    bh, bw = min(STATS_BLOCK, h), min(STATS_BLOCK, w)
    rs = np.linspace(0, max(h - STATS_BLOCK, 0), n).astype(int)
    cs = np.linspace(0, max(w - STATS_BLOCK, 0), n).astype(int)
    out = {}
    for key in keys:
        mosaic = np.full((n * (bh + 1), n * (bw + 1)), np.nan, np.float32)
        for i, r0 in enumerate(rs):
            for j, c0 in enumerate(cs):
                y, x = i * (bh + 1), j * (bw + 1)
                mosaic[y:y + bh, x:x + bw] = sources[key].read(r0, c0, bh, bw)
        out[key] = mosaic
    return out


def _input_stats(r: _Run, sources: dict[str, AlignedSource]) -> dict[str, Any]:
    """stats: the illumination fit of each optical image (``illumination``, when ``cfg.illumination`` is auto and a
    DEM is given) and the normalisation statistics of the images as the network will see them (relit)."""
    relight = r.cfg.illumination == "auto" and all(k in sources for k in ("optical_pre", "optical_post", "dem"))
    keys = [k for k in ("optical_pre", "optical_post", "sar_pre", "sar_post") if k in sources]
    sample = _stats_arrays(sources, r.grid, keys + (["dem"] if relight else []))  # the DEM: for the fit only
    fits = illumination.fit_pair(sample, r.grid.pixel_size_m) if relight else {}
    stats: dict[str, Any] = feat.compute_stats(illumination.apply(sample, fits, r.grid.pixel_size_m))
    if fits:
        stats["illumination"] = fits
        r.notes.append(illumination.describe(fits))
    return stats


def _infer(r: _Run, model: OnnxModel, plan: TilePlan, sources: dict[str, AlignedSource], angles: Angles,
           stats: dict[str, Any], staging: out.Staging, tags: dict[str, str], frac: float,
           with_phase: bool) -> products.ArrowGrid:
    """infer: tiles -> model -> blended rows -> displacement, sigma, LOS (without unwrapping), extra outputs,
    magnitudes. Sets ``r.valid_fraction`` (share of the grid with a displacement)."""
    with out.InferenceWriter(staging, r.grid, tags, angles, extra_outputs(model.meta), with_phase,
                             keep_sar_share=r.cfg.sar_vertical_coupling) as writer:
        r.timings.update(infer_tiles(
            model, sources, angles, stats, r.grid, r.cfg, plan, writer, writer.channels,
            lambda i, n: r.report(0.05 + frac * i / n, f"inference: tile {i}/{n}"), r.cancel, r.trace_lines))
    r.skipped_tiles = int(r.timings.pop("tiles_without_data", 0))
    r.trace_tiles = int(r.timings.pop("tiles_with_trace", 0))
    n_px = max(r.grid.width * r.grid.height, 1)
    r.valid_fraction = writer.valid_px / n_px
    r.sar_share_median = writer.sar_share_median
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


def _ifg_tags(tags: dict[str, str], ifg: Interferogram, k: int) -> dict[str, str]:
    return {**tags, "interferogram": str(k), "phase_sign": str(ifg.phase_sign), "wavelength_m": str(ifg.wavelength_m)}


def _model_los(disp: np.ndarray, sig: np.ndarray, lu: np.ndarray, ifg: Interferogram) -> tuple[np.ndarray, ...]:
    """The fused estimate in LOS (m), as phase (rad, the input's convention) and its 1-sigma in rad."""
    los = enu_to_los(disp[0], disp[1], disp[2], lu)
    los_sig = np.sqrt((lu[0] * sig[0]) ** 2 + (lu[1] * sig[1]) ** 2 + (lu[2] * sig[2]) ** 2)  # 1-sigma, m
    return (los.astype(np.float32), los_to_phase(los, ifg.wavelength_m, ifg.phase_sign).astype(np.float32),
            np.abs(los_to_phase(los_sig, ifg.wavelength_m, 1)).astype(np.float32))


def _open_ifg_outputs(stack: ExitStack, staging: out.Staging, grid: Grid, tags: dict[str, str], sfx: str,
                      with_model: bool) -> tuple[Any, Any, Any]:
    """unwrapped_phase, rewrapped_phase and los_displacement (band 1 fused estimate when there is one, last band
    from the unwrapped phase: the UI shows the last band) of one interferogram."""
    unw = stack.enter_context(out.open_out(
        staging.file(f"unwrapped_phase{sfx}.tif"), grid,
        ["unwrapped phase (input + 2 pi k; same sign convention as the input)"], ["rad"], tags))
    rew = stack.enter_context(out.open_out(staging.file(f"rewrapped_phase{sfx}.tif"), grid,
                                           ["unwrapped phase re-wrapped to [-pi, pi)"], ["rad"], tags))
    desc = (["LOS displacement, fused estimate (positive towards the satellite)"] if with_model else []) + \
        ["LOS displacement from the unwrapped phase (positive towards the satellite)"]
    los = stack.enter_context(out.open_out(staging.file(f"los_displacement{sfx}.tif"), grid, desc,
                                           ["m"] * len(desc), tags))
    return unw, rew, los


def _unwrap_blocks(r: _Run, sources: dict[str, AlignedSource], angles: list[Angles], staging: out.Staging,
                   tags: dict[str, str], frac: float) -> None:
    """Grids above MCF_MAX_PX: each interferogram block by block with the fused LOS estimate (unwrap.unwrap_grid,
    the quality-guided joint unwrapper); no regions, no 3-D inversion (the network's estimate is kept)."""
    cfg, grid = r.cfg, r.grid
    ifgs = cfg.ifgs()
    t0 = time.perf_counter()
    infos = []
    with ExitStack() as stack:
        ds_disp = stack.enter_context(rasterio.open(staging.path("displacement")))
        ds_sig = stack.enter_context(rasterio.open(staging.path("displacement_sigma")))
        for k, (ifg, ang) in enumerate(zip(ifgs, angles), start=1):
            nm, sfx = ifg.input_names(k), ("" if len(ifgs) == 1 else f"_{k}")
            ds_unw, ds_rew, ds_los = _open_ifg_outputs(stack, staging, grid, _ifg_tags(tags, ifg, k), sfx, True)

            def read(r0: int, c0: int, h: int, w: int, ifg: Interferogram = ifg, ang: Angles = ang,
                     nm: dict = nm, ds_los: Any = ds_los) -> tuple:
                win = Window(c0, r0, w, h)
                phi = sources[nm["phase"]].read(r0, c0, h, w)
                coh = sources[nm["coherence"]].read(r0, c0, h, w) if nm["coherence"] in sources else None
                los, phi_m, sig_rad = _model_los(ds_disp.read(window=win), ds_sig.read(window=win).astype(np.float64),
                                                 ang.los(r0, c0, h, w), ifg)
                ds_los.write(los, 1, window=win)
                return phi, coh, phi_m, sig_rad

            def write(r0: int, c0: int, unw: np.ndarray, ifg: Interferogram = ifg, ds_unw: Any = ds_unw,
                      ds_rew: Any = ds_rew, ds_los: Any = ds_los) -> None:
                win = Window(c0, r0, unw.shape[1], unw.shape[0])
                ds_unw.write(unw, 1, window=win)
                ds_rew.write(products.rewrap(unw), 1, window=win)
                ds_los.write(phase_to_los(unw, ifg.wavelength_m, ifg.phase_sign).astype(np.float32), 2, window=win)

            infos.append(unwrap_grid(
                grid.height, grid.width, read, write, UnwrapParams(coh_min=cfg.coh_min), cfg.unwrap_block,
                lambda j, n, k=k: r.report(0.05 + frac + 0.15 * j / n, f"unwrapping {k}/{len(ifgs)}: block {j}/{n}"),
                r.check_cancel))
    r.unwrap_info = {"solver": "block-wise quality-guided joint unwrapper (grid above MCF_MAX_PX)",
                     "interferograms": infos}
    r.timings["unwrap_s"] = time.perf_counter() - t0
    r.notes.append(f"the grid ({grid.width} x {grid.height} px) is larger than {MCF_MAX_PX / 1e6:g} Mpx: the "
                   "interferogram(s) were unwrapped block by block (no unwrap_regions.tif, no 3-D inversion; "
                   "displacement.tif is the network's estimate). Crop the grid (--extent) for the MCF unwrapper")


def _sar_share_note(median: float, coupled: bool) -> str:
    """What the SAR amplitude offsets' vertical leak means for this run (``inversion.sar_up_coupling``)."""
    med = 100 * median
    head = (f"the SAR amplitude pair gives {med:.0f} % (median) of the horizontal's weight; a geocoded amplitude "
            "image moves by the horizontal minus U cot(incidence) along ground range, so that share of the "
            "horizontal carries the vertical (about U at Sentinel-1 incidences)")
    if coupled:
        return head + ": modelled in the 3-D inversion with interferogram 1's geometry (experimental)"
    return head + (": where the ground rose or subsided, east/north lean along the ground-range direction by that "
                   "share of U (not removed: modelling it amplifies the SAR offsets' other errors, "
                   "docs/insar_fusion.md); for offsets on a dip-slip rupture compare a run with the optical pair only")


def _horizontal(r: _Run, staging: out.Staging, disp: np.ndarray, sig: np.ndarray, ang: Angles) -> Horizontal:
    """The network's horizontal for the 3-D inversion; with ``sar_vertical_coupling`` (experimental) the SAR pair's
    vertical leak modelled from the staged SAR share, in the first interferogram's geometry."""
    horizontal = Horizontal(disp[0], disp[1], sig[0], sig[1])
    p = staging.tmp / out.SAR_SHARE_FILE
    if r.cfg.sar_vertical_coupling and r.sar_share_median is not None and p.exists():
        with rasterio.open(p) as ds:
            horizontal.up_coupling = sar_up_coupling(ds.read(1), ang.los(0, 0, *disp.shape[1:]))
    return horizontal


def _insar(r: _Run, sources: dict[str, AlignedSource], angles: list[Angles], staging: out.Staging,
           tags: dict[str, str], with_net: bool, frac: float) -> products.ArrowGrid:
    """unwrap + 3-D inversion (whole grid): MCF per interferogram on the residual against the fused estimate,
    then E, N, U by weighted least squares; rewrites displacement*.tif and returns the arrows' block means."""
    cfg, grid = r.cfg, r.grid
    H, W = grid.height, grid.width
    ifgs = cfg.ifgs()
    disp = sig = None
    if with_net:
        with rasterio.open(staging.path("displacement")) as ds:
            disp = ds.read()
        with rasterio.open(staging.path("displacement_sigma")) as ds:
            sig = ds.read()
    t0 = time.perf_counter()
    given = _given_trace_rc(r)
    obs, summaries = [], []
    has_los = np.zeros((H, W), bool)
    for k, (ifg, ang) in enumerate(zip(ifgs, angles), start=1):
        nm, sfx = ifg.input_names(k), ("" if len(ifgs) == 1 else f"_{k}")
        r.report(0.05 + frac + 0.15 * (k - 1) / len(ifgs), f"unwrapping interferogram {k}/{len(ifgs)} (MCF)")
        r.check_cancel()
        phi = sources[nm["phase"]].read(0, 0, H, W)
        phase_pc = pseudo_coherence(phi)  # the rupture cut's band, and the coherence when none is given
        if nm["coherence"] in sources:
            coh, coh_src = sources[nm["coherence"]].read(0, 0, H, W), "input"
        else:
            coh, coh_src = phase_pc, "phase-gradient pseudo-coherence"
        lu = ang.los(0, 0, H, W)
        los_m = phi_m = sig_rad = None
        if disp is not None:
            los_m, phi_m, sig_rad = _model_los(disp, sig, lu, ifg)
        t1 = time.perf_counter()
        cut = rupture_cut(1.0 - phase_pc, given)
        del phase_pc
        r.timings["rupture_cut_s"] = r.timings.get("rupture_cut_s", 0.0) + time.perf_counter() - t1
        unw, regions, summ = unwrap_residual(phi, coh, phi_m, sig_rad, MCF_NLOOKS, coherence_threshold=cfg.coh_min,
                                             cut=None if cut is None else cut.mask)
        del phi_m, sig_rad, phi
        summ["coherence_source"] = coh_src
        summ["interferogram"] = k
        if cut is not None:
            summ["rupture_cut"] = cut.summary()
            r.notes.append(f"interferogram {k}: " + cut.describe())
        del cut
        summaries.append(summ)
        if summ["trusted_share"] < LOW_VALID:
            r.notes.append(f"interferogram {k}: the unwrapped phase is trusted on only "
                           f"{100 * summ['trusted_share']:.2g} % of the pixels that have a phase "
                           f"(unwrap_regions{sfx}.tif): the coherence is below --coh-min"
                           f" {cfg.coh_min:g} (or the phase is inconsistent) almost everywhere. Fix: lower "
                           "--coh-min (e.g. 0.2) or check the coherence raster")
        if summ["n_regions"] > 1 or summ["links_refused"]:
            r.notes.append(f"interferogram {k}: " + describe(summ).replace("unwrap_regions.tif",
                                                                           f"unwrap_regions{sfx}.tif"))
        d_los = phase_to_los(unw, ifg.wavelength_m, ifg.phase_sign).astype(np.float32)
        has_los |= np.isfinite(d_los)
        with ExitStack() as stack:
            ds_unw, ds_rew, ds_los = _open_ifg_outputs(stack, staging, grid, _ifg_tags(tags, ifg, k), sfx,
                                                       los_m is not None)
            ds_unw.write(unw, 1)
            ds_rew.write(products.rewrap(unw), 1)
            if los_m is not None:
                ds_los.write(los_m, 1)
            ds_los.write(d_los, ds_los.count)
        del unw, los_m
        out.write_regions(staging.file(f"unwrap_regions{sfx}.tif"), grid, regions, _ifg_tags(tags, ifg, k))
        obs.append(LosObservation(lu, los_m=d_los, wavelength_m=ifg.wavelength_m, phase_sign=ifg.phase_sign,
                                  coherence=coh, nlooks=MCF_NLOOKS, regions=regions, name=f"interferogram {k}"))
    r.unwrap_info = {"solver": summaries[0]["solver"] if summaries else None, "interferograms": summaries}
    r.timings["unwrap_s"] = time.perf_counter() - t0
    r.report(0.05 + frac + 0.15, "3-D inversion")
    r.check_cancel()
    t0 = time.perf_counter()
    horizontal = None
    if disp is not None and (cfg.optical_pre is not None or cfg.sar_pre is not None):
        horizontal = _horizontal(r, staging, disp, sig, angles[0])
    if horizontal is None and len(obs) == 1:
        enu = np.full((3, H, W), np.nan, np.float32)
        sigma = enu
        reasons = ["east, north, up: NaN everywhere - one interferogram alone measures only its LOS component "
                   "(los_displacement.tif); give a second geometry (ascending + descending) or an optical/SAR pair"]
        r.inversion = {"n_los": 1, "horizontal": False, "reasons": reasons,
                       "constrained_share": {"east": 0.0, "north": 0.0, "up": 0.0}}
    else:
        # NaN only where a component is set by the prior (not constrained by the data): the network's horizontal is
        # kept whatever its sigma (it is what a run without interferogram shows), not cut at inversion.MAX_SIGMA_M
        res = invert_enu((H, W), horizontal=horizontal, los=obs, max_sigma_m=PIPELINE_MAX_SIGMA_M)
        enu = res.enu
        sigma = np.where(np.isfinite(enu), res.sigma, np.nan).astype(np.float32)
        reasons = res.reasons
        r.inversion = res.summary | {"covariance_median_m2": _cov_summary(res.cov, res.constrained)}
        del res
    del obs, disp, sig
    r.timings["inversion_s"] = time.perf_counter() - t0
    r.notes += [f"3-D inversion: {x}" for x in reasons if "NaN" in x and "NaN on 0.0 %" not in x]
    how = ("3-D inversion: " + ("optical/SAR horizontal + " if horizontal is not None else "")
           + f"{len(ifgs)} LOS")
    arrows = out.write_displacement(staging, grid, tags | {"displacement_source": how, "reasons": "; ".join(reasons)},
                                    enu, sigma, how)
    if not with_net:  # share of the grid with a displacement: E/N/U or at least a LOS
        r.valid_fraction = float((np.isfinite(enu).any(axis=0) | has_los).mean())
    return arrows


def _given_trace_rc(r: _Run) -> list[np.ndarray] | None:
    """The rupture trace given to the run as (row, col) polylines of the grid (None without one)."""
    if not r.trace_lines:
        return None
    t = r.grid.transform
    return [np.column_stack([(ln[:, 1] - t.f) / t.e - 0.5, (ln[:, 0] - t.c) / t.a - 0.5]) for ln in r.trace_lines]


def _cov_summary(cov: np.ndarray, constrained: np.ndarray) -> dict[str, Any]:
    """Median covariance terms (m^2) and correlations over pixels where all three components are constrained."""
    allc = constrained.all(axis=0)
    if not allc.any():
        allc = constrained.any(axis=0)
    if not allc.any():
        return {}
    sel = [c[allc][::7] for c in cov]
    names = ("EE", "NN", "UU", "EN", "EU", "NU")
    outd: dict[str, Any] = {n: float(np.nanmedian(v)) for n, v in zip(names, sel)}
    with np.errstate(invalid="ignore", divide="ignore"):
        for n, (i, j) in (("corr_EN", (0, 1)), ("corr_EU", (0, 2)), ("corr_NU", (1, 2))):
            outd[n] = float(np.nanmedian(sel[3 + "EN EU NU".split().index(n[5:])] / np.sqrt(sel[i] * sel[j])))
    outd["pixels"] = int(allc.sum())
    return outd


def _run_json(r: _Run, model: OnnxModel | None, plan: TilePlan | None, stats: dict[str, Any],
              produced: dict[str, Path], replaced: list[str]) -> dict[str, Any]:
    cfg, grid = r.cfg, r.grid
    r.timings["total_s"] = time.perf_counter() - r.t_start
    mpx = grid.width * grid.height / 1e6
    if model is None:  # InSAR only: the network was not run
        model_json: dict[str, Any] = {"path": None, "version": NO_NET_TAG, "outputs": [], "channels": []}
        device, providers, threads = "cpu", [], None
    else:
        meta = model.meta
        model_json = {"path": str(model.path), "version": meta.version, "outputs": meta.outputs,
                      "outputs_not_written": meta.uninformative_outputs,
                      "receptive_field_px": meta.receptive_field_px,
                      "channels": [feat.channel_name(c) for c in meta.channels],
                      "interferogram_seen": "the first (phase, coherence)" if cfg.ifgs() else None}
        device, providers, threads = model.device, model.providers, model.threads
    return {
        "software": "QuakeFusion backend", "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": {n: inp.to_json() for n, inp in r.opened.items()},
        "input_coverage_of_grid": r.coverage,
        "parameters": {"wavelength_m": cfg.wavelength_m, "phase_sign": cfg.phase_sign,
                       "incidence_deg": cfg.angle_value("incidence"), "heading_deg": cfg.angle_value("heading"),
                       "interferograms": [{"phase": str(i.phase.path), "wavelength_m": i.wavelength_m,
                                           "phase_sign": i.phase_sign, **i.geometry_json()} for i in cfg.ifgs()],
                       "tile": cfg.tile, "overlap": plan.overlap if plan else None, "batch": cfg.batch,
                       "tile_shape": [plan.tile_h, plan.tile_w] if plan else None,
                       "n_tiles": plan.n_tiles if plan else 0, "threads": threads,
                       "device_requested": cfg.device, "intersection": cfg.intersection, "unwrap": r.unwrap_info,
                       "illumination": cfg.illumination,
                       "rupture_trace": _found_trace_json(r) if r.found_trace is not None else
                       None if cfg.trace is None else {"path": str(Path(cfg.trace).resolve()),
                                                       "lines": len(r.trace_lines or []),
                                                       "tiles_crossed": r.trace_tiles}},
        "inversion": r.inversion,
        "grid": grid.to_json() | {"defined_by": r.grid_ref, "extent": None if cfg.extent is None
                                  else [str(v) if i == 4 else float(v) for i, v in enumerate(cfg.extent)]},
        "model": model_json, "device": device, "providers": providers,
        "stats": stats, "timings": {k: round(v, 4) for k, v in r.timings.items()},
        "throughput_mpx_s": {"end_to_end": mpx / max(r.timings["total_s"], 1e-9),
                             "inference_only": mpx / max(r.timings.get("inference_onnx_s", 0.0), 1e-9)
                             if model is not None else None},
        "valid_fraction": r.valid_fraction, "sar_share_median": r.sar_share_median,
        "sar_vertical_coupling": cfg.sar_vertical_coupling if r.sar_share_median is not None else None,
        "notes": r.notes,
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
    if cfg.trace_auto:
        return _with_found_trace(cfg, progress, cancel)
    return _run_once(_Run(cfg, progress, cancel))


def _run_once(r: _Run) -> EstimateResult:
    cfg = r.cfg
    # GDAL_PAM_ENABLED=NO: reading never leaves *.aux.xml files beside the user's inputs
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), ExitStack() as stack:
        r.report(0.0, "checking inputs")
        with r.clock("validate_s"):
            _validate_and_grid(r)
        r.check_cancel()
        # the output folder is created, locked and tested for writing before the model is loaded
        staging = stack.enter_context(out.Staging(cfg.out_dir, need_bytes=_need_bytes(r.grid, cfg)))
        try:
            return _run_staged(r, stack, staging)
        except (OSError, rasterio.errors.RasterioError) as exc:
            raise _io_error(exc, staging) from exc


def _with_found_trace(cfg: EstimateConfig, progress: Callable[[float, str], None] | None,
                      cancel: CancelToken | Callable[[], bool] | None) -> EstimateResult:
    """``cfg.trace_auto``: the geologist's two-step workflow as one job. A blind first pass into a temporary folder
    inside ``out_dir`` (``outputs.Staging.new_tmp``: hidden, and removed by the next run into ``out_dir`` if this
    job is killed); its rupture trace extracted as ``python -m backend trace`` does (``backend.trace``: the line
    search, placed on the interferogram's decorrelation band when there is one, refused where no line is
    significant); then the run proper with that trace (the network's windows stop at it), which is written beside
    it as ``rupture_trace.gpkg``. No trace found: the first pass becomes the run, and run.json says why. Either way
    ``out_dir`` receives one complete run (nothing when the job fails or is cancelled)."""
    from .geodata import ToolsError
    from .trace import write_run_trace

    raise_first(check(cfg))  # the whole job's problems before the first pass starts
    t0 = time.perf_counter()

    def part(lo: float, hi: float, what: str) -> Callable[[float, str], None] | None:
        if progress is None:
            return None
        return lambda f, m: progress(lo + (hi - lo) * f, f"{what}: {m}")

    out_dir = Path(cfg.out_dir)
    existed = out_dir.exists()
    first_dir = out.Staging.new_tmp(out_dir, "first-pass-")
    try:
        first_run = _Run(replace(cfg, trace_auto=False, out_dir=first_dir), part(0.0, 0.45, "first pass, blind"),
                         cancel)
        first = _run_once(first_run)
        if progress is not None:
            progress(0.46, "finding the rupture trace on the first pass (line search)")
        t1 = time.perf_counter()
        try:
            path, lines, source, stats = write_run_trace(first_dir)
        except ToolsError as exc:
            check_cancel(cancel)
            return _adopt_first_pass(first_dir, cfg, first, str(exc), time.perf_counter() - t1)
        check_cancel(cancel)
        found = {"lines": lines, "source": source, "stats": stats, "first_pass_s": round(t1 - t0, 2),
                 "trace_search_s": round(time.perf_counter() - t1, 2)}
        # the second pass reads the trace before its Staging removes the first pass's folder (a stale temporary
        # folder of out_dir) and writes it into its own outputs from memory
        r = _Run(replace(cfg, trace_auto=False, trace=path), part(0.5, 1.0, "second pass, windows stop at the "
                                                                           "trace"), cancel,
                 t_start=t0, found_trace=found, model=first_run.model)
        return _run_once(r)
    finally:
        shutil.rmtree(first_dir, ignore_errors=True)
        if not existed and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # the job created it and failed: nothing left behind


def _found_trace_json(r: _Run) -> dict[str, Any]:
    from .trace import TRACE_FILE

    f = r.found_trace or {}
    return {"path": str((Path(r.cfg.out_dir) / TRACE_FILE).resolve()), "lines": len(r.trace_lines or []),
            "tiles_crossed": r.trace_tiles, "found_by": "first pass (blind)", "source": f.get("source"),
            "per_line": f.get("stats")}


def _replaced_note(out_dir: Path, replaced: list[str]) -> list[str]:
    return [f"replaced the previous run's files in {out_dir}: {', '.join(replaced)}"] if replaced else []


def _adopt_first_pass(first_dir: Path, cfg: EstimateConfig, first: EstimateResult, why: str,
                      search_s: float) -> EstimateResult:
    """No trace found: the first (blind) pass, staged in ``first_dir``, is committed as the run in ``out_dir``, its
    run.json and run.log saying so."""
    note = (f"rupture trace to be found: none found on the first pass ({why.split('. Fix:')[0]}); this is the blind "
            "run (the network's windows did not stop at a trace). Draw or load the trace where you know it and run "
            "again with it")
    run = dict(first.run)
    run["parameters"] = dict(run.get("parameters") or {}) | {
        "rupture_trace": {"path": None, "found_by": "first pass (blind)", "found": False, "why": why}}
    run["timings"] = dict(run.get("timings") or {}) | {"trace_search_s": round(search_s, 2)}
    with out.Staging(cfg.out_dir, tmp=first_dir) as staging:
        replaced = staging.stale()
        run["replaced_previous_run_files"] = replaced
        run["notes"] = [*run.get("notes", []), note, *_replaced_note(cfg.out_dir, replaced)]
        log = staging.file("run.log")
        log.write_text((log.read_text(encoding="utf-8") if log.exists() else "") + f"note: {note}\n",
                       encoding="utf-8")
        out.write_run_json(staging.path("run_json"), run)
        final = staging.commit()
    final.pop("run", None)
    return EstimateResult(outputs=final, device=first.device, grid=first.grid, run=run)


def _run_staged(r: _Run, stack: ExitStack, staging: out.Staging) -> EstimateResult:
    cfg = r.cfg
    sources, angles = _open_sources(r, stack)
    # InSAR only: the network contributes nothing the unwrapper and the inversion use -> not run
    insar, whole, with_net = _with_net(cfg, r.grid)
    insar = insar and all(a.given for a in angles)
    model, plan, stats = None, None, {}
    frac = (0.75 if insar else 0.95) if with_net else 0.0
    tags = {"model_version": NO_NET_TAG, "software": "QuakeFusion backend"}
    arrows = None
    if with_net:
        if r.model is None:  # a second pass (trace_auto) keeps the first pass's session
            r.report(0.02, "loading the model")
            with r.clock("model_load_s"):
                r.model = OnnxModel(cfg.model_path, device=cfg.device, threads=cfg.threads)
        model = r.model
        if r.trace_lines is not None and "fault_side" not in [feat.channel_name(c) for c in model.meta.channels]:
            raise PipelineError(f"the model ({cfg.model_path or 'shipped'}, version {model.meta.version}) takes no "
                                "rupture trace (it has no fault_side channel). Fix: leave the trace out, or use model "
                                "0.7.0 or later", "trace")
        plan = TilePlan.make(cfg, model.meta, r.grid)
        r.notes += _model_notes(model.meta, r.grid) + plan.notes
        r.report(0.03, "input statistics")
        with r.clock("stats_s"):
            stats = _input_stats(r, sources)
        r.check_cancel()
        tags["model_version"] = model.meta.version
        arrows = _infer(r, model, plan, sources, angles[0], stats, staging, tags, frac, insar)
        if len(cfg.ifgs()) > 1:
            r.notes.append(f"the network saw interferogram 1 of {len(cfg.ifgs())} (it takes one); every "
                           "interferogram enters the unwrapping and the 3-D inversion")
    else:
        r.notes.append("InSAR only: the network was not run (without an optical or SAR pair it adds nothing to the "
                       "unwrapping and the 3-D inversion)")
    if insar and whole:
        arrows = _insar(r, sources, angles, staging, tags, with_net, frac)
    elif insar:
        _unwrap_blocks(r, sources, angles, staging, tags, frac)
    if r.sar_share_median is not None:  # coupled only where the 3-D inversion ran with the option on
        r.notes.append(_sar_share_note(r.sar_share_median, cfg.sar_vertical_coupling and insar and whole))
    r.check_cancel()
    if r.found_trace is not None:  # the trace this run found on its first pass, beside the run that used it
        from .trace import TRACE_FILE, write_trace

        f = r.found_trace
        write_trace(staging.file(TRACE_FILE), f["lines"], r.grid.crs.to_wkt(), f["source"], f["stats"])
        r.timings.update(first_pass_s=f["first_pass_s"], trace_search_s=f["trace_search_s"])
        r.notes.append("the rupture trace was found by this run (--trace auto): check rupture_trace.gpkg on the map; "
                       "offsets across a wrongly placed trace are sharp at the wrong place. Move it and run again "
                       "with it, or draw the trace where you know it")
    r.notes += out.write_views(staging, r.grid, arrows)
    replaced = staging.stale()
    r.notes += _replaced_note(cfg.out_dir, replaced)
    staging.file("run.log").write_text("\n".join(r.log + [f"note: {n}" for n in r.notes]) + "\n", encoding="utf-8")
    run = _run_json(r, model, plan, stats, staging.produced(), replaced)
    out.write_run_json(staging.path("run_json"), run)
    r.check_cancel()
    final = staging.commit()
    final.pop("run", None)  # run.log: listed in run.json's files, not a result layer
    device = model.device if model is not None else "cpu"
    r.report(1.0, f"done ({device}, {r.timings['total_s']:.1f} s)")
    return EstimateResult(outputs=final, device=device, grid=r.grid, run=run)


def _with_net(cfg: EstimateConfig, grid: Grid) -> tuple[bool, bool, bool]:
    """(unwrap interferograms, on the whole grid (MCF), run the network): InSAR only on a grid MCF takes whole
    does not run the network (it would contribute nothing)."""
    insar = bool(cfg.ifgs()) and cfg.unwrap
    whole = grid.width * grid.height <= MCF_MAX_PX
    return insar, whole, not (insar and whole and cfg.optical_pre is None and cfg.sar_pre is None)


def _need_bytes(grid: Grid, cfg: EstimateConfig) -> int:
    """Disk space a run needs at least: the float32 bands that carry data, at a deflate ratio of 2 (the network's
    BANDS_WRITTEN; per unwrapped interferogram LOS, unwrapped and re-wrapped phase and regions; the E/N/U of an
    InSAR-only run with one interferogram are NaN and compress to nothing)."""
    insar, _whole, net = _with_net(cfg, grid)
    n_ifg = len(cfg.ifgs()) if insar else 0
    bands = (out.BANDS_WRITTEN if net else 8 if n_ifg > 1 else 0) + 4 * n_ifg
    return grid.width * grid.height * 4 * bands // 2


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
