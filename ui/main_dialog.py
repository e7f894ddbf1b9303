"""The QuakeFusion dialog: inputs per modality, InSAR settings, extent, output, device; inline validation.

Layout comes from ``main_dialog.ui`` (Qt Designer). The dialog never runs the pipeline itself: ``Run`` builds a
:class:`runner.RunSpec` and hands it to ``start_task`` (the plugin's QgsTask factory); progress and the result
come back through the task's signals. Nothing heavy is imported at module import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.gui import QgsFileWidget, QgsMapToolExtent
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QEvent, Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from backend import config as C

from ..app import deps
from ..app.runner import ANGLES, MODALITIES, MoreIfgs, RunSpec, default_run_name, problems

FORM_CLASS, _ = uic.loadUiType(os.path.join(os.path.dirname(__file__), "main_dialog.ui"))

SETTINGS_PREFIX = "QuakeFusion/"
ROWS = (*MODALITIES, *ANGLES)
HUMAN = {
    "optical_pre": "optical pre-event", "optical_post": "optical post-event", "sar_pre": "SAR amplitude pre-event",
    "sar_post": "SAR amplitude post-event", "phase": "interferogram", "coherence": "coherence", "dem": "DEM",
    "incidence": "LOS incidence", "heading": "LOS heading",
}
WAVELENGTH_PRESETS = [(p.label, p.value) for p in C.WAVELENGTH_PRESETS] + [("Custom", None)]
SIGN_PRESETS = [(p.label, p.value, p.explanation) for p in C.SIGN_PRESETS] + [("Custom", None,
                                                                               C.CUSTOM_SIGN_EXPLANATION)]
# how the dialog names a backend input or setting in the problems of backend.config.check
WIDGET_LABELS = {**{k: f"the {v}" for k, v in HUMAN.items()}, "wavelength": "the radar wavelength",
                 "tile": "the tile size (Advanced)", "model": "the model file (Advanced)", "overlap": "the overlap"}
EXTENT_MODES = [
    ("intersection", "Intersection of the input layers"),
    ("canvas", "Current map canvas extent"),
    ("drawn", "Rectangle drawn on the map"),
]
DEVICES = [("auto", "Auto (GPU if it works, else CPU)"), ("cuda", "GPU (CUDA)"), ("cpu", "CPU")]
# Sensor presets: (label, wavelength, LOS heading (deg, clockwise from north, of a right-looking radar), incidence
# (deg, mid-swath)). The backend's LOS is that of a right-looking radar; NISAR looks left, so its LOS is the one of a
# right-looking radar flying the opposite way: heading = flight direction + 180 deg. Mid-swath incidences are a
# starting point: give the incidence/heading rasters of the product when you have them.
SENSOR_PRESETS = [
    ("Sensor preset…", None, None, None),
    ("Sentinel-1 IW ascending", C.SENTINEL1_WAVELENGTH_M, -12.0, 39.0),
    ("Sentinel-1 IW descending", C.SENTINEL1_WAVELENGTH_M, -168.0, 39.0),
    ("ALOS-2 PALSAR-2 ascending (right-looking)", C.ALOS2_WAVELENGTH_M, -10.0, 36.0),
    ("ALOS-2 PALSAR-2 descending (right-looking)", C.ALOS2_WAVELENGTH_M, -170.0, 36.0),
    ("NISAR L-band ascending (left-looking)", C.NISAR_L_WAVELENGTH_M, 168.0, 40.0),
    ("NISAR L-band descending (left-looking)", C.NISAR_L_WAVELENGTH_M, 12.0, 40.0),
]
FIT_HEIGHT = 700  # the dialog fits a 768-px-high screen (title bar and task bar take the rest)


def help_url() -> str:
    """file:// URL of the user guide shipped with the plugin (docs/user_guide.md)."""
    from qgis.PyQt.QtCore import QUrl

    return QUrl.fromLocalFile(str(Path(__file__).resolve().parents[1] / "docs" / "user_guide.md")).toString()


def available_devices() -> tuple[bool, str]:
    """(GPU usable?, a sentence for the user): a GPU is claimed only when its CUDA provider really initialises
    (``app.deps.gpu_status``), not merely when a GPU build of onnxruntime is installed."""
    return deps.gpu_status()


class _SettingsScroll(QScrollArea):
    """The settings' scroll area: asks for at most 420 px (the rest of the dialog needs ~250 px), and for the width of
    its content (at most 780 px: enough for the layer rows; the interferogram table scrolls), so that layer names
    are not cut."""

    def sizeHint(self) -> Any:  # noqa: N802 (Qt API)
        h = super().sizeHint()
        inner = self.widget()
        if inner is not None:
            need = inner.sizeHint().width() + self.verticalScrollBar().sizeHint().width() + 4
            h.setWidth(min(max(h.width(), need), 780))
        h.setHeight(min(h.height(), 420))
        return h

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt API)
        if obj is self.widget() and event.type() == QEvent.LayoutRequest:
            self.updateGeometry()  # the content's size changed: the dialog asks for our hints again
        return super().eventFilter(obj, event)

    def minimumSizeHint(self) -> Any:  # noqa: N802 (Qt API)
        """Never narrower than the settings' rows: this area does not scroll sideways, and a top-level adjustSize
        (capped at 2/3 of the screen) would otherwise cut the columns off. Followed live (a long layer name)."""
        h = super().minimumSizeHint()
        inner = self.widget()
        if inner is not None:
            need = inner.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 4
            h.setWidth(min(max(h.width(), need), 900))
        return h


class MainDialog(QDialog, FORM_CLASS):
    """The main dialog. ``start_task(spec)`` must return a started task with ``progressChanged``, ``message``,
    ``taskCompleted``/``taskTerminated`` signals and ``cancel()`` (the plugin's ``QuakeFusionTask``)."""

    def __init__(self, iface: Any = None, parent: Any = None,
                 start_task: Callable[[RunSpec], Any] | None = None,
                 show_tools: Callable[[], Any] | None = None) -> None:
        super().__init__(parent)
        self.setupUi(self)
        self._wrap_in_scroll_area()
        self.iface = iface
        self.start_task = start_task
        self.task: Any = None
        self.drawn_extent: tuple[QgsRectangle, QgsCoordinateReferenceSystem] | None = None
        self._extent_tool: Any = None
        self._previous_tool: Any = None
        self._setup_rows()
        self._setup_insar()
        self._setup_area()
        self._setup_advanced()
        self.btn_run.clicked.connect(self.run)
        self.btn_cancel.clicked.connect(self.cancel_run)
        self.btn_close.clicked.connect(self.close)
        self.btn_help = QPushButton("Help")
        self.btn_help.setToolTip("Open the QuakeFusion user guide")
        self.btn_help.clicked.connect(self.open_help)
        self.buttons.insertWidget(0, self.btn_help)
        self.btn_tools = QPushButton("Geologist's tools…")
        self.btn_tools.setToolTip("Rupture trace, offsets along strike, profiles, arrows, report and export of a "
                                  "finished run (the last run is filled in)")
        self.btn_tools.setEnabled(show_tools is not None)
        if show_tools is not None:
            self.btn_tools.clicked.connect(lambda _=False: show_tools())
        self.buttons.insertWidget(1, self.btn_tools)
        self.btn_cancel.setEnabled(False)
        self.progress.setValue(0)
        QgsProject.instance().layersAdded.connect(self.validate)
        QgsProject.instance().layersRemoved.connect(self.validate)
        self.validate()
        # now that every row exists: as wide as the settings ask
        self.resize(max(self.width(), self.scroll.sizeHint().width() + 2 * self.main_layout.spacing() + 24),
                    self.height())

    # ------------------------------------------------------------------ set-up
    def _wrap_in_scroll_area(self) -> None:
        """Inputs, InSAR, area and advanced settings scroll; validation, progress and buttons stay visible. The
        dialog opens at most FIT_HEIGHT px high (a 768-px screen)."""
        inner = QWidget()
        box = QVBoxLayout(inner)
        box.setContentsMargins(0, 0, 0, 0)
        for w in (self.intro, self.grp_inputs, self.grp_insar, self.grp_area, self.grp_advanced):
            self.main_layout.removeWidget(w)
            box.addWidget(w)
        box.addStretch(1)
        self.scroll = _SettingsScroll()
        self.scroll.setObjectName("scroll_settings")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.NoFrame)
        self.scroll.setWidget(inner)
        inner.installEventFilter(self.scroll)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.main_layout.insertWidget(0, self.scroll, 1)
        self.resize(max(self.width(), inner.sizeHint().width() + 30), FIT_HEIGHT - 40)

    def open_help(self) -> bool:
        return QDesktopServices.openUrl(QUrl(help_url()))

    def _setup_rows(self) -> None:
        for key in ROWS:
            cb = self.combo(key)
            cb.setFilters(QgsMapLayerProxyModel.RasterLayer)
            cb.setAllowEmptyLayer(True)
            cb.setShowCrs(True)
            cb.setLayer(None)
            cb.setMinimumWidth(250)  # "optical_pre [EPSG:32645]" readable, not "optical_p"
            band = getattr(self, f"band_{key}")
            band.setLayer(None)
            band.setMinimumWidth(120)
            cb.layerChanged.connect(band.setLayer)
            cb.layerChanged.connect(self.validate)
            band.bandChanged.connect(self.validate)
            getattr(self, f"browse_{key}").clicked.connect(lambda _=False, k=key: self.browse(k))
        for key in ANGLES:
            self.combo(key).layerChanged.connect(lambda _lyr, k=key: getattr(self, f"const_{k}").setEnabled(
                self.combo(k).currentLayer() is None))
        self.cb_trace.setFilters(QgsMapLayerProxyModel.LineLayer)
        self.cb_trace.setAllowEmptyLayer(True)
        self.cb_trace.setShowCrs(True)
        self.cb_trace.setLayer(None)
        # finding the trace is for runs without one: off and greyed out while a trace layer is chosen
        self.cb_trace.layerChanged.connect(self._trace_changed)
        s = QgsSettings()
        self.const_incidence.setValue(float(s.value(SETTINGS_PREFIX + "incidence_deg", 39.0)))
        self.const_heading.setValue(float(s.value(SETTINGS_PREFIX + "heading_deg", -12.0)))

    def _setup_insar(self) -> None:
        for label, value in WAVELENGTH_PRESETS:
            self.cb_wavelength_preset.addItem(label, value)
        for label, sign, _ in SIGN_PRESETS:
            self.cb_sign_preset.addItem(label, sign)
        self.cb_sign_custom.addItem("+1: phase grows with range increase", 1)
        self.cb_sign_custom.addItem("-1: phase grows with range decrease", -1)
        self.cb_wavelength_preset.currentIndexChanged.connect(self._wavelength_preset_changed)
        self.cb_sign_preset.currentIndexChanged.connect(self._sign_preset_changed)
        self.spin_wavelength.valueChanged.connect(self.validate)
        s = QgsSettings()
        self.cb_wavelength_preset.setCurrentIndex(int(s.value(SETTINGS_PREFIX + "wavelength_preset", 0)))
        self.cb_sign_preset.setCurrentIndex(int(s.value(SETTINGS_PREFIX + "sign_preset", 0)))
        self._wavelength_preset_changed()
        self._sign_preset_changed()
        self.cb_sensor = QComboBox()
        self.cb_sensor.setObjectName("cb_sensor")
        self.cb_sensor.setToolTip("Sets the wavelength and the constant LOS heading/incidence (mid-swath) of a "
                                  "sensor; rasters of the real angles are better when the product has them")
        for label, *_ in SENSOR_PRESETS:
            self.cb_sensor.addItem(label)
        self.cb_sensor.currentIndexChanged.connect(self.apply_sensor)
        self.grid_insar.addWidget(QLabel("Sensor"), 3, 0)
        self.grid_insar.addWidget(self.cb_sensor, 3, 1, 1, 2)
        self._setup_more_ifgs()

    IFG_COLUMNS = ("Wrapped phase file", "Coherence file", "LOS vector file (E,N,U)", "Wavelength (m)", "Sign",
                   "Incidence (deg)", "Heading (deg)")

    def _setup_more_ifgs(self) -> None:
        """More interferograms (ascending + descending, C/L band): one table row each; the interferogram above is
        the first (the one the network sees), every row is unwrapped and enters the 3-D inversion."""
        lbl = QLabel("More interferograms (e.g. the other track): one row each, file paths and numbers are "
                     "editable; a LOS vector file (3 bands E, N, U) replaces incidence/heading. The interferogram "
                     "above is the first; all are unwrapped and combined into east/north/up.")
        lbl.setWordWrap(True)
        self.tbl_ifgs = QTableWidget(0, len(self.IFG_COLUMNS))
        self.tbl_ifgs.setObjectName("tbl_ifgs")
        self.tbl_ifgs.setHorizontalHeaderLabels(list(self.IFG_COLUMNS))
        self.tbl_ifgs.setMinimumHeight(90)
        self.tbl_ifgs.itemChanged.connect(self.validate)
        self.btn_add_ifg = QPushButton("Add interferogram…")
        self.btn_add_ifg.setObjectName("btn_add_ifg")
        self.btn_add_ifg.clicked.connect(self.browse_ifg)
        self.btn_remove_ifg = QPushButton("Remove selected")
        self.btn_remove_ifg.setObjectName("btn_remove_ifg")
        self.btn_remove_ifg.clicked.connect(self.remove_ifg_rows)
        row = QHBoxLayout()
        row.addWidget(self.btn_add_ifg)
        row.addWidget(self.btn_remove_ifg)
        row.addStretch(1)
        self.grid_insar.addWidget(lbl, 4, 0, 1, 3)
        self.grid_insar.addWidget(self.tbl_ifgs, 5, 0, 1, 3)
        self.grid_insar.addLayout(row, 6, 0, 1, 3)
        self._setup_products()

    def _setup_products(self) -> None:
        """InSAR product folders (LiCSAR/COMET interferograms, ASF HyP3 products): one interferogram each,
        with the phase, coherence, line of sight, wavelength and sign read from the product's own files
        (``backend.sarproducts``); its DEM when no DEM layer is chosen."""
        lbl = QLabel("InSAR products as downloaded: a LiCSAR interferogram folder (YYYYMMDD_YYYYMMDD) or an ASF "
                     "HyP3 product (zip or folder) per row. Phase, coherence, line of sight, wavelength and sign "
                     "come from the product's files; each is one more interferogram (the first when no phase layer "
                     "is chosen).")
        lbl.setWordWrap(True)
        self.lst_products = QListWidget()
        self.lst_products.setObjectName("lst_products")
        self.lst_products.setMinimumHeight(48)
        self.lst_products.setMaximumHeight(72)
        self.btn_add_product = QPushButton("Add product folder…")
        self.btn_add_product.setObjectName("btn_add_product")
        self.btn_add_product.clicked.connect(self.browse_product)
        self.btn_add_product_file = QPushButton("Add zip or file…")
        self.btn_add_product_file.setObjectName("btn_add_product_file")
        self.btn_add_product_file.setToolTip("A HyP3 product zip as downloaded, or any file of a product")
        self.btn_add_product_file.clicked.connect(self.browse_product_file)
        self.btn_remove_product = QPushButton("Remove selected")
        self.btn_remove_product.setObjectName("btn_remove_product")
        self.btn_remove_product.clicked.connect(self.remove_products)
        row = QHBoxLayout()
        row.addWidget(self.btn_add_product)
        row.addWidget(self.btn_add_product_file)
        row.addWidget(self.btn_remove_product)
        row.addStretch(1)
        self.grid_insar.addWidget(lbl, 7, 0, 1, 3)
        self.grid_insar.addWidget(self.lst_products, 8, 0, 1, 3)
        self.grid_insar.addLayout(row, 9, 0, 1, 3)

    def add_product(self, path: str) -> None:
        """Append a product folder (or one of its files); the validation names it if it cannot be read."""
        if path and path not in self.products():
            self.lst_products.addItem(path)
        self.validate()

    def browse_product(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "LiCSAR interferogram folder or unzipped HyP3 product", "")
        if path:
            self.add_product(path)

    def browse_product_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "HyP3 product zip, or a file of a LiCSAR/HyP3 product", "",
                                              "Products (*.zip *.tif);;All files (*)")
        if path:
            self.add_product(path)

    def remove_products(self) -> None:
        rows = sorted({i.row() for i in self.lst_products.selectedIndexes()} or {self.lst_products.count() - 1},
                      reverse=True)
        for r in rows:
            if r >= 0:
                self.lst_products.takeItem(r)
        self.validate()

    def products(self) -> list[str]:
        lst = getattr(self, "lst_products", None)  # validation during set-up, before the list exists
        return [] if lst is None else [lst.item(i).text() for i in range(lst.count())]

    def add_ifg_row(self, phase: str, coherence: str = "", los_vector: str = "", wavelength: float | None = None,
                    sign: int | None = None, incidence: float | None = None, heading: float | None = None) -> int:
        """Append an interferogram row (defaults: the wavelength, sign and angle constants set above)."""
        vals = [phase, coherence, los_vector,
                f"{self.wavelength_m() if wavelength is None else wavelength:g}",
                f"{self.phase_sign() if sign is None else sign:+d}",
                f"{float(self.const_incidence.value()) if incidence is None else incidence:g}",
                f"{float(self.const_heading.value()) if heading is None else heading:g}"]
        self.tbl_ifgs.blockSignals(True)
        r = self.tbl_ifgs.rowCount()
        self.tbl_ifgs.insertRow(r)
        for c, v in enumerate(vals):
            self.tbl_ifgs.setItem(r, c, QTableWidgetItem(str(v)))
        self.tbl_ifgs.blockSignals(False)
        self.validate()
        return r

    def browse_ifg(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Wrapped interferogram (rad)", "", "Rasters (*.tif *.tiff "
                                              "*.vrt *.img *.nc);;All files (*)")
        if path:
            self.add_ifg_row(path)

    def remove_ifg_rows(self) -> None:
        rows = sorted({i.row() for i in self.tbl_ifgs.selectedIndexes()} or {self.tbl_ifgs.rowCount() - 1},
                      reverse=True)
        for r in rows:
            if r >= 0:
                self.tbl_ifgs.removeRow(r)
        self.validate()

    def more_ifgs(self) -> MoreIfgs:
        """The table as the runner's MoreIfgs (one value per row; a number that does not parse is left out, so the
        backend's check names the missing value)."""
        m = MoreIfgs()
        if getattr(self, "tbl_ifgs", None) is None:  # validation during set-up, before the table exists
            return m

        def cell(r: int, c: int) -> str:
            it = self.tbl_ifgs.item(r, c)
            return it.text().strip() if it is not None else ""

        def num(text: str) -> float | None:
            try:
                return float(text)
            except ValueError:
                return None

        rows = [r for r in range(self.tbl_ifgs.rowCount()) if cell(r, 0)]
        m.phases = [cell(r, 0) for r in rows]
        if any(cell(r, 1) for r in rows):
            m.coherences = [cell(r, 1) or None for r in rows]
        if any(cell(r, 2) for r in rows):
            m.los_vectors = [cell(r, 2) or None for r in rows]
        m.wavelengths = [num(cell(r, 3)) for r in rows]
        m.phase_signs = [int(num(cell(r, 4)) or 1) for r in rows]
        m.incidences = [num(cell(r, 5)) for r in rows]
        m.headings = [num(cell(r, 6)) for r in rows]
        return m

    def apply_sensor(self, index: int) -> None:
        """Apply a sensor preset (wavelength, LOS heading and incidence constants)."""
        _label, wavelength, heading, incidence = SENSOR_PRESETS[index]
        if wavelength is None:
            return
        i = next((k for k, (_l, v) in enumerate(WAVELENGTH_PRESETS) if v is not None and abs(v - wavelength) < 1e-6),
                 None)
        if i is None:
            self.cb_wavelength_preset.setCurrentIndex(len(WAVELENGTH_PRESETS) - 1)
            self.spin_wavelength.setValue(wavelength)
        else:
            self.cb_wavelength_preset.setCurrentIndex(i)
        self.const_heading.setValue(heading)
        self.const_incidence.setValue(incidence)
        self.validate()

    def _setup_area(self) -> None:
        for key, label in EXTENT_MODES:
            self.cb_extent_mode.addItem(label, key)
        self.cb_extent_mode.currentIndexChanged.connect(self._extent_mode_changed)
        self.btn_draw_extent.clicked.connect(self.draw_extent)
        self.fw_output.setStorageMode(QgsFileWidget.GetDirectory)
        self.fw_output.setDialogTitle("QuakeFusion output folder")
        self.fw_output.setFilePath(str(QgsSettings().value(SETTINGS_PREFIX + "output_dir", "")))
        self.fw_output.fileChanged.connect(self.validate)
        self.le_run_name.setText(str(QgsSettings().value(SETTINGS_PREFIX + "run_name", "")) or default_run_name())
        self.le_run_name.textChanged.connect(self.validate)
        self._extent_mode_changed()

    def _setup_advanced(self) -> None:
        gpu, text = available_devices()
        for key, label in DEVICES:
            self.cb_device.addItem(label, key)
        if not gpu:
            item = self.cb_device.model().item(1)
            item.setEnabled(False)
            item.setToolTip("No CUDA provider in this onnxruntime")
        self.lbl_device_info.setText(text)
        self.cb_device.currentIndexChanged.connect(self.validate)
        self.fw_model.setFilter("ONNX model (*.onnx)")
        self.fw_model.fileChanged.connect(self.validate)
        self.spin_tile.setRange(C.MIN_TILE, C.MAX_TILE)
        self.spin_tile.setSingleStep(C.TILE_STEP)
        self.spin_tile.valueChanged.connect(self._tile_changed)
        self._tile_changed()

    def _tile_changed(self, *_: Any) -> None:
        overlap, note = C.overlap_for(int(self.spin_tile.value()))
        text = (f"Smaller tiles use less memory but see less context: tiles overlap by {overlap} px (the model's "
                "receptive field).")
        self.lbl_tile_info.setText(text + (f" Below {C.min_tile_for()} px, expect faint seams." if note else ""))
        self.validate()

    # ------------------------------------------------------------------ helpers
    def combo(self, key: str) -> Any:
        return getattr(self, f"cb_{key}")

    def layer(self, key: str) -> QgsRasterLayer | None:
        return self.combo(key).currentLayer()

    def set_input(self, key: str, layer: QgsRasterLayer | None, band: int = 1) -> None:
        """Select ``layer`` (and ``band``) for a modality row (used by tests and by the browse button)."""
        self.combo(key).setLayer(layer)
        getattr(self, f"band_{key}").setLayer(layer)
        if layer is not None:
            getattr(self, f"band_{key}").setBand(band)

    def band(self, key: str) -> int:
        b = getattr(self, f"band_{key}").currentBand()
        return int(b) if b and b > 0 else 1

    def wavelength_m(self) -> float:
        return float(self.spin_wavelength.value())

    def phase_sign(self) -> int:
        sign = self.cb_sign_preset.currentData()
        return int(sign) if sign is not None else int(self.cb_sign_custom.currentData())

    def extent_mode(self) -> str:
        return str(self.cb_extent_mode.currentData())

    def _wavelength_preset_changed(self) -> None:
        value = self.cb_wavelength_preset.currentData()
        self.spin_wavelength.setEnabled(value is None)
        if value is not None:
            self.spin_wavelength.setValue(float(value))
        self.validate()

    def _sign_preset_changed(self) -> None:
        i = self.cb_sign_preset.currentIndex()
        self.cb_sign_custom.setEnabled(self.cb_sign_preset.currentData() is None)
        self.lbl_sign_explain.setText(SIGN_PRESETS[max(i, 0)][2])
        self.validate()

    def _extent_mode_changed(self) -> None:
        self.btn_draw_extent.setEnabled(self.extent_mode() == "drawn")
        self._update_extent_label()
        self.validate()

    def _update_extent_label(self) -> None:
        mode = self.extent_mode()
        if mode == "intersection":
            text = "The output covers the area common to every chosen layer."
        elif mode == "canvas":
            text = "The output covers what the map shows when you press Run (cropped to the layers)."
        elif self.drawn_extent is None:
            text = "Press 'Draw on map…' and drag a rectangle on the map."
        else:
            r, crs = self.drawn_extent
            text = (f"Drawn: {r.xMinimum():.1f}, {r.yMinimum():.1f} – {r.xMaximum():.1f}, {r.yMaximum():.1f} "
                    f"({crs.authid()})")
        self.lbl_extent_value.setText(text)

    # ------------------------------------------------------------------ actions
    def browse(self, key: str) -> str | None:
        """Pick a raster file that is not loaded yet; it is added to the project and selected in the row."""
        start = str(QgsSettings().value(SETTINGS_PREFIX + "last_input_dir", ""))
        path, _ = QFileDialog.getOpenFileName(self, f"QuakeFusion: {HUMAN[key]} raster", start,
                                              "Rasters (*.tif *.tiff *.vrt *.img *.nc *.jp2 *.grd);;All files (*)")
        if not path:
            return None
        self.load_file(key, path)
        return path

    def load_file(self, key: str, path: str) -> QgsRasterLayer | None:
        QgsSettings().setValue(SETTINGS_PREFIX + "last_input_dir", os.path.dirname(path))
        layer = QgsRasterLayer(path, Path(path).stem, "gdal")
        if not layer.isValid():
            self.lbl_status.setText(f"<b>{Path(path).name}</b> is not a raster GDAL can read.")
            return None
        QgsProject.instance().addMapLayer(layer)
        self.set_input(key, layer)
        return layer

    def draw_extent(self) -> None:
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is None:
            return
        self._previous_tool = canvas.mapTool()
        self._extent_tool = QgsMapToolExtent(canvas)
        self._extent_tool.extentChanged.connect(self._extent_drawn)
        canvas.setMapTool(self._extent_tool)
        self.hide()

    def _extent_drawn(self, rect: QgsRectangle) -> None:
        canvas = self.iface.mapCanvas()
        self.set_drawn_extent(rect, canvas.mapSettings().destinationCrs())
        if self._previous_tool is not None:
            canvas.setMapTool(self._previous_tool)
        else:
            canvas.unsetMapTool(self._extent_tool)
        self.show()
        self.raise_()

    def set_drawn_extent(self, rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> None:
        self.drawn_extent = (QgsRectangle(rect), QgsCoordinateReferenceSystem(crs))
        self._update_extent_label()
        self.validate()

    # ------------------------------------------------------------------ validation
    def problems(self) -> list[str]:
        """Why Run is disabled, in plain words (empty list: ready)."""
        given = {k: self.layer(k) for k in ROWS if self.layer(k) is not None}
        p: list[str] = []
        missing = deps.missing()
        if missing:
            p.append(f"The Python packages {', '.join(missing)} are needed: use Raster ▸ QuakeFusion ▸ Install "
                     "dependencies.")
        p += self._layer_problems(given)
        # the backend's own rules (pairs, a displacement-sensitive input, wavelength, tile, model file...)
        p += [f"{x.message[0].upper()}{x.message[1:]}: {x.fix}."
              for x in problems(self.spec(with_extent=False), self._label)]
        p += self._output_problems() + self._area_problems(given)
        model = self.fw_model.filePath().strip()
        if not model and not (Path(__file__).resolve().parents[1] / "models" / "quakefusion.onnx").exists():
            p.append("The model shipped with the plugin (models/quakefusion.onnx) is missing: reinstall the plugin "
                     "or choose a model file under Advanced.")
        if self.task is not None:
            p.append("A run is in progress.")
        return p

    def _layer_problems(self, given: dict[str, Any]) -> list[str]:
        p: list[str] = []
        for key, lyr in given.items():
            if lyr.providerType() != "gdal":
                p.append(f"The {HUMAN[key]} layer '{lyr.name()}' is not a file raster ({lyr.providerType()}); save "
                         "it as a GeoTIFF first (right-click > Export > Save As).")
            elif not lyr.isValid():
                p.append(f"The {HUMAN[key]} layer '{lyr.name()}' cannot be read.")
        for a, b, what in (("optical_pre", "optical_post", "optical"), ("sar_pre", "sar_post", "SAR amplitude")):
            if a in given and b in given and given[a].id() == given[b].id() and self.band(a) == self.band(b):
                p.append(f"The {what} pre- and post-event images are the same band of the same layer.")
        return p

    def _output_problems(self) -> list[str]:
        p: list[str] = []
        out = self.fw_output.filePath().strip()
        if not out:
            p.append("Choose an output folder.")
        else:
            parent = Path(out)
            while not parent.exists() and parent != parent.parent:
                parent = parent.parent
            if not os.access(parent, os.W_OK):
                p.append(f"The output folder {out} cannot be written (no permission).")
        if not self.le_run_name.text().strip():
            p.append("Give the run a name.")
        return p

    def _area_problems(self, given: dict[str, Any]) -> list[str]:
        if self.extent_mode() == "drawn" and self.drawn_extent is None:
            return ["Draw the rectangle on the map (or choose another extent)."]
        if self.extent_mode() == "canvas" and given and self.iface is not None \
                and not self._canvas_overlaps(given.values()):
            return ["The map canvas shows no part of the chosen layers: pan/zoom to them or choose another extent."]
        return []

    @staticmethod
    def _label(name: str) -> str:
        return WIDGET_LABELS.get(name, name.replace("_", " "))

    def _canvas_overlaps(self, layers: Any) -> bool:
        canvas = self.iface.mapCanvas()
        ext = canvas.extent()
        crs = canvas.mapSettings().destinationCrs()
        for lyr in layers:
            try:
                tr = QgsCoordinateTransform(lyr.crs(), crs, QgsProject.instance())
                if tr.transformBoundingBox(lyr.extent()).intersects(ext):
                    return True
            except Exception:
                return True  # cannot tell: let the backend decide
        return False

    def validate(self, *_args: Any) -> bool:
        try:
            p = self.problems()
        except RuntimeError:  # a widget or the canvas is already deleted (QGIS is closing): nothing to show
            return False
        self.btn_run.setEnabled(not p)
        if p:
            items = "".join(f"<li>{x}</li>" for x in p)
            self.lbl_validation.setText(f"<span style='color:#a15c00'><b>Run is disabled:</b></span><ul "
                                        f"style='margin-top:0'>{items}</ul>")
        else:
            self.lbl_validation.setText("<span style='color:#2e7d32'><b>Ready to run.</b></span>")
        return not p

    # ------------------------------------------------------------------ run
    def spec(self, with_extent: bool = True) -> RunSpec:
        """What the user chose; ``with_extent=False`` skips the map canvas (validation needs no extent)."""
        inputs = {}
        for key in ROWS:
            lyr = self.layer(key)
            if lyr is not None:
                inputs[key] = (lyr.source(), self.band(key))
        extent = None
        mode = self.extent_mode() if with_extent else None
        if mode == "canvas" and self.iface is not None:
            canvas = self.iface.mapCanvas()
            r = canvas.extent()
            extent = (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum(),
                      canvas.mapSettings().destinationCrs().toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED))
        elif mode == "drawn" and self.drawn_extent is not None:
            r, crs = self.drawn_extent
            extent = (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum(),
                      crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED))
        model = self.fw_model.filePath().strip()
        out_root, run_name = Path(self.fw_output.filePath().strip()), self.le_run_name.text().strip()
        return RunSpec(out_root=out_root, run_name=run_name, trace=self.trace_file(out_root, run_name, with_extent),
                       inputs=inputs, incidence_deg=float(self.const_incidence.value()),
                       heading_deg=float(self.const_heading.value()),
                       wavelength_m=self.wavelength_m() if "phase" in inputs else None,
                       phase_sign=self.phase_sign(), device=str(self.cb_device.currentData()),
                       tile=int(self.spin_tile.value()), model_path=Path(model) if model else None,
                       extent=extent, intersection=True, more_ifgs=self.more_ifgs(), products=self.products(),
                       illumination="auto" if self.chk_relight.isChecked() else "off",
                       find_trace=self.chk_find_trace.isEnabled() and self.chk_find_trace.isChecked())

    def _trace_changed(self, layer: Any) -> None:
        self.chk_find_trace.setEnabled(layer is None)
        if layer is not None:
            self.chk_find_trace.setChecked(False)

    def use_trace(self, trace: Any) -> Any:
        """Choose ``trace`` (a line layer, or a file such as a run's rupture_trace.gpkg: loaded into the project
        unless a layer of that file is there) in the Rupture trace field, for a second run; returns the layer."""
        layer = trace
        if not isinstance(trace, QgsMapLayer):
            path = Path(trace)
            same = [lyr for lyr in QgsProject.instance().mapLayers().values()
                    if lyr.type() == QgsMapLayer.VectorLayer and Path(lyr.source().split("|")[0]) == path]
            layer = same[0] if same else QgsVectorLayer(f"{path}|layername=rupture_trace",
                                                        f"Rupture trace ({path.parent.name})", "ogr")
            if not same:
                QgsProject.instance().addMapLayer(layer)
        self.cb_trace.setLayer(layer)
        self.scroll.ensureWidgetVisible(self.cb_trace, 50, 120)
        self.lbl_status.setText(f"Rupture trace: {layer.name()}. Check the inputs, then Run: the windows stop at the "
                                "trace.")
        return layer

    def trace_file(self, out_root: Path, run_name: str, write: bool) -> str | None:
        """The chosen trace layer as a file (its own, else written to <output>/trace_inputs/<run>.gpkg when
        ``write``: a scratch layer just drawn is saved where run.json can name it)."""
        from ..app.tool_layers import run_trace_input

        return run_trace_input(self.cb_trace.currentLayer(), out_root, run_name, write)

    def remember(self) -> None:
        s = QgsSettings()
        s.setValue(SETTINGS_PREFIX + "output_dir", self.fw_output.filePath().strip())
        s.setValue(SETTINGS_PREFIX + "wavelength_preset", self.cb_wavelength_preset.currentIndex())
        s.setValue(SETTINGS_PREFIX + "sign_preset", self.cb_sign_preset.currentIndex())
        s.setValue(SETTINGS_PREFIX + "incidence_deg", float(self.const_incidence.value()))
        s.setValue(SETTINGS_PREFIX + "heading_deg", float(self.const_heading.value()))
        s.setValue(SETTINGS_PREFIX + "run_name", self.le_run_name.text().strip())

    def run(self) -> Any:
        if not self.validate() or self.start_task is None:
            return None
        self.remember()
        try:
            spec = self.spec()
        except OSError as exc:  # the trace layer could not be saved for the backend
            self.lbl_status.setText(f"Rupture trace: {exc}. Fix: save the layer to a file, or choose none.")
            return None
        self.progress.setValue(0)
        self.lbl_status.setText("Starting…")
        task = self.start_task(spec)
        self.task = task
        task.progressChanged.connect(lambda v: self.progress.setValue(int(v)))
        task.message.connect(self.lbl_status.setText)
        task.done.connect(self._task_done)
        self.btn_cancel.setEnabled(True)
        self.validate()
        return task

    def cancel_run(self) -> None:
        if self.task is not None:
            self.lbl_status.setText("Cancelling… (stops after the current tile)")
            self.task.cancel()

    def _task_done(self, ok: bool, text: str) -> None:
        bad = getattr(self.task, "error_input", None) if not ok else None
        self.task = None
        self.btn_cancel.setEnabled(False)
        self.progress.setValue(100 if ok else 0)
        self.lbl_status.setText(text)  # the run name stays (a second run gets the folder <name>_2)
        self.validate()
        self.highlight(bad)

    def highlight(self, input_name: str | None) -> None:
        """Outline the row the backend blamed (PipelineError.input_name); clears the others."""
        names = {"wavelength": "spin_wavelength", "extent": "cb_extent_mode", "model": "fw_model",
                 "device": "cb_device", "tile": "spin_tile"}
        for key in ROWS:
            self.combo(key).setStyleSheet("")
        for w in names.values():
            getattr(self, w).setStyleSheet("")
        if input_name in ROWS:
            self.combo(input_name).setStyleSheet("QgsMapLayerComboBox { border: 2px solid #c62828; }")
        elif input_name in names:
            getattr(self, names[input_name]).setStyleSheet("border: 2px solid #c62828;")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        if self._extent_tool is not None and self.iface is not None:
            self.iface.mapCanvas().unsetMapTool(self._extent_tool)
        super().closeEvent(event)

    def disconnect_project(self) -> None:
        """Called by the plugin on unload."""
        for sig in (QgsProject.instance().layersAdded, QgsProject.instance().layersRemoved):
            try:
                sig.disconnect(self.validate)
            except TypeError:
                pass


__all__ = ["MainDialog", "available_devices", "help_url", "ROWS", "SENSOR_PRESETS"]
