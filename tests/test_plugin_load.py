"""The plugin loads the way QGIS loads it (package ``quakefusion`` + classFactory), and unloads cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QEvent
from qgis.PyQt.QtWidgets import QAction, QToolBar

pytestmark = pytest.mark.qgis_slow


def _qf_toolbars(iface) -> list[QToolBar]:
    return [tb for tb in iface.mainWindow().findChildren(QToolBar) if tb.objectName() == "QuakeFusionToolbar"]


def _qf_actions(iface) -> list[QAction]:
    return [a for a in iface.mainWindow().findChildren(QAction) if a.objectName().startswith("quakefusion_")]


def test_load_unload_leaves_nothing_and_loads_twice(qgis_app, qgis_iface, qf_plugin_pkg) -> None:
    reg = QgsApplication.processingRegistry()
    add_menu = qgis_iface.addPluginToRasterMenu
    remove_menu = qgis_iface.removePluginRasterMenu
    for round_ in range(2):
        add_menu.reset_mock()
        remove_menu.reset_mock()
        plugin = qf_plugin_pkg.classFactory(qgis_iface)
        plugin.initGui()
        # menu: own "QuakeFusion" sub-menu under Raster, six entries; a toolbar with the icon action
        assert [c.args[0] for c in add_menu.call_args_list] == ["&QuakeFusion"] * 6
        assert [c.args[1].text() for c in add_menu.call_args_list] == [
            "Estimate displacement…", "Geologist's tools…", "Profile tool", "Export run…", "Help",
            "Install dependencies…"]
        assert not plugin.action_run.icon().isNull()
        tbs = _qf_toolbars(qgis_iface)
        assert len(tbs) == 1 and plugin.action_run in tbs[0].actions()
        assert reg.providerById("quakefusion") is not None
        alg = reg.algorithmById("quakefusion:estimate_displacement")
        assert alg is not None and alg.displayName() == "Estimate displacement (multi-modal)"
        # the toolbar action opens the dialog
        plugin.action_run.trigger()
        assert plugin.dialog is not None and plugin.dialog.isVisible()
        plugin.dialog.btn_tools.click()  # the main dialog's "Geologist's tools…" button
        assert plugin.tools_dialog is not None and plugin.tools_dialog.isVisible()
        plugin.action_tools.trigger()
        assert plugin.tools_dialog.isVisible()
        plugin.action_profile.trigger()
        assert plugin.profile_dock is not None and qgis_iface.mapCanvas().mapTool() is plugin.profile_dock.tool
        assert len([a for a in reg.providerById("quakefusion").algorithms()]) == 7
        plugin.unload()
        QgsApplication.processEvents()
        QgsApplication.sendPostedEvents(None, QEvent.DeferredDelete)  # runs deleteLater
        removed = [(c.args[0], c.args[1]) for c in remove_menu.call_args_list]
        added = [(c.args[0], c.args[1]) for c in add_menu.call_args_list]
        assert removed == added, f"round {round_}: menu entries not removed"
        assert _qf_toolbars(qgis_iface) == []
        assert _qf_actions(qgis_iface) == []
        assert reg.providerById("quakefusion") is None
        assert plugin.dialog is None and plugin.provider is None and plugin.actions == []
        assert plugin.tools_dialog is None and plugin.profile_dock is None


def test_startup_imports_nothing_heavy(qf_plugin_pkg) -> None:
    import subprocess
    import sys

    parent = str(Path(qf_plugin_pkg.__file__).parent.parent)
    heavy = ("onnxruntime", "rasterio", "torch", "backend.pipeline", "backend.io")
    code = (f"import sys; sys.path.insert(0, {parent!r})\n"
            "import quakefusion, quakefusion.plugin\n"
            f"print([m for m in {heavy!r} if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_deps_dialog_lists_missing_and_builds_pip_command(qgis_app, qf_plugin_pkg) -> None:
    from quakefusion.app import deps
    from quakefusion.ui.deps_dialog import DepsDialog

    assert deps.missing() == []  # this environment has both
    assert deps.missing({"quakefusion_no_such_module": "x", "numpy": "numpy"}) == ["quakefusion_no_such_module"]
    dlg = DepsDialog(["onnxruntime", "rasterio"])
    assert "onnxruntime, rasterio" in dlg.lbl_what.text()
    assert "onnxruntime>=1.17" in dlg.command() and "onnxruntime-gpu" not in dlg.command()
    import numpy

    assert f"numpy=={numpy.__version__}" in dlg.command()
    dlg.rb_gpu.setChecked(True)
    assert "onnxruntime-gpu>=1.17" in dlg.command()
    assert "install.md" in dlg.lbl_manual.text()
    args = deps.pip_args(gpu=False)
    assert args[:3] == ["-m", "pip", "install"] and "rasterio>=1.3,<1.5" in args
    dlg.close()
