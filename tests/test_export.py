"""ONNX export: dynamic batch/height/width, metadata, ONNX Runtime == PyTorch within 1e-4 m."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.channels import CHANNELS
from models.dataset import COMBOS, features_and_target, standin_scene
from models.export import build_metadata, export_onnx, read_metadata
from models.network import build_model


@pytest.mark.slow
def test_onnx_matches_pytorch_and_carries_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model({}).eval()
    out = export_onnx(model, tmp_path / "m.onnx", build_metadata(model))
    meta = read_metadata(out)
    assert [c["name"] for c in meta["channels"]] == CHANNELS
    assert meta["input_name"] == "features" and meta["tile_multiple"] == 16
    assert meta["outputs"] == {"displacement": "displacement_enu_m", "sigma": "sigma_enu_m"}
    assert min(o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")) >= 17
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    # Random inputs at two batch sizes / shapes, plus a realistic feature stack. The random stacks are valid
    # feature stacks (unit cos/sin, 0/1 masks, positive pixel/fringe sizes): on non-unit cos/sin the wrapped
    # phase difference sits on the atan2 branch cut (+-pi) and 1-ulp differences flip it between runtimes.
    inputs = []
    ix = CHANNELS.index
    for shape in [(2, len(CHANNELS), 48, 80), (1, len(CHANNELS), 96, 64)]:
        b, _, h, w = shape
        x = rng.standard_normal(shape).astype(np.float32)
        ang = rng.uniform(-np.pi, np.pi, (b, h, w))
        x[:, ix("phase_cos")], x[:, ix("phase_sin")] = np.cos(ang), np.sin(ang)
        x[:, ix("coherence")] = rng.uniform(0, 1, (b, h, w))
        for m in ("mask_optical", "mask_sar", "mask_insar", "mask_dem"):
            x[:, ix(m)] = rng.random((b, h, w)) < 0.8
        x[:, ix("pixel_size_m")] = rng.uniform(5, 30)
        x[:, ix("fringe_px")] = rng.uniform(0.001, 0.03)
        inputs.append(x)
    inputs.append(features_and_target(standin_scene(1, (64, 64)), COMBOS["all"])[0][None])
    for x in inputs:
        d_onnx, s_onnx = sess.run(["displacement_enu_m", "sigma_enu_m"], {"features": x})
        with torch.no_grad():
            d_t, s_t = model(torch.from_numpy(x))
        assert d_onnx.shape == tuple(d_t.shape)
        assert np.abs(d_onnx - d_t.numpy()).max() < 1e-4
        assert np.abs(s_onnx - s_t.numpy()).max() < 1e-4 * max(1.0, float(s_t.abs().max()))


SHIPPED = Path(__file__).resolve().parents[1] / "models" / "quakefusion.onnx"


def test_shipped_model_is_finite_for_every_modality_subset() -> None:
    """The shipped ONNX on a simulated scene: finite displacement and sigma > 0 for every non-empty subset of
    optical / SAR / InSAR, with and without the DEM, and with InSAR holes (NaN phase in a block).
    Regression: atan2(0, 0) in the wrapped-phase gradient is NaN in ONNX Runtime when InSAR is absent."""
    from itertools import combinations

    from backend.features import build_features, compute_stats
    from models.dataset import arrays_for, scene_to_record
    from models.scene import simulate_scene

    assert SHIPPED.stat().st_size <= 20e6
    meta = read_metadata(SHIPPED)
    sess = ort.InferenceSession(str(SHIPPED), providers=["CPUExecutionProvider"])
    rec = scene_to_record(simulate_scene(11, size=(64, 64), pixel_size_m=15.0))
    holes = dict(rec)
    holes["wrapped_phase"] = rec["wrapped_phase"].copy()
    holes["wrapped_phase"][20:40, 10:30] = np.nan
    subsets = [c for k in (1, 2, 3) for c in combinations(("optical", "sar", "insar"), k)]
    for r in (rec, holes):
        for mods in subsets:
            for dem in ((), ("dem",)):
                arrays = arrays_for(r, mods + dem)
                x = build_features(meta["channels"], arrays, stats=compute_stats(arrays),
                                   pixel_size_m=r["pixel_size_m"], wavelength_m=r["wavelength_m"],
                                   phase_sign=int(r["phase_sign"]))
                d, s = sess.run(["displacement_enu_m", "sigma_enu_m"], {"features": x[None]})
                label = "+".join(mods + dem) + (" (InSAR holes)" if r is holes else "")
                assert d.shape == (1, 3, 64, 64), label
                assert np.isfinite(d).all() and np.isfinite(s).all() and (s > 0).all(), label
