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
                                      model_path=model, device="cpu"))
    files = res.outputs
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
