"""QuakeFusion QGIS plugin: menu + toolbar action, the main dialog, the background task, the Processing provider.

``QuakeFusionTask`` (a QgsTask) runs ``runner.execute`` - hence ``backend.pipeline.run_estimate`` - in a worker
thread; progress goes to the task manager and the dialog, ``cancel()`` stops within one tile; result layers are
added in ``finished()`` on the main thread. Heavy modules (rasterio, onnxruntime) are imported only inside the
task, so QGIS starts fast and the plugin loads even when they are missing (then the dependency dialog shows).
"""

from __future__ import annotations

import html
import os
import traceback
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import QTimer, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from . import deps
from .runner import LOG_TAG, RunOutcome, RunSpec

MENU = "&QuakeFusion"


def log(message: str, level: Any = Qgis.Info) -> None:
    """Write to the 'QuakeFusion' tab of the QGIS log (thread-safe)."""
    QgsMessageLog.logMessage(message, LOG_TAG, level)


class QuakeFusionTask(QgsTask):
    """One run in the background. Signals: ``message(str)`` (stage text) and ``done(bool ok, str text)``."""

    message = pyqtSignal(str)
    done = pyqtSignal(bool, str)

    def __init__(self, spec: RunSpec, iface: Any = None) -> None:
        super().__init__(f"QuakeFusion: {spec.run_name}", QgsTask.CanCancel)
        self.spec = spec
        self.iface = iface
        self.outcome: RunOutcome | None = None
        self.error: str | None = None
        self.error_input: str | None = None
        self.details: str | None = None
        self.group: Any = None
        self.layers: list[Any] = []

    # worker thread ------------------------------------------------------------------------------------------------
    def _progress(self, fraction: float, text: str) -> None:
        self.setProgress(100.0 * fraction)
        self.message.emit(text)

    def run(self) -> bool:
        try:
            from .backend.errors import Cancelled, PipelineError
            from .runner import execute
        except ImportError as exc:  # a dependency is missing
            self.error = (f"a Python package is missing ({exc.name or exc}). Fix: Plugins > QuakeFusion > Install "
                          "dependencies")
            self.details = traceback.format_exc()
            return False
        try:
            log(f"run '{self.spec.run_name}' started: inputs {sorted(self.spec.inputs)}, device {self.spec.device}, "
                f"tile {self.spec.tile}, output {self.spec.out_root}")
            self.outcome = execute(self.spec, progress=self._progress, cancel=self.isCanceled, log=log)
            return True
        except Cancelled:
            return False
        except PipelineError as exc:
            self.error, self.error_input = exc.message, exc.input_name
            return False
        except MemoryError:
            self.error = "not enough memory. Fix: choose a smaller tile size (Advanced) or a smaller extent"
            self.details = traceback.format_exc()
            return False
        except Exception as exc:  # never a traceback in the user's face: message bar + log
            self.error = f"unexpected error ({type(exc).__name__}: {exc}). Details are in the QuakeFusion log"
            self.details = traceback.format_exc()
            return False

    # main thread --------------------------------------------------------------------------------------------------
    def finished(self, ok: bool) -> None:  # noqa: FBT001 (QgsTask API)
        bar = self.iface.messageBar() if self.iface is not None else None
        if ok and self.outcome is not None:
            try:
                from .results import add_layers

                self.group, self.layers = add_layers(self.outcome.files, self.spec.run_name)
            except Exception as exc:
                ok = False
                self.error = f"the results were written to {self.outcome.out_dir} but could not be added ({exc})"
                self.details = traceback.format_exc()
        if ok and self.outcome is not None:
            folder = self.outcome.out_dir
            url = QUrl.fromLocalFile(str(folder)).toString()
            text = (f"'{html.escape(self.spec.run_name)}' finished in {self.outcome.seconds:.1f} s on "
                    f"{self.outcome.device.upper()}: {len(self.layers)} layers added. "
                    f"<a href=\"{url}\">Open the output folder</a>")
            if bar is not None:
                bar.pushMessage("QuakeFusion", text, Qgis.Success, 15)
            if self.outcome.valid_fraction == 0.0:
                warn = ("the model returned no valid displacement (NaN everywhere) for these inputs. Try adding the "
                        "interferogram or another modality; details in the QuakeFusion log")
                if bar is not None:
                    bar.pushMessage("QuakeFusion", warn, Qgis.Warning, 0)
                log(warn, Qgis.Warning)
            log(f"run '{self.spec.run_name}' done: {len(self.layers)} layers from {folder}", Qgis.Success)
            self.done.emit(True, f"Done: {len(self.layers)} layers added from {folder}")
            return
        if self.isCanceled():
            text = "Run cancelled; nothing was written."
            if bar is not None:
                bar.pushMessage("QuakeFusion", text, Qgis.Info, 8)
            log(f"run '{self.spec.run_name}' cancelled")
            self.done.emit(False, text)
            return
        reason = self.error or "the run stopped without a reason (see the QuakeFusion log)"
        if bar is not None:
            bar.pushMessage("QuakeFusion failed", reason, Qgis.Critical, 0)
        log(f"run '{self.spec.run_name}' failed: {reason}", Qgis.Critical)
        if self.details:
            log(self.details, Qgis.Critical)
        self.done.emit(False, f"Failed: {reason}")


class QuakeFusionPlugin:
    """What QGIS's ``classFactory`` returns: adds and removes the menu, toolbar, dialog and provider."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.plugin_dir = os.path.dirname(__file__)
        self.actions: list[QAction] = []
        self.toolbar: Any = None
        self.dialog: Any = None
        self.deps_dialog: Any = None
        self.provider: Any = None
        self.tasks: list[QuakeFusionTask] = []

    # QGIS plugin API ---------------------------------------------------------------------------------------------
    def initProcessing(self) -> None:  # noqa: N802
        from .processing_provider import QuakeFusionProvider

        if self.provider is None:
            self.provider = QuakeFusionProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        icon = QIcon(os.path.join(self.plugin_dir, "icon.png"))
        main = self.iface.mainWindow()
        self.action_run = QAction(icon, "Estimate displacement…", main)
        self.action_run.setObjectName("quakefusion_estimate")
        self.action_run.setToolTip("QuakeFusion: estimate earthquake ground displacement (optical, SAR, InSAR, "
                                   "DEM)")
        self.action_run.triggered.connect(self.show_dialog)
        self.action_deps = QAction("Install dependencies…", main)
        self.action_deps.setObjectName("quakefusion_deps")
        self.action_deps.triggered.connect(lambda: self.show_deps_dialog(force=True))
        self.actions = [self.action_run, self.action_deps]
        for a in self.actions:
            self.iface.addPluginToRasterMenu(MENU, a)
        self.toolbar = self.iface.addToolBar("QuakeFusion")
        self.toolbar.setObjectName("QuakeFusionToolbar")
        self.toolbar.addAction(self.action_run)
        self.initProcessing()
        if deps.missing():
            QTimer.singleShot(0, self.show_deps_dialog)

    def unload(self) -> None:
        for task in list(self.tasks):
            try:
                task.cancel()
            except RuntimeError:
                pass
        for a in self.actions:
            self.iface.removePluginRasterMenu(MENU, a)
            a.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.toolbar.clear()
            self.toolbar.hide()
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.dialog is not None:
            self.dialog.disconnect_project()
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        if self.deps_dialog is not None:
            self.deps_dialog.close()
            self.deps_dialog.deleteLater()
            self.deps_dialog = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # dialogs -----------------------------------------------------------------------------------------------------
    def show_dialog(self) -> Any:
        if deps.missing():
            self.show_deps_dialog()
        if self.dialog is None:
            from .ui.main_dialog import MainDialog

            self.dialog = MainDialog(self.iface, self.iface.mainWindow(), start_task=self.start_task)
        self.dialog.validate()
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def show_deps_dialog(self, force: bool = False) -> Any:
        missing = deps.missing()
        if not missing and not force:
            return None
        from .ui.deps_dialog import DepsDialog

        if self.deps_dialog is None:
            self.deps_dialog = DepsDialog(missing or list(deps.REQUIRED), self.iface.mainWindow())
        self.deps_dialog.show()
        return self.deps_dialog

    # tasks -------------------------------------------------------------------------------------------------------
    def start_task(self, spec: RunSpec) -> QuakeFusionTask:
        """Create the task, keep a reference (QGIS's task manager does not own the Python object) and start it."""
        task = QuakeFusionTask(spec, self.iface)
        self.tasks.append(task)
        task.done.connect(lambda *_: self.tasks.remove(task) if task in self.tasks else None)
        QgsApplication.taskManager().addTask(task)
        return task


def output_folder_url(path: Path) -> str:
    return QUrl.fromLocalFile(str(path)).toString()
