"""The geologist's tools as Processing algorithms (app/provider_tools.py) run through QGIS's Processing framework
on the Mw 6.9 truth run: outputs, values, layers to load, and the export algorithm (main thread)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorLayer,
)

pytestmark = pytest.mark.qgis_slow


@pytest.fixture
def provider(qgis_app, qf_plugin_pkg):
    from quakefusion.app.provider import QuakeFusionProvider

    reg = QgsApplication.processingRegistry()
    if reg.providerById("quakefusion") is None:
        reg.addProvider(QuakeFusionProvider())
    yield reg
    p = reg.providerById("quakefusion")
    if p is not None:
        reg.removeProvider(p)


def _run(reg, alg_id: str, params: dict) -> tuple[dict, QgsProcessingContext]:
    alg = reg.createAlgorithmById(alg_id)
    assert alg is not None, alg_id
    ctx = QgsProcessingContext()
    ctx.setProject(QgsProject.instance())
    fb = QgsProcessingFeedback()
    ok, msg = alg.checkParameterValues(params, ctx)
    assert ok, msg
    res, ok = alg.run(params, ctx, fb)
    assert ok, res
    alg.postProcess(ctx, fb)
    return res, ctx


def test_offsets_and_export_algorithms(provider, qgis_new_project, mw69_run, mw69_truth, tmp_path: Path) -> None:
    run = Path(shutil.copytree(mw69_run, tmp_path / "run"))
    ids = sorted(a.id() for a in provider.providerById("quakefusion").algorithms())
    assert ids == ["quakefusion:estimate_displacement", "quakefusion:export_run", "quakefusion:fault_arrows",
                   "quakefusion:fault_components", "quakefusion:fault_offsets", "quakefusion:report",
                   "quakefusion:rupture_trace"]
    res, ctx = _run(provider, "quakefusion:fault_offsets", {"RUN_FOLDER": str(run), "SPACING": 1000,
                                                           "LENGTH": 1000, "WIDTH": 200, "EXCLUDE": 30})
    assert res["PROFILES"] == 8
    rows = list(csv.DictReader(open(res["CSV"])))
    assert len(rows) == 8 and list(rows[0])[:7] == ["along_m", "parallel_m", "parallel_sigma_m", "normal_m",
                                                    "normal_sigma_m", "vertical_m", "vertical_sigma_m"]
    mid = rows[4]
    truth = mw69_truth(float(mid["x"]), float(mid["y"]))["parallel"]
    assert float(mid["parallel_m"]) == pytest.approx(truth, rel=0.05)
    lyr = QgsVectorLayer(res["OFFSETS"], "o", "ogr")
    assert lyr.featureCount() == 8 and lyr.renderer().type() == "graduatedSymbol"  # the stored default style
    loads = ctx.layersToLoadOnCompletion()
    assert sorted(d.name for d in loads.values()) == ["Fault offsets (fault-parallel, m)",
                                                      "Offset stacks (profiles)", "Rupture trace"]
    res, _ = _run(provider, "quakefusion:fault_arrows", {"RUN_FOLDER": str(run), "STEP": 32, "SCALE": 100,
                                                        "MODE": 1, "ELLIPSES": True})
    arrows = QgsVectorLayer(res["ARROWS"], "a", "ogr")
    assert arrows.featureCount() == 64  # 256 / 32 squared
    f = next(arrows.getFeatures())
    assert f.geometry().length() == pytest.approx(100 * f["horiz_m"], rel=1e-4)
    res, _ = _run(provider, "quakefusion:export_run", {"RUN_FOLDER": str(run), "OUTPUT": str(tmp_path / "e.gpkg"),
                                                      "SHAPEFILES": str(tmp_path / "shp")})
    assert res["LAYERS"] == 7 + 8  # rasters (3 + 3 + 1 bands) + vectors
    assert (tmp_path / "shp" / "offsets.shp").is_file() and (tmp_path / "shp" / "arrow_line.qml").is_file()


class _Feedback(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        self.warnings.append(warning)
        super().pushWarning(warning)


def test_offsets_algorithm_warns_when_a_fused_sar_pair_reads_small_steps_short(provider, qgis_new_project, mw69_run,
                                                                              tmp_path: Path) -> None:
    """Processing's fault offsets pushes the caution of ``backend.offsets.fusion_caveats`` (a run that fused the
    SAR amplitude pair, offsets below one pixel: 2.2 m on 30-m pixels here) and none for an optical run."""
    from models.testing import copy_run_with_inputs

    for inputs, expected in ((["optical_pre", "optical_post", "sar_pre", "sar_post", "dem"], 1),
                             (["optical_pre", "optical_post", "dem"], 0)):
        run = copy_run_with_inputs(mw69_run, tmp_path / f"run{expected}", inputs)
        alg = provider.createAlgorithmById("quakefusion:fault_offsets")
        ctx = QgsProcessingContext()
        ctx.setProject(QgsProject.instance())
        fb = _Feedback()
        res, ok = alg.run({"RUN_FOLDER": str(run), "SPACING": 1000, "LENGTH": 2000, "WIDTH": 200, "EXCLUDE": 90},
                          ctx, fb)
        assert ok, res
        assert res["PROFILES"] >= 7
        sar = [w for w in fb.warnings if "fused the SAR amplitude pair" in w]
        assert len(sar) == expected, fb.warnings
        if expected:
            assert "optical pair and the DEM only" in sar[0] and "(30 m here)" in sar[0]


def test_rupture_trace_algorithm_moves_the_trace_onto_the_band_unless_told_not_to(provider, qgis_new_project,
                                                                                  mw69_phase_run, mw69_scene,
                                                                                  tmp_path: Path) -> None:
    from backend.geodata import load_run, read_lines, read_table

    from .test_trace import share_within

    run_dir = Path(shutil.copytree(mw69_phase_run, tmp_path / "run"))
    run = load_run(run_dir)
    res, _ = _run(provider, "quakefusion:rupture_trace", {"RUN_FOLDER": str(run_dir), "METHOD": 4})  # line search
    gpkg = run_dir / "rupture_trace.gpkg"
    rows = read_table(gpkg, "rupture_trace")[1]
    assert len(rows) == 1 and rows[0]["on_band"] >= 0.7
    assert "decorrelation band (rewrapped_phase.tif)" in rows[0]["source"]
    assert share_within(run, mw69_scene, read_lines(gpkg, run.crs_wkt, "rupture_trace"), tol_px=1.0) >= 0.9
    _run(provider, "quakefusion:rupture_trace", {"RUN_FOLDER": str(run_dir), "METHOD": 4, "BAND": False})
    rows = read_table(gpkg, "rupture_trace")[1]
    assert rows[0]["on_band"] is None and rows[0]["source"] == "line"

