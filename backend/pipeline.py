"""The QuakeFusion pipeline: validate -> align -> features -> tiled ONNX inference -> joint unwrapping -> GeoTIFFs.

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
    result.outputs   # {"displacement", "displacement_sigma", "los_displacement", "unwrapped_phase", "run_json"}
    result.device    # "cpu" or "cuda"

``progress(fraction in 0..1, message)`` is called from the worker thread; ``cancel`` is checked per tile and per
unwrapping block (a :class:`CancelToken`, or any callable returning True to cancel). Outputs are written to a
temporary folder inside ``out_dir`` and moved in only on success; a cancelled or failed run leaves nothing.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window
from scipy import ndimage

from . import features as feat
from .align import AlignedSource
from .conventions import TWO_PI, enu_to_los, los_to_phase, los_unit_vector, phase_to_los
from .errors import Cancelled, PipelineError
from .io import Grid, InputRaster, OpenedInput, check_overlap, crop_grid, grid_from, validate_input
from .model import OnnxModel
from .tiling import StripBlender, iter_tiles, tile_grid, tile_weight
from .unwrap import UnwrapParams, joint_unwrap, pseudo_coherence

__all__ = ["EstimateConfig", "InputRaster", "run_estimate", "CancelToken", "PipelineError", "Cancelled",
           "EstimateResult", "OUTPUT_NAMES"]

MODALITY_INPUTS = ("optical_pre", "optical_post", "sar_pre", "sar_post", "phase", "coherence", "dem")
OUTPUT_NAMES = {"displacement": "displacement.tif", "displacement_sigma": "displacement_sigma.tif",
                "los_displacement": "los_displacement.tif", "unwrapped_phase": "unwrapped_phase.tif",
                "run_json": "run.json"}
GRID_ORDER = ("phase", "optical_post", "sar_post", "optical_pre", "sar_pre", "coherence", "dem")
STATS_FULL_MAX_PX = 2048 * 2048
STATS_BLOCK = 256


class CancelToken:
    """Thread-safe cancellation flag: ``cancel()`` from the UI thread, checked by the pipeline per tile."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()


@dataclass
class EstimateConfig:
    """Everything a run needs. Rasters are :class:`InputRaster` (or a path); a modality not given is None.

    Angles: ``incidence_deg`` / ``heading_deg`` are numbers (degrees) or rasters of degrees. ``phase_sign``:
    phase = phase_sign * 4*pi/wavelength * range increase (+1 = LiCSAR/COMET). ``tile``/``overlap`` in pixels.
    ``extent``: ``(xmin, ymin, xmax, ymax, crs)`` (crs: WKT, EPSG code or "EPSG:n"; may be left out = the output
    grid's CRS) crops the output grid (default grid or ``grid_like``) to that area, snapped to its pixels.
    """

    out_dir: Path
    optical_pre: InputRaster | None = None
    optical_post: InputRaster | None = None
    sar_pre: InputRaster | None = None
    sar_post: InputRaster | None = None
    phase: InputRaster | None = None
    coherence: InputRaster | None = None
    dem: InputRaster | None = None
    wavelength_m: float | None = None
    incidence_deg: float | InputRaster | None = None
    heading_deg: float | InputRaster | None = None
    phase_sign: int = 1
    grid_like: InputRaster | None = None
    extent: tuple | None = None
    device: str = "auto"
    tile: int = 1024
    overlap: int = 256  # px; the shipped network draws on ~200 px of context: 512/128 left 1-3 % (p99) seams
    batch: int = 1
    threads: int | None = None
    model_path: Path | None = None
    unwrap: bool = True
    coh_min: float = 0.3
    unwrap_block: int = 1024

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        for name in (*MODALITY_INPUTS, "grid_like"):
            v = getattr(self, name)
            if isinstance(v, (str, os.PathLike)):
                setattr(self, name, InputRaster(v))
        for name in ("incidence_deg", "heading_deg"):
            v = getattr(self, name)
            if isinstance(v, os.PathLike) or (isinstance(v, str) and not _is_number(v)):
                setattr(self, name, InputRaster(v))
            elif isinstance(v, str):
                setattr(self, name, float(v))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


@dataclass
class EstimateResult:
    outputs: dict[str, Path]
    device: str
    grid: Grid
    run: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- writing
def _profile(grid: Grid, count: int) -> dict[str, Any]:
    bs = 256 if min(grid.width, grid.height) >= 256 else 16 * max(1, min(grid.width, grid.height) // 16)
    prof: dict[str, Any] = dict(driver="GTiff", width=grid.width, height=grid.height, count=count, dtype="float32",
                                crs=grid.crs, transform=grid.transform, nodata=float("nan"), compress="deflate",
                                predictor=3, BIGTIFF="IF_SAFER")
    if bs >= 16:
        prof.update(tiled=True, blockxsize=bs, blockysize=bs)
    return prof


def _open_out(path: Path, grid: Grid, descriptions: list[str], units: list[str], tags: dict[str, str]) -> Any:
    ds = rasterio.open(path, "w", **_profile(grid, len(descriptions)))
    for i, (d, u) in enumerate(zip(descriptions, units), start=1):
        ds.set_band_description(i, d)
        ds.update_tags(i, units=u)
    ds.units = tuple(units)
    ds.update_tags(**tags)
    return ds


# ----------------------------------------------------------------------------------------- helpers
class _Angles:
    """Incidence/heading: constants or aligned rasters, read on windows."""

    def __init__(self, inc: float | AlignedSource | None, hdg: float | AlignedSource | None) -> None:
        self.inc, self.hdg = inc, hdg

    @property
    def given(self) -> bool:
        return self.inc is not None and self.hdg is not None

    def los(self, r0: int, c0: int, h: int, w: int) -> np.ndarray | None:
        if not self.given:
            return None
        inc = self.inc.read(r0, c0, h, w) if isinstance(self.inc, AlignedSource) else np.full((h, w), self.inc)
        hdg = self.hdg.read(r0, c0, h, w) if isinstance(self.hdg, AlignedSource) else np.full((h, w), self.hdg)
        return los_unit_vector(inc, hdg).astype(np.float32)


def _check_cancel(cancel: Any) -> None:
    if cancel is not None and bool(cancel()):
        raise Cancelled()


def _validate_config(cfg: EstimateConfig) -> None:
    for a, b in (("optical_pre", "optical_post"), ("sar_pre", "sar_post")):
        if (getattr(cfg, a) is None) != (getattr(cfg, b) is None):
            given, missing = (a, b) if getattr(cfg, a) is not None else (b, a)
            raise PipelineError(f"{given} is given without {missing}. Fix: give both images of the pair "
                                f"(--{a.replace('_', '-')} and --{b.replace('_', '-')}) or neither", missing)
    if cfg.phase is None and cfg.optical_pre is None and cfg.sar_pre is None:
        raise PipelineError("no displacement-sensitive input. Fix: give a wrapped phase (--phase), an optical pair "
                            "(--optical-pre/--optical-post) or a SAR amplitude pair (--sar-pre/--sar-post)", "phase")
    if cfg.coherence is not None and cfg.phase is None:
        raise PipelineError("coherence given without a phase. Fix: give --phase too, or drop --coherence",
                            "coherence")
    if cfg.phase is not None:
        if cfg.wavelength_m is None:
            raise PipelineError("phase given without the radar wavelength. Fix: give --wavelength in metres "
                                "(Sentinel-1: 0.05546576)", "wavelength")
        if not (0.005 <= float(cfg.wavelength_m) <= 0.5):
            raise PipelineError(f"wavelength {cfg.wavelength_m} m is not a radar wavelength. Fix: give it in metres "
                                "(Sentinel-1 0.0555, ALOS-2 0.229), not centimetres or GHz", "wavelength")
        if cfg.incidence_deg is None or cfg.heading_deg is None:
            raise PipelineError("phase given without the viewing geometry. Fix: give --incidence and --heading in "
                                "degrees (Sentinel-1 ascending about 39 and -12) or rasters of them", "incidence")
    for name, lo, hi in (("incidence_deg", 0.0, 90.0), ("heading_deg", -360.0, 360.0)):
        v = getattr(cfg, name)
        if isinstance(v, (int, float)) and not (lo <= float(v) <= hi):
            raise PipelineError(f"{name.split('_')[0]} {v} deg is outside {lo:g}..{hi:g}. Fix: give degrees "
                                "(incidence from the vertical; heading clockwise from north)", name.split("_")[0])
    if cfg.phase_sign not in (1, -1):
        raise PipelineError(f"phase_sign {cfg.phase_sign} invalid. Fix: +1 (LiCSAR/COMET) or -1", "phase_sign")
    if cfg.tile < 32 or cfg.overlap < 0 or cfg.overlap * 2 >= cfg.tile:
        raise PipelineError(f"tile {cfg.tile} / overlap {cfg.overlap} invalid. Fix: tile >= 32 and "
                            "0 <= overlap < tile/2 (e.g. --tile 512 --overlap 64)", "tile")


def _stats_arrays(sources: dict[str, AlignedSource], grid: Grid) -> dict[str, np.ndarray]:
    """Full-resolution samples for the global statistics: the whole grid if small, else a lattice of blocks."""
    h, w = grid.shape
    out: dict[str, np.ndarray] = {}
    if h * w <= STATS_FULL_MAX_PX:
        blocks = [(0, 0, h, w)]
    else:
        n = 8
        rs = np.linspace(0, max(h - STATS_BLOCK, 0), n).astype(int)
        cs = np.linspace(0, max(w - STATS_BLOCK, 0), n).astype(int)
        blocks = [(r, c, min(STATS_BLOCK, h), min(STATS_BLOCK, w)) for r in rs for c in cs]
    for key in ("optical_pre", "optical_post", "sar_pre", "sar_post"):
        if key in sources:
            out[key] = np.concatenate([sources[key].read(*b).ravel() for b in blocks])
    return out


# ----------------------------------------------------------------------------------------- main entry
def run_estimate(cfg: EstimateConfig, progress: Callable[[float, str], None] | None = None,
                 cancel: CancelToken | Callable[[], bool] | None = None,
                 log: Callable[[str], None] | None = None) -> EstimateResult:
    """Run the whole pipeline; see the module docstring. Raises PipelineError (user-fixable) or Cancelled."""
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(float(min(max(fraction, 0.0), 1.0)), message)

    report(0.0, "checking inputs")
    _validate_config(cfg)
    opened: dict[str, OpenedInput] = {}
    for name in MODALITY_INPUTS:
        r = getattr(cfg, name)
        if r is not None:
            opened[name] = validate_input(name, r)
    for name in ("incidence", "heading"):
        v = getattr(cfg, name + "_deg")
        if isinstance(v, InputRaster):
            opened[name] = validate_input(name, v)
    # never overwrite an input
    out_dir = Path(cfg.out_dir).resolve()
    for inp in opened.values():
        if Path(inp.path).resolve().parent == out_dir and Path(inp.path).name in OUTPUT_NAMES.values():
            raise PipelineError(f"{inp.name} ({inp.path}) would be overwritten by an output. Fix: choose another "
                                "--out folder", inp.name)
    # output grid
    if cfg.grid_like is not None:
        gl = cfg.grid_like if isinstance(cfg.grid_like, InputRaster) else InputRaster(cfg.grid_like)
        try:
            with rasterio.open(gl.path) as ds:
                if ds.crs is None:
                    raise PipelineError(f"grid_like (--grid-like {gl.path}): has no CRS. Fix: assign one "
                                        "(gdal_edit.py -a_srs EPSG:....)", "grid_like")
                ref = OpenedInput("grid_like", Path(gl.path), 1, ds.crs, ds.transform, ds.width, ds.height,
                                  ds.nodata, ds.dtypes[0])
        except rasterio.errors.RasterioIOError as exc:
            raise PipelineError(f"grid_like (--grid-like {gl.path}): GDAL cannot read it ({exc}). Fix: check the "
                                "path", "grid_like") from exc
    else:
        ref = next(opened[n] for n in GRID_ORDER if n in opened)
    grid = grid_from(ref)
    if cfg.extent is not None:
        grid = crop_grid(grid, cfg.extent)
    coverage = {name: check_overlap(inp, grid) for name, inp in opened.items()}
    timings["validate_s"] = time.perf_counter() - t_start
    _check_cancel(cancel)

    # model
    t0 = time.perf_counter()
    model = OnnxModel(cfg.model_path, device=cfg.device, threads=cfg.threads)
    meta = model.meta
    timings["model_load_s"] = time.perf_counter() - t0
    notes: list[str] = [f"{n}: {x}" for n, inp in opened.items() for x in inp.notes]
    rng = meta.pixel_size_range_m
    if rng and not (rng[0] <= grid.pixel_size_m <= rng[1]):
        notes.append(f"output pixel size {grid.pixel_size_m:.3g} m is outside the model's trained range "
                     f"{rng[0]:g}-{rng[1]:g} m: expect lower accuracy (use --grid-like to choose another grid)")

    kinds = {"phase": "phase"}
    sources = {n: AlignedSource(inp, grid, kinds.get(n, "continuous")) for n, inp in opened.items()}
    angles = _Angles(sources.get("incidence", cfg.incidence_deg if not isinstance(cfg.incidence_deg, InputRaster)
                                 else None),
                     sources.get("heading", cfg.heading_deg if not isinstance(cfg.heading_deg, InputRaster)
                                 else None))
    with_los = angles.given
    with_phase = "phase" in sources and cfg.unwrap

    created_dir = not out_dir.exists()
    if created_dir:
        out_dir.mkdir(parents=True)
    tmp = out_dir / f".quakefusion-tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    datasets: list[Any] = []
    try:
        # statistics (global, tile-independent)
        t0 = time.perf_counter()
        stats = feat.compute_stats(_stats_arrays(sources, grid))
        timings["stats_s"] = time.perf_counter() - t0
        _check_cancel(cancel)

        tags = {"model_version": meta.version, "software": "QuakeFusion backend"}
        ds_disp = _open_out(tmp / OUTPUT_NAMES["displacement"], grid,
                            ["east displacement", "north displacement", "up displacement"], ["m"] * 3, tags)
        datasets.append(ds_disp)
        ds_sig = _open_out(tmp / OUTPUT_NAMES["displacement_sigma"], grid,
                           ["east 1-sigma", "north 1-sigma", "up 1-sigma"], ["m"] * 3, tags)
        datasets.append(ds_sig)
        ds_los = None
        if with_los:
            # band 1 fused estimate, band 2 (with a phase) from the unwrapped phase: the UI shows the last band
            los_desc = ["LOS displacement, fused estimate (positive towards the satellite)"]
            if with_phase:
                los_desc.append("LOS displacement from the unwrapped phase (positive towards the satellite)")
            ds_los = _open_out(tmp / OUTPUT_NAMES["los_displacement"], grid, los_desc, ["m"] * len(los_desc), tags)
            datasets.append(ds_los)

        def writer(row0: int, block: np.ndarray) -> None:
            n = block.shape[1]
            for c0 in range(0, grid.width, 2048):  # column chunks: temporaries stay small on wide rasters
                cw = min(2048, grid.width - c0)
                sub = block[:, :, c0:c0 + cw]
                valid = sub[6] > 0.5
                disp = np.where(valid, sub[0:3], np.nan).astype(np.float32)
                sig = np.where(valid, sub[3:6], np.nan).astype(np.float32)
                win = Window(c0, row0, cw, n)
                ds_disp.write(disp, window=win)
                ds_sig.write(sig, window=win)
                if ds_los is not None:
                    lu = angles.los(row0, c0, n, cw)
                    ds_los.write(enu_to_los(disp[0], disp[1], disp[2], lu).astype(np.float32), 1, window=win)

        th, tw, rows, cols = tile_grid(grid.height, grid.width, cfg.tile, cfg.overlap, meta.tile_multiple)
        n_tiles = len(rows) * len(cols)
        blender = StripBlender(7, grid.height, grid.width, th, writer)
        frac_inf = 0.75 if with_phase else 0.95
        t_inf = 0.0
        t_read = 0.0
        pending: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        t0 = time.perf_counter()

        def flush_batch() -> None:
            nonlocal t_inf
            if not pending:
                return
            x = np.stack([p[2] for p in pending])
            ti = time.perf_counter()
            disp, sig = model.run(x)
            t_inf += time.perf_counter() - ti
            for i, (r0, c0, _, valid) in enumerate(pending):
                vals = np.concatenate([disp[i], sig[i], valid[None]], axis=0)
                blender.add(r0, c0, vals, tile_weight(th, tw, r0, c0, grid.height, grid.width, cfg.overlap))
            pending.clear()

        for i, (r0, c0, h, w) in enumerate(iter_tiles(grid.height, grid.width, cfg.tile, cfg.overlap,
                                                      meta.tile_multiple)):
            _check_cancel(cancel)
            tr = time.perf_counter()
            arrays: dict[str, Any] = {k: None for k in ("optical_pre", "optical_post", "sar_pre", "sar_post",
                                                        "wrapped_phase", "coherence", "dem")}
            for name, src in sources.items():
                if name in ("incidence", "heading"):
                    continue
                arrays["wrapped_phase" if name == "phase" else name] = src.read(r0, c0, h, w)
            if arrays["wrapped_phase"] is not None and arrays["coherence"] is None:
                arrays["coherence"] = pseudo_coherence(arrays["wrapped_phase"])
            arrays["los_unit_vector"] = angles.los(r0, c0, h, w)
            x = feat.build_features(meta.channels, arrays, stats=stats, pixel_size_m=grid.pixel_size_m,
                                    wavelength_m=cfg.wavelength_m, phase_sign=cfg.phase_sign)
            valid = np.zeros((h, w), bool)
            for a, b in (("optical_pre", "optical_post"), ("sar_pre", "sar_post"),
                         ("wrapped_phase", "wrapped_phase")):
                if arrays[a] is not None:
                    valid |= np.isfinite(arrays[a]) & np.isfinite(arrays[b])
            t_read += time.perf_counter() - tr
            pending.append((r0, c0, x, valid.astype(np.float32)))
            if len(pending) >= max(1, cfg.batch):
                flush_batch()
            report(0.05 + frac_inf * (i + 1) / n_tiles, f"inference: tile {i + 1}/{n_tiles}")
        flush_batch()
        blender.finish()
        timings["inference_total_s"] = time.perf_counter() - t0
        timings["inference_onnx_s"] = t_inf
        timings["read_align_features_s"] = t_read
        ds_disp.close()
        ds_sig.close()
        datasets.remove(ds_disp)
        datasets.remove(ds_sig)

        unwrap_info: dict[str, Any] = {}
        if with_phase and ds_los is not None:
            t0 = time.perf_counter()
            ds_los.close()
            datasets.remove(ds_los)
            ds_los = rasterio.open(tmp / OUTPUT_NAMES["los_displacement"], "r+")
            datasets.append(ds_los)
            ds_unw = _open_out(tmp / OUTPUT_NAMES["unwrapped_phase"], grid,
                               ["unwrapped phase (input + 2 pi k; same sign convention as the input)"], ["rad"],
                               {**tags, "phase_sign": str(cfg.phase_sign), "wavelength_m": str(cfg.wavelength_m)})
            datasets.append(ds_unw)
            prm = UnwrapParams(coh_min=cfg.coh_min)
            B = max(64, int(cfg.unwrap_block))
            blocks = [(r, c) for r in range(0, grid.height, B) for c in range(0, grid.width, B)]
            tot = {"valid_pixels": 0, "reliable_pixels": 0, "unwrapped_pixels": 0, "regions": 0,
                   "model_offset_pixels": 0}  # pixels whose absolute cycle offset came from the model
            trusted_px = 0.0
            # blocks overlap their already unwrapped upper and left neighbours by OV px; each connected part of a
            # block that reaches into that strip is shifted by the integer number of cycles that makes it agree
            # with the neighbour, so there are no cycle jumps at block edges even where the model sets no offset
            OV = 8
            ds_s = rasterio.open(tmp / OUTPUT_NAMES["displacement_sigma"])  # written and closed above; read per block
            datasets.append(ds_s)
            bottom_prev = np.full((OV, grid.width), np.nan, np.float32)  # last OV rows of the block row above
            bottom_cur = np.full((OV, grid.width), np.nan, np.float32)
            right_prev = None  # last OV columns of the block to the left
            stitched = 0
            for j, (r0, c0) in enumerate(blocks):
                _check_cancel(cancel)
                if c0 == 0:
                    right_prev = None
                    if r0 > 0:
                        bottom_prev, bottom_cur = bottom_cur, np.full((OV, grid.width), np.nan, np.float32)
                h, w = min(B, grid.height - r0), min(B, grid.width - c0)
                dh, dw = (OV if r0 > 0 else 0), (OV if c0 > 0 else 0)
                rr0, cc0, hh, ww = r0 - dh, c0 - dw, h + dh, w + dw
                xwin = Window(cc0, rr0, ww, hh)
                phi = sources["phase"].read(rr0, cc0, hh, ww)
                coh = sources["coherence"].read(rr0, cc0, hh, ww) if "coherence" in sources else None
                los_m = ds_los.read(1, window=xwin)
                phi_m = los_to_phase(los_m, cfg.wavelength_m, cfg.phase_sign)
                sg = ds_s.read(window=xwin).astype(np.float64)
                lu = angles.los(rr0, cc0, hh, ww)
                los_sig = np.sqrt((lu[0] * sg[0]) ** 2 + (lu[1] * sg[1]) ** 2 + (lu[2] * sg[2]) ** 2)  # 1-sigma, m
                sig_m = np.abs(los_to_phase(los_sig, cfg.wavelength_m, 1))
                unw, _, info = joint_unwrap(phi, phi_m, coh, prm, model_sigma=sig_m)
                if dh or dw:
                    prev = np.full((hh, ww), np.nan, np.float64)
                    if dh:
                        prev[:dh, :] = bottom_prev[:, cc0:c0 + w]
                    if dw and right_prev is not None:
                        prev[dh:, :dw] = right_prev
                    lab, nlab = ndimage.label(np.isfinite(unw))
                    both = np.isfinite(prev) & (lab > 0)
                    if both.any():
                        comps = np.unique(lab[both])
                        d = np.rint((prev[both] - unw[both]) / TWO_PI)
                        shift = np.zeros(nlab + 1)
                        shift[comps] = np.rint(np.asarray(ndimage.median(d, lab[both], comps), np.float64))
                        stitched += int(np.count_nonzero(shift))
                        unw = (unw.astype(np.float64) + TWO_PI * shift[lab]).astype(np.float32)
                unw = unw[dh:, dw:]
                trusted_px += info["model_trusted_share"] * info["valid_pixels"]
                for key in tot:
                    tot[key] += info[key]
                unwrap_info["coherence_source"] = info["coherence_source"]
                win = Window(c0, r0, w, h)
                ds_unw.write(unw, 1, window=win)
                ds_los.write(phase_to_los(unw, cfg.wavelength_m, cfg.phase_sign).astype(np.float32), 2, window=win)
                nb = min(h, OV)
                bottom_cur[OV - nb:, c0:c0 + w] = unw[h - nb:, :]
                right_prev = unw[:, max(w - OV, 0):] if w >= OV else None
                report(0.05 + frac_inf + 0.15 * (j + 1) / len(blocks), f"unwrapping: block {j + 1}/{len(blocks)}")
            unwrap_info["stitch_shifts"] = stitched
            unwrap_info.update(tot)
            unwrap_info["model_trusted_share"] = trusted_px / max(tot["valid_pixels"], 1)
            unwrap_info.update(block_px=B, coh_min=prm.coh_min, edge_max_rad=prm.edge_max, min_region=prm.min_region,
                               trust_sigma_rad=prm.trust_sigma)
            ds_unw.close()
            datasets.remove(ds_unw)
            timings["unwrap_s"] = time.perf_counter() - t0
        for ds in datasets:
            ds.close()
        datasets.clear()
        _check_cancel(cancel)

        timings["total_s"] = time.perf_counter() - t_start
        produced = {k: tmp / v for k, v in OUTPUT_NAMES.items() if (tmp / v).exists()}
        run = {
            "software": "QuakeFusion backend", "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": {n: inp.to_json() for n, inp in opened.items()},
            "input_coverage_of_grid": coverage,
            "parameters": {"wavelength_m": cfg.wavelength_m, "phase_sign": cfg.phase_sign,
                           "incidence_deg": cfg.incidence_deg if not isinstance(cfg.incidence_deg, InputRaster)
                           else str(cfg.incidence_deg.path),
                           "heading_deg": cfg.heading_deg if not isinstance(cfg.heading_deg, InputRaster)
                           else str(cfg.heading_deg.path),
                           "tile": cfg.tile, "overlap": cfg.overlap, "batch": cfg.batch, "tile_shape": [th, tw],
                           "n_tiles": n_tiles, "threads": model.threads, "device_requested": cfg.device,
                           "unwrap": unwrap_info},
            "grid": grid.to_json() | {"defined_by": ref.name, "extent": None if cfg.extent is None
                                      else [str(v) if i == 4 else float(v) for i, v in enumerate(cfg.extent)]},
            "model": {"path": str(model.path), "version": meta.version, "channels": [feat.channel_name(c)
                                                                                     for c in meta.channels]},
            "device": model.device, "providers": model.providers,
            "stats": stats, "timings": {k: round(v, 4) for k, v in timings.items()},
            "throughput_mpx_s": {"end_to_end": grid.width * grid.height / 1e6 / max(timings["total_s"], 1e-9),
                                 "inference_only": grid.width * grid.height / 1e6
                                 / max(timings["inference_onnx_s"], 1e-9)},
            "notes": notes, "platform": {"python": platform.python_version(), "machine": platform.machine()},
            "outputs": {k: v.name for k, v in produced.items()} | {"run_json": OUTPUT_NAMES["run_json"]},
            "conventions": {"displacement": "east, north, up (m)", "los": "m, positive towards the satellite",
                            "phase": "phase = phase_sign * 4*pi/wavelength * range_increase"},
        }
        (tmp / OUTPUT_NAMES["run_json"]).write_text(json.dumps(_jsonable(run), indent=2))
        _check_cancel(cancel)
        final: dict[str, Path] = {}
        for key, name in OUTPUT_NAMES.items():
            if (tmp / name).exists():
                os.replace(tmp / name, out_dir / name)
                final[key] = out_dir / name
        shutil.rmtree(tmp, ignore_errors=True)
        report(1.0, f"done ({model.device}, {timings['total_s']:.1f} s)")
        return EstimateResult(outputs=final, device=model.device, grid=grid, run=run)
    except BaseException:
        for ds in datasets:
            try:
                ds.close()
            except Exception:  # noqa: S110 - best effort while cleaning up
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        if created_dir:
            try:
                out_dir.rmdir()
            except OSError:
                pass
        raise
    finally:
        for src in sources.values():
            src.close()


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    return o
