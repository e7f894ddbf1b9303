"""Usability of the main dialog (Step 10): fits a 768-px-high screen, Help opens the shipped guide, the run name
is kept between runs, sensor presets, messages name the real menu path, metadata version = model version."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsProject
from qgis.PyQt.QtCore import QUrl

from tests.conftest import ROOT

pytestmark = pytest.mark.qgis_slow


@pytest.fixture
def dlg(qgis_app, qgis_iface, qgis_new_project, qf_plugin_pkg, qf_model, qf_clean_settings):
    from quakefusion.ui.main_dialog import MainDialog

    d = MainDialog(qgis_iface, None, start_task=None)
    d.fw_model.setFilePath(str(qf_model))
    yield d
    d.disconnect_project()
    d.close()


def test_dialog_fits_a_768_px_screen(dlg, capsys) -> None:
    from quakefusion.ui.main_dialog import FIT_HEIGHT

    dlg.show()
    content = dlg.scroll.widget().sizeHint().height()
    hint = dlg.sizeHint().height()
    with capsys.disabled():
        print(f"\nmain dialog: content needs {content} px, dialog sizeHint {hint} px, opens {dlg.height()} px high")
    assert content > 700  # the settings themselves need more than the screen: they scroll
    assert hint <= FIT_HEIGHT and dlg.height() <= FIT_HEIGHT
    assert dlg.btn_run.isVisible() and dlg.progress.isVisible()  # outside the scroll area: always visible
    assert dlg.scroll.verticalScrollBar().maximum() > 0
    dlg.grp_advanced.setCollapsed(False)
    assert dlg.sizeHint().height() <= FIT_HEIGHT
    # as wide as its content up to 780 px (layer names are not cut; the interferogram table scrolls): fits 1024 px
    assert dlg.scroll.viewport().width() >= min(dlg.scroll.widget().sizeHint().width(), 780) - 60
    assert dlg.width() <= 1000
    dlg.adjustSize()  # on an 800-px screen Qt caps this at 533 px: the minimum width keeps every column
    assert dlg.scroll.viewport().width() >= dlg.scroll.widget().minimumSizeHint().width()


def test_help_opens_the_shipped_user_guide(dlg) -> None:
    from quakefusion.app.provider import EstimateDisplacementAlgorithm
    from quakefusion.app.provider_tools import ALGORITHMS
    from quakefusion.ui.main_dialog import help_url

    path = Path(QUrl(help_url()).toLocalFile())
    assert path == ROOT / "docs" / "user_guide.md" and path.is_file()
    assert "## Export" in path.read_text(encoding="utf-8")
    assert dlg.btn_help.text() == "Help" and dlg.buttons.indexOf(dlg.btn_help) == 0
    assert EstimateDisplacementAlgorithm().helpUrl() == help_url()
    assert all(a().helpUrl() == help_url() for a in ALGORITHMS)


def test_run_name_is_kept_and_sensor_presets(dlg, qgis_iface, qf_plugin_pkg) -> None:
    from quakefusion.ui.main_dialog import SENSOR_PRESETS, MainDialog

    from backend.conventions import ALOS2_WAVELENGTH_M, NISAR_L_WAVELENGTH_M, SENTINEL1_WAVELENGTH_M

    dlg.le_run_name.setText("Mw 6.9 Sentinel-1")
    dlg.remember()
    dlg._task_done(True, "Done")
    assert dlg.le_run_name.text() == "Mw 6.9 Sentinel-1"
    again = MainDialog(qgis_iface, None)
    assert again.le_run_name.text() == "Mw 6.9 Sentinel-1"
    again.disconnect_project()
    labels = [dlg.cb_sensor.itemText(i) for i in range(dlg.cb_sensor.count())]
    assert labels == [x[0] for x in SENSOR_PRESETS] and len(labels) == 7
    dlg.cb_sensor.setCurrentIndex(2)  # Sentinel-1 descending
    assert dlg.wavelength_m() == pytest.approx(SENTINEL1_WAVELENGTH_M, abs=1e-5)
    assert dlg.const_heading.value() == -168.0 and dlg.const_incidence.value() == 39.0
    dlg.cb_sensor.setCurrentIndex(3)  # ALOS-2 ascending
    assert dlg.wavelength_m() == pytest.approx(ALOS2_WAVELENGTH_M, abs=1e-5) and dlg.const_heading.value() == -10.0
    dlg.cb_sensor.setCurrentIndex(5)  # NISAR ascending, left-looking: heading of the equivalent right-looking LOS
    assert dlg.wavelength_m() == pytest.approx(NISAR_L_WAVELENGTH_M, abs=1e-5) and dlg.const_heading.value() == 168.0


def test_messages_name_the_raster_menu() -> None:
    for f in ("ui/main_dialog.py", "app/task.py", "ui/deps_dialog.py", "app/deps.py", "plugin.py"):
        text = (ROOT / f).read_text(encoding="utf-8")
        assert "Plugins > QuakeFusion" not in text and "Plugins ▸ QuakeFusion" not in text, f


def test_metadata_version_equals_model_version() -> None:
    """metadata.txt, the model's metadata (model_version) and the model card carry one version."""
    from backend.model import read_metadata

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    version = parser["general"]["version"]
    model = read_metadata(ROOT / "models" / "quakefusion.onnx")
    card = (ROOT / "models" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert re.search(r"model version \*\*([0-9.]+)\*\*", card).group(1) == version
    mv = model["model_version"] if isinstance(model, dict) else model.version
    assert mv == version


def test_tools_dialog_fits_and_runs_offsets(qgis_app, qgis_iface, qgis_new_project, qf_plugin_pkg, mw69_run,
                                            tmp_path, qf_clean_settings) -> None:
    import shutil
    import time

    from qgis.core import QgsApplication
    from quakefusion.ui.tools_dialog import ToolsDialog

    run = Path(shutil.copytree(mw69_run, tmp_path / "run"))
    d = ToolsDialog(qgis_iface, None)
    assert d.sizeHint().height() <= 700
    d.fw_run.setFilePath(str(run))
    d.spin_spacing.setValue(1000)
    d.spin_length.setValue(1000)
    task = d.run_tool("offsets")
    assert task is not None
    t0 = time.time()
    while d.task is not None and time.time() - t0 < 120:
        qgis_app.processEvents()
        time.sleep(0.02)
    assert "layers added" in d.lbl_status.text(), d.lbl_status.text()
    group = QgsProject.instance().layerTreeRoot().findGroup("QuakeFusion tools: run")
    assert [n.layer().name() for n in group.findLayers()] == ["Fault offsets (fault-parallel, m)",
                                                              "Offset stacks (profiles)", "Rupture trace"]
    assert (run / "fault_offsets.csv").is_file()
    assert QgsApplication.taskManager().count() >= 0
    d.close()


def test_progress_moves_while_checking_inputs_and_run_log(sim_scene, tiny_model, tmp_path) -> None:
    """The backend reports each input check and the model load before the first tile; run.log lists them."""
    from backend.pipeline import EstimateConfig, run_estimate

    p = sim_scene["paths"]
    seen: list[tuple[float, str]] = []
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "out", phase=p["phase"], coherence=p["coherence"],
                                      dem=p["dem"], wavelength_m=0.0555, incidence_deg=sim_scene["incidence"],
                                      heading_deg=sim_scene["heading"], model_path=tiny_model, device="cpu",
                                      unwrap=False),  # InSAR only + unwrapping: no network, no model load
                       progress=lambda f, m: seen.append((f, m)))
    before = [(f, m) for f, m in seen if not m.startswith(("inference", "unwrapping", "done"))]
    assert [m for _f, m in before] == ["checking inputs", "checking inputs: phase", "checking inputs: coherence",
                                       "checking inputs: dem", "loading the model", "input statistics"]
    fr = [f for f, _m in before]
    assert fr == sorted(fr) and 0 < fr[-1] <= 0.05 and len(set(fr)) >= 4
    # run.log is committed with the run's files, so it holds every progress message but the final "done"
    log = (res.outputs["run_json"].parent / "run.log").read_text().splitlines()
    assert seen[-1][1].startswith("done")
    assert len(log) >= len(seen) - 1 and "checking inputs: coherence" in log[2] and log[len(seen) - 2].endswith(
        seen[-2][1])


def test_tools_dialog_drawn_trace_is_used(qgis_app, qgis_iface, qgis_new_project, qf_plugin_pkg, mw69_run,
                                          mw69_truth, tmp_path, qf_clean_settings) -> None:
    """"Draw a trace…": an editable layer in the run's CRS; the line digitised into it (drawn westwards here) is what
    the offsets use (source 'user', direction kept: a left-lateral offset stays positive, the strike flips)."""
    import shutil
    import time

    import numpy as np
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY
    from quakefusion.ui.tools_dialog import ToolsDialog

    from backend.geodata import load_run
    from backend.offsets import read_csv
    from backend.trace import extract_trace

    run = Path(shutil.copytree(mw69_run, tmp_path / "run"))
    lines, _ = extract_trace(load_run(run))
    line = max(lines, key=len)[::-1]  # drawn from east to west
    d = ToolsDialog(qgis_iface, None)
    d.fw_run.setFilePath(str(run))
    lyr = d.draw_trace()
    assert lyr.isEditable() and d.cb_layer.currentLayer() is lyr and d.cb_trace.currentData() == "layer"
    assert lyr.crs() == QgsCoordinateReferenceSystem.fromWkt(load_run(run).crs_wkt)
    f = QgsFeature(lyr.fields())
    f.setGeometry(QgsGeometry.fromPolylineXY([QgsPointXY(x, y) for x, y in line]))
    lyr.addFeature(f)
    assert lyr.commitChanges()
    d.spin_spacing.setValue(1000)
    d.spin_length.setValue(1000)
    d.spin_exclude.setValue(30)
    d.run_tool("offsets")
    t0 = time.time()
    while d.task is not None and time.time() - t0 < 120:
        qgis_app.processEvents()
        time.sleep(0.02)
    assert "layers added" in d.lbl_status.text(), d.lbl_status.text()
    rows = read_csv(run / "fault_offsets.csv")
    mid = rows[len(rows) // 2]
    assert 180 <= float(mid["strike_deg"]) < 360  # westwards, as drawn
    rel = [abs(float(r["parallel_m"]) - mw69_truth(float(r["x"]), float(r["y"]))["parallel"])
           / mw69_truth(float(r["x"]), float(r["y"]))["parallel"] for r in rows]
    assert np.median(rel) < 0.10 and all(float(r["parallel_m"]) > 1.5 for r in rows)  # left-lateral: positive
    assert np.isfinite(float(mid["parallel_sigma_m"]))
    d.close()
