"""Raster inputs: opening, validation with actionable messages, and the output grid.

Everything is read with rasterio by window (or as a decimated overview for checks), never whole
rasters. ``validate_input`` returns an :class:`OpenedInput` that ``align.AlignedSource`` reads from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, transform_bounds

from .config import RADIAN_MAX_INCIDENCE, InputRaster
from .errors import PipelineError

# Human-readable names of the inputs (CLI flag) for messages.
FLAGS = {
    "optical_pre": "--optical-pre", "optical_post": "--optical-post", "sar_pre": "--sar-pre",
    "sar_post": "--sar-post", "phase": "--phase", "coherence": "--coherence", "dem": "--dem",
    "incidence": "--incidence", "heading": "--heading", "grid_like": "--grid-like",
}

CHECK_MAX_PX = 1024  # decimated read for value-range checks: at most this many pixels a side


@dataclass
class Grid:
    """Output grid: north-up, square-ish pixels, projected CRS (metres)."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def pixel_size_m(self) -> float:
        return float(math.sqrt(abs(self.transform.a * self.transform.e)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        x0, y0 = t.c, t.f
        x1, y1 = apply_affine(t, self.width, self.height)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def window_transform(self, row0: int, col0: int) -> Affine:
        return offset_transform(self.transform, row0, col0)

    def to_json(self) -> dict:
        t = self.transform
        return {"crs": self.crs.to_string(), "transform": [t.a, t.b, t.c, t.d, t.e, t.f], "width": self.width,
                "height": self.height, "pixel_size_m": self.pixel_size_m}


@dataclass
class OpenedInput:
    """A validated input: its name (``phase``, ``optical_post``...), path, band, and what was learned."""

    name: str
    path: Path
    band: int
    crs: CRS
    transform: Affine
    width: int
    height: int
    nodata: float | None
    dtype: str
    zero_is_nodata: bool = False
    notes: list[str] = field(default_factory=list)

    def open(self) -> rasterio.io.DatasetReader:
        return rasterio.open(self.path)

    def to_json(self) -> dict:
        return {"name": self.name, "path": str(self.path), "band": self.band, "crs": self.crs.to_string(),
                "width": self.width, "height": self.height, "nodata": self.nodata, "dtype": self.dtype,
                "zero_is_nodata": self.zero_is_nodata, "notes": self.notes}


def apply_affine(t: Affine, x: float, y: float) -> tuple[float, float]:
    """Map (col, row) -> (x, y) with an affine transform (works with affine 2.x and 3.x)."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def offset_transform(t: Affine, row0: float, col0: float) -> Affine:
    """Transform of a window starting at (row0, col0) (no Affine arithmetic: affine 3.0 breaks it on py3.11)."""
    return Affine(t.a, t.b, t.c + col0 * t.a + row0 * t.b, t.d, t.e, t.f + col0 * t.d + row0 * t.e)


def invert_point(t: Affine, x: float, y: float) -> tuple[float, float]:
    """(col, row) of map coordinates (x, y) for a non-rotated or rotated affine transform."""
    det = t.a * t.e - t.b * t.d
    dx, dy = x - t.c, y - t.f
    return (t.e * dx - t.b * dy) / det, (-t.d * dx + t.a * dy) / det


def read_error(name: str, path: Path | str, exc: BaseException, where: str = "") -> PipelineError:
    """A GDAL read failure (corrupt compressed tile, truncated file, vanished disk) naming the file and the fix."""
    cause = f": {exc.__cause__}" if exc.__cause__ is not None and str(exc.__cause__) not in str(exc) else ""
    return _err(name, path, f"GDAL cannot read it{where} ({exc}{cause})",
                "the file is damaged or incomplete (e.g. a corrupt compressed tile or an interrupted download): "
                "download or export it again; `gdalinfo -checksum FILE` tells whether it reads completely")


def _err(name: str, path: Path | str, problem: str, fix: str) -> PipelineError:
    flag = FLAGS.get(name, name)
    return PipelineError(f"{name} ({flag} {path}): {problem}. Fix: {fix}", name)


def read_overview(ds: rasterio.io.DatasetReader, band: int, max_px: int = CHECK_MAX_PX) -> np.ndarray:
    """Decimated read (nearest) of one band as float64 with nodata -> NaN; for checks and statistics."""
    f = max(1, math.ceil(max(ds.height, ds.width) / max_px))
    shape = (max(1, ds.height // f), max(1, ds.width // f))
    a = ds.read(band, out_shape=shape, resampling=Resampling.nearest, masked=True)
    out = np.ma.filled(a.astype(np.float64), np.nan)
    return out


def _phase_fix(lo: float, hi: float, fin: np.ndarray) -> str:
    """What a phase raster outside [-pi, pi] most likely is, and how to fix it."""
    wrap_cmd = "gdal_calc.py -A IN --outfile=OUT --calc='arctan2(sin(A),cos(A))'"
    if lo >= -180.5 and hi <= 360.5 and hi - lo > 300 and float(np.mean(np.abs(fin) > 2 * np.pi)) > 0.2:
        return "the values look like wrapped degrees (they fill about 360); convert to radians: phase * pi / 180"
    for k in (10, 100, 1000, 10000):  # integer exports: radians x 1000 (int16) and the like
        if abs(hi / (np.pi * k) - 1) < 0.02 and abs(lo / (np.pi * k) + 1) < 0.02:
            return f"the values look like radians scaled by {k} (they fill +-{np.pi * k:.5g}): divide by {k}"
    return ("the values look like an UNWRAPPED phase (or a displacement), not a wrapped phase: give the wrapped "
            f"phase in radians in [-pi, pi) (e.g. the LiCSAR *.geo.diff_pha.tif), or wrap it: {wrap_cmd}")


def _check_phase(name: str, path: Path, fin: np.ndarray, lo: float, hi: float, notes: list[str]) -> bool:
    """Wrapped phase in radians (or [0, 2pi), wrapped on reading); returns ``zero_is_nodata``."""
    if lo < -np.pi - 1e-3 or hi > np.pi + 1e-3:
        if not (lo >= -1e-3 and hi <= 2 * np.pi + 1e-3):
            raise _err(name, path, f"values span [{lo:.3g}, {hi:.3g}], outside [-pi, pi]", _phase_fix(lo, hi, fin))
        notes.append("values in [0, 2pi): wrapped to [-pi, pi) on reading")
    nz = fin[fin != 0.0]
    if nz.size == 0:
        raise _err(name, path, "every pixel is 0: no phase", "give the interferogram's phase band (check the band "
                   "number and that the export is not empty)")
    q_lo, q_hi = (float(x) for x in np.percentile(nz, [0.5, 99.5]))
    if nz.size >= 100 and 0 < q_hi - q_lo < PHASE_MIN_SPAN:  # constant: synthetic tests, not a displacement
        raise _err(name, path, f"99 % of the values lie in [{q_lo:.3g}, {q_hi:.3g}], a span of {q_hi - q_lo:.2g} rad: "
                   "that is not a wrapped interferogram (noise and deformation fill [-pi, pi]); it looks like a "
                   "displacement in metres or another quantity",
                   "give the WRAPPED phase in radians; from a LOS displacement d in metres (range increase positive) "
                   "the phase is wrap(4*pi/wavelength * d)")
    zero_frac = float(np.mean(fin == 0.0))
    if zero_frac > 0.005:
        notes.append(f"{zero_frac:.1%} of the pixels are exactly 0: treated as no data (processor fill value)")
        return True
    return False


PHASE_MIN_SPAN = 1.0  # rad: a wrapped interferogram's central 99 % spans more than this


def _zero_fill(name: str, fin: np.ndarray, nodata: float | None, notes: list[str]) -> bool:
    """Exact zeros in a raster without a nodata value: no data for optical and SAR images (a reflectance or
    amplitude of exactly 0 over many pixels is a fill value), a note for the others. Returns ``zero_is_nodata``."""
    if nodata is not None:
        return False
    zero_frac = float(np.mean(fin == 0.0))
    if zero_frac <= 0.005:
        return False
    tag = "(e.g. gdal_edit.py -a_nodata 0 FILE)"
    if name.startswith(("optical", "sar")):
        notes.append(f"{zero_frac:.1%} of the pixels are exactly 0 and the file has no nodata value: 0 is treated as "
                     f"no data (fill value); set the nodata value to make that explicit {tag}")
        return True
    if name in ("coherence", "dem", "incidence", "heading"):
        notes.append(f"{zero_frac:.1%} of the pixels are exactly 0 and the file has no nodata value: 0 is read as a "
                     f"value; if 0 marks missing data, set the nodata value {tag}")
    return False


def input_kind(name: str) -> str:
    """``phase_2`` -> ``phase``: the k-th interferogram's inputs are of the same kind as the first's."""
    return re.sub(r"_\d+$", "", name)


def _range_problem(name: str, lo: float, hi: float) -> tuple[str, str] | None:
    """(problem, fix) when the value range of a non-phase input is implausible, else None."""
    if name in ("los_east", "los_north", "los_up") and (lo < -1.001 or hi > 1.001):
        return (f"values span [{lo:.3g}, {hi:.3g}], outside -1..1: not a unit-vector component",
                "give the ground-to-satellite LOS unit vector (E, N, U components, e.g. LiCSAR's *.geo.E/N/U.tif)")
    if name == "coherence" and (lo < -1e-3 or hi > 1.0 + 1e-3):
        return (f"values span [{lo:.3g}, {hi:.3g}], outside 0..1",
                "give coherence in 0..1" + (" (values up to 100 look like percent: divide by 100)" if hi <= 100
                                            else " (values up to 255 look like a byte scaling: divide by 255)"
                                            if hi <= 255 else ""))
    if name in ("sar_pre", "sar_post") and lo < 0:
        return (f"has negative values (min {lo:.3g}): looks like dB or complex parts",
                "give LINEAR amplitude (from dB: 10**(dB/20)); for a complex SLC give abs(slc)")
    if name == "incidence" and hi <= RADIAN_MAX_INCIDENCE:
        return (f"incidence values span [{lo:.3g}, {hi:.3g}]: they look like RADIANS ({math.degrees(lo):.3g}.."
                f"{math.degrees(hi):.3g} deg)", "give degrees (gdal_calc.py --calc='degrees(A)')")
    if name == "incidence" and (lo <= 0 or hi >= 90):
        return (f"incidence values span [{lo:.3g}, {hi:.3g}] deg: outside 0..90 (0 = looking straight down and 90 = "
                "horizontal are impossible for SAR)", "give the incidence angle in degrees from the vertical at the "
                "ground (Sentinel-1: 29..46)")
    if name == "heading" and (lo < -360 or hi > 360):
        return (f"heading values span [{lo:.3g}, {hi:.3g}] deg, outside -360..360",
                "give the flight-direction azimuth in degrees clockwise from north (S1 ascending ~-12)")
    if name == "dem" and (lo < -1000 or hi > 9000):  # lowest land -430 m (Dead Sea); -9999/-32768 are unset nodata
        return (f"elevations span [{lo:.4g}, {hi:.4g}] m, not plausible",
                "give a DEM in metres with its nodata value set (e.g. gdal_edit.py -a_nodata -9999)")
    return None


def _check_values(name: str, path: Path, v: np.ndarray, notes: list[str], nodata: float | None = None) -> bool:
    """Check value ranges on a decimated copy; returns ``zero_is_nodata`` (exact zeros are no data). Inputs of the
    k-th interferogram (``phase_2``, ``coherence_2``...) are checked like the first's."""
    kind = input_kind(name)
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        raise _err(name, path, "has no valid pixel (all nodata/NaN)", "check the band number and the nodata value")
    lo, hi = float(fin.min()), float(fin.max())
    if kind == "phase":
        return _check_phase(name, path, fin, lo, hi, notes)
    zero_nodata = False
    if kind == "incidence" and lo == 0.0 < hi:  # incidence 0 is impossible: exact zeros are a fill value
        notes.append(f"{float(np.mean(fin == 0)):.1%} of the pixels are exactly 0 (impossible incidence): treated as "
                     "no data")
        fin = fin[fin != 0]
        lo, zero_nodata = float(fin.min()), True
    bad = _range_problem(kind, lo, hi)
    if bad is not None:
        raise _err(name, path, *bad)
    zero_nodata = _zero_fill(kind, fin, nodata, notes) or zero_nodata
    if name.startswith(("optical", "sar")):
        used = fin[fin != 0] if zero_nodata else fin
        if used.size and float(used.max()) == float(used.min()):
            raise _err(name, path, f"every pixel has the same value ({used[0]:.6g}): no texture, so no displacement "
                       "can be measured", "give the image band itself (check the band number and that the export "
                       "is not blank or fully clouded)")
    if kind == "heading" and hi - lo < 1.0 and max(abs(lo), abs(hi)) <= 2 * math.pi:
        notes.append(f"heading values [{lo:.3g}, {hi:.3g}] deg are unusual for a satellite (ascending about -10..-20, "
                     f"descending about -160..-170); if they are radians ({math.degrees(lo):.3g}.."
                     f"{math.degrees(hi):.3g} deg), give degrees")
    return zero_nodata


def validate_input(name: str, raster: InputRaster) -> OpenedInput:
    """Open and check one input; raise :class:`PipelineError` naming the input and the fix."""
    path = Path(raster.path)
    if not path.exists() and "://" not in str(path) and not str(path).startswith("/vsi"):
        raise _err(name, path, "file not found", "check the path")
    try:
        ds = rasterio.open(path)
    except Exception as exc:  # rasterio raises RasterioIOError and friends
        raise _err(name, path, f"GDAL cannot read it ({exc})", "give a raster GDAL reads (GeoTIFF, VRT, ...)") from exc
    with ds:
        if raster.band < 1 or raster.band > ds.count:
            raise _err(name, path, f"band {raster.band} requested but the file has {ds.count} band(s)",
                       f"choose a band in 1..{ds.count}")
        dtype = ds.dtypes[raster.band - 1]
        if np.issubdtype(np.dtype(dtype), np.complexfloating):
            fix = ("give the phase angle in radians (e.g. gdal_calc.py --calc='angle(A)')"
                   if input_kind(name) == "phase" else "give a real-valued band (for an SLC, its amplitude abs(slc))")
            raise _err(name, path, f"band {raster.band} is complex ({dtype})", fix)
        if dtype == "bool" or not (np.issubdtype(np.dtype(dtype), np.number)):
            raise _err(name, path, f"band {raster.band} has type {dtype}", "give a numeric band")
        if ds.crs is None or not ds.crs.to_wkt():
            raise _err(name, path, "has no coordinate reference system",
                       "assign one, e.g. gdal_edit.py -a_srs EPSG:32634 FILE (or save it with its CRS from QGIS)")
        t = ds.transform
        if t.b != 0 or t.d != 0:
            raise _err(name, path, "is rotated or sheared (not north-up)", "warp it first: gdalwarp IN OUT")
        if t.e > 0:
            raise _err(name, path, "is stored south-up", "warp it first: gdalwarp IN OUT")
        if t == Affine.identity():
            raise _err(name, path, "has no georeferencing (identity transform)",
                       "georeference it (gdal_translate -a_ullr ... -a_srs ...)")
        notes: list[str] = []
        try:
            v = read_overview(ds, raster.band)
        except rasterio.errors.RasterioError as exc:
            raise read_error(name, path, exc) from exc
        nodata = ds.nodatavals[raster.band - 1]
        zero_nodata = _check_values(name, path, v, notes, nodata)
        return OpenedInput(name=name, path=path, band=raster.band, crs=ds.crs, transform=ds.transform,
                           width=ds.width, height=ds.height, nodata=ds.nodatavals[raster.band - 1], dtype=dtype,
                           zero_is_nodata=zero_nodata, notes=notes)


def input_bounds_in(inp: OpenedInput, crs: CRS) -> tuple[float, float, float, float]:
    t = inp.transform
    x0, y1 = t.c, t.f
    x1, y0 = apply_affine(t, inp.width, inp.height)
    return transform_bounds(inp.crs, crs, min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), densify_pts=21)


def utm_crs_for(lon: float, lat: float) -> CRS:
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def grid_from(inp: OpenedInput) -> Grid:
    """The output grid of a reference input; geographic (or other non-metric) grids go to local UTM."""
    if inp.crs.is_projected and abs(inp.crs.linear_units_factor[1] - 1.0) < 1e-9:
        return Grid(inp.crs, inp.transform, inp.width, inp.height)
    # geographic -> local UTM with the input's pixel size in metres
    t = inp.transform
    x0, y1 = t.c, t.f
    x1, y0 = apply_affine(t, inp.width, inp.height)
    left, bottom, right, top = min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
    lb = transform_bounds(inp.crs, "EPSG:4326", left, bottom, right, top)
    lon_c = 0.5 * (lb[0] + lb[2])
    lat_c = 0.5 * (lb[1] + lb[3])
    dst = utm_crs_for(lon_c, lat_c)
    if inp.crs.is_geographic:
        m_per_deg = 111_320.0
        dx = abs(t.a) * m_per_deg * math.cos(math.radians(lat_c))
        dy = abs(t.e) * m_per_deg
        res = float(min(dx, dy))
    else:
        res = float(abs(t.a) * inp.crs.linear_units_factor[1])
    res = float(f"{res:.3g}")  # a round pixel size in metres
    tr, w, h = calculate_default_transform(inp.crs, dst, inp.width, inp.height, left, bottom, right, top,
                                           resolution=res)
    return Grid(dst, tr, int(w), int(h))


def parse_crs(crs: object, default: CRS) -> CRS:
    """CRS from an EPSG code (int or "EPSG:n"), WKT, PROJ string or a CRS; None/"" -> ``default``."""
    if crs is None or (isinstance(crs, str) and not crs.strip()):
        return default
    if isinstance(crs, CRS):
        return crs
    if isinstance(crs, int) or (isinstance(crs, str) and crs.strip().isdigit()):
        return CRS.from_epsg(int(crs))
    return CRS.from_user_input(crs)


def crop_grid(grid: Grid, extent: tuple, min_px: int = 8) -> Grid:
    """The part of ``grid`` covering ``extent = (xmin, ymin, xmax, ymax[, crs])`` (crs: WKT, EPSG code or
    "EPSG:n"; omitted/None = the grid's CRS), snapped outwards to whole grid pixels (same pixel size and
    corners as ``grid``). Raises :class:`PipelineError` (input ``extent``) if empty or outside the grid."""
    vals = tuple(extent)
    if len(vals) not in (4, 5):
        raise PipelineError(f"extent {extent!r} invalid. Fix: give (xmin, ymin, xmax, ymax, crs)", "extent")
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in vals[:4])
        src = parse_crs(vals[4] if len(vals) == 5 else None, grid.crs)
    except Exception as exc:
        raise PipelineError(f"extent {extent!r} invalid ({exc}). Fix: give numbers and a CRS as WKT, an EPSG code "
                            "or 'EPSG:n'", "extent") from exc
    if not (xmin < xmax and ymin < ymax):
        raise PipelineError(f"extent ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) is empty. Fix: give xmin < xmax and "
                            "ymin < ymax", "extent")
    b = (xmin, ymin, xmax, ymax) if src == grid.crs else \
        transform_bounds(src, grid.crs, xmin, ymin, xmax, ymax, densify_pts=21)
    t = grid.transform
    c0 = max(0, math.floor((b[0] - t.c) / t.a + 1e-6))
    c1 = min(grid.width, math.ceil((b[2] - t.c) / t.a - 1e-6))
    r0 = max(0, math.floor((b[3] - t.f) / t.e + 1e-6))
    r1 = min(grid.height, math.ceil((b[1] - t.f) / t.e - 1e-6))
    if c1 <= c0 or r1 <= r0:
        g = grid.bounds
        raise PipelineError(f"extent does not overlap the output grid (extent {tuple(round(x) for x in b)} vs grid "
                            f"{tuple(round(x) for x in g)} in {grid.crs.to_string()}). Fix: choose an area over the "
                            "inputs (check the extent's CRS)", "extent")
    if c1 - c0 < min_px or r1 - r0 < min_px:
        raise PipelineError(f"extent covers only {c1 - c0} x {r1 - r0} output pixels. Fix: choose a larger area (at "
                            f"least {min_px} x {min_px} pixels of {grid.pixel_size_m:.3g} m)", "extent")
    return Grid(grid.crs, offset_transform(t, r0, c0), c1 - c0, r1 - r0)


def check_overlap(inp: OpenedInput, grid: Grid, min_fraction: float = 0.0) -> float:
    """Fraction of the output grid covered by the input's footprint; raises if they do not overlap."""
    try:
        b = input_bounds_in(inp, grid.crs)
    except Exception as exc:
        raise _err(inp.name, inp.path, f"its CRS cannot be transformed to the output grid's ({exc})",
                   "reproject it to a common CRS") from exc
    g = grid.bounds
    ix = max(0.0, min(b[2], g[2]) - max(b[0], g[0]))
    iy = max(0.0, min(b[3], g[3]) - max(b[1], g[1]))
    frac = ix * iy / max((g[2] - g[0]) * (g[3] - g[1]), 1e-12)
    if frac <= min_fraction:
        raise _err(inp.name, inp.path,
                   f"does not overlap the output grid (its extent {tuple(round(x) for x in b)} vs the grid's "
                   f"{tuple(round(x) for x in g)} in {grid.crs.to_string()})",
                   "give rasters of the same area (check the CRS assigned to each file)")
    return frac


def open_inputs(rasters: dict[str, InputRaster]) -> dict[str, OpenedInput]:
    """Validate every given input raster (name -> :class:`OpenedInput`); raises on the first bad one."""
    return {name: validate_input(name, r) for name, r in rasters.items()}


def open_grid_like(gl: InputRaster) -> OpenedInput:
    """The raster whose grid the outputs use (``--grid-like``): only its georeferencing is read."""
    try:
        with rasterio.open(gl.path) as ds:
            if ds.crs is None:
                raise PipelineError(f"grid_like (--grid-like {gl.path}): has no CRS. Fix: assign one "
                                    "(gdal_edit.py -a_srs EPSG:....)", "grid_like")
            return OpenedInput("grid_like", Path(gl.path), 1, ds.crs, ds.transform, ds.width, ds.height,
                               ds.nodata, ds.dtypes[0])
    except rasterio.errors.RasterioIOError as exc:
        raise PipelineError(f"grid_like (--grid-like {gl.path}): GDAL cannot read it ({exc}). Fix: check the "
                            "path", "grid_like") from exc


def _intersect(a: tuple, b: tuple) -> tuple[float, float, float, float]:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def _empty(box: tuple) -> bool:
    return box[0] >= box[2] or box[1] >= box[3]


def common_area(grid: Grid, opened: dict[str, OpenedInput], extent: tuple | None) -> tuple:
    """The part of ``grid`` every input covers, intersected with ``extent`` if given, as an extent in the grid's
    CRS. Raises :class:`PipelineError` naming the input (or the extent) that does not overlap the others."""
    box = grid.bounds
    for name, inp in opened.items():
        try:
            box = _intersect(box, input_bounds_in(inp, grid.crs))
        except Exception:  # noqa: S112 - not transformable: check_overlap reports it with the input's name
            continue
        if _empty(box):
            raise PipelineError(f"{name} does not overlap the other inputs. Fix: choose layers of the same area "
                                "(check their CRS)", name)
    if extent is not None:
        vals = tuple(extent)
        src = parse_crs(vals[4] if len(vals) == 5 else None, grid.crs)
        b = tuple(float(v) for v in vals[:4])
        if src != grid.crs:
            b = transform_bounds(src, grid.crs, *b, densify_pts=21)
        box = _intersect(box, b)
        if _empty(box):
            raise PipelineError("the chosen extent does not overlap the input layers. Fix: pan the map to the "
                                "layers or draw the rectangle over them", "extent")
    return (*box, grid.crs)


def output_grid(grid_like: InputRaster | None, opened: dict[str, OpenedInput], order: tuple[str, ...],
                extent: tuple | None = None, intersection: bool = False) -> tuple[Grid, str]:
    """(output grid, the name of the input that defined it): ``grid_like``'s grid, else the grid of the first given
    input in ``order``; cropped to ``extent`` and, with ``intersection``, to the area every input covers."""
    ref = open_grid_like(grid_like) if grid_like is not None else next(opened[n] for n in order if n in opened)
    grid = grid_from(ref)
    if intersection:
        extent = common_area(grid, opened, extent)
    if extent is not None:
        grid = crop_grid(grid, extent)
    return grid, ref.name
