"""ONNX export: dynamic batch/height/width, metadata, ONNX Runtime == PyTorch within 1e-4 relative."""

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
from models.fusion import build_model


@pytest.mark.slow
def test_onnx_matches_pytorch_and_carries_metadata(tmp_path: Path) -> None:
    from models.dataset import scene_to_record
    from models.scene import simulate_scene

    torch.manual_seed(0)
    model = build_model({}).eval()
    out = export_onnx(model, tmp_path / "m.onnx", build_metadata(model))
    meta = read_metadata(out)
    assert [c["name"] for c in meta["channels"]] == CHANNELS
    assert meta["input_name"] == "features" and meta["tile_multiple"] == 32 and meta["receptive_field_px"] == 224
    assert meta["outputs"] == {"displacement": "displacement_enu_m", "sigma": "sigma_enu_m",
                               "rupture_probability": "rupture_probability", "sar_share": "sar_share"}
    assert list(meta["uninformative_outputs"]) == ["rupture_probability"]  # 0.7.0's head has not learnt
    assert min(o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")) >= 17
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    # realistic feature stacks (a random stack makes the Lucas-Kanade systems ill-conditioned: float32 rounding
    # differences between the runtimes are then amplified), at two batch sizes and shapes
    rec = scene_to_record(simulate_scene(11, size=(96, 128), pixel_size_m=10.0))
    x1 = features_and_target(rec, COMBOS["all"])[0][None]
    x2 = np.concatenate([features_and_target(rec, COMBOS[c])[0][None, :, :64, :96] for c in ("optical", "insar")])
    x3 = features_and_target(standin_scene(1, (64, 64)), COMBOS["all"])[0][None]
    for x in (x1, x2, x3):
        outs = sess.run(["displacement_enu_m", "sigma_enu_m", "rupture_probability", "sar_share"], {"features": x})
        with torch.no_grad():
            ref = [t.numpy() for t in model(torch.from_numpy(x))]
        for o, r in zip(outs, ref):
            assert o.shape == r.shape
            # float32 rounding in the per-pixel Lucas-Kanade solves differs between the runtimes by ~2e-5 relative
            # (3e-4 m on a 15 m offset at 10 m pixels = 3e-5 px)
            assert np.abs(o - r).max() <= 1e-4 * max(1.0, float(np.abs(r).max()))


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
                d, s, rp, w = sess.run(["displacement_enu_m", "sigma_enu_m", "rupture_probability", "sar_share"],
                                       {"features": x[None]})
                label = "+".join(mods + dem) + (" (InSAR holes)" if r is holes else "")
                assert d.shape == (1, 3, 64, 64), label
                assert np.isfinite(d).all() and np.isfinite(s).all() and (s > 0).all(), label
                assert ((rp >= 0) & (rp <= 1)).all(), label
                # the SAR candidates' share of the horizontal: none without the SAR pair, all of it with SAR alone
                assert ((w >= 0) & (w <= 1 + 1e-6)).all(), label
                assert ("sar" in mods or (w == 0).all()) and (mods != ("sar",) or np.allclose(w, 1.0)), label


def test_backend_reads_the_metadata_from_the_header_and_refuses_a_truncated_model(tmp_path: Path) -> None:
    """The backend reads the model's metadata from the ONNX header (protobuf fields, no ONNX Runtime session: a
    session of this network takes ~12 s, which every run paid twice before). Same JSON as ONNX Runtime reads; a
    truncated copy falls back to ONNX Runtime and is refused with a message that names the file and the fix."""
    from backend.errors import PipelineError
    from backend.model import _header_metadata, _session_metadata
    from backend.model import read_metadata as backend_metadata

    assert _header_metadata(SHIPPED)["quakefusion"] == _session_metadata(SHIPPED)["quakefusion"]
    assert backend_metadata(SHIPPED).version == read_metadata(SHIPPED)["model_version"]
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(SHIPPED.read_bytes()[:100_000])
    assert _header_metadata(cut) is None
    with pytest.raises(PipelineError, match=r"cut\.onnx.*Fix"):
        backend_metadata(cut)
