"""The main dialog against a real QGIS project: layers per modality, band pickers, presets, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

pytestmark = pytest.mark.qgis_slow


@pytest.fixture
def dialog(qgis_app, qgis_iface, qgis_new_project, qf_plugin_pkg, sim_scene, qf_model, qf_clean_settings):
    from quakefusion.ui.main_dialog import MainDialog

    layers = {}
    for name, path in sim_scene["paths"].items():
        lyr = QgsRasterLayer(str(path), name, "gdal")
        assert lyr.isValid()
        layers[name] = lyr
    QgsProject.instance().addMapLayers(list(layers.values()))
    vec = QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory")
    QgsProject.instance().addMapLayer(vec)
    dlg = MainDialog(qgis_iface, None, start_task=None)
    dlg.fw_model.setFilePath(str(qf_model))
    yield dlg, layers
    dlg.disconnect_project()
    dlg.close()


def test_rows_list_raster_layers_with_none_and_bands(dialog) -> None:
    from quakefusion.ui.main_dialog import ROWS

    dlg, layers = dialog
    assert len(ROWS) == 9
    for key in ROWS:
        cb = dlg.combo(key)
        names = [cb.itemText(i) for i in range(cb.count())]
        assert cb.currentLayer() is None and cb.allowEmptyLayer()
        assert names[0] == ""  # "none"
        assert sorted(n.split(" [")[0] for n in names[1:]) == sorted(layers)  # rasters only, no vector layer
    dlg.set_input("optical_pre", layers["optical"], 1)
    band = dlg.band_optical_pre
    assert band.count() == 2 and band.currentBand() == 1
    dlg.set_input("optical_post", layers["optical"], 2)
    assert dlg.band("optical_post") == 2
    assert dlg.layer("incidence") is None and dlg.const_incidence.isEnabled()
    dlg.set_input("incidence", layers["dem"])
    assert not dlg.const_incidence.isEnabled() and dlg.spec().inputs["incidence"] == (layers["dem"].source(), 1)
    dlg.set_input("incidence", None)
    assert dlg.const_incidence.isEnabled() and "incidence" not in dlg.spec().inputs


def test_validation_messages_and_run_button(dialog, tmp_path: Path) -> None:
    dlg, layers = dialog
    assert not dlg.btn_run.isEnabled()
    assert any("no displacement-sensitive input" in p.lower() for p in dlg.problems())
    assert "Run is disabled" in dlg.lbl_validation.text()
    dlg.set_input("optical_pre", layers["optical"], 1)
    assert any("is given without the optical" in p.lower() for p in dlg.problems())
    dlg.set_input("optical_post", layers["optical"], 1)
    assert any("same band of the same layer" in p for p in dlg.problems())
    dlg.set_input("optical_post", layers["optical"], 2)
    dlg.set_input("coherence", layers["coherence"])
    assert any("coherence is given without a phase" in p.lower() for p in dlg.problems())
    dlg.set_input("phase", layers["phase"])
    assert dlg.problems() == ["Choose an output folder."]
    assert not dlg.btn_run.isEnabled()
    dlg.fw_output.setFilePath(str(tmp_path / "out"))
    assert dlg.problems() == [] and dlg.btn_run.isEnabled()
    assert "Ready to run" in dlg.lbl_validation.text()
    # drawn extent needs a rectangle
    dlg.cb_extent_mode.setCurrentIndex(2)
    assert dlg.problems() == ["Draw the rectangle on the map (or choose another extent)."]
    r = layers["phase"].extent()
    dlg.set_drawn_extent(QgsRectangle(r.xMinimum(), r.yMinimum(), r.center().x(), r.center().y()),
                         layers["phase"].crs())
    assert dlg.problems() == [] and "Drawn:" in dlg.lbl_extent_value.text()
    dlg.fw_model.setFilePath(str(tmp_path / "nope.onnx"))
    assert any("file not found" in p for p in dlg.problems())


def test_presets_spec_and_remembered_output(dialog, tmp_path: Path, qgis_iface) -> None:
    from quakefusion.ui.main_dialog import MainDialog, available_devices

    from backend.conventions import ALOS2_WAVELENGTH_M, SENTINEL1_WAVELENGTH_M

    dlg, layers = dialog
    assert dlg.wavelength_m() == pytest.approx(SENTINEL1_WAVELENGTH_M, abs=1e-5)
    assert not dlg.spin_wavelength.isEnabled()
    dlg.cb_wavelength_preset.setCurrentIndex(1)
    assert dlg.wavelength_m() == pytest.approx(ALOS2_WAVELENGTH_M, abs=1e-5)
    dlg.cb_wavelength_preset.setCurrentIndex(3)  # custom
    assert dlg.spin_wavelength.isEnabled()
    dlg.spin_wavelength.setValue(0.031)
    assert dlg.wavelength_m() == pytest.approx(0.031)
    assert [dlg.cb_sign_preset.itemText(i) for i in range(4)] == ["LiCSAR / COMET", "ASF HyP3", "ISCE", "Custom"]
    assert dlg.phase_sign() == 1 and "LiCSAR" in dlg.lbl_sign_explain.text()
    assert not dlg.cb_sign_custom.isEnabled()
    dlg.cb_sign_preset.setCurrentIndex(3)
    dlg.cb_sign_custom.setCurrentIndex(1)
    assert dlg.phase_sign() == -1 and "Custom" in dlg.lbl_sign_explain.text()
    gpu, text = available_devices()
    assert dlg.cb_device.model().item(1).isEnabled() == gpu and dlg.lbl_device_info.text() == text
    assert [dlg.cb_device.itemData(i) for i in range(3)] == ["auto", "cuda", "cpu"]

    dlg.set_input("phase", layers["phase"])
    dlg.set_input("sar_pre", layers["sar"], 1)
    dlg.set_input("sar_post", layers["sar"], 2)
    dlg.fw_output.setFilePath(str(tmp_path / "results"))
    dlg.spin_tile.setValue(128)
    qgis_iface.mapCanvas().setDestinationCrs(layers["phase"].crs())
    qgis_iface.mapCanvas().setExtent(layers["phase"].extent())
    dlg.cb_extent_mode.setCurrentIndex(1)  # canvas
    spec = dlg.spec()
    assert spec.inputs == {"phase": (str(layers["phase"].source()), 1), "sar_pre": (layers["sar"].source(), 1),
                           "sar_post": (layers["sar"].source(), 2)}
    assert spec.wavelength_m == pytest.approx(0.031) and spec.phase_sign == -1 and spec.tile == 128
    assert spec.extent is not None and QgsCoordinateReferenceSystem.fromWkt(spec.extent[4]) == layers["phase"].crs()
    assert spec.out_root == tmp_path / "results" and spec.incidence_deg == pytest.approx(39.0)
    dlg.remember()
    again = MainDialog(qgis_iface, None)
    assert again.fw_output.filePath() == str(tmp_path / "results")
    assert again.cb_wavelength_preset.currentIndex() == 3
    again.disconnect_project()
    again.close()


def test_browse_loads_file_into_project_and_row(dialog, sim_scene) -> None:
    dlg, _layers = dialog
    n = len(QgsProject.instance().mapLayers())
    lyr = dlg.load_file("dem", str(sim_scene["paths"]["dem"]))
    assert lyr is not None and len(QgsProject.instance().mapLayers()) == n + 1
    assert dlg.layer("dem").id() == lyr.id()
    bad = Path(sim_scene["paths"]["dem"]).with_name("not_a_raster.tif")
    bad.write_text("hello")
    assert dlg.load_file("dem", str(bad)) is None
    assert "not a raster" in dlg.lbl_status.text()


def test_more_interferogram_rows(dialog, tmp_path: Path) -> None:
    """Add / remove interferogram rows: the spec carries them, the backend's check names a bad value by
    interferogram, and the run writes one set of outputs per interferogram."""
    import json

    from quakefusion.app.runner import build_config, execute

    from models.scene import simulate_scene
    from models.sim_tracks import render_tracks, write_tracks

    dlg, _layers = dialog
    s = simulate_scene(3, size=(96, 96), pixel_size_m=60.0, overrides={"mw_range": (6.0, 6.4)})
    tracks = render_tracks(s, tracks=(("ascending", "C"), ("descending", "C")), seed=3)
    write_tracks(tmp_path / "in", s, tracks)
    d = tmp_path / "in"
    dlg.load_file("phase", str(d / "phase_1.tif"))
    dlg.load_file("coherence", str(d / "coherence_1.tif"))
    dlg.fw_output.setFilePath(str(tmp_path / "out"))
    dlg.le_run_name.setText("two tracks")
    assert dlg.problems() == []
    r = dlg.add_ifg_row(str(d / "phase_2.tif"), str(d / "coherence_2.tif"), str(d / "los_vector_2.tif"))
    assert r == 0 and dlg.tbl_ifgs.rowCount() == 1
    assert dlg.problems() == []
    spec = dlg.spec(with_extent=False)
    assert spec.more_ifgs.phases == [str(d / "phase_2.tif")]
    cfg = build_config(spec, tmp_path / "x")
    assert len(cfg.ifgs()) == 2 and cfg.ifgs()[1].los_vector.path == str(d / "los_vector_2.tif")
    assert cfg.ifgs()[1].wavelength_m == pytest.approx(dlg.wavelength_m())
    dlg.tbl_ifgs.item(0, 3).setText("abc")  # a wavelength that does not parse
    assert any("wavelength" in p and "interferogram 2" in p for p in dlg.problems())
    assert not dlg.btn_run.isEnabled()
    dlg.tbl_ifgs.item(0, 3).setText(f"{tracks[1].wavelength_m}")
    assert dlg.problems() == []
    outcome = execute(dlg.spec(with_extent=False))
    for k in (1, 2):
        assert (outcome.out_dir / f"unwrapped_phase_{k}.tif").is_file()
        assert (outcome.out_dir / f"unwrap_regions_{k}.tif").is_file()
    run = json.loads((outcome.out_dir / "run.json").read_text())
    assert len(run["parameters"]["interferograms"]) == 2
    dlg.tbl_ifgs.selectRow(0)
    dlg.remove_ifg_rows()
    assert dlg.tbl_ifgs.rowCount() == 0 and dlg.spec(with_extent=False).more_ifgs.phases == []


def test_insar_product_folders(dialog, tmp_path: Path) -> None:
    """A LiCSAR interferogram folder added in the dialog becomes an interferogram with the product's phase,
    coherence, line of sight and Sentinel-1 wavelength; a folder that cannot be read disables Run and is named."""
    from quakefusion.app.runner import build_config

    from backend.conventions import SENTINEL1_WAVELENGTH_M
    from tests.test_sarproducts import FRAME, _licsar

    dlg, _layers = dialog
    dlg.fw_output.setFilePath(str(tmp_path / "out"))
    dlg.le_run_name.setText("licsar")
    pair = _licsar(tmp_path / "good")
    dlg.add_product(str(pair))
    dlg.add_product(str(pair))  # the same folder twice is one product
    assert dlg.lst_products.count() == 1
    assert dlg.problems() == []
    spec = dlg.spec(with_extent=False)
    assert spec.products == [str(pair)]
    (ifg,) = build_config(spec, tmp_path / "x").ifgs()  # no phase layer: the product is the first interferogram
    assert Path(ifg.phase.path).name.endswith(".geo.diff_pha.tif")
    assert ifg.wavelength_m == pytest.approx(SENTINEL1_WAVELENGTH_M) and ifg.phase_sign == 1
    assert [Path(x.path).name for x in ifg.los_vector] == [f"{FRAME}.geo.{c}.tif" for c in "ENU"]
    assert Path(ifg.coherence.path).suffix == ".vrt"  # LiCSAR's uint8 coherence scaled by 1/255
    bad = _licsar(tmp_path / "bad", skip=("E",))
    dlg.add_product(str(bad))
    msgs = dlg.problems()
    assert not dlg.btn_run.isEnabled()
    assert any(FRAME in m and ".geo.E.tif" in m for m in msgs), msgs
    dlg.lst_products.setCurrentRow(1)
    dlg.remove_products()
    assert dlg.products() == [str(pair)] and dlg.problems() == []
