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


def rebuild(onnx_path: Path, branch: str = "plain") -> tuple[torch.nn.Module, dict]:
    """The checkpoint of the blind graph's weights (``plain``: the outer initializers) or, for a file whose trace
    graph has weights of its own (metadata ``trace_branch``, 0.8.0), of those (``trace``: the If's then-branch
    initializers, named ``trace/<parameter>``)."""
    m = onnx.load(str(onnx_path))
    meta = json.loads({p.key: p.value for p in m.metadata_props}["quakefusion"])
    net = _as_dict(meta["network"] if branch == "plain" else meta["trace_branch"]["network"])
    channels = [c["name"] for c in meta["channels"]]
    cfg_model = {k: v for k, v in net.items() if k not in EXPORT_SETTINGS}
    if branch == "trace":  # the fine-tune's own config (its export settings were part of its training config)
        cfg_model = {**_as_dict(meta["network"]), **cfg_model}
        cfg_model = {k: v for k, v in cfg_model.items() if k not in EXPORT_SETTINGS}
    model = build_model({**cfg_model, **{k: v for k, v in net.items() if k in EXPORT_SETTINGS},
                         "channels": channels})
    if branch == "plain":
        inits = m.graph.initializer
        state = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in inits}
    else:
        then = next(a.g for n in m.graph.node if n.op_type == "If" for a in n.attribute if a.name == "then_branch")
        names = set(model.state_dict())
        state = {i.name[len("trace/"):]: torch.from_numpy(numpy_helper.to_array(i).copy())
                 for i in then.initializer if i.name.startswith("trace/") and i.name[len("trace/"):] in names}
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
    ap.add_argument("--trace-out", type=Path, default=Path("runs/warp_fusion_v2/best.pt"),
                    help="where the trace graph's own weights go (files with metadata trace_branch, 0.8.0)")
    a = ap.parse_args(argv)
    model, ckpt = rebuild(a.onnx)
    meta = json.loads({p.key: p.value for p in onnx.load(str(a.onnx), load_external_data=False).metadata_props}
                      ["quakefusion"])
    trace = rebuild(a.onnx, "trace") if meta.get("trace_branch") else None
    res = check_export(model, a.onnx, None if trace is None else trace[0])
    err = max(res.values())
    if not err < 1e-3:
        raise SystemExit(f"rebuilt model differs from {a.onnx} by {err:.2e} (max abs output): not written")
    for out, ck in ((a.out, ckpt), *(() if trace is None else ((a.trace_out, trace[1]),))):
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ck, str(out))
        print(f"{out}: weights of {a.onnx} (model {ck['rebuilt_model_version']}), max abs difference to ONNX "
              f"Runtime {err:.1e}")


if __name__ == "__main__":
    main()
