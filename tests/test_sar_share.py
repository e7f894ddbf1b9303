"""The model's ``sar_share`` output (the SAR amplitude candidates' share of the horizontal's mix weight) and what a
run says with it: a geocoded amplitude image moves by the horizontal minus U cot(incidence) along ground range, so
that share of the fused horizontal carries the vertical (docs/insar_fusion.md). Shipped model, real pipeline."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from backend.config import EstimateConfig
from backend.model import DEFAULT_MODEL, cpu_session_options, read_metadata
from backend.pipeline import run_estimate

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="needs the shipped model")


@pytest.fixture(scope="module")
def thrust_inputs(tmp_path_factory) -> tuple:
    """A Mw 7 thrust with metres of uplift, 128 x 128 at 30 m, every modality as files."""
    from models.scene import simulate_scene
    from models.testing import scene_estimate_inputs

    s = simulate_scene(9900001, size=(128, 128), pixel_size_m=30.0,
                       overrides={"surface_rupture": True, "mw_range": [6.8, 7.6]})
    d = tmp_path_factory.mktemp("thrust")
    return s, scene_estimate_inputs(s, d / "in"), d


def test_sar_share_is_the_sar_candidates_weight_per_modality_subset() -> None:
    """0 without a SAR pair, 1 with SAR alone, a per-pixel choice with both (this 30-m scene: mostly SAR, down to
    ~0 where the optical pair wins); the metadata lists it with its units."""
    from models.dataset import COMBOS, features_and_target, scene_to_record
    from models.scene import simulate_scene

    meta = read_metadata(DEFAULT_MODEL)
    assert meta.outputs["sar_share"] == "sar_share" and "sar_share" in meta.raw["output_units"]
    sess = ort.InferenceSession(str(DEFAULT_MODEL), cpu_session_options(2), providers=["CPUExecutionProvider"])
    rec = scene_to_record(simulate_scene(3, size=(96, 96), pixel_size_m=30.0))
    chans = [c["name"] for c in meta.channels]
    share = {}
    for combo in ("optical", "sar", "optical+sar"):
        x = features_and_target(rec, COMBOS[combo], chans)[0][None].astype(np.float32)
        share[combo] = sess.run(["sar_share"], {"features": x})[0][0, 0]
    assert np.all(share["optical"] == 0.0)
    np.testing.assert_allclose(share["sar"], 1.0, atol=1e-5)
    both = share["optical+sar"]
    assert both.min() >= 0.0 and both.max() <= 1.0 + 1e-6
    assert both.min() < 0.1 and float(np.median(both)) > 0.9  # measured: 0.008 and 0.996


def test_run_notes_the_sar_share_and_its_vertical_leak(thrust_inputs) -> None:
    """With the SAR pair the run states the SAR share (run.json ``sar_share_median``) and what it means for a
    rupture that moved the ground vertically; the share itself is never a published file. The optical pair alone:
    no share, no such note. The experimental coupling (``sar_vertical_coupling``) changes the inverted E/N only
    where the ground moved vertically, and leaves E/N unconstrained (NaN) where the horizontal is nearly all SAR."""
    s, inputs, d = thrust_inputs
    res = run_estimate(EstimateConfig(out_dir=d / "all", **inputs))
    run = res.run
    assert 0.0 < run["sar_share_median"] <= 1.0 and run["sar_vertical_coupling"] is False
    note = [n for n in run["notes"] if n.startswith("the SAR amplitude pair gives")]
    assert len(note) == 1 and f"{100 * run['sar_share_median']:.0f} % (median)" in note[0]
    assert "U cot(incidence)" in note[0] and "optical pair only" in note[0]
    assert not any("sar_share" in f for f in run["files"]) and not (d / "all" / ".sar_share.tif").exists()
    assert json.loads((d / "all" / "run.json").read_text())["sar_share_median"] == run["sar_share_median"]

    opt = {k: v for k, v in inputs.items() if not k.startswith("sar")}
    res_o = run_estimate(EstimateConfig(out_dir=d / "optical", **opt))
    assert res_o.run["sar_share_median"] is None
    assert not any(n.startswith("the SAR amplitude pair gives") for n in res_o.run["notes"])

    res_c = run_estimate(EstimateConfig(out_dir=d / "coupled", sar_vertical_coupling=True, **inputs))
    assert res_c.run["sar_vertical_coupling"] is True
    assert any("modelled in the 3-D inversion" in n for n in res_c.run["notes"])
    import rasterio

    with rasterio.open(res.outputs["displacement"]) as a, rasterio.open(res_c.outputs["displacement"]) as b:
        ea, eb = a.read(1), b.read(1)
    both = np.isfinite(ea) & np.isfinite(eb)
    # where the horizontal is nearly all SAR, SAR range offsets and the LOS measure the same combination: the
    # coupled inversion leaves more pixels unconstrained (NaN), and moves E elsewhere
    assert np.isfinite(eb).mean() < np.isfinite(ea).mean() and both.mean() > 0.05
    assert float(np.max(np.abs(eb - ea)[both])) > 0.01

