"""The inference stage: overlapping tiles -> aligned reads -> features -> ONNX (batched) -> blended rows.

Tiles are visited row by row (:mod:`backend.tiling`); each tile's inputs are read once through their
:class:`~backend.align.AlignedSource`, turned into the model's channels (:mod:`backend.features`), run through the
model and blended into a :class:`~backend.tiling.StripBlender`, which hands finished rows to ``writer`` (memory
grows with the raster's width, not its area).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import features as feat
from . import illumination
from .align import AlignedSource, Angles
from .config import EstimateConfig, overlap_for
from .errors import Cancelled
from .geodata import trace_side
from .io import Grid
from .model import ModelMeta, OnnxModel
from .tiling import StripBlender, iter_tiles, tile_grid, tile_weight
from .unwrap import pseudo_coherence

FEATURE_KEYS = ("optical_pre", "optical_post", "sar_pre", "sar_post", "wrapped_phase", "coherence", "dem")
VALID_PAIRS = (("optical_pre", "optical_post"), ("sar_pre", "sar_post"), ("wrapped_phase", "wrapped_phase"))


def check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and bool(cancel()):
        raise Cancelled()


@dataclass
class TilePlan:
    """Tile size and overlap of a run (``overlap`` from the config, else from the model's receptive field)."""

    tile: int
    overlap: int
    multiple: int
    tile_h: int
    tile_w: int
    n_tiles: int
    notes: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, cfg: EstimateConfig, meta: ModelMeta, grid: Grid) -> TilePlan:
        notes: list[str] = []
        if cfg.overlap is None:
            overlap, note = overlap_for(cfg.tile, meta.receptive_field_px)
            notes += [note] if note else []
        else:
            overlap = int(cfg.overlap)
        th, tw, rows, cols = tile_grid(grid.height, grid.width, cfg.tile, overlap, meta.tile_multiple)
        return cls(int(cfg.tile), overlap, meta.tile_multiple, th, tw, len(rows) * len(cols), notes)


def extra_outputs(meta: ModelMeta) -> list[str]:
    """Per-pixel model outputs besides displacement and sigma, in metadata order (e.g. rupture_probability),
    less those the metadata marks as carrying no information (``ModelMeta.uninformative_outputs``)."""
    skip = meta.uninformative_outputs
    return [k for k in meta.outputs if k not in ("displacement", "sigma") and k not in skip]


def fault_side(grid: Grid, lines: list[np.ndarray], r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """(h, w) float32: +1 right / -1 left of the nearest given trace line (looking along it), for a tile."""
    t = grid.transform
    xs = t.c + (c0 + np.arange(w) + 0.5) * t.a
    ys = t.f + (r0 + np.arange(h) + 0.5) * t.e
    return trace_side(*np.meshgrid(xs, ys), lines)


def _tile_arrays(sources: dict[str, AlignedSource], angles: Angles, stats: dict[str, Any], r0: int, c0: int,
                 h: int, w: int, pixel_size_m: float) -> tuple[dict[str, Any], np.ndarray]:
    """The tile's input arrays (the pre image relit to the post image's sun where ``stats["illumination"]`` says
    so, ``backend.illumination``), and where the optical pair has no texture (there it is given to the model as
    missing, NaN; the mask is kept to blank east/north where no other modality sees horizontal motion)."""
    arrays: dict[str, Any] = dict.fromkeys(FEATURE_KEYS)
    for name, src in sources.items():  # the network sees the first interferogram ("phase", "coherence") only
        key = "wrapped_phase" if name == "phase" else name
        if key in arrays:
            arrays[key] = src.read(r0, c0, h, w)
    arrays = illumination.apply(arrays, stats.get("illumination"), pixel_size_m)
    flat = np.zeros((h, w), bool)
    if arrays["optical_pre"] is not None and arrays["optical_post"] is not None:
        flat = feat.textureless(arrays["optical_pre"], arrays["optical_post"], stats)
        if flat.any():
            for key in ("optical_pre", "optical_post"):
                arrays[key] = np.where(flat, np.nan, arrays[key]).astype(np.float32)
    if arrays["wrapped_phase"] is not None and arrays["coherence"] is None:
        arrays["coherence"] = pseudo_coherence(arrays["wrapped_phase"])
    arrays["los_unit_vector"] = angles.los(r0, c0, h, w)
    if arrays["sar_pre"] is not None:  # a SAR pair sees horizontal motion there
        flat &= ~(np.isfinite(arrays["sar_pre"]) & np.isfinite(arrays["sar_post"]))
    return arrays, flat


def _valid(arrays: dict[str, Any], h: int, w: int) -> np.ndarray:
    valid = np.zeros((h, w), bool)
    for a, b in VALID_PAIRS:
        if arrays[a] is not None:
            valid |= np.isfinite(arrays[a]) & np.isfinite(arrays[b])
    return valid.astype(np.float32)


class _Batcher:
    """Collects tiles until ``batch`` are ready, runs the model once, blends each result."""

    def __init__(self, model: OnnxModel, blender: StripBlender, plan: TilePlan, grid: Grid, batch: int) -> None:
        self.model, self.blender, self.plan, self.grid = model, blender, plan, grid
        self.batch = max(1, int(batch))
        self.extra = extra_outputs(model.meta)
        self.pending: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        self.seconds = 0.0
        self.skipped = 0
        self.nbands = 8 + len(self.extra)

    def add(self, r0: int, c0: int, x: np.ndarray, valid: np.ndarray, flat: np.ndarray) -> None:
        if not valid.any():  # nothing to estimate in this tile: no model call, NaN out
            p, g = self.plan, self.grid
            self.skipped += 1
            vals = np.zeros((self.nbands, valid.shape[0], valid.shape[1]), np.float32)
            self.blender.add(r0, c0, vals, tile_weight(p.tile_h, p.tile_w, r0, c0, g.height, g.width, p.overlap))
            return
        self.pending.append((r0, c0, x, np.stack([flat.astype(np.float32), valid])))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        t0 = time.perf_counter()
        out = self.model.run(np.stack([p[2] for p in self.pending]))
        self.seconds += time.perf_counter() - t0
        p, g = self.plan, self.grid
        for i, (r0, c0, _, valid) in enumerate(self.pending):
            vals = np.concatenate([out["displacement"][i], out["sigma"][i], *(out[k][i] for k in self.extra),
                                   valid], axis=0)
            self.blender.add(r0, c0, vals, tile_weight(p.tile_h, p.tile_w, r0, c0, g.height, g.width, p.overlap))
        self.pending.clear()


def infer_tiles(model: OnnxModel, sources: dict[str, AlignedSource], angles: Angles, stats: dict[str, Any],
                grid: Grid, cfg: EstimateConfig, plan: TilePlan, writer: Callable[[int, np.ndarray], None],
                nbands: int, report: Callable[[int, int], None],
                cancel: Callable[[], bool] | None = None,
                trace_lines: list[np.ndarray] | None = None) -> dict[str, float]:
    """Run every tile; ``writer(row0, block)`` gets the blended rows; returns the stage's timings (and the number
    of tiles without any data, which skip the model). Block bands: displacement 3, sigma 3, extra outputs, the
    no-texture mask, validity. ``trace_lines`` (grid CRS): a given rupture trace -> the ``fault_side`` channel."""
    t_start = time.perf_counter()
    blender = StripBlender(nbands, grid.height, grid.width, plan.tile_h, writer)
    batcher = _Batcher(model, blender, plan, grid, cfg.batch)
    t_read, traced = 0.0, 0
    every_tile = model.meta.trace_branch_weights
    tiles = iter_tiles(grid.height, grid.width, plan.tile, plan.overlap, plan.multiple)
    for i, (r0, c0, h, w) in enumerate(tiles):
        check_cancel(cancel)
        t0 = time.perf_counter()
        arrays, flat = _tile_arrays(sources, angles, stats, r0, c0, h, w, grid.pixel_size_m)
        if trace_lines is not None:
            side = fault_side(grid, trace_lines, r0, c0, h, w)
            # one side only: the same as no trace (the model's faster branch), unless that branch has other weights
            if every_tile or not (side == side[0, 0]).all():
                arrays["fault_side"] = side
                traced += 1
        x = feat.build_features(model.meta.channels, arrays, stats=stats, pixel_size_m=grid.pixel_size_m,
                                wavelength_m=cfg.wavelength_m, phase_sign=cfg.phase_sign)
        valid = _valid(arrays, h, w)
        t_read += time.perf_counter() - t0
        batcher.add(r0, c0, x, valid, flat)
        report(i + 1, plan.n_tiles)
    batcher.flush()
    blender.finish()
    return {"inference_total_s": time.perf_counter() - t_start, "inference_onnx_s": batcher.seconds,
            "read_align_features_s": t_read, "tiles_without_data": batcher.skipped, "tiles_with_trace": traced}
