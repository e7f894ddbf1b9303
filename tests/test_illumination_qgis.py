"""Relighting the optical pair from the DEM, in QGIS: the Processing algorithm's RELIGHT parameter (advanced, on by
default) and the dialog's "Relight the pre image..." box reach the backend (run.json ``parameters.illumination``,
``stats.illumination``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.testing import DEFAULT_CHANNELS, make_tiny_model, write_scene_inputs
from tests.test_processing_qgis_process import ALG
from tests.test_robust_qgis import provider  # noqa: F401 (fixture)

pytestmark = pytest.mark.qgis_slow


def test_processing_relights_by_default_and_can_be_told_not_to(provider, tmp_path: Path) -> None:  # noqa: F811
    import processing
    from qgis.core import QgsProcessingParameterDefinition

    from models.scene import simulate_scene

    alg = provider  # the registered estimate_displacement algorithm
    relight = alg.parameterDefinition("RELIGHT")
    assert relight.defaultValue() is True and relight.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    assert "RELIGHT" in alg.shortHelpString()
    sc = simulate_scene(9, size=(192, 192), pixel_size_m=10.0)  # sun 60 deg -> 29 deg elevation on ASTER relief
    p = write_scene_inputs(sc, tmp_path / "in")
    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    runs = {}
    for name, extra in (("default", {}), ("off", {"RELIGHT": False})):
        res = processing.run(ALG, {"OPTICAL_PRE": str(p["optical_pre"]), "OPTICAL_POST": str(p["optical_post"]),
                                   "DEM": str(p["dem"]), "MODEL": str(model), "DEVICE": 2, "RUN_NAME": name,
                                   "OUTPUT_FOLDER": str(tmp_path / "o"), **extra})
        runs[name] = json.loads((Path(res["RUN_FOLDER"]) / "run.json").read_text())
    assert runs["default"]["parameters"]["illumination"] == "auto"
    ill = runs["default"]["stats"]["illumination"]
    assert ill["relit"] and ill["similarity"][1] > ill["similarity"][0] + 0.1
    assert abs(ill["optical_post"]["elevation_deg"] - sc.params["optical"]["sun_post"][1]) < 10
    assert runs["off"]["parameters"]["illumination"] == "off" and "illumination" not in runs["off"]["stats"]


def test_dialog_relight_box(qgis_app, qgis_iface, qgis_new_project, qf_plugin_pkg, qf_clean_settings,
                            tmp_path: Path) -> None:
    from quakefusion.ui.main_dialog import MainDialog

    dlg = MainDialog(qgis_iface, None, start_task=None)
    try:
        dlg.fw_output.setFilePath(str(tmp_path / "out"))
        assert dlg.chk_relight.isChecked() and "DEM" in dlg.chk_relight.toolTip()
        assert dlg.spec(with_extent=False).illumination == "auto"
        dlg.chk_relight.setChecked(False)
        assert dlg.spec(with_extent=False).illumination == "off"
    finally:
        dlg.disconnect_project()
        dlg.close()
