"""app/layers.py in QGIS: styles and layers of every backend output, including a model's rupture probability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsPointXY, QgsProject, QgsRasterLayer, QgsSingleBandPseudoColorRenderer

from backend.pipeline import EstimateConfig, run_estimate
from models.testing import make_tiny_model
from tests.conftest import read_band

pytestmark = pytest.mark.qgis_slow


def test_rupture_probability_is_styled_0_to_1_and_loaded(qgis_app, qgis_new_project, qf_plugin_pkg, sim_scene,
                                                         tmp_path: Path) -> None:
    from quakefusion.app.layers import LAYER_NAMES, add_layers, write_styles

    model = make_tiny_model(tmp_path / "rupture.onnx", rupture=True)
    p = sim_scene["paths"]
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "out", phase=p["phase"], wavelength_m=0.0555,
                                      incidence_deg=sim_scene["incidence"], heading_deg=sim_scene["heading"],
                                      model_path=model, device="cpu", unwrap=False))  # InSAR only: no network
    files = res.outputs                                   # unless the phase is not unwrapped
    assert "rupture_probability" in files
    info = write_styles(files)  # main thread (this test's thread)
    assert info["rupture_probability"] == {"band": 1, "kind": "probability", "min": 0.0, "max": 1.0, "units": ""}
    assert Path(files["rupture_probability"]).with_suffix(".qml").is_file()
    group, layers = add_layers(files, "rupture run")
    by_name = {lyr.name(): lyr for lyr in layers}
    lyr = by_name[LAYER_NAMES["rupture_probability"]]
    assert isinstance(lyr, QgsRasterLayer) and isinstance(lyr.renderer(), QgsSingleBandPseudoColorRenderer)
    assert lyr.renderer().classificationMin() == 0.0 and lyr.renderer().classificationMax() == 1.0
    # the layer shows the backend's numbers
    v = read_band(files["rupture_probability"])
    finite = np.argwhere(np.isfinite(v))
    assert len(finite) > 0.5 * v.size
    r, c = finite[len(finite) // 2]
    x = lyr.extent().xMinimum() + (c + 0.5) * lyr.rasterUnitsPerPixelX()
    y = lyr.extent().yMaximum() - (r + 0.5) * lyr.rasterUnitsPerPixelY()
    val, ok = lyr.dataProvider().sample(QgsPointXY(x, y), 1)
    assert ok and val == pytest.approx(float(v[r, c]), abs=1e-7)
    assert group.name() == "rupture run" and len(layers) == len(QgsProject.instance().mapLayers())


def test_two_interferograms_regions_and_nan_reasons_in_the_legend(qgis_app, qgis_new_project, qf_plugin_pkg,
                                                                  tmp_path: Path) -> None:
    """InSAR only, ascending + descending: per-interferogram layers, categorical region layers, and north/up
    (not constrained by two LOS) named with the reason."""
    from qgis.core import QgsPalettedRasterRenderer
    from quakefusion.app.layers import LAYER_NAMES, add_layers, write_styles

    from backend.config import Interferogram
    from models.scene import simulate_scene
    from models.sim_tracks import render_tracks, write_tracks

    s = simulate_scene(3, size=(128, 128), pixel_size_m=60.0, overrides={"mw_range": (6.0, 6.4)})
    tracks = render_tracks(s, tracks=(("ascending", "L"), ("descending", "L")), seed=3)
    write_tracks(tmp_path / "in", s, tracks)
    ifgs = [Interferogram(tmp_path / "in" / f"phase_{k}.tif", tmp_path / "in" / f"coherence_{k}.tif",
                          t.wavelength_m, t.phase_sign, los_vector=tmp_path / "in" / f"los_vector_{k}.tif")
            for k, t in enumerate(tracks, start=1)]
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "out", interferograms=ifgs, device="cpu"))
    files = res.outputs
    assert {"unwrap_regions_1", "unwrap_regions_2", "unwrapped_phase_2", "los_displacement_1"} <= set(files)
    info = write_styles(files)
    assert info["unwrap_regions_1"]["kind"] == "regions" and info["unwrap_regions_1"]["max"] >= 1
    _group, layers = add_layers(files, "two tracks")
    by_name = {lyr.name(): lyr for lyr in layers}
    reg = by_name[LAYER_NAMES["unwrap_regions"] + " (interferogram 2)"]
    assert isinstance(reg.renderer(), QgsPalettedRasterRenderer)
    labels = [c.label for c in reg.renderer().classes()]
    assert labels[0].startswith("0: not unwrapped") and labels[1].startswith("region 1")
    assert LAYER_NAMES["unwrapped_phase"] + " (interferogram 1)" in by_name
    north = [n for n in by_name if n.startswith(LAYER_NAMES["north"])]
    assert len(north) == 1 and "NaN on 9" in north[0]  # asc + desc LOS hardly see north (measured 96.5 %)
    assert [n for n in by_name if n.startswith(LAYER_NAMES["east"])]
    assert np.isfinite(read_band(files["displacement"], 1)).mean() > 0.9
