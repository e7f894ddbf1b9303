"""QuakeFusion QGIS plugin: wires the menu + toolbar actions, the main dialog (``ui/``), the background task, the
Processing provider and the dependency check (``app/``). No logic of its own.

Heavy modules (rasterio, onnxruntime) are imported only inside the task, so QGIS starts fast and the plugin loads
even when they are missing (then the dependency dialog shows).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon
from qgis.PyQt.QtWidgets import QAction

from .app import deps
from .app.runner import RunSpec
from .app.task import QuakeFusionTask, log  # noqa: F401 - log: the plugin's log function for other modules

MENU = "&QuakeFusion"


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
        self.tasks: list[Any] = []
        self.tools_dialog: Any = None
        self.profile_dock: Any = None

    # QGIS plugin API ---------------------------------------------------------------------------------------------
    def initProcessing(self) -> None:  # noqa: N802
        from .app.provider import QuakeFusionProvider

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
        self.action_tools = QAction("Geologist's tools…", main)
        self.action_tools.setObjectName("quakefusion_tools")
        self.action_tools.setToolTip("QuakeFusion: rupture trace, offsets along strike, arrows, components, report")
        self.action_tools.triggered.connect(self.show_tools)
        self.action_profile = QAction("Profile tool", main)
        self.action_profile.setObjectName("quakefusion_profile")
        self.action_profile.setToolTip("QuakeFusion: draw a profile across the fault (left side, then right side)")
        self.action_profile.triggered.connect(self.show_profile)
        self.action_export = QAction("Export run…", main)
        self.action_export.setObjectName("quakefusion_export")
        self.action_export.triggered.connect(lambda: self.show_tools().export())
        self.action_help = QAction("Help", main)
        self.action_help.setObjectName("quakefusion_help")
        self.action_help.triggered.connect(lambda: QDesktopServices.openUrl(QUrl(help_url(self.plugin_dir))))
        self.actions = [self.action_run, self.action_tools, self.action_profile, self.action_export,
                        self.action_help, self.action_deps]
        for a in self.actions:
            self.iface.addPluginToRasterMenu(MENU, a)
        self.toolbar = self.iface.addToolBar("QuakeFusion")
        self.toolbar.setObjectName("QuakeFusionToolbar")
        self.toolbar.addAction(self.action_run)
        self.toolbar.addAction(self.action_tools)
        self.toolbar.addAction(self.action_profile)
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
        if self.tools_dialog is not None:
            self.tools_dialog.close()
            self.tools_dialog.deleteLater()
            self.tools_dialog = None
        if self.profile_dock is not None:
            self.profile_dock.close()
            self.iface.removeDockWidget(self.profile_dock)
            self.profile_dock.deleteLater()
            self.profile_dock = None
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

            self.dialog = MainDialog(self.iface, self.iface.mainWindow(), start_task=self.start_task,
                                     show_tools=self.show_tools)
        self.dialog.validate()
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def show_tools(self) -> Any:
        if self.tools_dialog is None:
            from .ui.tools_dialog import ToolsDialog

            self.tools_dialog = ToolsDialog(self.iface, self.iface.mainWindow(), start=self.start_tool_task,
                                            help_url=help_url(self.plugin_dir), show_profile=self.show_profile,
                                            rerun_with_trace=lambda trace: self.show_dialog().use_trace(trace))
        self.tools_dialog.show()
        self.tools_dialog.raise_()
        return self.tools_dialog

    def show_profile(self) -> Any:
        if self.profile_dock is None:
            from qgis.PyQt.QtCore import Qt

            from .app.profile_tool import ProfileDock

            self.profile_dock = ProfileDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.profile_dock)
        if self.tools_dialog is not None and self.tools_dialog.fw_run.filePath():
            self.profile_dock.fw_run.setFilePath(self.tools_dialog.fw_run.filePath())
        self.profile_dock.show()
        self.profile_dock.activate_tool()
        return self.profile_dock

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


    def start_tool_task(self, task: Any) -> Any:
        """A geologist's tool task (``ToolTask``): kept referenced until done, then started."""
        self.tasks.append(task)
        task.done.connect(lambda *_: self.tasks.remove(task) if task in self.tasks else None)
        QgsApplication.taskManager().addTask(task)
        return task


def help_url(plugin_dir: str) -> str:
    """file:// URL of the shipped user guide (docs/user_guide.md)."""
    return QUrl.fromLocalFile(os.path.join(plugin_dir, "docs", "user_guide.md")).toString()


def output_folder_url(path: Path) -> str:
    return QUrl.fromLocalFile(str(path)).toString()
