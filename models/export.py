"""Export a trained checkpoint to ONNX with the ``quakefusion`` metadata (single source of truth).

    python -m models.export [--ckpt runs/default/best.pt] [--out models/quakefusion.onnx]

Opset 17, dynamic batch/height/width; input ``features`` (B,C,H,W) float32, outputs
``displacement_enu_m`` and ``sigma_enu_m`` (B,3,H,W) in metres. Metadata JSON under
``metadata_props["quakefusion"]`` (see docs/architecture.md).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from models.channels import channel_specs
from models.network import build_model

MODEL_VERSION = "0.1.0"
OPSET = 17
TILE_MULTIPLE = 16
DEFAULT_CKPT = Path("runs/default/best.pt")
DEFAULT_OUT = Path("models/quakefusion.onnx")


def build_metadata(model: torch.nn.Module, ckpt: dict[str, Any] | None = None) -> dict[str, Any]:
    data = (ckpt or {}).get("config", {}).get("data", {})
    meta: dict[str, Any] = {
        "model_version": MODEL_VERSION,
        "input_name": "features",
        "outputs": {"displacement": "displacement_enu_m", "sigma": "sigma_enu_m"},
        "output_units": {"displacement_enu_m": "m (east, north, up)",
                         "sigma_enu_m": "m, 1-sigma (std of a Laplace predictive) per component"},
        "channels": channel_specs(model.channels),
        "pixel_size_range_m": list(data.get("pixel_size_range_m", [5.0, 30.0])),
        "tile_multiple": TILE_MULTIPLE,
        "recommended_overlap_px": 32,
        "wavelength_m_trained": list(data.get("wavelength_range_m", [0.0555, 0.2384])),
        "phase_convention": "features use phase_sign * wrapped_phase (= 4 pi / lambda * range increase)",
        "grid": "north-up: row 0 north, column 0 west",
        "opset": OPSET,
    }
    if ckpt is not None:
        meta["training"] = {k: ckpt.get(k) for k in ("step", "seed", "val_loss") if k in ckpt}
        meta["network"] = ckpt.get("config", {}).get("model", {})
    return meta


def export_onnx(model: torch.nn.Module, out: Path, meta: dict[str, Any], size: int = 64) -> Path:
    model = model.eval()
    nc = len(model.channels)
    x = torch.randn(1, nc, size, size)
    x[:, model.ix["pixel_size_m"]] = 10.0
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(out), dynamo=False, opset_version=OPSET,
            input_names=["features"], output_names=["displacement_enu_m", "sigma_enu_m"],
            dynamic_axes={"features": {0: "batch", 2: "height", 3: "width"},
                          "displacement_enu_m": {0: "batch", 2: "height", 3: "width"},
                          "sigma_enu_m": {0: "batch", 2: "height", 3: "width"}},
            do_constant_folding=True, external_data=False,
        )
    m = onnx.load(str(out))
    del m.metadata_props[:]
    entry = m.metadata_props.add()
    entry.key, entry.value = "quakefusion", json.dumps(meta)
    m.producer_name = "quakefusion"
    m.doc_string = "QuakeFusion multi-modal earthquake displacement network (E, N, U metres + 1-sigma)"
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    return out


def read_metadata(path: Path) -> dict[str, Any]:
    m = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in m.metadata_props}
    return json.loads(props["quakefusion"])


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    model = build_model(ckpt["config"].get("model", {}))
    model.load_state_dict(ckpt["ema"] if ckpt.get("ema") else ckpt["model"])
    return model.eval(), ckpt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    model, ckpt = load_checkpoint(args.ckpt)
    out = export_onnx(model, args.out, build_metadata(model, ckpt))
    # check against PyTorch on a random input
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, len(model.channels), 96, 128)).astype(np.float32)
    x[:, model.ix["pixel_size_m"]] = 10.0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    d_onnx, _ = sess.run(None, {"features": x})
    with torch.no_grad():
        d_torch, _ = model(torch.from_numpy(x))
    err = float(np.abs(d_onnx - d_torch.numpy()).max())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), step {ckpt.get('step')}, max |onnx - torch| = {err:.2e} m")


if __name__ == "__main__":
    main()
