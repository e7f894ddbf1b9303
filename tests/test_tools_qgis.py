"""The geologist's tools in QGIS (app/geotools.py, app/tool_layers.py, app/task.ToolTask, app/export.py) on the
Mw 6.9 truth run: styled layers, field values, CRS, the export GeoPackage and shapefiles."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from qgis.core import Qgis, QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer

pytestmark = pytest.mark.qgis_slow


@pytest.fixture
def run_copy(mw69_run, tmp_path: Path) -> Path:
    """A private copy of the Mw 6.9 truth run (the tools write into the run folder)."""
    return Path(shutil.copytree(mw69_run, tmp_path / "run"))


def _wait(task, qgis_app, timeout: float = 120.0) -> None:
    import time

    t0 = time.time()
    while task.status() not in (task.Complete, task.Terminated) and time.time() - t0 < timeout:
        qgis_app.processEvents()
        time.sleep(0.02)
    for _ in range(20):  # finished() runs on the main thread after the status change
        qgis_app.processEvents()


def test_tools_task_adds_styled_layers(qgis_app, qgis_new_project, qf_plugin_pkg, run_copy, mw69_truth) -> None:
    from quakefusion.app.geotools import ToolParams, run_tools
    from quakefusion.app.task import ToolTask
    from quakefusion.app.tool_layers import add_tool_layers

    p = ToolParams(spacing=500, length=1000, width=200, exclude=30, arrow_step=16, ellipses=True)
    out: dict = {}

    def on_done(files):
        out["group"], out["layers"] = add_tool_layers(files, "Mw 6.9 tools")
        return f"{len(out['layers'])} layers"

    task = ToolTask("tools", lambda prog, cancel: run_tools(run_copy, ["trace", "offsets", "arrows", "components"],
                                                          p, prog, cancel), on_done)
    QgsApplication.taskManager().addTask(task)
    _wait(task, qgis_app)
    assert task.error is None, task.details or task.error
    names = [lyr.name() for lyr in out["layers"]]
    assert names == ["Displacement arrows (map units)", "Reference arrow", "1-sigma ellipses",
                     "Fault offsets (fault-parallel, m)", "Offset stacks (profiles)", "Rupture trace",
                     "Fault-parallel displacement (m)", "Fault-normal displacement (m)", "Significance |d|/sigma"]
    by = {lyr.name(): lyr for lyr in out["layers"]}
    assert all(lyr.crs().authid() == "EPSG:32611" or lyr.crs().isValid() for lyr in out["layers"])
    crs = by["Rupture trace"].crs()
    assert all(lyr.crs() == crs for lyr in out["layers"])
    # offsets: fault-parallel within 10 % of the truth (left-lateral: positive) for the median profile
    off = by["Fault offsets (fault-parallel, m)"]
    feats = [f for f in off.getFeatures() if f["par_m"] is not None]
    assert len(feats) >= 10
    err = [abs(f["par_m"] - mw69_truth(f.geometry().asPoint().x(), f.geometry().asPoint().y())["parallel"])
           / abs(mw69_truth(f.geometry().asPoint().x(), f.geometry().asPoint().y())["parallel"]) for f in feats]
    assert np.median(err) < 0.10
    assert all(f["par_m"] > 0.5 for f in feats[1:-1])
    assert off.renderer().type() == "graduatedSymbol" and off.renderer().classAttribute() == "par_m"
    # arrows: lines in map units; the reference arrow's label; the style has no data-defined field
    arr = by["Displacement arrows (map units)"]
    ref = next(by["Reference arrow"].getFeatures())
    assert ref["label"].endswith(" m") and ref["length"] == pytest.approx(ref["disp_m"] * ref["scale"])
    f = next(f for f in arr.getFeatures() if f["horiz_m"] and f["horiz_m"] > 0.5)
    assert f.geometry().length() == pytest.approx(f["horiz_m"] * ref["scale"], rel=1e-4)
    assert [sl.layerType() for sl in arr.renderer().symbol().symbolLayers()] == ["SimpleLine", "MarkerLine"]
    # styles stored in the GeoPackages (layer_styles) so the layers reopen styled
    with sqlite3.connect(run_copy / "fault_arrows.gpkg") as db:
        assert {r[0] for r in db.execute("select f_table_name from layer_styles where useAsDefault")} == {
            "arrow_line", "arrow_ref", "ellipses"}
    reopened = QgsVectorLayer(f"{run_copy / 'fault_arrows.gpkg'}|layername=arrow_line", "x", "ogr")
    assert reopened.renderer().symbol().symbolLayer(1).layerType() == "MarkerLine"
    comp = by["Fault-parallel displacement (m)"]
    assert isinstance(comp, QgsRasterLayer) and comp.renderer().band() == 1
    assert comp.renderer().classificationMin() == pytest.approx(-comp.renderer().classificationMax())
    assert (run_copy / "fault_components.qml").is_file()
    assert len(out["group"].findLayers()) == 9


def test_export_run_gpkg_and_shapefiles(qgis_app, qgis_new_project, qf_plugin_pkg, run_copy, tmp_path) -> None:
    from quakefusion.app.export import PROJECT_NAME, export_run
    from quakefusion.app.geotools import ToolParams, run_tools

    run_tools(run_copy, ["trace", "offsets", "arrows"], ToolParams(spacing=1000, length=1000, width=200))
    res = export_run(run_copy, tmp_path / "export" / "run.gpkg", tmp_path / "export" / "shp")
    gpkg = res["gpkg"]
    assert res["rasters"] == ["displacement_east", "displacement_north", "displacement_up",
                              "displacement_sigma_sigma_east", "displacement_sigma_sigma_north",
                              "displacement_sigma_sigma_up", "rupture_probability"]
    assert set(res["vectors"]) == {"arrow_line", "arrow_ref", "arrows", "offsets", "profiles", "rupture_trace",
                                   "trace_seg"}
    with sqlite3.connect(gpkg) as db:
        tables = dict(db.execute("select table_name, data_type from gpkg_contents").fetchall())
        styled = {r[0] for r in db.execute("select f_table_name from layer_styles")}
        projects = [r[0] for r in db.execute("select name from qgis_projects")]
    assert tables["displacement_east"] == "2d-gridded-coverage" and tables["offsets"] == "features"
    assert styled == set(res["vectors"]) and projects == [PROJECT_NAME]
    east = QgsRasterLayer(f"GPKG:{gpkg}:displacement_east", "e", "gdal")
    src = QgsRasterLayer(str(run_copy / "displacement.tif"), "s", "gdal")
    assert east.isValid() and east.crs() == src.crs() and east.extent() == src.extent()
    pt = src.extent().center()
    assert east.dataProvider().sample(pt, 1)[0] == pytest.approx(src.dataProvider().sample(pt, 1)[0], abs=1e-6)
    # vectors reopen with their stored style
    lyr = QgsVectorLayer(f"{gpkg}|layername=offsets", "o", "ogr")
    assert lyr.renderer().type() == "graduatedSymbol" and lyr.featureCount() >= 5
    # shapefiles keep every field name (<= 10 characters) and carry a .qml
    shp = {p.stem: p for p in res["shapefiles"]}
    assert set(shp) == set(res["vectors"])
    s = QgsVectorLayer(str(shp["offsets"]), "s", "ogr")
    assert [f.name() for f in s.fields()][:9] == ["trace_id", "along_m", "strike", "par_m", "par_sig", "nor_m",
                                                 "nor_sig", "vert_m", "vert_sig"]
    assert s.crs() == src.crs() and s.featureCount() == lyr.featureCount()
    a = QgsVectorLayer(str(shp["arrows"]), "a", "ogr")
    assert "azimuth" in [f.name() for f in a.fields()]
    assert shp["arrow_line"].with_suffix(".qml").is_file()
    line = QgsVectorLayer(str(shp["arrow_line"]), "l", "ogr")
    assert line.renderer().symbol().symbolLayer(1).layerType() == "MarkerLine"  # style kept with the shapefile
    # the project inside the GeoPackage opens with every layer
    prj = QgsProject()
    assert prj.read(f"geopackage:{gpkg}?projectName={PROJECT_NAME}")
    assert len(prj.mapLayers()) == len(res["rasters"]) + len(res["vectors"])


def test_exported_run_arrows_keep_their_direction_in_a_shapefile(qgis_app, qgis_new_project, qf_plugin_pkg,
                                                                 sim_scene, tiny_model, tmp_path) -> None:
    """The issue's bug: a shapefile truncates azimuth_deg to azimuth_de and the arrows all pointed north. The
    export renames the field in the file and in the style."""
    from qgis.core import QgsSymbolLayer
    from quakefusion.app.export import export_run, shapefile_names

    from backend.pipeline import EstimateConfig, run_estimate

    assert shapefile_names(["azimuth_deg", "azimuth_dex", "horiz_m"]) == {
        "azimuth_deg": "azimuth_de", "azimuth_dex": "azimuth_d1", "horiz_m": "horiz_m"}
    p = sim_scene["paths"]
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "run", phase=p["phase"],
                                      wavelength_m=0.0555, incidence_deg=sim_scene["incidence"],
                                      heading_deg=sim_scene["heading"], model_path=tiny_model, device="cpu",
                                      unwrap=False))  # the network's E/N: arrows (one LOS alone gives none)
    out = export_run(res.outputs["run_json"].parent, tmp_path / "e.gpkg", tmp_path / "shp")
    assert "displacement_arrows" in out["vectors"]
    shp = QgsVectorLayer(str(tmp_path / "shp" / "displacement_arrows.shp"), "a", "ogr")
    assert "azimuth_de" in shp.fields().names() and shp.featureCount() > 0
    prop = shp.renderer().symbol().symbolLayer(0).dataDefinedProperties().property(QgsSymbolLayer.PropertyAngle)
    assert prop.isActive() and prop.field() == "azimuth_de"
    f = next(shp.getFeatures())
    src = QgsVectorLayer(f"{tmp_path / 'e.gpkg'}|layername=displacement_arrows", "s", "ogr")
    g = next(src.getFeatures())
    assert f["azimuth_de"] == pytest.approx(g["azimuth_deg"])


def test_export_names_the_bands_of_every_interferogram(qf_plugin_pkg, tmp_path) -> None:
    """Several interferograms: los_displacement_2.tif's bands are exported as ..._2_fused / ..._2_from_phase like
    the first interferogram's, not as anonymous b1 / b2."""
    import numpy as np
    import rasterio
    from affine import Affine
    from quakefusion.app.export import _raster_tables

    prof = dict(driver="GTiff", width=4, height=4, dtype="float32", crs="EPSG:32634",
                transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4400000.0))
    for name in ("los_displacement.tif", "los_displacement_2.tif"):
        with rasterio.open(tmp_path / name, "w", count=2, **prof) as ds:
            ds.write(np.zeros((2, 4, 4), np.float32))
    tables = [t for _tif, _b, t in _raster_tables(tmp_path)]
    assert tables == ["los_displacement_fused", "los_displacement_from_phase", "los_displacement_2_fused",
                      "los_displacement_2_from_phase"]


def test_tools_dialog_shows_the_caution_of_a_fused_sar_pair(qgis_app, qgis_iface, qgis_new_project, qf_plugin_pkg,
                                                           qf_clean_settings, mw69_run, tmp_path: Path) -> None:
    """Geologist's tools ▸ Offsets on a run that fused the SAR amplitude pair, with offsets below one pixel (2.2 m
    on 30-m pixels): the dialog's status ends with the caution and what to do (backend.offsets.fusion_caveats)."""
    from quakefusion.ui.tools_dialog import ToolsDialog

    from models.testing import copy_run_with_inputs

    run = copy_run_with_inputs(mw69_run, tmp_path / "run", ["optical_pre", "optical_post", "sar_pre", "sar_post"])
    dlg = ToolsDialog(qgis_iface, None)
    try:
        dlg.fw_run.setFilePath(str(run))
        dlg.spin_spacing.setValue(1000)
        dlg.spin_length.setValue(2000)
        dlg.spin_width.setValue(200)
        dlg.spin_exclude.setValue(90)
        task = dlg.run_tool("offsets")
        _wait(task, qgis_app)
        assert task.error is None, task.details or task.error
        assert (run / "fault_offsets.csv").exists()
        assert len(dlg.last_caveats) == 1 and "fused the SAR amplitude pair" in dlg.last_caveats[0]
        assert "Caution: This run fused the SAR amplitude pair" in dlg.lbl_status.text()
        assert "color:#b71c1c" in dlg.lbl_status.text()  # in red, after the usual status line
        bar = qgis_iface.messageBar().get_messages(Qgis.Warning)  # and a warning that stays until closed
        assert any("fused the SAR amplitude pair" in t for t in bar), bar
    finally:
        dlg.close()


def test_a_tool_run_again_rewrites_its_geopackage_in_place_with_the_new_style(qgis_app, qgis_new_project,
                                                                              qf_plugin_pkg, run_copy) -> None:
    """Offsets run twice with their layers loaded (the user changes the spacing and runs again): the GeoPackage
    is rewritten in place (same file, so QGIS's cached connection stays valid; a file replaced under it left the
    second run's style save hanging in the real desktop), its layer_styles row replaced, and a fresh layer opens
    with the new default style and the new features."""
    import os

    from quakefusion.app.geotools import ToolParams, run_tools
    from quakefusion.app.tool_layers import add_tool_layers

    gpkg = run_copy / "fault_offsets.gpkg"
    files = run_tools(run_copy, ["offsets"], ToolParams(spacing=1000, length=2000, width=200, exclude=90))
    add_tool_layers(files, "tools")
    inode, n1 = os.stat(gpkg).st_ino, len(list(QgsVectorLayer(f"{gpkg}|layername=offsets").getFeatures()))
    files = run_tools(run_copy, ["offsets"], ToolParams(spacing=500, length=2000, width=200, exclude=90))
    add_tool_layers(files, "tools")
    assert os.stat(gpkg).st_ino == inode
    fresh = QgsVectorLayer(f"{gpkg}|layername=offsets", "fresh", "ogr")
    n2 = fresh.featureCount()
    assert n1 in (7, 8) and n2 in (15, 16)  # ~7.9 km of trace every 1000 m, then every 500 m
    with sqlite3.connect(gpkg) as con:
        rows = con.execute("SELECT styleName, useAsDefault, description FROM layer_styles "
                           "WHERE f_table_name = 'offsets'").fetchall()
    assert rows == [("offsets", 1, "QuakeFusion style")]  # as QGIS's saveStyleToDatabase wrote it the first time
    msg, ok = fresh.loadDefaultStyle()
    assert ok, msg
    assert fresh.renderer().type() == "graduatedSymbol"
    names = [lyr.name() for lyr in QgsProject.instance().mapLayers().values()]
    assert names.count("Fault offsets (fault-parallel, m)") == 1  # the first run's layer replaced, not duplicated
