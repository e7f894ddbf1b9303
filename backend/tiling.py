"""Overlapping tiles, smooth blending weights and a strip accumulator for windowed writes.

Tiles are ``tile`` pixels a side (a multiple of the model's ``tile_multiple``) and overlap by ``overlap``.
Each tile's prediction is weighted by a separable ramp over the overlap (0 on the outer quarter, where the
network sees the tile's zero padding, then a raised cosine; 1 in the tile's interior and on the raster's
border), accumulated, and divided by the summed weights, so there are no seams. Tiles are visited row by
row; :class:`StripBlender` keeps only a strip of ``tile`` rows in memory and hands finished rows to a writer,
so memory grows with the raster's width, not its area.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def round_up(n: int, m: int) -> int:
    return ((n + m - 1) // m) * m


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` covering ``0..length`` with at least ``overlap`` shared pixels."""
    if tile <= overlap:
        raise ValueError("tile must be larger than overlap")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def ramp(n: int, overlap: int, at_start: bool, at_end: bool, floor: float = 1e-3) -> np.ndarray:
    """1-D weight: 0 over the outer quarter of the overlap (the network's padding-affected border), a raised
    cosine over the middle half, 1 elsewhere; no ramp at raster borders."""
    w = np.ones(n, np.float64)
    if overlap > 0:
        margin = overlap // 4
        m = max(overlap - 2 * margin, 1)
        k = np.arange(m, dtype=np.float64)
        r = np.concatenate([np.zeros(margin), np.maximum(0.5 - 0.5 * np.cos(np.pi * (k + 0.5) / m), floor),
                            np.ones(overlap - margin - m)])
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if not at_end:
            w[n - overlap:] = np.minimum(w[n - overlap:], r[::-1])
    return w


def tile_grid(height: int, width: int, tile: int, overlap: int, multiple: int = 16) -> tuple[int, int, list, list]:
    """(tile_h, tile_w, row_starts, col_starts); tile sides are multiples of ``multiple`` (tiles may pass the edge)."""
    th = min(round_up(tile, multiple), round_up(height, multiple))
    tw = min(round_up(tile, multiple), round_up(width, multiple))
    ov_h = min(overlap, th // 2)
    ov_w = min(overlap, tw // 2)
    rows = tile_starts(height, th, ov_h) if height > th else [0]
    cols = tile_starts(width, tw, ov_w) if width > tw else [0]
    return th, tw, rows, cols


def tile_weight(th: int, tw: int, r0: int, c0: int, height: int, width: int, overlap: int) -> np.ndarray:
    ov_h = min(overlap, th // 2)
    ov_w = min(overlap, tw // 2)
    wr = ramp(th, ov_h, at_start=r0 == 0, at_end=r0 + th >= height)
    wc = ramp(tw, ov_w, at_start=c0 == 0, at_end=c0 + tw >= width)
    return (wr[:, None] * wc[None, :]).astype(np.float32)


def iter_tiles(height: int, width: int, tile: int, overlap: int,
               multiple: int = 16) -> Iterator[tuple[int, int, int, int]]:
    """(row0, col0, tile_h, tile_w) in row-major order."""
    th, tw, rows, cols = tile_grid(height, width, tile, overlap, multiple)
    for r in rows:
        for c in cols:
            yield r, c, th, tw


class StripBlender:
    """Accumulates weighted tiles of ``nbands`` bands row-strip by row-strip and flushes finished rows.

    ``writer(row0, block)`` receives ``block`` of shape ``(nbands, nrows, width)`` (blended, NaN where no tile
    contributed) for rows ``row0..row0+nrows``; rows are flushed in order, each exactly once.
    """

    def __init__(self, nbands: int, height: int, width: int, tile_h: int,
                 writer: Callable[[int, np.ndarray], None]) -> None:
        self.nbands, self.height, self.width, self.tile_h = nbands, height, width, tile_h
        self.writer = writer
        self.buf = np.zeros((nbands, tile_h, width), np.float32)
        self.wsum = np.zeros((tile_h, width), np.float32)
        self.start = 0  # grid row of buf[:, 0]

    def _flush(self, upto: int) -> None:
        n = min(upto, self.height) - self.start
        if n <= 0:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            block = self.buf[:, :n] / self.wsum[None, :n]
        block[:, self.wsum[:n] <= 0] = np.nan
        self.writer(self.start, block.astype(np.float32, copy=False))
        self.buf[:, :-n] = self.buf[:, n:].copy() if n < self.tile_h else 0.0
        self.buf[:, max(self.tile_h - n, 0):] = 0.0
        self.wsum[:-n] = self.wsum[n:].copy() if n < self.tile_h else 0.0
        self.wsum[max(self.tile_h - n, 0):] = 0.0
        self.start += n

    def add(self, row0: int, col0: int, values: np.ndarray, weight: np.ndarray) -> None:
        """Add a tile (``values`` ``(nbands, h, w)``, ``weight`` ``(h, w)``); tiles must come in row-major order."""
        if row0 > self.start:
            self._flush(row0)
        if row0 < self.start:
            raise ValueError("tiles must be added in row-major order")
        h = min(values.shape[1], self.height - row0)
        w = min(values.shape[2], self.width - col0)
        v = values[:, :h, :w]
        wt = weight[:h, :w].astype(np.float32)
        ok = np.all(np.isfinite(v), axis=0)
        wt = np.where(ok, wt, 0.0)
        r = row0 - self.start
        self.buf[:, r:r + h, col0:col0 + w] += np.where(ok, v, 0.0) * wt
        self.wsum[r:r + h, col0:col0 + w] += wt

    def finish(self) -> None:
        self._flush(self.height)
