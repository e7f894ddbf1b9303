"""Alignment of inputs to the output grid, one window at a time.

* continuous rasters (optical, SAR amplitude, coherence, DEM, angles): bilinear when the source is about as
  fine as the grid or coarser, pixel averaging when it is finer (no aliasing);
* wrapped phase: resampled through exp(i*phase) (cos and sin separately, then the angle) - never as numbers;
* masks: nearest.

Reads only the source window that covers the requested output window (plus a small margin), so memory
follows the window, not the raster. Nodata (and NaN) become NaN.
"""

from __future__ import annotations

import math

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from .conventions import los_unit_vector, wrap
from .io import Grid, OpenedInput, apply_affine, input_bounds_in, invert_point, offset_transform, read_error

KINDS = ("continuous", "phase", "mask")


class AlignedSource:
    """Reads one validated input on windows of the output grid (``read(row0, col0, h, w)``)."""

    def __init__(self, inp: OpenedInput, grid: Grid, kind: str = "continuous") -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.inp, self.grid, self.kind = inp, grid, kind
        self.ds = rasterio.open(inp.path)
        b = input_bounds_in(inp, grid.crs)
        src_px = math.sqrt(max((b[2] - b[0]) / inp.width * (b[3] - b[1]) / inp.height, 1e-30))
        self.ratio = src_px / grid.pixel_size_m  # < 1: source finer than the grid
        if kind == "mask":
            self.resampling = Resampling.nearest
        elif self.ratio < 0.75:
            self.resampling = Resampling.average
        else:
            self.resampling = Resampling.bilinear
        self.offset = self._integer_offset()

    def close(self) -> None:
        self.ds.close()

    def __enter__(self) -> AlignedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _integer_offset(self) -> tuple[int, int] | None:
        """(row, col) offset of the grid in the source when they share CRS, pixel size and pixel corners."""
        s, g = self.inp.transform, self.grid.transform
        if self.inp.crs != self.grid.crs:
            return None
        if not (math.isclose(s.a, g.a, rel_tol=1e-9) and math.isclose(s.e, g.e, rel_tol=1e-9)):
            return None
        col = (g.c - s.c) / s.a
        row = (g.f - s.f) / s.e
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            return None
        return int(round(row)), int(round(col))

    def _read_src(self, window: Window) -> np.ndarray:
        # clip to the dataset ourselves (rasterio's boundless reads break with affine 3.x); outside -> NaN
        c0, r0 = int(window.col_off), int(window.row_off)
        w, h = int(window.width), int(window.height)
        out = np.full((h, w), np.nan, np.float64)
        ca, ra = max(c0, 0), max(r0, 0)
        cb, rb = min(c0 + w, self.inp.width), min(r0 + h, self.inp.height)
        if cb > ca and rb > ra:
            try:
                a = self.ds.read(self.inp.band, window=Window(ca, ra, cb - ca, rb - ra), masked=True)
            except rasterio.errors.RasterioError as exc:
                raise read_error(self.inp.name, self.inp.path, exc,
                                 f" at rows {ra}..{rb - 1}, columns {ca}..{cb - 1}") from exc
            out[ra - r0:rb - r0, ca - c0:cb - c0] = np.ma.filled(a.astype(np.float64), np.nan)
        if self.inp.nodata is not None and not np.isnan(self.inp.nodata):
            out[out == self.inp.nodata] = np.nan
        out[np.isinf(out)] = np.nan  # +-inf (overflowed exports) carry no value
        if self.inp.zero_is_nodata:
            out[out == 0.0] = np.nan
        if self.kind == "phase":
            out = wrap(out)
        return out

    def read(self, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        """Values on grid rows ``row0..row0+h`` and columns ``col0..col0+w`` (may extend past the grid: NaN)."""
        if self.offset is not None:
            r, c = self.offset
            return self._read_src(Window(col0 + c, row0 + r, w, h)).astype(np.float32)
        dst_t = self.grid.window_transform(row0, col0)
        x0, y0 = dst_t.c, dst_t.f
        x1, y1 = apply_affine(dst_t, w, h)
        left, bottom, right, top = transform_bounds(self.grid.crs, self.inp.crs, min(x0, x1), min(y0, y1),
                                                    max(x0, x1), max(y0, y1), densify_pts=11)
        ca, ra = invert_point(self.inp.transform, left, top)
        cb, rb = invert_point(self.inp.transform, right, bottom)
        pad = 3
        c_lo = int(math.floor(min(ca, cb))) - pad
        c_hi = int(math.ceil(max(ca, cb))) + pad
        r_lo = int(math.floor(min(ra, rb))) - pad
        r_hi = int(math.ceil(max(ra, rb))) + pad
        # clip to the dataset (outside -> NaN anyway)
        c_lo, r_lo = max(c_lo, 0), max(r_lo, 0)
        c_hi, r_hi = min(c_hi, self.inp.width), min(r_hi, self.inp.height)
        out = np.full((h, w), np.nan, np.float64)
        if c_hi <= c_lo or r_hi <= r_lo:
            return out.astype(np.float32)
        win = Window(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo)
        src = self._read_src(win)
        src_t = offset_transform(self.inp.transform, r_lo, c_lo)
        kw = dict(src_transform=src_t, src_crs=self.inp.crs, dst_transform=dst_t, dst_crs=self.grid.crs,
                  resampling=self.resampling, src_nodata=np.nan, dst_nodata=np.nan, num_threads=1)
        if self.kind == "phase":
            valid = np.isfinite(src)
            re = np.where(valid, np.cos(src), np.nan)
            im = np.where(valid, np.sin(src), np.nan)
            ore = np.full((h, w), np.nan, np.float64)
            oim = np.full((h, w), np.nan, np.float64)
            reproject(re, ore, **kw)
            reproject(im, oim, **kw)
            with np.errstate(invalid="ignore"):
                out = np.where(np.isfinite(ore) & np.isfinite(oim), np.arctan2(oim, ore), np.nan)
            out = wrap(out)
        else:
            reproject(src, out, **kw)
        return out.astype(np.float32)


class Angles:
    """Incidence/heading: constants or aligned rasters, read on windows; ``los`` gives the ENU unit vector.
    ``vec``: three aligned rasters E, N, U of the ground-to-satellite unit vector instead (renormalised)."""

    def __init__(self, inc: float | AlignedSource | None, hdg: float | AlignedSource | None,
                 vec: tuple[AlignedSource, AlignedSource, AlignedSource] | None = None) -> None:
        self.inc, self.hdg, self.vec = inc, hdg, vec

    @property
    def given(self) -> bool:
        return self.vec is not None or (self.inc is not None and self.hdg is not None)

    def los(self, r0: int, c0: int, h: int, w: int) -> np.ndarray | None:
        if not self.given:
            return None
        if self.vec is not None:
            v = np.stack([s.read(r0, c0, h, w) for s in self.vec]).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                v /= np.sqrt((v * v).sum(axis=0))
            return v.astype(np.float32)
        inc = self.inc.read(r0, c0, h, w) if isinstance(self.inc, AlignedSource) else np.full((h, w), self.inc)
        hdg = self.hdg.read(r0, c0, h, w) if isinstance(self.hdg, AlignedSource) else np.full((h, w), self.hdg)
        return los_unit_vector(inc, hdg).astype(np.float32)
