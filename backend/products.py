"""Derived products, made from the blocks the pipeline already holds in memory (never re-read from the outputs):

* ``horizontal_magnitude.tif`` sqrt(E^2 + N^2) and ``uncertainty.tif`` (3-D 1-sigma sqrt(sE^2 + sN^2 + sU^2)),
  written next to the displacement rows;
* ``rewrapped_phase.tif``: the unwrapped phase wrapped back to [-pi, pi), written next to each unwrapped block;
* ``displacement_arrows.gpkg``: block means of east/north/up, about :data:`ARROWS_PER_SIDE` along the longer
  side, accumulated row by row (:class:`ArrowGrid`); azimuth clockwise from north. Needs GDAL's Python bindings
  (``osgeo``, present in QGIS); without them the arrows are skipped with a note;
* ``displacement_{east,north,up}.vrt``: one-band views of ``displacement.tif`` (relative paths: the folder can
  be moved).

The CLI, the dialog and Processing all get these files from :func:`backend.pipeline.run_estimate`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

ARROWS_PER_SIDE = 24
ARROW_LAYER = "displacement_arrows"
COMPONENTS = ("east", "north", "up")


def horizontal_magnitude(disp: np.ndarray) -> np.ndarray:
    """(3, h, w) east/north/up -> (h, w) float32 horizontal magnitude."""
    return np.hypot(disp[0], disp[1]).astype(np.float32)


def uncertainty_3d(sig: np.ndarray) -> np.ndarray:
    """(3, h, w) 1-sigma of east/north/up -> (h, w) float32 3-D 1-sigma."""
    return np.sqrt(np.sum(sig * sig, axis=0)).astype(np.float32)


def rewrap(phase: np.ndarray) -> np.ndarray:
    """Unwrapped phase -> [-pi, pi), float32."""
    return ((phase + np.pi) % (2 * np.pi) - np.pi).astype(np.float32)


def arrow_step(width: int, height: int) -> int:
    """Pixels between arrows: about :data:`ARROWS_PER_SIDE` arrows along the longer side."""
    return max(1, math.ceil(max(width, height) / ARROWS_PER_SIDE))


class ArrowGrid:
    """Running NaN-skipping block sums of east/north/up (blocks of :func:`arrow_step` px), fed row strips."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.step = arrow_step(width, height)
        self.nr, self.nc = math.ceil(height / self.step), math.ceil(width / self.step)
        self.sums = np.zeros((3, self.nr, self.nc), np.float64)
        self.counts = np.zeros((3, self.nr, self.nc), np.int64)

    def add(self, row0: int, col0: int, disp: np.ndarray) -> None:
        """Add ``disp`` (3, h, w) whose top-left pixel is (row0, col0) (any rows and columns, in any order)."""
        _, h, w = disp.shape
        step = self.step
        c_first = col0 // step
        pad_l = col0 - c_first * step
        ncb = math.ceil((pad_l + w) / step)
        d = np.full((3, h, ncb * step), np.nan, np.float64)
        d[:, :, pad_l:pad_l + w] = disp
        d = d.reshape(3, h, ncb, step)
        finite = np.isfinite(d)
        col_sums = np.where(finite, d, 0.0).sum(axis=3)  # (3, h, ncb)
        col_counts = finite.sum(axis=3)
        rows = (row0 + np.arange(h)) // step
        cols = slice(c_first, c_first + ncb)
        for rb in np.unique(rows):
            sel = rows == rb
            self.sums[:, rb, cols] += col_sums[:, sel].sum(axis=1)
            self.counts[:, rb, cols] += col_counts[:, sel].sum(axis=1)

    def points(self, transform: Any) -> list[tuple[float, float, float, float, float]]:
        """(x, y, east, north, up) at each block centre where east and north have a finite mean."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sums / self.counts
        pts = []
        for i in range(self.nr):
            for j in range(self.nc):
                e, n, u = mean[:, i, j]
                if not (np.isfinite(e) and np.isfinite(n)):
                    continue
                rows = min(self.step, self.height - i * self.step)
                cols = min(self.step, self.width - j * self.step)
                x, y = transform * (j * self.step + cols / 2.0, i * self.step + rows / 2.0)
                pts.append((float(x), float(y), float(e), float(n), float(u)))
        return pts


def write_arrows(points: list[tuple[float, float, float, float, float]], crs_wkt: str, path: Path) -> Path | None:
    """GeoPackage point layer ``displacement_arrows`` (east_m, north_m, up_m, horiz_m, azimuth_deg); None when
    GDAL's Python bindings are not installed."""
    try:
        from osgeo import ogr, osr
    except ImportError:
        return None
    drv = ogr.GetDriverByName("GPKG")
    if path.exists():
        drv.DeleteDataSource(str(path))
    out = drv.CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lyr = out.CreateLayer(ARROW_LAYER, srs, ogr.wkbPoint)
    for name in ("east_m", "north_m", "up_m", "horiz_m", "azimuth_deg"):
        lyr.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
    defn = lyr.GetLayerDefn()
    lyr.StartTransaction()
    for x, y, e, n, u in points:
        f = ogr.Feature(defn)
        for name, v in (("east_m", e), ("north_m", n), ("up_m", u), ("horiz_m", math.hypot(e, n)),
                        ("azimuth_deg", math.degrees(math.atan2(e, n)) % 360.0)):
            f.SetField(name, v)
        g = ogr.Geometry(ogr.wkbPoint)
        g.AddPoint_2D(x, y)
        f.SetGeometry(g)
        lyr.CreateFeature(f)
    lyr.CommitTransaction()
    out = None  # noqa: F841 - closes the data source
    return path


def band_vrt(src: Path, band: int, out: Path, grid: Any, description: str) -> Path:
    """A one-band float32 VRT pointing at ``band`` of ``src`` (same folder; relative path)."""
    t = grid.transform
    w, h = grid.width, grid.height
    xml = (f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}">\n'
           f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(grid.crs.to_wkt())}</SRS>\n'
           f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>\n"
           f'  <VRTRasterBand dataType="Float32" band="1">\n'
           f"    <Description>{escape(description)}</Description>\n"
           f"    <NoDataValue>nan</NoDataValue>\n"
           f"    <SimpleSource>\n"
           f'      <SourceFilename relativeToVRT="1">{escape(Path(src).name)}</SourceFilename>\n'
           f"      <SourceBand>{band}</SourceBand>\n"
           f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
           f'      <DstRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
           f"    </SimpleSource>\n"
           f"  </VRTRasterBand>\n"
           f"</VRTDataset>\n")
    out.write_text(xml)
    return out
