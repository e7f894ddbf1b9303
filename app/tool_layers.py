"""Layers of the geologist's tools in QGIS: styles and loading (main thread only).

Vector layers of a GeoPackage get their style stored in the GeoPackage itself (``layer_styles`` table, default
style: QGIS opens them styled from any tool) and as a ``.qml``; rasters get a ``.qml`` beside the file.

Arrows are drawn from the ``arrow_line`` layer (base -> tip lines, length in map units) with an arrowhead at the
last vertex: the style uses no attribute, so a shapefile export (which truncates field names) keeps it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .layers import legend_number_format, pseudocolor_renderer, robust_abs_max, robust_max

# key -> list of (layer name in the file (or raster band), display name, style kind)
VECTORS: dict[str, list[tuple[str, str, str]]] = {
    "arrows": [("arrow_line", "Displacement arrows (map units)", "arrow"),
               ("arrow_ref", "Reference arrow", "arrow_ref"), ("ellipses", "1-sigma ellipses", "ellipse")],
    "gpkg": [("offsets", "Fault offsets (fault-parallel, m)", "offsets"),
             ("profiles", "Offset stacks (profiles)", "profiles")],
    "trace": [("rupture_trace", "Rupture trace", "trace")],
}
RASTERS: dict[str, list[tuple[int, str, str, str]]] = {
    "components": [(1, "Fault-parallel displacement (m)", "diverging", "m"),
                   (2, "Fault-normal displacement (m)", "diverging", "m")],
    "significance": [(1, "Significance |d|/sigma", "magnitude", "")],
}


# ----------------------------------------------------------------------------------------------- symbols
def arrow_symbol(color: str = "#111111", width_mm: float = 0.4) -> Any:
    """A line with a filled arrowhead at its last vertex (no data-defined property: survives any export)."""
    from qgis.core import (
        QgsLineSymbol,
        QgsMarkerLineSymbolLayer,
        QgsMarkerSymbol,
        QgsSimpleLineSymbolLayer,
        QgsSimpleMarkerSymbolLayer,
        QgsSimpleMarkerSymbolLayerBase,
    )
    from qgis.PyQt.QtGui import QColor

    line = QgsSimpleLineSymbolLayer(QColor(color), width_mm)
    head = QgsSimpleMarkerSymbolLayer(QgsSimpleMarkerSymbolLayerBase.ArrowHeadFilled, 2.4)
    head.setColor(QColor(color))
    head.setStrokeColor(QColor(color))
    marker = QgsMarkerSymbol()
    marker.changeSymbolLayer(0, head)
    tip = QgsMarkerLineSymbolLayer(True)  # rotate with the line
    try:
        tip.setPlacements(QgsMarkerLineSymbolLayer.LastVertex)
    except AttributeError:  # QGIS < 3.24: one placement
        tip.setPlacement(QgsMarkerLineSymbolLayer.LastVertex)
    tip.setSubSymbol(marker)
    sym = QgsLineSymbol()
    sym.changeSymbolLayer(0, line)
    sym.appendSymbolLayer(tip)
    return sym


def _vector_renderer(kind: str, layer: Any) -> Any:
    from qgis.core import (
        QgsFillSymbol,
        QgsGraduatedSymbolRenderer,
        QgsLineSymbol,
        QgsMarkerSymbol,
        QgsSingleSymbolRenderer,
        QgsStyle,
    )

    if kind in ("arrow", "arrow_ref"):
        return QgsSingleSymbolRenderer(arrow_symbol("#111111" if kind == "arrow" else "#c62828"))
    if kind == "ellipse":
        return QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(
            {"color": "0,0,0,0", "outline_color": "#444444", "outline_width": "0.2"}))
    if kind == "trace":
        return QgsSingleSymbolRenderer(QgsLineSymbol.createSimple({"line_color": "#d7191c", "line_width": "0.8"}))
    if kind == "profiles":
        return QgsSingleSymbolRenderer(QgsLineSymbol.createSimple({"line_color": "#7b3294", "line_width": "0.25",
                                                                   "line_style": "dash"}))
    # offsets: points coloured by the fault-parallel offset, 6 classes symmetric about 0 (blue < 0 < red)
    from qgis.core import QgsRendererRange

    from backend.report import nice_ceil

    idx = layer.fields().indexOf("par_m")
    vals = [float(f[idx]) for f in layer.getFeatures() if f[idx] is not None] if idx >= 0 else []
    v = nice_ceil(max((abs(x) for x in vals), default=1.0) or 1.0)
    ramp = QgsStyle.defaultStyle().colorRamp("RdBu")
    if ramp is not None:
        ramp.invert()
    ranges = []
    for i in range(6):
        lo, hi = -v + i * v / 3, -v + (i + 1) * v / 3
        sym = QgsMarkerSymbol.createSimple({"name": "circle", "size": "2.6", "outline_color": "#222222"})
        if ramp is not None:
            sym.setColor(ramp.color((i + 0.5) / 6))
        ranges.append(QgsRendererRange(lo, hi, sym, f"{lo:+.2f} to {hi:+.2f} m"))
    return QgsGraduatedSymbolRenderer("par_m", ranges)


def _label_reference(layer: Any) -> None:
    from qgis.core import QgsPalLayerSettings, QgsTextFormat, QgsVectorLayerSimpleLabeling

    s = QgsPalLayerSettings()
    s.fieldName = "label"
    fmt = QgsTextFormat()
    fmt.setSize(9)
    buf = fmt.buffer()
    buf.setEnabled(True)
    buf.setSize(0.8)
    fmt.setBuffer(buf)
    s.setFormat(fmt)
    s.placement = QgsPalLayerSettings.Line
    s.placementFlags = QgsPalLayerSettings.AboveLine  # above the arrow, however short it is
    s.lineSettings().setOverrunDistance(15.0)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(s))
    layer.setLabelsEnabled(True)


def style_vector(layer: Any, kind: str) -> None:
    layer.setRenderer(_vector_renderer(kind, layer))
    if kind == "arrow_ref":
        _label_reference(layer)


STYLE_DESCRIPTION = "QuakeFusion style"  # layer_styles: styleName = the table's name, description = this


def save_vector_style(layer: Any, path: Path, table: str) -> None:
    """The layer's style as the default in the GeoPackage's ``layer_styles`` and as ``<file>_<table>.qml``.

    The first time QGIS creates the table (``saveStyleToDatabase``). When the GeoPackage already has one (a tool
    run again: ``backend.geodata.write_layers`` rewrites the file in place and keeps it), the row is written with
    Python's sqlite3: in the real desktop ``saveStyleToDatabase`` hung there, on a GeoPackage whose earlier layers
    QGIS had loaded (the tools dialog's second Offsets never finished)."""
    if Path(path).suffix.lower() == ".gpkg":
        if _has_style_table(Path(path)):
            _write_style_row(layer, Path(path), table)
        else:
            err = layer.saveStyleToDatabase(table, STYLE_DESCRIPTION, True, "")
            if err:
                raise OSError(f"cannot store the style of {table} in {path}: {err}")
    layer.saveNamedStyle(str(Path(path).with_name(f"{Path(path).stem}_{table}.qml")))


def _has_style_table(path: Path) -> bool:
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as con:
        return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'layer_styles'").fetchone() \
            is not None


def _write_style_row(layer: Any, path: Path, table: str) -> None:
    """The layer's QML as the default style of ``table`` in ``layer_styles`` (the row replaced)."""
    import sqlite3

    from qgis.PyQt.QtXml import QDomDocument

    doc = QDomDocument()
    err = layer.exportNamedStyle(doc)
    if err:
        raise OSError(f"cannot write the style of {table}: {err}")
    con = sqlite3.connect(str(path), timeout=10)
    try:
        with con:
            con.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (table,))
            con.execute("DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?", (table, table))
            con.execute("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                        "styleName, styleQML, styleSLD, useAsDefault, description, owner) "
                        "VALUES ('', '', ?, 'geom', ?, ?, '', 1, ?, '')",
                        (table, table, doc.toString(), STYLE_DESCRIPTION))
    except sqlite3.Error as exc:
        raise OSError(f"cannot store the style of {table} in {path}: {exc}. Fix: close the layers of this file in "
                      "QGIS and run the tool again.") from exc
    finally:
        con.close()


# ----------------------------------------------------------------------------------------------- layers
def open_vector(path: Path, table: str, name: str) -> Any:
    from qgis.core import QgsVectorLayer

    return QgsVectorLayer(f"{path}|layername={table}", name, "ogr")


def nice_colour_bar(layer: Any) -> float:
    """Round the colour bar of a pseudocolour raster to a symmetric 1-2-2.5-5 limit; labels '±L m'."""
    from backend.report import nice_ceil

    r = layer.renderer()
    lim = nice_ceil(max(abs(r.classificationMin()), abs(r.classificationMax())))
    r.setClassificationMin(-lim)
    r.setClassificationMax(lim)
    shader = r.shader().rasterShaderFunction()
    shader.setMinimumValue(-lim)
    shader.setMaximumValue(lim)
    shader.classifyColorRamp(9, -1)
    legend = shader.legendSettings()
    legend.setNumericFormat(legend_number_format(-lim, lim))
    legend.setSuffix(" m")
    legend.setUseContinuousLegend(True)
    shader.setLegendSettings(legend)
    layer.triggerRepaint()
    return lim


def raster_layer(path: Path, band: int, name: str, kind: str, units: str) -> Any:
    from qgis.core import QgsRasterLayer

    lyr = QgsRasterLayer(str(path), name, "gdal")
    if kind == "diverging":
        v = robust_abs_max(path, band)
        vmin, vmax = -v, v
    else:
        vmin, vmax = 0.0, robust_max(path, band)
    lyr.setRenderer(pseudocolor_renderer(None, band, vmin, vmax, kind, units))
    if kind == "diverging":
        nice_colour_bar(lyr)
    return lyr


def tool_layers(files: dict[str, Path]) -> list[Any]:
    """Styled QGIS layers of the tools' files (styles also saved, see the module doc); main thread only."""
    out = []
    for key, specs in VECTORS.items():
        path = files.get(key)
        if path is None or not Path(path).exists():
            continue
        for table, name, kind in specs:
            lyr = open_vector(Path(path), table, name)
            if not lyr.isValid():
                continue
            style_vector(lyr, kind)
            save_vector_style(lyr, Path(path), table)
            out.append(lyr)
    for key, specs in RASTERS.items():
        path = files.get(key)
        if path is None or not Path(path).exists():
            continue
        for band, name, kind, units in specs:
            lyr = raster_layer(Path(path), band, name, kind, units)
            if band == 1:
                lyr.saveNamedStyle(str(Path(path).with_suffix(".qml")))
            out.append(lyr)
    return out


def hide_band_label(node: Any) -> None:
    """Drop the "Band 1: ..." line above a colour ramp in the layer tree / a layout legend (the first legend node
    of a continuous pseudocolour legend in QGIS 3.22)."""
    from qgis.core import QgsMapLayerLegendUtils

    nodes = node.layer().legend().createLayerTreeModelLegendNodes(node) if node.layer().legend() else []
    if len(nodes) > 1:
        QgsMapLayerLegendUtils.setLegendNodeOrder(node, list(range(1, len(nodes))))


def _refresh_legend(node: Any) -> None:
    """Make the QGIS layers panel show a changed legend-node order (no-op without the QGIS GUI)."""
    try:
        from qgis.utils import iface
    except ImportError:  # pragma: no cover
        return
    view = iface.layerTreeView() if iface is not None and hasattr(iface, "layerTreeView") else None
    if view is not None and view.layerTreeModel() is not None:
        view.layerTreeModel().refreshLayerLegend(node)


def add_tool_layers(files: dict[str, Path], group_name: str, project: Any = None) -> tuple[Any, list[Any]]:
    """Add the styled tool layers in a group ``group_name`` (re-used when it exists; same-named layers in it are
    replaced); vectors above rasters."""
    from qgis.core import QgsProject

    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    group = root.findGroup(group_name) or root.insertGroup(0, group_name)
    layers = tool_layers(files)
    names = {lyr.name() for lyr in layers}
    for node in list(group.findLayers()):
        if node.layer() is not None and node.layer().name() in names:
            project.removeMapLayer(node.layer().id())
    for i, lyr in enumerate(layers):
        project.addMapLayer(lyr, False)
        node = group.insertLayer(i, lyr)
        if lyr.type() == lyr.RasterLayer:
            hide_band_label(node)
            _refresh_legend(node)
        if lyr.name().startswith("Fault-normal") or lyr.name().startswith("Significance"):
            node.setItemVisibilityChecked(False)
    return group, layers


def save_line_layer(layer: Any, out: Path) -> Path:
    """Write a line layer (with its unsaved edits, any provider, any CRS) to ``out`` as a GeoPackage, layer
    ``rupture_trace``: the backend reads files. Raises OSError naming the layer and the file."""
    from qgis.core import QgsCoordinateTransformContext, QgsVectorFileWriter

    out.parent.mkdir(parents=True, exist_ok=True)
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName = "GPKG"
    opts.layerName = "rupture_trace"
    res = QgsVectorFileWriter.writeAsVectorFormatV2(layer, str(out), QgsCoordinateTransformContext(), opts)
    if res[0] != QgsVectorFileWriter.NoError:
        raise OSError(f"cannot write the trace layer {layer.name()!r} to {out}: {res[1]}")
    return out


def run_trace_input(layer: Any, out_root: Path, run_name: str, write: bool = True) -> str | None:
    """The Rupture trace chosen for a run (dialog, Processing) as a file: ``line_layer_file`` with a layer that is
    not a file saved to ``<output>/trace_inputs/<run>.gpkg`` (kept: run.json names it). ``write`` False (checking
    the parameters): such a layer is not written yet (None)."""
    from .runner import slug

    if layer is None or (not write and layer.providerType() != "ogr"):
        return None
    return line_layer_file(layer, out_root / "trace_inputs" / f"{slug(run_name)}.gpkg")


def line_layer_file(layer: Any, out: Path) -> str:
    """A file the backend can read for a line layer: its own file when it is one OGR layer on disk without unsaved
    edits (read where it is, nothing written), else ``out`` (``save_line_layer``; e.g. a scratch layer just drawn)."""
    if layer.providerType() == "ogr" and not layer.isModified():
        parts = layer.source().split("|")
        path = Path(parts[0])
        names = [p.split("=", 1)[1] for p in parts[1:] if p.startswith("layername=")]
        if path.is_file() and not any(p.startswith(("subset=", "layerid=")) for p in parts[1:]) and \
                (not names or names[0] == "rupture_trace" or path.suffix.lower() != ".gpkg"):
            return str(path)
    return str(save_line_layer(layer, out))
