"""A rupture trace given in QGIS (model 0.7.0): the Processing algorithm's TRACE parameter and the dialog's
"Rupture trace" field take a line layer; a layer on disk is read where it is, a scratch layer (just drawn) is saved
to OUTPUT/trace_inputs/<run>.gpkg, and run.json names the file the network was given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProject, QgsVectorLayer

from models.testing import DEFAULT_CHANNELS, make_tiny_model
from tests.conftest import write_raster
from tests.robust_util import DARFIELD
from tests.test_processing_qgis_process import ALG
from tests.test_robust_qgis import provider  # noqa: F401 (fixture)

pytestmark = pytest.mark.qgis_slow


def _drawn_line() -> QgsVectorLayer:
    """A scratch line layer across the Darfield demo grid (north-south through its middle), as a user draws it."""
    with rasterio.open(DARFIELD / "optical.tif") as ds:
        b, epsg = ds.bounds, ds.crs.to_epsg()
    lyr = QgsVectorLayer(f"LineString?crs=EPSG:{epsg}", "my trace", "memory")
    x = (b.left + b.right) / 2
    f = QgsFeature()
    f.setGeometry(QgsGeometry.fromPolylineXY([QgsPointXY(x, b.top - 100), QgsPointXY(x, b.bottom + 100)]))
    assert lyr.dataProvider().addFeatures([f])
    lyr.updateExtents()
    return lyr


def test_processing_takes_a_drawn_trace(provider, tmp_path: Path) -> None:  # noqa: F811
    import processing

    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    lyr = _drawn_line()
    QgsProject.instance().addMapLayer(lyr)
    try:
        res = processing.run(ALG, {"OPTICAL_PRE": str(DARFIELD / "optical.tif"), "OPTICAL_PRE_BAND": 1,
                                   "OPTICAL_POST": str(DARFIELD / "optical.tif"), "OPTICAL_POST_BAND": 2,
                                   "TRACE": lyr, "MODEL": str(model), "DEVICE": 2, "RUN_NAME": "traced",
                                   "OUTPUT_FOLDER": str(tmp_path / "o")})
    finally:
        QgsProject.instance().removeMapLayer(lyr.id())
    saved = tmp_path / "o" / "trace_inputs" / "traced.gpkg"
    assert saved.is_file()
    run = json.loads((Path(res["RUN_FOLDER"]) / "run.json").read_text())
    assert run["parameters"]["rupture_trace"] == {"path": str(saved.resolve()), "lines": 1, "tiles_crossed": 1}


def test_dialog_trace_field_lists_line_layers_and_reads_files_in_place(qgis_app, qgis_iface, qgis_new_project,
                                                                       qf_plugin_pkg, qf_clean_settings,
                                                                       tmp_path: Path) -> None:
    from qgis.core import QgsMapLayerProxyModel, QgsVectorFileWriter
    from quakefusion.ui.main_dialog import MainDialog

    drawn = _drawn_line()
    on_disk = tmp_path / "mapped_trace.gpkg"
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName, opts.layerName = "GPKG", "rupture_trace"
    assert QgsVectorFileWriter.writeAsVectorFormatV2(drawn, str(on_disk), QgsProject.instance().transformContext(),
                                                     opts)[0] == QgsVectorFileWriter.NoError
    mapped = QgsVectorLayer(str(on_disk), "mapped", "ogr")
    points = QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory")
    QgsProject.instance().addMapLayers([drawn, mapped, points])
    dlg = MainDialog(qgis_iface, None, start_task=None)
    try:
        assert dlg.cb_trace.filters() == QgsMapLayerProxyModel.LineLayer and dlg.cb_trace.allowEmptyLayer()
        names = {dlg.cb_trace.itemText(i) for i in range(dlg.cb_trace.count())}
        assert any(n.startswith("my trace") for n in names) and not any(n.startswith("points") for n in names)
        assert dlg.cb_trace.currentLayer() is None and dlg.spec().trace is None  # optional, none by default
        dlg.fw_output.setFilePath(str(tmp_path / "out"))
        dlg.le_run_name.setText("second run")
        dlg.cb_trace.setLayer(mapped)
        assert dlg.spec().trace == str(on_disk)  # read where it is, nothing written
        dlg.cb_trace.setLayer(drawn)
        assert dlg.spec(with_extent=False).trace is None  # validation writes nothing
        spec = dlg.spec()
        assert spec.trace == str(tmp_path / "out" / "trace_inputs" / "second_run.gpkg") and Path(spec.trace).is_file()
    finally:
        dlg.disconnect_project()
        dlg.close()


def test_tools_dialog_hands_the_runs_trace_to_the_main_dialog(qgis_app, qgis_iface, qgis_new_project, qf_plugin_pkg,
                                                              qf_clean_settings, tmp_path: Path) -> None:
    """Geologist's tools ▸ "Run again with this trace…": with no trace yet it says what to do; with the run's
    rupture_trace.gpkg it opens the main dialog with that file (loaded once) in the Rupture trace field."""
    from qgis.core import QgsProject
    from quakefusion.ui.main_dialog import MainDialog
    from quakefusion.ui.tools_dialog import ToolsDialog

    from backend.trace import TRACE_FILE, write_trace

    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    main = MainDialog(qgis_iface, None, start_task=None)
    tools = ToolsDialog(qgis_iface, None, rerun_with_trace=main.use_trace)
    try:
        tools.fw_run.setFilePath(str(run_dir))
        assert tools.rerun() is None and "not a finished run folder" in tools.lbl_status.text()
        with rasterio.open(DARFIELD / "optical.tif") as ds:
            b, wkt = ds.bounds, ds.crs.to_wkt()
            write_raster(run_dir / "displacement.tif", np.zeros((3, 8, 8), np.float32), ds.transform, ds.crs)
        assert tools.rerun() is None and "No trace yet" in tools.lbl_status.text()
        x = (b.left + b.right) / 2
        write_trace(run_dir / TRACE_FILE, [np.array([[x, b.top], [x, b.bottom]])], wkt)
        layer = tools.rerun()
        assert main.cb_trace.currentLayer() is layer and layer.isValid() and layer.featureCount() == 1
        assert Path(layer.source().split("|")[0]) == run_dir / TRACE_FILE
        n = len(QgsProject.instance().mapLayers())
        assert tools.rerun() is layer and len(QgsProject.instance().mapLayers()) == n  # not loaded twice
        assert "Rupture trace" in main.lbl_status.text()
        main.fw_output.setFilePath(str(tmp_path / "out"))
        assert main.spec().trace == str(run_dir / TRACE_FILE)  # read in place
    finally:
        tools.close()
        main.disconnect_project()
        main.close()


def test_find_the_trace_in_the_dialog_processing_and_the_layers(qgis_app, qgis_iface, qgis_new_project, provider,  # noqa: F811
                                                                 qf_plugin_pkg, qf_clean_settings,
                                                                 tmp_path: Path) -> None:
    """"No trace at hand: find it" (``trace_auto``): the dialog's box is off by default and greyed out while a trace
    layer is chosen; Processing's FIND_TRACE reaches the backend (run.json: found on a first pass, here none in the
    stand-in network's output); a run folder's rupture_trace.gpkg is loaded on top, visible, in the trace style."""
    import processing
    from quakefusion.app.layers import LAYER_NAMES, add_layers, write_styles
    from quakefusion.ui.main_dialog import MainDialog

    from backend.trace import write_trace

    drawn = _drawn_line()
    QgsProject.instance().addMapLayer(drawn)
    dlg = MainDialog(qgis_iface, None, start_task=None)
    try:
        dlg.fw_output.setFilePath(str(tmp_path / "out"))
        assert not dlg.chk_find_trace.isChecked() and dlg.chk_find_trace.isEnabled()
        assert dlg.spec(with_extent=False).find_trace is False
        dlg.chk_find_trace.setChecked(True)
        assert dlg.spec(with_extent=False).find_trace is True
        dlg.cb_trace.setLayer(drawn)  # a trace at hand: nothing to find
        assert not dlg.chk_find_trace.isEnabled() and not dlg.chk_find_trace.isChecked()
        assert dlg.spec(with_extent=False).find_trace is False
        dlg.cb_trace.setLayer(None)
        assert dlg.chk_find_trace.isEnabled()
    finally:
        dlg.disconnect_project()
        dlg.close()
    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    res = processing.run(ALG, {"OPTICAL_PRE": str(DARFIELD / "optical.tif"), "OPTICAL_PRE_BAND": 1,
                               "OPTICAL_POST": str(DARFIELD / "optical.tif"), "OPTICAL_POST_BAND": 2,
                               "FIND_TRACE": True, "MODEL": str(model), "DEVICE": 2, "RUN_NAME": "found",
                               "OUTPUT_FOLDER": str(tmp_path / "o")})
    run_dir = Path(res["RUN_FOLDER"])
    rt = json.loads((run_dir / "run.json").read_text())["parameters"]["rupture_trace"]
    assert rt["found_by"] == "first pass (blind)" and rt["found"] is False and "no rupture trace" in rt["why"]
    # a run that found its trace writes rupture_trace.gpkg beside its rasters: loaded with them
    with rasterio.open(run_dir / "displacement.tif") as ds:
        b, wkt = ds.bounds, ds.crs.to_wkt()
    x = (b.left + b.right) / 2
    write_trace(run_dir / "rupture_trace.gpkg", [np.array([[x, b.top - 100], [x, b.bottom + 100]])], wkt, "line")
    files = {"east": run_dir / "displacement_east.vrt", "rupture_trace": run_dir / "rupture_trace.gpkg"}
    styles = write_styles(files)
    assert styles["rupture_trace"] == {"kind": "trace", "features": 1}
    assert (run_dir / "rupture_trace_rupture_trace.qml").is_file()
    group, layers = add_layers(files, "found run")
    assert [lyr.name() for lyr in layers][0] == LAYER_NAMES["rupture_trace"]
    trace = layers[0]
    assert trace.isValid() and trace.featureCount() == 1 and group.findLayer(trace.id()).isVisible()
