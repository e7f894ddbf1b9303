"""Report from the dialog: the QGIS print layout template shipped with the plugin
(``resources/report_template.qpt``, editable in QGIS's layout designer), filled with a run's layers -> PDF.

Two A4-landscape pages. Page 1: title, the map (fault-parallel component, trace, offset points, arrows in map
units with the red reference arrow), the legend (colour bar titled with its units, limits rounded to a 1-2-2.5-5
value), scale bar, north arrow, the arrow scale and the run summary. Page 2: the slip-along-strike plot and a
stacked profile across the middle of the trace (pictures drawn by the backend with matplotlib).

``prepare_report`` (worker thread: backend only) runs the tools and draws the plots; ``fill_layout`` and
``export_pdf`` (main thread) make the layout. Items are found by id, so a user may move or restyle them in the
template: ``title, map, legend, scalebar, north, arrow_scale, summary, slip_plot, profile_plot, page2_title``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .geotools import ToolParams, run_tools

PLUGIN_DIR = Path(__file__).resolve().parents[1]
TEMPLATE = PLUGIN_DIR / "resources" / "report_template.qpt"
SLIP_PNG, PROFILE_PNG, SUMMARY_TXT = "report_slip.png", "report_profile.png", "report_summary.txt"
ITEM_IDS = ("title", "map", "legend", "scalebar", "north", "arrow_scale", "summary", "slip_plot", "profile_plot",
            "page2_title")
NORTH_SVG = ":/images/north_arrows/layout_default_north_arrow.svg"


# ------------------------------------------------------------------------------------------------ worker thread
def prepare_report(run_dir: str | Path, p: ToolParams, progress: Any = None, cancel: Any = None) -> dict[str, Path]:
    """Trace, arrows and components (``app/geotools``), offsets (``fault_offsets.*``), the slip-along-strike plot
    and a stacked profile across the middle of the trace drawn for the layout's portrait frames
    (``report_slip.png``, ``report_profile.png``) and the summary text (``report_summary.txt``). Backend only: any
    thread."""
    from backend.geodata import load_run
    from backend.offsets import Figures, default_exclude, fusion_caveats, plot_slip, profile_along_line
    from backend.offsets import run_offsets as backend_offsets
    from backend.report import summary_lines

    run_dir = Path(run_dir)
    files = run_tools(run_dir, ["trace", "arrows", "components"], p,
                      (lambda f, m: progress(0.6 * f, m)) if progress else None, cancel)
    if progress:
        progress(0.6, "offsets along strike…")
    res = backend_offsets(run_dir, p.spacing, p.length, p.width, p.exclude, trace=files["trace"])
    files.update(res["files"])
    run = load_run(run_dir)
    exclude = default_exclude(run) if p.exclude is None else p.exclude
    profiles = res["profiles"]
    plt = Figures()
    fig, ax = plt.subplots(3, 1, figsize=(6.2, 7.6), sharex=True, constrained_layout=True)
    plot_slip(profiles, ax=ax)
    fig.savefig(run_dir / SLIP_PNG, dpi=150)
    files["slip_png"] = run_dir / SLIP_PNG
    ok = [q for q in profiles if q.offsets["parallel"][0] == q.offsets["parallel"][0]] or profiles
    mid = ok[len(ok) // 2] if ok else None
    if mid is not None:
        prof = profile_along_line(run, mid.line, width=p.width, exclude=exclude, trace=res["trace"])
        fig, axes = plt.subplots(2, 1, figsize=(5.4, 7.6), sharex=True, constrained_layout=True)
        prof.plot(axes=axes)
        fig.suptitle(f"at {mid.along_m / 1000:.2f} km along trace {mid.trace_id} (strike {mid.strike_deg:.0f}°), "
                     f"stacked over {p.width:g} m", fontsize=9)
        fig.savefig(run_dir / PROFILE_PNG, dpi=150)
        files["profile_png"] = run_dir / PROFILE_PNG
    extra = {"trace": f"{Path(files['trace']).name} ({res['source']})", "spacing_m": f"{p.spacing:g}",
             "length_m": f"{p.length:g}", "width_m": f"{p.width:g}", "exclude_m": f"{exclude:g}",
             "profiles": str(len(profiles))}
    # the offsets' cautions (backend.offsets.fusion_caveats, e.g. a fused SAR pair), first: a long run summary runs
    # past the frame's bottom, and they must be read
    text = [f"Caution: {c}\n" for c in fusion_caveats(run.run_json, run.pixel_size,
                                                       [q.offsets["parallel"][0] for q in profiles])]
    text += summary_lines(run, extra)  # the label wraps the lines
    (run_dir / SUMMARY_TXT).write_text("\n".join(text) + "\n")
    files["summary"] = run_dir / SUMMARY_TXT
    if progress:
        progress(0.9, "report figures drawn")
    return files


# ------------------------------------------------------------------------------------------------ main thread
def build_template(project: Any) -> Any:
    """The layout of ``report_template.qpt`` (how the shipped template was made: ``save_template``)."""
    from qgis.core import (
        QgsLayoutItemLabel,
        QgsLayoutItemLegend,
        QgsLayoutItemMap,
        QgsLayoutItemPage,
        QgsLayoutItemPicture,
        QgsLayoutItemScaleBar,
        QgsLayoutPoint,
        QgsLayoutSize,
        QgsPrintLayout,
        QgsUnitTypes,
    )
    from qgis.PyQt.QtGui import QFont

    layout = QgsPrintLayout(project)
    layout.initializeDefaults()  # one A4 landscape page
    page = QgsLayoutItemPage(layout)
    page.setPageSize("A4", QgsLayoutItemPage.Landscape)
    layout.pageCollection().addPage(page)
    mm = QgsUnitTypes.LayoutMillimeters

    def place(item: Any, ident: str, x: float, y: float, w: float, h: float) -> Any:
        item.setId(ident)
        layout.addLayoutItem(item)
        item.attemptMove(QgsLayoutPoint(x, y, mm))
        item.attemptResize(QgsLayoutSize(w, h, mm))
        return item

    def label(ident: str, x: float, y: float, w: float, h: float, size: int, bold: bool = False) -> Any:
        lab = QgsLayoutItemLabel(layout)
        lab.setText(ident)
        f = QFont("Sans Serif", size)
        f.setBold(bold)
        lab.setFont(f)
        return place(lab, ident, x, y, w, h)

    label("title", 10, 6, 277, 10, 15, True)
    m = place(QgsLayoutItemMap(layout), "map", 10, 18, 185, 172)
    m.setFrameEnabled(True)
    leg = place(QgsLayoutItemLegend(layout), "legend", 200, 18, 87, 112)
    leg.setLinkedMap(m)
    leg.setAutoUpdateModel(False)
    leg.setTitle("")
    leg.setResizeToContents(False)
    leg.setSymbolHeight(5)
    sb = QgsLayoutItemScaleBar(layout)
    sb.setStyle("Single Box")
    sb.setLinkedMap(m)
    sb.setUnits(QgsUnitTypes.DistanceKilometers)
    sb.setUnitLabel("km")
    sb.setNumberOfSegments(2)
    sb.setNumberOfSegmentsLeft(0)
    place(sb, "scalebar", 12, 192, 80, 12)
    north = QgsLayoutItemPicture(layout)
    north.setPicturePath(NORTH_SVG)
    north.setLinkedMap(m)
    north.setNorthMode(QgsLayoutItemPicture.GridNorth)
    place(north, "north", 180, 21, 12, 15)
    label("arrow_scale", 200, 131, 87, 16, 8)
    summary = label("summary", 200, 148, 87, 56, 6)
    summary.setFont(QFont("DejaVu Sans Mono", 5))
    y2 = 220  # page 2 starts 210 mm + 10 mm spacing below page 1
    label("page2_title", 10, y2 + 6, 277, 10, 13, True)
    place(QgsLayoutItemPicture(layout), "slip_plot", 10, y2 + 18, 148, 182)
    place(QgsLayoutItemPicture(layout), "profile_plot", 160, y2 + 18, 127, 182)
    return layout


def save_template(path: Path = TEMPLATE) -> Path:
    from qgis.core import QgsProject, QgsReadWriteContext

    project = QgsProject()
    layout = build_template(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not layout.saveAsTemplate(str(path), QgsReadWriteContext()):
        raise OSError(f"cannot write {path}")
    return path


def load_template(project: Any, template: Path = TEMPLATE) -> Any:
    from qgis.core import QgsPrintLayout, QgsReadWriteContext
    from qgis.PyQt.QtXml import QDomDocument

    doc = QDomDocument()
    if not doc.setContent(Path(template).read_text(encoding="utf-8")):
        raise OSError(f"the report template {template} is not a QGIS layout (.qpt)")
    layout = QgsPrintLayout(project)
    _items, ok = layout.loadFromTemplate(doc, QgsReadWriteContext())
    if not ok:
        raise OSError(f"the report template {template} could not be loaded")
    return layout


def _item(layout: Any, ident: str) -> Any:
    item = layout.itemById(ident)
    if item is None:
        raise OSError(f"the report template has no item '{ident}'")
    return item


def _fit(ext: Any, ratio: float) -> Any:
    """``ext`` grown to the width/height ``ratio`` about its centre."""
    from qgis.core import QgsRectangle

    w, h = ext.width(), ext.height()
    w, h = max(w, h * ratio), max(h, w / ratio)
    c = ext.center()
    return QgsRectangle(c.x() - w / 2, c.y() - h / 2, c.x() + w / 2, c.y() + h / 2)


def fill_layout(run_dir: str | Path, files: dict[str, Path], project: Any, title: str | None = None,
                template: Path = TEMPLATE) -> Any:
    """Load the template into ``project`` and fill it with the run's layers (added to ``project``), pictures and
    text. Returns the layout (``project.layoutManager()`` holds it)."""
    from qgis.core import QgsLegendRenderer, QgsLegendStyle, QgsRasterLayer

    from backend.vectors import nice_value

    from .layers import LAYERS
    from .tool_layers import hide_band_label, nice_colour_bar, tool_layers

    run_dir = Path(run_dir)
    layers = tool_layers(files)
    by = {lyr.name(): lyr for lyr in layers}
    base = by.get("Fault-parallel displacement (m)")
    if base is None:  # no components: the east component as written by the run
        name = next(n for k, _f, n, _kind, _b in LAYERS if k == "east")
        base = QgsRasterLayer(str(run_dir / "displacement_east.vrt"), name, "gdal")
    lim = nice_colour_bar(base)
    shown = [by[n] for n in ("Reference arrow", "Displacement arrows (map units)", "Fault offsets (fault-parallel, m)",
                             "Rupture trace") if n in by] + [base]
    for lyr in shown:
        project.addMapLayer(lyr, False)
    layout = load_template(project, template)
    layout.setName(title or f"QuakeFusion report: {run_dir.name}")
    _item(layout, "title").setText(title or f"QuakeFusion run '{run_dir.name}': fault-parallel displacement, "
                                   "trace, offsets and arrows")
    m = _item(layout, "map")
    m.setKeepLayerSet(True)
    m.setLayers(shown)
    m.setCrs(base.crs())
    m.setExtent(_fit(base.extent(), m.rect().width() / m.rect().height()))  # same ratio: the frame keeps its size
    sb = _item(layout, "scalebar")
    km = nice_value(m.extent().width() / 4000.0)
    sb.setUnitsPerSegment(km)
    sb.setNumberOfSegments(2)
    sb.update()
    leg = _item(layout, "legend")
    root = leg.model().rootGroup()
    root.removeAllChildren()
    for lyr in shown:
        node = root.addLayer(lyr)
        if lyr is base or lyr.name().startswith("Fault offsets"):
            QgsLegendRenderer.setNodeLegendStyle(node, QgsLegendStyle.Subgroup)
            if lyr is base:  # no "Band 1: ..." line above the colour bar
                hide_band_label(node)
                leg.model().refreshLayerLegend(node)
        else:  # one symbol: drawn inline with the layer name
            QgsLegendRenderer.setNodeLegendStyle(node, QgsLegendStyle.Hidden)
    leg.updateLegend()
    ref = next(by["Reference arrow"].getFeatures(), None) if "Reference arrow" in by else None
    _item(layout, "arrow_scale").setText(
        (f"Arrows: horizontal displacement, 1 m = {ref['scale']:g} m on the map; the red reference arrow "
         f"(bottom left) is {ref['label']}." if ref is not None else "No arrows.")
        + f"\nColour bar: ±{lim:g} m, {base.crs().authid() or 'grid CRS'}, grid north up.")
    summary = Path(files["summary"]).read_text() if files.get("summary") else ""
    _item(layout, "summary").setText(summary)
    _item(layout, "page2_title").setText("Offsets along strike (stacked profiles, right minus left; ±1σ) and a "
                                         "profile across the middle of the trace")
    for ident, key in (("slip_plot", "slip_png"), ("profile_plot", "profile_png")):
        pic = _item(layout, ident)
        if files.get(key):
            pic.setPicturePath(str(files[key]))
            pic.setResizeMode(pic.Zoom)
    project.layoutManager().addLayout(layout)
    layout.refresh()
    return layout


def export_pdf(layout: Any, pdf: str | Path) -> int:
    """Export the layout to ``pdf``; returns the number of pages."""
    from qgis.core import QgsLayoutExporter

    pdf = Path(pdf)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    settings = QgsLayoutExporter.PdfExportSettings()
    settings.dpi = 200
    res = QgsLayoutExporter(layout).exportToPdf(str(pdf), settings)
    if res != QgsLayoutExporter.Success:
        raise OSError(f"cannot write the report {pdf} (QGIS layout export error {res})")
    return layout.pageCollection().pageCount()


def make_layout_report(run_dir: str | Path, pdf: str | Path, p: ToolParams, project: Any = None,
                       title: str | None = None) -> dict[str, Any]:
    """Everything on the calling (main) thread: ``prepare_report`` + ``fill_layout`` + ``export_pdf``."""
    from qgis.core import QgsProject

    project = project if project is not None else QgsProject()
    files = prepare_report(run_dir, p)
    layout = fill_layout(run_dir, files, project, title)
    return {"pdf": Path(pdf), "pages": export_pdf(layout, pdf), "layout": layout, "files": files,
            "project": project}

