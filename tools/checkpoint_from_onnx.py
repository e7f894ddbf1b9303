"""Rebuild a PyTorch checkpoint from the shipped ONNX model (its weights are the graph's named initializers, its
network settings and training record are in the ``quakefusion`` metadata).

    .venv/bin/python tools/checkpoint_from_onnx.py [--onnx ONNX] [--out runs/warp_fusion_blind/best.pt]

Training checkpoints live in ``runs/`` (not in git). With this, ``make export`` and the diagnosis tools run on a
fresh clone without retraining: the rebuilt checkpoint loads strictly into ``models.fusion.build_model`` and is
checked against ONNX Runtime on a stand-in scene with every modality before it is written.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.export import EXPORT_SETTINGS, check_export  # noqa: E402
from models.fusion import build_model  # noqa: E402


def _as_dict(v: object) -> dict:
    return v if isinstance(v, dict) else ast.literal_eval(str(v))


def rebuild(onnx_path: Path) -> tuple[torch.nn.Module, dict]:
    m = onnx.load(str(onnx_path))
    meta = json.loads({p.key: p.value for p in m.metadata_props}["quakefusion"])
    net = _as_dict(meta["network"])
    channels = [c["name"] for c in meta["channels"]]
    cfg_model = {k: v for k, v in net.items() if k not in EXPORT_SETTINGS}
    model = build_model({**cfg_model, **{k: v for k, v in net.items() if k in EXPORT_SETTINGS},
                         "channels": channels})
    state = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
    model.load_state_dict(state, strict=True)
    tr = meta.get("training", {})
    ckpt = {"model": model.state_dict(), "ema": None,
            "config": {"model": {**cfg_model, "channels": channels}, "data": tr.get("data", {})},
            **{k: tr[k] for k in ("step", "seed", "val_loss", "val_epe_px", "val_epe_px_by_combo") if k in tr},
            "rebuilt_from": str(onnx_path), "rebuilt_model_version": meta.get("model_version")}
    return model.eval(), ckpt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, default=Path("models/quakefusion.onnx"))
    ap.add_argument("--out", type=Path, default=Path("runs/warp_fusion_blind/best.pt"))
    a = ap.parse_args(argv)
    model, ckpt = rebuild(a.onnx)
    err = check_export(model, a.onnx)["max_abs_onnx_minus_torch_m"]
    if not err < 1e-3:
        raise SystemExit(f"rebuilt model differs from {a.onnx} by {err:.2e} (max abs output): not written")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, str(a.out))
    print(f"{a.out}: weights of {a.onnx} (model {ckpt['rebuilt_model_version']}), max abs difference to ONNX "
          f"Runtime {err:.1e}")


if __name__ == "__main__":
    main()
