"""The "Geologist's tools" dialog (Raster ▸ QuakeFusion ▸ Geologist's tools…): for a finished run folder, the
rupture trace (extracted, or any line layer of the project, e.g. one drawn by hand), offsets along strike, arrows,
fault-parallel/normal + significance rasters, the PDF report (QGIS layout) and "Export run…".

Every tool runs as a ``ToolTask`` (worker thread: backend only) and its layers are styled and added on the main
thread, in a group named after the run folder. Built in code (compact: fits a 768-px-high screen).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsSettings,
)
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..app.geotools import ToolParams, offset_caveats, run_tools
from ..app.task import ToolTask

SETTINGS_PREFIX = "QuakeFusion/"
USER_TRACE = "user_trace.gpkg"  # a trace drawn by hand (draw_trace)
TRACE_INPUT = "trace_input.gpkg"  # the chosen line layer as the backend reads it
METHODS = [("auto", "Auto (rupture probability, else line search, else InSAR band)"),
           ("probability", "Rupture probability"), ("step", "Displacement step (pixel-wise)"),
           ("both", "Probability where a step is"), ("line", "Line search (long consistent step)"),
           ("band", "InSAR band (long decorrelated line of the phase)")]


def _spin(lo: float, hi: float, value: float, suffix: str = " m", tip: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(0)
    s.setSingleStep(10)
    s.setSuffix(suffix)
    s.setValue(value)
    s.setToolTip(tip)
    return s


class ToolsDialog(QDialog):
    """``start(task)`` adds a task to QGIS's task manager (the plugin's; default: the task manager itself)."""

    def __init__(self, iface: Any = None, parent: Any = None, start: Any = None, help_url: str = "",
                 show_profile: Any = None, rerun_with_trace: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("QuakeFusion — geologist's tools")
        self.iface = iface
        self.start = start or (lambda t: QgsApplication.taskManager().addTask(t))
        self.help_url = help_url
        self.show_profile = show_profile
        self.rerun_with_trace = rerun_with_trace  # (layer or path) -> the main dialog with that trace chosen
        self.task: Any = None
        self.report_project: Any = None  # the report's layers and layout live here (the user's project is untouched)
        self.last_files: dict[str, Path] = {}
        self.last_caveats: list[str] = []  # what the last offsets cannot be trusted for (app.geotools.offset_caveats)
        s = QgsSettings()
        lay = QVBoxLayout(self)
        top = QGridLayout()
        self.fw_run = QgsFileWidget()
        self.fw_run.setStorageMode(QgsFileWidget.GetDirectory)
        self.fw_run.setFilePath(str(s.value(SETTINGS_PREFIX + "last_run_dir", "")))
        self.fw_run.setToolTip("The folder of a finished QuakeFusion run (it holds run.json and displacement.tif)")
        top.addWidget(QLabel("Run folder"), 0, 0)
        top.addWidget(self.fw_run, 0, 1, 1, 2)
        top.addWidget(QLabel("Trace"), 1, 0)
        self.cb_trace = QComboBox()
        self.cb_trace.addItem("The run's trace (rupture_trace.gpkg), else extract one", "run")
        self.cb_trace.addItem("Extract a new trace", "new")
        self.cb_trace.addItem("A line layer of the project (drawn or loaded)", "layer")
        top.addWidget(self.cb_trace, 1, 1, 1, 2)
        self.cb_method = QComboBox()
        for key, label in METHODS:
            self.cb_method.addItem(label, key)
        top.addWidget(QLabel("Extraction"), 2, 0)
        top.addWidget(self.cb_method, 2, 1)
        self.chk_band = QCheckBox("Onto the InSAR band")
        self.chk_band.setChecked(True)
        self.chk_band.setToolTip("When the run has an interferogram, move the extracted trace onto the band where "
                                 "the wrapped phase decorrelates across the rupture (sharp where the displacement "
                                 "is smeared); the trace's 'on_band' attribute says along how much of it")
        top.addWidget(self.chk_band, 2, 2)
        self.cb_layer = QgsMapLayerComboBox()
        self.cb_layer.setFilters(QgsMapLayerProxyModel.LineLayer)
        self.cb_layer.setAllowEmptyLayer(True)
        top.addWidget(QLabel("Line layer"), 3, 0)
        top.addWidget(self.cb_layer, 3, 1)
        self.btn_draw_trace = QPushButton("Draw a trace…")
        self.btn_draw_trace.setToolTip("A new editable line layer: digitise the trace (left to right as you like), "
                                       "save the edits, then run the tools with it")
        self.btn_draw_trace.clicked.connect(self.draw_trace)
        top.addWidget(self.btn_draw_trace, 3, 2)
        lay.addLayout(top)

        g = QGroupBox("Offsets along strike (stacked profiles)")
        grid = QGridLayout(g)
        self.spin_spacing = _spin(1, 1e6, float(s.value(SETTINGS_PREFIX + "spacing", 500.0)),
                                  tip="distance between profile centres along the trace")
        self.spin_length = _spin(10, 1e6, float(s.value(SETTINGS_PREFIX + "length", 2000.0)),
                                 tip="extent of each stack across the fault (half on each side)")
        self.spin_width = _spin(0, 1e6, float(s.value(SETTINGS_PREFIX + "width", 200.0)),
                                tip="extent of each stack along the fault (0 = one line)")
        self.spin_exclude = _spin(0, 1e6, float(s.value(SETTINGS_PREFIX + "exclude", 0.0)),
                                  tip="samples closer than this to the trace are ignored (0 = 3 pixels)")
        self.spin_exclude.setSpecialValueText("3 pixels")
        for i, (lab, w) in enumerate((("Spacing", self.spin_spacing), ("Length", self.spin_length),
                                      ("Width", self.spin_width), ("Exclude ±", self.spin_exclude))):
            grid.addWidget(QLabel(lab), i // 2, 2 * (i % 2))
            grid.addWidget(w, i // 2, 2 * (i % 2) + 1)
        lay.addWidget(g)

        g = QGroupBox("Arrows and components")
        grid = QGridLayout(g)
        self.spin_step = QSpinBox()
        self.spin_step.setRange(2, 512)
        self.spin_step.setValue(int(s.value(SETTINGS_PREFIX + "arrow_step", 16)))
        self.spin_step.setSuffix(" px")
        self.spin_step.setToolTip("density: one arrow every N pixels")
        self.spin_scale = _spin(0, 1e7, 0.0, " map units per m", "arrow length per metre of displacement "
                                "(0 = automatic, 1-2-5 rounded)")
        self.spin_scale.setSpecialValueText("automatic")
        self.cb_mode = QComboBox()
        self.cb_mode.addItem("Pixel value", "sample")
        self.cb_mode.addItem("Block mean on the arrow's side of the trace", "mean")
        self.chk_ellipses = QCheckBox("1-σ ellipses")
        self.chk_mean_strike = QCheckBox("Components for the mean strike (default: nearest trace segment)")
        grid.addWidget(QLabel("Arrow every"), 0, 0)
        grid.addWidget(self.spin_step, 0, 1)
        grid.addWidget(QLabel("Scale"), 0, 2)
        grid.addWidget(self.spin_scale, 0, 3)
        grid.addWidget(QLabel("Arrow value"), 1, 0)
        grid.addWidget(self.cb_mode, 1, 1, 1, 2)
        grid.addWidget(self.chk_ellipses, 1, 3)
        grid.addWidget(self.chk_mean_strike, 2, 0, 1, 4)
        lay.addWidget(g)

        row = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for key, text in (("trace", "Trace"), ("offsets", "Offsets"), ("arrows", "Arrows"),
                          ("components", "Components"), ("all", "All four")):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, k=key: self.run_tool(k))
            row.addWidget(b)
            self.buttons[key] = b
        b = QPushButton("Run again with this trace…")
        b.setToolTip("Opens the main dialog with this trace in its Rupture trace field: the network's windows then "
                     "stop at it, and the offset across it is read sharp (check and edit the trace first)")
        b.clicked.connect(lambda _=False: self.rerun())
        row.addWidget(b)
        self.buttons["rerun"] = b
        lay.addLayout(row)
        row = QHBoxLayout()
        for key, text, fn in (("report", "Report (PDF)…", self.report), ("export", "Export run…", self.export),
                              ("profile", "Profile tool", self._profile), ("help", "Help", self.open_help),
                              ("close", "Close", self.close)):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, f=fn: f())
            row.addWidget(b)
            self.buttons[key] = b
        lay.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setValue(0)
        lay.addWidget(self.progress)
        self.lbl_status = QLabel("Choose a run folder, then a tool.")
        self.lbl_status.setWordWrap(True)
        self.lbl_status.setTextFormat(Qt.RichText)
        self.lbl_status.setOpenExternalLinks(True)
        lay.addWidget(self.lbl_status)
        self.cb_trace.currentIndexChanged.connect(self._trace_mode)
        self._trace_mode()

    # ------------------------------------------------------------------ values
    def _trace_mode(self, *_: Any) -> None:
        mode = self.cb_trace.currentData()
        self.cb_layer.setEnabled(mode == "layer")
        self.cb_method.setEnabled(mode != "layer")
        self.chk_band.setEnabled(mode != "layer")

    def run_dir(self) -> Path:
        d = Path(self.fw_run.filePath().strip())
        if not (d / "displacement.tif").exists():
            raise ValueError(f"'{d}' is not a finished run folder (no displacement.tif). Fix: choose the folder "
                             "of a run (Raster ▸ QuakeFusion ▸ Estimate displacement… writes one).")
        return d

    def params(self) -> ToolParams:
        mode = self.cb_trace.currentData()
        trace = None
        if mode == "layer":
            lyr = self.cb_layer.currentLayer()
            if lyr is None:
                raise ValueError("Choose the trace's line layer (or another trace option).")
            trace = str(self.write_user_trace(lyr))
        exclude = float(self.spin_exclude.value())
        scale = float(self.spin_scale.value())
        return ToolParams(trace=trace, new_trace=mode == "new", method=str(self.cb_method.currentData()),
                          band=self.chk_band.isChecked(),
                          spacing=float(self.spin_spacing.value()), length=float(self.spin_length.value()),
                          width=float(self.spin_width.value()), exclude=exclude or None,
                          arrow_step=int(self.spin_step.value()), arrow_scale=scale or None,
                          arrow_mode=str(self.cb_mode.currentData()), ellipses=self.chk_ellipses.isChecked(),
                          mean_strike=self.chk_mean_strike.isChecked())

    def rerun(self) -> Any:
        """The trace these tools use (the chosen line layer, else the run folder's rupture_trace.gpkg) handed to the
        main dialog for a second run; says what to do when there is none yet."""
        from backend.trace import TRACE_FILE

        trace: Any = None
        if self.cb_trace.currentData() == "layer":
            trace = self.cb_layer.currentLayer()
        else:
            try:
                run_dir = self.run_dir()
            except ValueError as exc:
                self.lbl_status.setText(str(exc))
                return None
            trace = run_dir / TRACE_FILE if (run_dir / TRACE_FILE).is_file() else None
        if trace is None:
            self.lbl_status.setText("No trace yet: extract one with <b>Trace</b> (or draw one), check it against the "
                                    "maps, then run again with it.")
            return None
        if self.rerun_with_trace is None:
            return None
        return self.rerun_with_trace(trace)

    def write_user_trace(self, layer: Any) -> Path:
        """The chosen line layer (with its unsaved edits, any provider, any CRS) as a GeoPackage in the run
        folder: the backend reads files. Written as ``trace_input.gpkg``."""
        from ..app.tool_layers import save_line_layer

        try:
            return save_line_layer(layer, self.run_dir() / TRACE_INPUT)
        except OSError as exc:
            raise ValueError(str(exc)) from exc

    def remember(self) -> None:
        s = QgsSettings()
        s.setValue(SETTINGS_PREFIX + "last_run_dir", self.fw_run.filePath().strip())
        for key in ("spacing", "length", "width", "exclude"):
            s.setValue(SETTINGS_PREFIX + key, float(getattr(self, f"spin_{key}").value()))
        s.setValue(SETTINGS_PREFIX + "arrow_step", int(self.spin_step.value()))

    # ------------------------------------------------------------------ actions
    def _busy(self, busy: bool) -> None:
        for k, b in self.buttons.items():
            if k not in ("help", "close", "profile"):
                b.setEnabled(not busy)

    def _start(self, title: str, work: Any, on_done: Any) -> Any:
        try:
            run_dir, p = self.run_dir(), self.params()
        except ValueError as exc:
            self.lbl_status.setText(f"<span style='color:#c62828'>{exc}</span>")
            return None
        self.remember()
        self.last_caveats = []  # set again by the offsets' on_done
        task = ToolTask(title, lambda prog, cancel: work(run_dir, p, prog, cancel), on_done, self.iface)
        task.progressChanged.connect(lambda v: self.progress.setValue(int(v)))
        task.message.connect(self.lbl_status.setText)
        task.done.connect(self._done)
        self.task = task
        self._busy(True)
        self.progress.setValue(0)
        self.lbl_status.setText(f"{title}…")
        self.start(task)
        return task

    def _done(self, ok: bool, text: str) -> None:
        self.task = None
        self._busy(False)
        self.progress.setValue(100 if ok else 0)
        self.lbl_status.setText(text + "".join(f"<br><span style='color:#b71c1c'>Caution: {html.escape(c)}</span>"
                                               for c in (self.last_caveats if ok else [])))
        if self.height() < self.sizeHint().height():  # a longer status: grow rather than squeeze the rows
            self.resize(self.width(), self.sizeHint().height())

    def run_tool(self, key: str) -> Any:
        names = ["trace", "offsets", "arrows", "components"] if key == "all" else [key]
        if key == "trace":
            names = ["trace"]

        def on_done(files: dict[str, Path]) -> str:
            from ..app.tool_layers import add_tool_layers

            self.last_files = files
            _group, layers = add_tool_layers(files, f"QuakeFusion tools: {Path(self.fw_run.filePath()).name}")
            self.last_caveats = offset_caveats(Path(self.fw_run.filePath()), files)
            if self.iface is not None:
                for c in self.last_caveats:  # stays until closed: it qualifies the offsets just loaded
                    self.iface.messageBar().pushMessage("QuakeFusion: offsets", c, Qgis.Warning, 0)
            return f"{', '.join(names)}: {len(layers)} layers added; files in {self.fw_run.filePath()}"

        def work(run_dir: Path, p: ToolParams, prog: Any, cancel: Any) -> dict[str, Path]:
            if key == "trace" and p.trace is None:
                p.new_trace = p.new_trace or not (run_dir / "rupture_trace.gpkg").exists()
                if not p.new_trace:  # the run's trace is already there: load it as it is
                    return {"trace": run_dir / "rupture_trace.gpkg"}
            return run_tools(run_dir, names, p, prog, cancel)

        return self._start(" + ".join(names), work, on_done)

    def report(self, pdf: str | None = None) -> Any:
        from ..app.report_layout import export_pdf, fill_layout, prepare_report

        if pdf is None:
            start = str(Path(self.fw_run.filePath()) / "report.pdf")
            pdf, _ = QFileDialog.getSaveFileName(self, "QuakeFusion report", start, "PDF (*.pdf)")
            if not pdf:
                return None

        def on_done(files: dict[str, Path]) -> str:
            self.report_project = QgsProject()
            layout = fill_layout(self.fw_run.filePath(), files, self.report_project)
            pages = export_pdf(layout, pdf)
            self.last_files = files | {"pdf": Path(pdf)}
            url = QUrl.fromLocalFile(str(pdf)).toString()
            self.lbl_status.setText(f"Report: <a href='{url}'>{pdf}</a> ({pages} pages)")
            return f"report written: {pdf} ({pages} pages)"

        return self._start("report", prepare_report, on_done)

    def export(self, gpkg: str | None = None) -> Any:
        from ..app.export import export_run

        try:
            run_dir = self.run_dir()
        except ValueError as exc:
            self.lbl_status.setText(f"<span style='color:#c62828'>{exc}</span>")
            return None
        if gpkg is None:
            gpkg, _ = QFileDialog.getSaveFileName(self, "Export run", str(run_dir.parent / f"{run_dir.name}.gpkg"),
                                                  "GeoPackage (*.gpkg)")
            if not gpkg:
                return None
        shp = Path(gpkg).with_name(f"{Path(gpkg).stem}_shapefiles")
        self.lbl_status.setText("Exporting…")
        self.setCursor(Qt.WaitCursor)
        try:
            res = export_run(run_dir, gpkg, shp, progress=lambda f, m: self.progress.setValue(int(100 * f)))
        except Exception as exc:
            self.lbl_status.setText(f"<span style='color:#c62828'>Export failed: {exc}</span>")
            return None
        finally:
            self.unsetCursor()
        self.lbl_status.setText(f"Exported {len(res['rasters'])} rasters and {len(res['vectors'])} vector layers "
                                f"with styles to {res['gpkg']} (open the whole run: Project ▸ Open From ▸ "
                                f"GeoPackage); shapefiles in {shp}")
        return res

    def _profile(self) -> None:
        if self.show_profile is not None:
            self.show_profile()

    def open_help(self) -> bool:
        return bool(self.help_url) and QDesktopServices.openUrl(QUrl(self.help_url))

    def draw_trace(self) -> Any:
        """A new, empty, editable line layer ``user_trace.gpkg`` in the run's CRS, selected as the trace; the
        QGIS "Add line feature" tool is switched on."""
        from backend.geodata import Layer, load_run, write_layers

        try:
            run_dir = self.run_dir()
        except ValueError as exc:
            self.lbl_status.setText(f"<span style='color:#c62828'>{exc}</span>")
            return None
        from qgis.core import QgsVectorLayer

        run = load_run(run_dir)
        path = write_layers(run_dir / USER_TRACE, [Layer("rupture_trace", "LineString", {"trace_id": "int"})],
                            run.crs_wkt)[0]
        lyr = QgsVectorLayer(f"{path}|layername=rupture_trace", "Trace drawn by hand", "ogr")
        if not lyr.crs().isValid():
            lyr.setCrs(QgsCoordinateReferenceSystem.fromWkt(run.crs_wkt))
        QgsProject.instance().addMapLayer(lyr)
        self.cb_trace.setCurrentIndex(self.cb_trace.findData("layer"))
        self.cb_layer.setLayer(lyr)
        lyr.startEditing()
        if self.iface is not None and hasattr(self.iface, "actionAddFeature"):
            self.iface.setActiveLayer(lyr)
            self.iface.actionAddFeature().trigger()
        self.lbl_status.setText("Digitise the trace on the map (right click ends the line), save the edits, then "
                                "run a tool.")
        return lyr
