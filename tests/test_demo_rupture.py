"""The demo's simulated surface rupture (models.demo.demo_strong_rupture) with the shipped model, through the
whole pipeline: near the rupture the fused east/north beat OpenCV DIS on the same optical pair and predicting zero,
and the offset across the fault (fault-parallel, 50-500 m either side) is read within 5 % of the truth.

Measured with model 0.6.0 (make demo): 0.117 px (1.17 m at 10 m) against DIS 0.137 px and zero 0.329 px; step
6.17 m against 6.36 m true (-3 %; DIS 6.04 m; 0.5.0: 6.18 m, this scene has no nodata). (0.4.0: 0.105 px, step
5.94 m = -7 %; 0.2.0: 0.066 px, step 6.39 m.) 0.5.0 closed the wide windows at the rupture: the step is read sharper
and less biased at the price of some noise.

0.7.0 (the same numbers blind) takes a rupture trace: the demo extracts one from the first run (line search) and
runs again with it: step 6.37 m (+0.1 %), and the jump between 25 and 35 m either side is 5.55 of 6.29 m (88 %;
blind 2.72 m, 43 %).

With the pre image relit to the post image's sun from the DEM (backend.illumination, the default since 2026-12-01;
this scene's sun moves from 47 to 23 deg elevation): 0.055 px near the rupture, step 6.18 m (-3 %); with the
extracted trace (significance 2.53) 6.32 m (-1 %) and the jump at +-3 px 6.60 of 6.29 m (105 %; blind 47 %).

With the trace moved onto the interferogram's decorrelation band (backend/trace_band.py, 2026-12-01): 100 % of it
within 2 px of the true trace (91 % within 1 px, mean 6 m; before 12 m), and the second run's jump 6.39 m (102 %).
2026-12-02: the line search places its pieces by the blind model's own step, which lies ~2 px off the truth over
half this rupture; the band moves the trace back and the stations at the raster's edge, which the band cannot read,
take the nearest moved station's shift: 92 % within 1 px, 100 % within 2 px, mean 6 m; second run 6.33 m (-0 %),
jump 6.23 m (99 %).
2026-12-02 (third stop): the second run is one job, ``--trace auto`` (``EstimateConfig.trace_auto``): its own blind
first pass gives the same trace as the tool on the first run, and the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

from models.demo import demo_strong_rupture


@pytest.mark.slow
def test_simulated_rupture_demo_beats_dis_and_zero_and_reads_the_offset(tmp_path: Path, qf_model: Path) -> None:
    assert qf_model.name == "quakefusion.onnx"  # the shipped, trained network (not the stand-in)
    c = demo_strong_rupture(tmp_path / "demo", device="cpu", model=qf_model)
    assert 7.3 < c["mw"] < 7.5 and c["pixel_size_m"] == 10.0
    assert c["truth_horizontal_p99_m"] > 3.0  # metres of motion: a few tenths of a pixel
    assert c["epe_px_near"] < 0.08  # relit, simulator v2: 0.052 px (v1's aliased SAR pair 0.055; raw pair 0.117)
    run = json.loads((Path(c["out"]) / "run.json").read_text())
    assert run["stats"]["illumination"]["relit"]
    assert c["epe_px_near"] < 0.9 * c["dis_epe_px_near"]
    assert c["epe_px_near"] < 0.4 * c["zero_epe_px_near"]
    assert 6.0 < c["step_true_m"] < 6.8
    assert abs(c["step_model_m"] - c["step_true_m"]) < 0.05 * c["step_true_m"]
    # the second run finds its trace (--trace auto: a blind first pass, the trace extracted, the run with it): the
    # trace the Rupture trace tool extracts from the first run, written beside the run; the same offset, and sharp
    assert c["trace_source"].startswith("line") and "decorrelation band" in c["trace_source"]
    assert c["trace_as_the_tool"] and c["first_pass_s"] > 0
    second = json.loads((Path(c["out_with_trace"]) / "run.json").read_text())
    assert second["parameters"]["rupture_trace"]["path"] == str(Path(c["out_with_trace"]) / "rupture_trace.gpkg")
    assert second["parameters"]["rupture_trace"]["per_line"][0]["signif"] > 1.15
    assert "model_load_s" not in second["timings"]  # the second pass keeps the first pass's model session
    assert not [p for p in Path(c["out_with_trace"]).iterdir() if p.name.startswith(".")]
    assert c["trace_within_2px"] >= 0.95 and c["trace_within_1px"] >= 0.8  # measured 1.00 / 0.90
    assert abs(c["step_with_trace_m"] - c["step_true_m"]) < 0.02 * c["step_true_m"]
    # the jump within +-3 px of the trace: blind the step is spread (0.51 of it), given the trace sharp (0.99)
    assert c["jump3_model_m"] < 0.6 * c["jump3_true_m"] and c["jump3_with_trace_m"] > 0.9 * c["jump3_true_m"]
    with rasterio.open(Path(c["out"]) / "displacement.tif") as ds:
        assert ds.crs is not None and ds.res == (10.0, 10.0) and ds.count == 3
