"""Result layers of a run in QGIS: styles (``.qml``) and loading. Main thread only (QGIS layers are not thread-safe).

The files themselves (rasters, derived products, arrows) are written by the backend (``backend/products.py``).

* ``write_styles(files)``: a ``.qml`` beside every raster/vector (diverging ramp centred on 0 with a symmetric
  range from robust percentiles, cyclic ramp for wrapped phase, 0..1 ramp for the rupture probability,
  rotated/scaled arrows). QGIS loads a ``.qml`` with the same base name as the default style, so the files open the
  same next time, from any tool.
* ``add_layers(files, group_name)``: one layer group named after the run.

Several interferograms: their files (``unwrapped_phase_2.tif``, keys ``unwrapped_phase_2`` ...) get the layer of
their base key named "... (interferogram 2)". ``unwrap_regions*.tif`` get a categorical style (0 = not unwrapped
/ not trusted, grey; each region its colour). East/north/up layers whose component the 3-D inversion left NaN carry
the reason in their legend name (from displacement.tif's ``reasons`` tag).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

PERCENTILE = 98.0

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
    ("unwrap_regions", "unwrap_regions.tif", "Unwrapping regions (same id = consistent cycles)", "regions", 1),
    ("rupture_probability", "rupture_probability.tif", "Surface rupture probability (0..1)", "probability", 1),
    ("arrows", "displacement_arrows.gpkg", "Displacement arrows (horizontal)", "arrows", 0),
    ("rupture_trace", "rupture_trace.gpkg", "Rupture trace (found by the run, check it)", "trace", 0),
]
VECTOR_LAYER_NAMES = {"arrows": "displacement_arrows", "trace": "rupture_trace"}  # kind -> layer in its GeoPackage
LAYER_NAMES = {k: name for k, _f, name, _kind, _b in LAYERS}
PER_IFG = ("los_displacement", "unwrapped_phase", "rewrapped_phase", "unwrap_regions")
REGION_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
                 "#17becf", "#393b79", "#637939", "#8c6d31"]
MAX_REGION_CLASSES = 24  # larger ids share the last class ("more regions")


def entries(files: dict[str, Path]) -> list[tuple[str, Path, str, str]]:
    """(key, path, layer name, kind) of every result file that has a layer, in LAYERS order; per-interferogram
    files (``unwrapped_phase_2``) after their base key, named "... (interferogram 2)"."""
    out = []
    for key, _fname, name, kind, _band in LAYERS:
        if files.get(key) is not None:
            out.append((key, Path(files[key]), name, kind))
        if key in PER_IFG:
            ks = sorted((int(m.group(1)), k) for k in files if (m := re.fullmatch(re.escape(key) + r"_(\d+)", k)))
            out += [(k, Path(files[k]), f"{name} (interferogram {n})", kind) for n, k in ks]
    return [e for e in out if e[1].exists()]


def base_key(key: str) -> str:
    return re.sub(r"_\d+$", "", key) if re.sub(r"_\d+$", "", key) in PER_IFG else key


def nan_reasons(files: dict[str, Path]) -> dict[str, str]:
    """component (east, north, up) -> why the 3-D inversion left it NaN (displacement.tif's ``reasons`` tag)."""
    path = files.get("displacement")
    if path is None or not Path(path).exists():
        return {}
    import rasterio

    with rasterio.open(path) as ds:
        text = ds.tags().get("reasons", "")
    out = {}
    for part in text.split("; "):
        comp, _, why = part.partition(": ")
        if comp in ("east", "north", "up") and "NaN" in why and "NaN on 0.0 %" not in why:
            out[comp] = why
    if text.startswith("east, north, up: NaN"):
        out = dict.fromkeys(("east", "north", "up"), "NaN: one interferogram alone measures only its LOS")
    return out


def layer_name(key: str, name: str, reasons: dict[str, str]) -> str:
    return f"{name} - {reasons[key]}" if key in reasons else name


def regions_renderer(max_id: int) -> Any:
    """Categorical (paletted) renderer of unwrap_regions: 0 grey "not unwrapped / not trusted", ids coloured."""
    from qgis.core import QgsPalettedRasterRenderer
    from qgis.PyQt.QtGui import QColor

    classes = [QgsPalettedRasterRenderer.Class(0, QColor(160, 160, 160, 120), "0: not unwrapped / not trusted")]
    for i in range(1, min(max_id, MAX_REGION_CLASSES) + 1):
        label = f"region {i}" + (" (largest)" if i == 1 else "")
        classes.append(QgsPalettedRasterRenderer.Class(i, QColor(REGION_COLORS[(i - 1) % len(REGION_COLORS)]), label))
    return QgsPalettedRasterRenderer(None, 1, classes)


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
    name = {"diverging": "RdBu", "diverging_rad": "RdBu", "magnitude": "YlOrRd", "sigma": "Viridis",
            "probability": "Magma"}[kind]
    ramp = QgsStyle.defaultStyle().colorRamp(name)
    if ramp is None:  # no default style (bare install): a built-in equivalent
        ramp = QgsGradientColorRamp(QColor("#2166ac"), QColor("#b2182b"), False,
                                    [QgsGradientStop(0.5, QColor("#f7f7f7"))])
    elif kind.startswith("diverging"):
        ramp.invert()  # blue = negative (down, west, south, away), red = positive
    return ramp


def legend_decimals(vmin: float, vmax: float) -> int:
    """Decimals for a colour bar from ``vmin`` to ``vmax``: three significant figures of the larger end
    (4.106277 m -> 4.11 m, 0.0123 m -> 0.0123 m), not QGIS's six decimals."""
    top = max(abs(vmin), abs(vmax))
    if not math.isfinite(top) or top <= 0:
        return 2
    return int(min(6, max(0, 2 - math.floor(math.log10(top)))))


def legend_number_format(vmin: float, vmax: float) -> Any:
    from qgis.core import QgsBasicNumericFormat

    fmt = QgsBasicNumericFormat()
    fmt.setNumberDecimalPlaces(legend_decimals(vmin, vmax))
    fmt.setShowTrailingZeros(False)
    return fmt


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
    legend.setNumericFormat(legend_number_format(vmin, vmax))
    shader.setLegendSettings(legend)
    rs = QgsRasterShader()
    rs.setRasterShaderFunction(shader)
    r = QgsSingleBandPseudoColorRenderer(provider, band, rs)
    r.setClassificationMin(vmin)
    r.setClassificationMax(vmax)
    return r


def raster_style_values(key: str, path: Path) -> dict[str, Any]:
    """The renderer's band, kind, min, max and units for a result raster (what the .qml encodes)."""
    key = base_key(key)
    kind = next(k for kk, _f, _n, k, _b in LAYERS if kk == key)
    band = next(b for kk, _f, _n, _k, b in LAYERS if kk == key)
    if kind == "regions":
        vals = _sample(path, 1)
        return {"band": 1, "kind": kind, "min": 0.0, "max": float(vals.max()) if vals.size else 0.0, "units": ""}
    if key == "los_displacement":
        import rasterio

        with rasterio.open(path) as ds:
            band = ds.count  # band 2 (from the unwrapped phase) when there is one, else the fused estimate
    units = {"unwrapped_phase": "rad", "rewrapped_phase": "rad", "rupture_probability": ""}.get(key, "m")
    if kind == "cyclic":
        vmin, vmax = -math.pi, math.pi
    elif kind == "probability":
        vmin, vmax = 0.0, 1.0
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

    if kind in VECTOR_LAYER_NAMES:
        return QgsVectorLayer(layer_source(path, kind), name, "ogr")
    return QgsRasterLayer(str(path), name, "gdal")


def layer_source(path: Path, kind: str) -> str:
    """The QGIS data source of a result file: ``file.gpkg|layername=...`` for the vector kinds."""
    return f"{path}|layername={VECTOR_LAYER_NAMES[kind]}" if kind in VECTOR_LAYER_NAMES else str(path)


def write_styles(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Write ``<name>.qml`` beside every result file; returns key -> style values (band, min, max...).
    Main thread only: it creates QGIS layers."""
    info: dict[str, dict[str, Any]] = {}
    for key, path, name, kind in entries(files):
        lyr = _open_layer(path, name, kind)
        if kind == "arrows":
            mx = float(lyr.maximumValue(lyr.fields().indexOf("horiz_m")) or 0.0) if lyr.featureCount() else 0.0
            lyr.setRenderer(arrow_renderer(mx if mx > 0 else 1.0))
            info[key] = {"kind": kind, "max": mx, "features": lyr.featureCount()}
        elif kind == "trace":  # the trace a run found (--trace auto): the geologist tools' style, in the file too
            from .tool_layers import save_vector_style, style_vector

            style_vector(lyr, "trace")
            save_vector_style(lyr, Path(path), VECTOR_LAYER_NAMES[kind])
            info[key] = {"kind": kind, "features": lyr.featureCount()}
            continue
        elif kind == "regions":
            v = raster_style_values(key, path)
            lyr.setRenderer(regions_renderer(int(v["max"])))
            info[key] = v
        else:
            v = raster_style_values(key, Path(path))
            # No provider handed to the renderer: setRenderer() wires the layer's pipe itself.
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
    reasons = nan_reasons(files)
    for key, path, name, kind in entries(files):
        lyr = _open_layer(path, layer_name(key, name, reasons), kind)
        if not lyr.isValid():
            continue
        project.addMapLayer(lyr, False)
        layers.append(lyr)
    # the trace and the arrows on top, then the components in LAYERS order; only they and east visible at first
    layers.sort(key=lambda lyr: lyr.name() not in (LAYER_NAMES["rupture_trace"], LAYER_NAMES["arrows"]))
    shown = (layer_name("east", LAYER_NAMES["east"], reasons), LAYER_NAMES["arrows"], LAYER_NAMES["rupture_trace"])
    for lyr in layers:
        node = group.addLayer(lyr)
        if lyr.name() not in shown:
            node.setItemVisibilityChecked(False)
    return group, layers
