"""Result layers of a run: derived rasters (numpy + rasterio), the arrow points (OGR), styles (.qml), loading.

* ``write_derived(out_dir, outputs)``: single-band VRTs for east/north/up (bands of ``displacement.tif``),
  ``horizontal_magnitude.tif``, ``uncertainty.tif`` (3-D 1-sigma), ``rewrapped_phase.tif`` and
  ``displacement_arrows.gpkg`` (decimated block means; azimuth clockwise from north). Plain numpy/rasterio/OGR:
  safe in a worker thread.
* ``write_styles(files)``: a ``.qml`` beside every raster/vector (diverging ramp centred on 0 with a symmetric
  range from robust percentiles, cyclic ramp for wrapped phase, rotated/scaled arrows). QGIS loads a ``.qml``
  with the same base name as the default style, so the files open the same next time, from any tool.
* ``add_layers(files, group_name)``: main thread only; one layer group named after the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PERCENTILE = 98.0
ARROWS_PER_SIDE = 24
STRIP_ROWS = 512

# key -> (file name, layer name, kind, band): kind picks the style
LAYERS: list[tuple[str, str, str, str, int]] = [
    ("east", "displacement_east.vrt", "East displacement (m)", "diverging", 1),
    ("north", "displacement_north.vrt", "North displacement (m)", "diverging", 1),
    ("up", "displacement_up.vrt", "Up displacement (m)", "diverging", 1),
    ("horizontal", "horizontal_magnitude.tif", "Horizontal displacement magnitude (m)", "magnitude", 1),
    ("uncertainty", "uncertainty.tif", "Uncertainty, 3-D 1-sigma (m)", "sigma", 1),
    ("los_displacement", "los_displacement.tif", "LOS displacement (m, + towards satellite)", "diverging", 0),
    ("unwrapped_phase", "unwrapped_phase.tif", "Unwrapped phase (rad)", "diverging_rad", 1),
    ("rewrapped_phase", "rewrapped_phase.tif", "Re-wrapped phase (rad)", "cyclic", 1),
    ("arrows", "displacement_arrows.gpkg", "Displacement arrows (horizontal)", "arrows", 0),
]
LAYER_NAMES = {k: name for k, _f, name, _kind, _b in LAYERS}


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        from .backend.errors import Cancelled

        raise Cancelled()


def _profile_like(ds: Any, count: int = 1) -> dict[str, Any]:
    prof = ds.profile.copy()
    prof.update(count=count, dtype="float32", nodata=float("nan"), compress="deflate", predictor=3)
    return prof


def _band_vrt(src: Path, band: int, out: Path, description: str) -> Path:
    """A one-band VRT pointing at ``band`` of ``src`` (relative path, so the folder can be moved)."""
    from osgeo import gdal

    ds = gdal.Translate(str(out), str(src), format="VRT", bandList=[band])
    ds.GetRasterBand(1).SetDescription(description)
    ds = None  # noqa: F841 - closes and writes the VRT
    txt = out.read_text()
    txt = txt.replace(f'relativeToVRT="0">{src}<', f'relativeToVRT="1">{src.name}<')
    out.write_text(txt)
    return out


def write_derived(out_dir: Path, outputs: dict[str, Path],
                  cancel: Callable[[], bool] | None = None) -> dict[str, Path]:
    """Derived products beside the backend outputs; returns key -> path (keys of :data:`LAYERS`)."""
    import rasterio
    from rasterio.windows import Window

    out_dir = Path(out_dir)
    made: dict[str, Path] = {}
    disp = Path(outputs["displacement"])
    for i, key in enumerate(("east", "north", "up"), start=1):
        made[key] = _band_vrt(disp, i, out_dir / f"displacement_{key}.vrt", f"{key} displacement (m)")
    _check(cancel)

    with rasterio.open(disp) as ds, rasterio.open(outputs["displacement_sigma"]) as dsig:
        prof = _profile_like(ds)
        made["horizontal"] = out_dir / "horizontal_magnitude.tif"
        made["uncertainty"] = out_dir / "uncertainty.tif"
        with rasterio.open(made["horizontal"], "w", **prof) as dh, rasterio.open(made["uncertainty"], "w",
                                                                                   **prof) as du:
            dh.set_band_description(1, "horizontal displacement magnitude sqrt(E^2+N^2)")
            dh.update_tags(1, units="m")
            du.set_band_description(1, "3-D 1-sigma uncertainty sqrt(sE^2+sN^2+sU^2)")
            du.update_tags(1, units="m")
            for r0 in range(0, ds.height, STRIP_ROWS):
                _check(cancel)
                win = Window(0, r0, ds.width, min(STRIP_ROWS, ds.height - r0))
                e, n = ds.read(1, window=win), ds.read(2, window=win)
                dh.write(np.hypot(e, n).astype(np.float32), 1, window=win)
                s = dsig.read(window=win)
                du.write(np.sqrt(np.sum(s * s, axis=0)).astype(np.float32), 1, window=win)
        _check(cancel)
        made["arrows"] = write_arrows(ds, out_dir / "displacement_arrows.gpkg")

    if "los_displacement" in outputs:
        made["los_displacement"] = Path(outputs["los_displacement"])
    if "unwrapped_phase" in outputs:
        made["unwrapped_phase"] = Path(outputs["unwrapped_phase"])
        with rasterio.open(outputs["unwrapped_phase"]) as du:
            prof = _profile_like(du)
            made["rewrapped_phase"] = out_dir / "rewrapped_phase.tif"
            with rasterio.open(made["rewrapped_phase"], "w", **prof) as dw:
                dw.set_band_description(1, "unwrapped phase re-wrapped to [-pi, pi)")
                dw.update_tags(1, units="rad")
                for r0 in range(0, du.height, STRIP_ROWS):
                    _check(cancel)
                    win = Window(0, r0, du.width, min(STRIP_ROWS, du.height - r0))
                    phi = du.read(1, window=win)
                    dw.write(((phi + np.pi) % (2 * np.pi) - np.pi).astype(np.float32), 1, window=win)
    return made


def valid_fraction(path: Path, band: int = 1) -> float:
    """Fraction of finite pixels of a result band (decimated read): 0 means the model gave nothing usable."""
    vals = _sample(path, band)
    return float(np.isfinite(vals).mean()) if vals.size else 0.0


def arrow_step(width: int, height: int) -> int:
    """Pixels between arrows: about :data:`ARROWS_PER_SIDE` arrows along the longer side."""
    return max(1, math.ceil(max(width, height) / ARROWS_PER_SIDE))


def arrow_points(ds: Any) -> list[tuple[float, float, float, float, float]]:
    """(x, y, east, north, up) block means of a 3-band ENU raster, one per ``arrow_step`` block; NaN skipped."""
    step = arrow_step(ds.width, ds.height)
    nr, nc = math.ceil(ds.height / step), math.ceil(ds.width / step)
    pad_h, pad_w = nr * step - ds.height, nc * step - ds.width
    data = ds.read().astype(np.float64)
    data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=np.nan)
    blocks = data.reshape(3, nr, step, nc, step)
    with np.errstate(invalid="ignore"), _Quiet():
        mean = np.nanmean(blocks, axis=(2, 4))
    t = ds.transform
    pts = []
    for i in range(nr):
        for j in range(nc):
            e, n, u = mean[:, i, j]
            if not (np.isfinite(e) and np.isfinite(n)):
                continue
            rows = min(step, ds.height - i * step)
            cols = min(step, ds.width - j * step)
            x, y = t * (j * step + cols / 2.0, i * step + rows / 2.0)
            pts.append((float(x), float(y), float(e), float(n), float(u)))
    return pts


class _Quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)


def write_arrows(ds: Any, path: Path) -> Path:
    """GeoPackage point layer ``displacement_arrows`` with east_m, north_m, up_m, horiz_m, azimuth_deg."""
    from osgeo import ogr, osr

    drv = ogr.GetDriverByName("GPKG")
    if path.exists():
        drv.DeleteDataSource(str(path))
    out = drv.CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromWkt(ds.crs.to_wkt())
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lyr = out.CreateLayer("displacement_arrows", srs, ogr.wkbPoint)
    for name in ("east_m", "north_m", "up_m", "horiz_m", "azimuth_deg"):
        lyr.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
    defn = lyr.GetLayerDefn()
    lyr.StartTransaction()
    for x, y, e, n, u in arrow_points(ds):
        f = ogr.Feature(defn)
        f.SetField("east_m", e)
        f.SetField("north_m", n)
        f.SetField("up_m", u)
        f.SetField("horiz_m", math.hypot(e, n))
        f.SetField("azimuth_deg", math.degrees(math.atan2(e, n)) % 360.0)
        g = ogr.Geometry(ogr.wkbPoint)
        g.AddPoint_2D(x, y)
        f.SetGeometry(g)
        lyr.CreateFeature(f)
    lyr.CommitTransaction()
    out = None  # noqa: F841 - closes the data source
    return path


# ----------------------------------------------------------------------------------------- styles
def robust_abs_max(path: Path, band: int = 1, percentile: float = PERCENTILE) -> float:
    """Symmetric display range: the ``percentile`` of |value| (decimated read), at least 1e-6."""
    vals = _sample(path, band)
    vals = np.abs(vals[np.isfinite(vals)])
    v = float(np.percentile(vals, percentile)) if vals.size else 0.0
    return v if v > 1e-6 else 1e-6


def robust_max(path: Path, band: int = 1, percentile: float = PERCENTILE) -> float:
    vals = _sample(path, band)
    vals = vals[np.isfinite(vals)]
    v = float(np.percentile(vals, percentile)) if vals.size else 0.0
    return v if v > 1e-6 else 1e-6


def _sample(path: Path, band: int, max_px: int = 1024) -> np.ndarray:
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as ds:
        f = max(1.0, max(ds.width, ds.height) / max_px)
        shape = (max(1, int(ds.height / f)), max(1, int(ds.width / f)))
        return ds.read(band, out_shape=shape, resampling=Resampling.nearest).astype(np.float64).ravel()


def _ramp(kind: str) -> Any:
    from qgis.core import QgsGradientColorRamp, QgsGradientStop, QgsStyle
    from qgis.PyQt.QtGui import QColor

    if kind == "cyclic":
        cols = ["#ff0000", "#ffff00", "#00ff00", "#00ffff", "#0000ff", "#ff00ff"]
        stops = [QgsGradientStop(i / len(cols), QColor(c)) for i, c in enumerate(cols) if i > 0]
        return QgsGradientColorRamp(QColor(cols[0]), QColor(cols[0]), False, stops)
    name = {"diverging": "RdBu", "diverging_rad": "RdBu", "magnitude": "YlOrRd", "sigma": "Viridis"}[kind]
    ramp = QgsStyle.defaultStyle().colorRamp(name)
    if ramp is None:  # no default style (bare install): a built-in equivalent
        ramp = QgsGradientColorRamp(QColor("#2166ac"), QColor("#b2182b"), False,
                                    [QgsGradientStop(0.5, QColor("#f7f7f7"))])
    elif kind.startswith("diverging"):
        ramp.invert()  # blue = negative (down, west, south, away), red = positive
    return ramp


def pseudocolor_renderer(provider: Any, band: int, vmin: float, vmax: float, kind: str, units: str) -> Any:
    from qgis.core import (
        QgsColorRampLegendNodeSettings,
        QgsColorRampShader,
        QgsRasterShader,
        QgsSingleBandPseudoColorRenderer,
    )

    shader = QgsColorRampShader(vmin, vmax)
    shader.setSourceColorRamp(_ramp(kind))
    shader.setColorRampType(QgsColorRampShader.Interpolated)
    shader.setClip(False)
    shader.classifyColorRamp(255 if kind == "cyclic" else 9, -1)
    legend = QgsColorRampLegendNodeSettings()
    legend.setSuffix(f" {units}")
    shader.setLegendSettings(legend)
    rs = QgsRasterShader()
    rs.setRasterShaderFunction(shader)
    r = QgsSingleBandPseudoColorRenderer(provider, band, rs)
    r.setClassificationMin(vmin)
    r.setClassificationMax(vmax)
    return r


def raster_style_values(key: str, path: Path) -> dict[str, Any]:
    """The renderer's band, kind, min, max and units for a result raster (what the .qml encodes)."""
    kind = next(k for kk, _f, _n, k, _b in LAYERS if kk == key)
    band = next(b for kk, _f, _n, _k, b in LAYERS if kk == key)
    if key == "los_displacement":
        import rasterio

        with rasterio.open(path) as ds:
            band = ds.count  # band 2 (from the unwrapped phase) when there is one, else the fused estimate
    units = "rad" if key in ("unwrapped_phase", "rewrapped_phase") else "m"
    if kind == "cyclic":
        vmin, vmax = -math.pi, math.pi
    elif kind.startswith("diverging"):
        v = robust_abs_max(path, band)
        vmin, vmax = -v, v
    else:
        vmin, vmax = 0.0, robust_max(path, band)
    return {"band": band, "kind": kind, "min": vmin, "max": vmax, "units": units}


def arrow_renderer(max_horiz_m: float) -> Any:
    from qgis.core import (
        QgsMarkerSymbol,
        QgsProperty,
        QgsSimpleMarkerSymbolLayer,
        QgsSimpleMarkerSymbolLayerBase,
        QgsSingleSymbolRenderer,
        QgsSymbolLayer,
    )
    from qgis.PyQt.QtGui import QColor

    sl = QgsSimpleMarkerSymbolLayer(QgsSimpleMarkerSymbolLayerBase.Arrow, 6.0)
    sl.setColor(QColor("#111111"))
    sl.setStrokeColor(QColor("#ffffff"))
    sl.setStrokeWidth(0.15)
    sl.setDataDefinedProperty(QgsSymbolLayer.PropertyAngle, QgsProperty.fromField("azimuth_deg"))
    expr = f'scale_linear("horiz_m", 0, {max_horiz_m:.6g}, 1.0, 9.0)'
    sl.setDataDefinedProperty(QgsSymbolLayer.PropertySize, QgsProperty.fromExpression(expr))
    sym = QgsMarkerSymbol()
    sym.changeSymbolLayer(0, sl)
    return QgsSingleSymbolRenderer(sym)


def _open_layer(path: Path, name: str, kind: str) -> Any:
    """The QGIS layer of one result file (the arrows are a GeoPackage layer, the rest GDAL rasters)."""
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    if kind == "arrows":
        return QgsVectorLayer(f"{path}|layername=displacement_arrows", name, "ogr")
    return QgsRasterLayer(str(path), name, "gdal")


def write_styles(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Write ``<name>.qml`` beside every result file; returns key -> style values (band, min, max...)."""
    info: dict[str, dict[str, Any]] = {}
    for key, _fname, name, kind, _band in LAYERS:
        path = files.get(key)
        if path is None or not Path(path).exists():
            continue
        lyr = _open_layer(path, name, kind)
        if kind == "arrows":
            mx = float(lyr.maximumValue(lyr.fields().indexOf("horiz_m")) or 0.0) if lyr.featureCount() else 0.0
            lyr.setRenderer(arrow_renderer(mx if mx > 0 else 1.0))
            info[key] = {"kind": kind, "max": mx, "features": lyr.featureCount()}
        else:
            v = raster_style_values(key, Path(path))
            # No provider handed to the renderer: setRenderer() wires the layer's pipe itself, and touching the
            # provider's Python wrapper from the task's thread failed now and then ("... has been deleted").
            lyr.setRenderer(pseudocolor_renderer(None, v["band"], v["min"], v["max"], v["kind"], v["units"]))
            info[key] = v
        qml = Path(path).with_suffix(".qml")
        msg, ok = lyr.saveNamedStyle(str(qml))
        if not ok:
            raise OSError(f"cannot write the style {qml}: {msg}")
    return info


# ----------------------------------------------------------------------------------------- loading
def add_layers(files: dict[str, Path], group_name: str, project: Any = None) -> tuple[Any, list[Any]]:
    """Add the result layers (default .qml styles) in a new top group ``group_name``; main thread only."""
    from qgis.core import QgsProject

    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    group = root.insertGroup(0, group_name)
    layers = []
    for key, _fname, name, kind, _band in LAYERS:
        path = files.get(key)
        if path is None or not Path(path).exists():
            continue
        lyr = _open_layer(path, name, kind)
        if not lyr.isValid():
            continue
        project.addMapLayer(lyr, False)
        layers.append(lyr)
    # arrows on top, then the components in LAYERS order; only arrows and east visible at first
    layers.sort(key=lambda lyr: lyr.name() != LAYER_NAMES["arrows"])
    for lyr in layers:
        node = group.addLayer(lyr)
        if lyr.name() not in (LAYER_NAMES["east"], LAYER_NAMES["arrows"]):
            node.setItemVisibilityChecked(False)
    return group, layers
