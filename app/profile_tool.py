"""Profile map tool: draw a line across the fault on the map (click the start on the LEFT side of the fault, click
the end on the right side) -> a dock with east/north/up and fault-parallel/normal along it (± the spread of each
1-pixel bin), the fitted steps with their σ (``backend.offsets.profile_along_line``: the same fit as the offsets
along strike), and export to CSV, GeoPackage and PNG.

Orientation: n̂ = the line's direction, t̂ = n̂ turned 90° anticlockwise (the fault direction), so a right-lateral
step is negative, as in ``fault_offsets.csv`` (docs/geologist_tools.md). The line is drawn in the canvas CRS and
reprojected to the run's grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsSettings,
    QgsWkbTypes,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

SETTINGS_PREFIX = "QuakeFusion/"


class ProfileMapTool(QgsMapTool):
    """Two clicks draw a line (a rubber band follows the mouse); ``lineDrawn(start, end)`` in canvas CRS. Right
    click or Esc cancels the line being drawn."""

    lineDrawn = pyqtSignal(QgsPointXY, QgsPointXY)  # noqa: N815 (Qt signal naming)

    def __init__(self, canvas: Any) -> None:
        super().__init__(canvas)
        self.start: QgsPointXY | None = None
        self.band = QgsRubberBand(canvas, QgsWkbTypes.LineGeometry)
        self.band.setColor(QColor(230, 0, 160, 200))
        self.band.setWidth(2)
        self.setCursor(Qt.CrossCursor)

    def canvasPressEvent(self, e: Any) -> None:  # noqa: N802 (Qt API)
        if e.button() == Qt.RightButton:
            self.reset()
            return
        p = self.toMapCoordinates(e.pos())
        if self.start is None:
            self.start = p
            self.band.setToGeometry(QgsGeometry.fromPolylineXY([p, p]), None)
        else:
            start, self.start = self.start, None
            self.band.setToGeometry(QgsGeometry.fromPolylineXY([start, p]), None)
            self.lineDrawn.emit(start, p)

    def canvasMoveEvent(self, e: Any) -> None:  # noqa: N802 (Qt API)
        if self.start is not None:
            self.band.setToGeometry(QgsGeometry.fromPolylineXY([self.start, self.toMapCoordinates(e.pos())]), None)

    def keyPressEvent(self, e: Any) -> None:  # noqa: N802 (Qt API)
        if e.key() == Qt.Key_Escape:
            self.reset()

    def reset(self) -> None:
        self.start = None
        self.band.reset(QgsWkbTypes.LineGeometry)

    def deactivate(self) -> None:
        self.start = None
        super().deactivate()


class ProfileDock(QgsDockWidget):
    """The profile dock: run folder, stack width, excluded zone, the plot, the steps and the exports."""

    def __init__(self, iface: Any = None, parent: Any = None) -> None:
        super().__init__("QuakeFusion profile", parent)
        self.setObjectName("QuakeFusionProfileDock")
        self.iface = iface
        self.profile: Any = None
        self._run: Any = None
        self._run_dir: Path | None = None
        self.tool: ProfileMapTool | None = None
        w = QWidget()
        lay = QVBoxLayout(w)
        form = QFormLayout()
        self.fw_run = QgsFileWidget()
        self.fw_run.setStorageMode(QgsFileWidget.GetDirectory)
        self.fw_run.setFilePath(str(QgsSettings().value(SETTINGS_PREFIX + "last_run_dir", "")))
        self.fw_run.setToolTip("Folder of a finished QuakeFusion run (displacement.tif, displacement_sigma.tif)")
        form.addRow("Run folder", self.fw_run)
        self.spin_width = QDoubleSpinBox()
        self.spin_width.setRange(0, 1e5)
        self.spin_width.setDecimals(0)
        self.spin_width.setSuffix(" m")
        self.spin_width.setValue(float(QgsSettings().value(SETTINGS_PREFIX + "profile_width", 0.0)))
        self.spin_width.setToolTip("Stack width along the fault (0 = a single line of samples)")
        form.addRow("Stack width", self.spin_width)
        self.spin_exclude = QDoubleSpinBox()
        self.spin_exclude.setRange(0, 1e5)
        self.spin_exclude.setDecimals(0)
        self.spin_exclude.setSuffix(" m")
        self.spin_exclude.setSpecialValueText("3 pixels")
        self.spin_exclude.setToolTip("Samples closer than this to the fault are ignored by the fit")
        form.addRow("Exclude ±", self.spin_exclude)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.btn_draw = QPushButton("Draw profile on map")
        self.btn_draw.setToolTip("Click the start on the LEFT side of the fault, then the end on the right side")
        self.btn_draw.clicked.connect(self.activate_tool)
        row.addWidget(self.btn_draw)
        lay.addLayout(row)
        self.lbl_steps = QLabel("Draw a line across the fault: first click on its left side, second on the right.")
        self.lbl_steps.setWordWrap(True)
        self.lbl_steps.setTextInteractionFlags(Qt.TextSelectableByMouse)
        lay.addWidget(self.lbl_steps)
        self.figure = self.canvas = None
        try:
            from matplotlib.backends.backend_qt5agg import FigureCanvasQTAgg
            from matplotlib.figure import Figure

            self.figure = Figure(figsize=(5, 5), constrained_layout=True)
            self.canvas = FigureCanvasQTAgg(self.figure)
            self.canvas.setMinimumHeight(320)
            lay.addWidget(self.canvas, 1)
        except ImportError:
            lay.addWidget(QLabel("matplotlib is not installed: the plot is not shown (the steps and exports work)."))
        row = QHBoxLayout()
        for text, fn in (("Export CSV…", self.export_csv), ("Export GeoPackage…", self.export_gpkg),
                         ("Export PNG…", self.export_png)):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, f=fn: f())
            row.addWidget(b)
        lay.addLayout(row)
        self.setWidget(w)

    # ------------------------------------------------------------------ map tool
    def activate_tool(self) -> None:
        if self.iface is None:
            return
        canvas = self.iface.mapCanvas()
        if self.tool is None:
            self.tool = ProfileMapTool(canvas)
            self.tool.lineDrawn.connect(self.line_drawn)
        canvas.setMapTool(self.tool)

    def line_drawn(self, a: QgsPointXY, b: QgsPointXY) -> None:
        crs = self.iface.mapCanvas().mapSettings().destinationCrs() if self.iface is not None else None
        try:
            self.compute(a, b, crs)
        except Exception as exc:  # a message for the user, never a traceback
            self.lbl_steps.setText(f"<span style='color:#c62828'>{exc}</span>")

    # ------------------------------------------------------------------ numbers
    def run_data(self) -> Any:
        from backend.geodata import load_run

        d = Path(self.fw_run.filePath().strip())
        if not (d / "displacement.tif").exists():
            raise ValueError(f"Choose the folder of a finished run (no displacement.tif in '{d}').")
        if self._run is None or self._run_dir != d:
            self._run, self._run_dir = load_run(d), d
            QgsSettings().setValue(SETTINGS_PREFIX + "last_run_dir", str(d))
        return self._run

    def compute(self, a: QgsPointXY, b: QgsPointXY, crs: QgsCoordinateReferenceSystem | None = None) -> Any:
        """The profile from ``a`` to ``b`` (in ``crs``, default the run's CRS); updates the plot and the text."""
        from backend.offsets import profile_along_line
        from backend.trace import TRACE_FILE, TRACE_LAYER, read_trace

        run = self.run_data()
        run_crs = QgsCoordinateReferenceSystem.fromWkt(run.crs_wkt)
        if crs is not None and crs.isValid() and crs != run_crs:
            tr = QgsCoordinateTransform(crs, run_crs, QgsProject.instance())
            a, b = tr.transform(a), tr.transform(b)
        line = np.array([[a.x(), a.y()], [b.x(), b.y()]])
        trace = None
        tf = run.run_dir / TRACE_FILE if run.run_dir is not None else None
        if tf is not None and tf.exists():
            trace = read_trace(tf, run.crs_wkt, TRACE_LAYER)
        exclude = float(self.spin_exclude.value()) or None
        QgsSettings().setValue(SETTINGS_PREFIX + "profile_width", float(self.spin_width.value()))
        self.profile = profile_along_line(run, line, width=float(self.spin_width.value()), exclude=exclude,
                                          trace=trace)
        self.show_profile()
        return self.profile

    def steps_text(self) -> str:
        p = self.profile
        rows = "".join(f"<tr><td>{c}</td><td align='right'>{p.steps[c]['value']:+.3f}</td><td>±</td>"
                       f"<td align='right'>{p.steps[c]['sigma']:.3f} m</td></tr>"
                       for c in ("parallel", "normal", "vertical"))
        sense = "left-lateral" if p.steps["parallel"]["value"] > 0 else "right-lateral"
        return (f"<b>Steps</b> (right minus left side, fault at {p.fault_m:.0f} m, strike {p.strike_deg:.0f}°, "
                f"±{p.exclude_m:g} m ignored): <table>{rows}</table>fault-parallel sign: {sense}")

    def show_profile(self) -> None:
        self.lbl_steps.setText(self.steps_text())
        if self.figure is not None:
            self.figure.clear()
            axes = self.figure.subplots(2, 1, sharex=True)
            self.profile.plot(axes=axes)
            for ax in axes:
                ax.tick_params(labelsize=7)
                ax.yaxis.label.set_size(7)
                ax.xaxis.label.set_size(7)
            self.canvas.draw()

    # ------------------------------------------------------------------ exports
    def _target(self, path: str | None, caption: str, filt: str, suffix: str) -> Path | None:
        if self.profile is None:
            self.lbl_steps.setText("Draw a profile first.")
            return None
        if path is None:
            start = str(self._run_dir / f"profile{suffix}") if self._run_dir else ""
            path, _ = QFileDialog.getSaveFileName(self, caption, start, filt)
            if not path:
                return None
        p = Path(path)
        return p if p.suffix.lower() == suffix else p.with_suffix(suffix)

    def export_csv(self, path: str | None = None) -> Path | None:
        p = self._target(path, "Profile as CSV", "CSV (*.csv)", ".csv")
        return self.profile.write_csv(p) if p else None

    def export_gpkg(self, path: str | None = None) -> Path | None:
        p = self._target(path, "Profile as GeoPackage", "GeoPackage (*.gpkg)", ".gpkg")
        return self.profile.write_gpkg(p, self._run.crs_wkt) if p else None

    def export_png(self, path: str | None = None) -> Path | None:
        p = self._target(path, "Profile plot as PNG", "PNG (*.png)", ".png")
        if p is None:
            return None
        if self.figure is not None:
            self.figure.savefig(p, dpi=150)
        else:
            self.profile.plot(p)
        return p

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        if self.tool is not None and self.iface is not None:
            self.tool.reset()
            self.iface.mapCanvas().unsetMapTool(self.tool)
        super().closeEvent(event)
