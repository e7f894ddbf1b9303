"""Export a trained checkpoint to ONNX with the ``quakefusion`` metadata (single source of truth).

    python -m models.export [--ckpt runs/default/best.pt] [--out models/quakefusion.onnx]

Without ``--ckpt``: ``runs/warp_fusion_blind/best.pt`` (the second training stage, best validation loss), else
``runs/warp_fusion/best.pt``, else ``runs/warp_fusion/last.pt``.
After writing, the ONNX model is checked against PyTorch on a valid random feature stack and on
a stand-in scene for every modality subset (finite outputs, positive sigma).

Opset 17, dynamic batch/height/width; input ``features`` (B,C,H,W) float32, outputs
``displacement_enu_m`` and ``sigma_enu_m`` (B,3,H,W) in metres and ``rupture_probability`` (B,1,H,W).
Metadata JSON under ``metadata_props["quakefusion"]`` (see docs/architecture.md).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from models.channels import CHANNELS, channel_specs
from models.fusion import build_model

# 0.8.1: 0.8.0's weights and settings in a faster graph (the same computation rearranged: running sums along the
# columns through a transpose, zero padding once for both directions, LK solved on window sums, inputs pooled before
# the U-Net's concatenation, scores computed once per pair); outputs within 1e-4 px of 0.8.0 (float rounding)
MODEL_VERSION = "0.8.1"
OPSET = 17
TILE_MULTIPLE = 32  # 1/4-resolution U-Net with 4 levels
# Context the network draws on each side of a pixel (px): 1/4-resolution U-Net (4 levels, ~130 px) + the fixed front
# end (coarse LK at 1/4 resolution with 9-px windows, band-pass RMS, warps; ~60 px). The backend derives the tile
# overlap from it (backend/config.py); seams are measured in BENCHMARKS.md.
RECEPTIVE_FIELD_PX = 224
DEFAULT_CKPTS = (Path("runs/warp_fusion_blind/best.pt"), Path("runs/warp_fusion/best.pt"),
                 Path("runs/warp_fusion/last.pt"))
DEFAULT_OUT = Path("models/quakefusion.onnx")
OUTPUT_NAMES = ("displacement_enu_m", "sigma_enu_m", "rupture_probability", "sar_share")
# Parameter-free settings of the fusion applied at export, whatever the checkpoint's config says (they have no
# weights): 0.5.0 = the 0.4.0 weights with the wide windows closed at a detected discontinuity and an exact mask for
# absent pairs (models/fusion.py ``_wide_gate`` / ``exact_mask``; numbers in models/MODEL_CARD.md), and sigma x 1.29:
# the gate's extra error on the validation scenes (tools/sigma_scale.py), so that sigma says so. 0.6.0 adds
# ``mask_warp`` (nodata gaps no longer pull the offsets towards zero, ``models.fusion.lk_windows``) and sigma x 1.33
# instead of 1.29 (the same measurement with it).
# 0.8.0: the graph for a given rupture trace takes the weights of a fine-tune on simulator-v2 scenes
# (models/configs/finetune_v2.json, trained with the export settings below, so sigma x 1.0): it averages more than
# 0.7.0's weights, which blurs the step where the windows may cross the rupture (blind: share of the step within
# +-3 px 0.46 -> 0.28 on (d)) but not where they stop at a known trace (there: lower noise, same or better step;
# models/MODEL_CARD.md). The blind graph keeps 0.7.0's weights.
DEFAULT_TRACE_CKPT = Path("runs/warp_fusion_v2/best.pt")
TRACE_SETTINGS = ("sigma_scale=1.0",)
EXPORT_SETTINGS = {"wide_gate_px": 0.15, "wide_gate_k": 0.0, "wide_gate_set": True, "exact_mask": True,
                   "mask_warp": True,
                   "sigma_scale": 1.33}

# Outputs the graph computes but that carry no information (backend.model.ModelMeta.uninformative_outputs): the
# backend does not write them and says why in the run's notes. 0.7.0's rupture head learnt only the base rate
# (ROC AUC 0.48-0.54 on the held-out sets; models/MODEL_CARD.md): its layer was ~0.1 everywhere, on the rupture too.
UNINFORMATIVE_OUTPUTS = {
    "rupture_probability": (
        "this model's rupture head has not learnt (ROC AUC 0.48-0.54 on the held-out test sets, models/MODEL_CARD.md): "
        "it gives about the base rate (~0.1) everywhere, on a rupture too. Find the trace with Raster ▸ QuakeFusion ▸ "
        "Geologist's tools… (Extract a new trace) or python -m backend trace RUN_DIR: a line search on the "
        "displacement, placed by the interferogram's decorrelation band when there is one"),
}


def build_metadata(model: torch.nn.Module, ckpt: dict[str, Any] | None = None,
                   settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``quakefusion`` metadata; ``settings``: the export settings applied (default ``EXPORT_SETTINGS``)."""
    data = (ckpt or {}).get("config", {}).get("data", {})
    meta: dict[str, Any] = {
        "model_version": MODEL_VERSION,
        "input_name": "features",
        "outputs": {"displacement": "displacement_enu_m", "sigma": "sigma_enu_m",
                    "rupture_probability": "rupture_probability", "sar_share": "sar_share"},
        "output_units": {"displacement_enu_m": "m (east, north, up)",
                         "sigma_enu_m": "m, 1-sigma (std of a Laplace predictive) per component",
                         "rupture_probability": "0-1, probability that a surface rupture passes within 1 px",
                         "sar_share": "0-1, share of the horizontal's mix weight on the SAR amplitude candidates"},
        "channels": channel_specs(model.channels),
        "pixel_size_range_m": list(data.get("pixel_size_range_m", [5.0, 30.0])),
        "tile_multiple": TILE_MULTIPLE,
        "receptive_field_px": RECEPTIVE_FIELD_PX,
        "wavelength_m_trained": list(data.get("wavelength_range_m", [0.0555, 0.2384])),
        "phase_convention": "features use phase_sign * wrapped_phase (= 4 pi / lambda * range increase)",
        "grid": "north-up: row 0 north, column 0 west",
        "opset": OPSET,
        "uninformative_outputs": dict(UNINFORMATIVE_OUTPUTS),
    }
    if ckpt is not None:
        meta["training"] = {k: ckpt.get(k) for k in ("step", "seed", "val_loss", "val_epe_px", "val_epe_px_by_combo")
                            if k in ckpt}
        meta["training"]["data"] = {k: data.get(k) for k in ("backend", "train_seeds", "scene_size", "crop")
                                    if k in data}
        meta["network"] = {**ckpt.get("config", {}).get("model", {}), **(settings or EXPORT_SETTINGS)}
    return meta


def _trace_graph(model: torch.nn.Module, size: int = 64) -> onnx.ModelProto:
    """The model traced to ONNX (in memory)."""
    x = torch.randn(1, len(model.channels), size, size)
    x[:, model.ix["pixel_size_m"]] = 10.0
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), buf, dynamo=False, opset_version=OPSET,
            input_names=["features"], output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch", 2: "height", 3: "width"} for name in ("features", *OUTPUT_NAMES)},
            do_constant_folding=True, external_data=False,
        )
    return onnx.load_from_string(buf.getvalue())


def _branch(m: onnx.ModelProto, prefix: str, shared: set[str], outer: dict[str, onnx.TensorProto]) -> onnx.GraphProto:
    """``m``'s graph as a subgraph: no inputs (``features`` from the outer scope), every other name prefixed; the
    initializers named in ``shared`` (the weights, equal in both branches) move to ``outer`` once."""
    g = m.graph
    ren = {i.name: prefix + i.name for i in g.initializer if i.name not in shared}
    ren.update({o: prefix + o for n in g.node for o in n.output if o})
    sub = onnx.helper.make_graph([], prefix + "graph", [], [])
    for init in g.initializer:
        if init.name in shared:
            outer.setdefault(init.name, init)
        else:
            t = copy.deepcopy(init)
            t.name = ren[init.name]
            sub.initializer.append(t)
    for n in g.node:
        node = copy.deepcopy(n)
        node.name = prefix + node.name if node.name else node.name
        node.input[:] = [ren.get(x, x) for x in node.input]
        node.output[:] = [ren.get(x, x) for x in node.output]
        sub.node.append(node)
    for o in g.output:
        v = copy.deepcopy(o)
        v.name = ren[o.name]
        sub.output.append(v)
    return sub


def export_onnx(model: torch.nn.Module, out: Path, meta: dict[str, Any], size: int = 64,
                trace_model: torch.nn.Module | None = None) -> Path:
    """One ONNX file. With a ``fault_side`` channel: an ``If`` on "any pixel of it is non-zero" between the graph
    that uses the trace (then) and the one that ignores it (else; 0.6.0's graph, ~30 % faster), sharing the weights:
    a run without a trace does not pay for the trace's extra sums. ``trace_model`` (experimental, ``--trace-ckpt``):
    the "then" branch from other weights (its own initializers), e.g. a fine-tune that averages more, which is harmless
    only where the windows stop at a known trace."""
    model = model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if "fault_side" not in model.ix:
        m = _trace_graph(model, size)
    else:
        use = model.use_side
        tm = trace_model if trace_model is not None else model
        use_t = tm.use_side
        try:
            tm.use_side = True
            with_trace = _trace_graph(tm, size)
            model.use_side = False
            without = _trace_graph(model, size)
        finally:
            model.use_side, tm.use_side = use, use_t
        shared = {n for n, _ in model.named_parameters()}
        outer: dict[str, onnx.TensorProto] = {}
        then_g = _branch(with_trace, "trace/", shared if trace_model is None else set(), outer)
        else_g = _branch(without, "plain/", shared, outer)
        h, T = onnx.helper, onnx.TensorProto
        nodes = [
            h.make_node("Constant", [], ["fault_side_index"],
                        value=h.make_tensor("fault_side_index_value", T.INT64, [1], [model.ix["fault_side"]])),
            h.make_node("Gather", ["features", "fault_side_index"], ["fault_side"], axis=1),
            h.make_node("Abs", ["fault_side"], ["fault_side_abs"]),
            h.make_node("ReduceMax", ["fault_side_abs"], ["fault_side_max"], keepdims=0),
            h.make_node("Constant", [], ["zero"], value=h.make_tensor("zero_value", T.FLOAT, [], [0.0])),
            h.make_node("Greater", ["fault_side_max", "zero"], ["trace_given"]),
            h.make_node("If", ["trace_given"], [o.name for o in with_trace.graph.output],
                        then_branch=then_g, else_branch=else_g),
        ]
        g = h.make_graph(nodes, "quakefusion", list(with_trace.graph.input), list(with_trace.graph.output),
                         initializer=list(outer.values()))
        m = h.make_model(g, opset_imports=with_trace.opset_import)
        m.ir_version = with_trace.ir_version
    del m.metadata_props[:]
    entry = m.metadata_props.add()
    entry.key, entry.value = "quakefusion", json.dumps(meta)
    m.producer_name = "quakefusion"
    m.doc_string = ("QuakeFusion multi-modal earthquake displacement network (E, N, U metres + 1-sigma, "
                    "rupture probability)")
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


def default_checkpoint() -> Path:
    for p in DEFAULT_CKPTS:
        if p.exists():
            return p
    raise SystemExit(f"no checkpoint: none of {', '.join(map(str, DEFAULT_CKPTS))} exists (run `make train`)")


def check_export(model: torch.nn.Module, out: Path, trace_model: torch.nn.Module | None = None) -> dict[str, float]:
    """ONNX Runtime vs PyTorch on a stand-in scene with every modality (a random stack is an ill-posed fit whose
    float-order differences say nothing), without a trace and, for a model that takes one, with a trace across the
    scene (the graph's other branch); finite outputs for every modality subset."""
    import onnxruntime as ort

    from backend.model import cpu_session_options
    from models.dataset import COMBOS, features_and_target, standin_scene

    sess = ort.InferenceSession(str(out), cpu_session_options(), providers=["CPUExecutionProvider"])
    rec = standin_scene(0, (128, 128), pixel_size_m=10.0)
    x = features_and_target(rec, COMBOS["all"], list(model.channels))[0][None].astype(np.float32)
    stacks = {"max_abs_onnx_minus_torch_m": x}
    if "fault_side" in model.ix:
        xt = x.copy()
        xt[:, model.ix["fault_side"]] = np.where(np.arange(128)[None, :] >= 60, 1.0, -1.0)
        stacks["max_abs_onnx_minus_torch_m_trace"] = xt
    res = {}
    for key, inp in stacks.items():
        ref = trace_model if trace_model is not None and key.endswith("_trace") else model
        with torch.no_grad():
            d_torch = ref(torch.from_numpy(inp))[0].numpy()
        res[key] = float(np.abs(sess.run(None, {"features": inp})[0] - d_torch).max())
    rec = standin_scene(0, (64, 64), pixel_size_m=10.0)
    for present in COMBOS.values():
        for drop_dem in (False, True):
            mods = tuple(m for m in present if not (drop_dem and m == "dem"))
            xc = features_and_target(rec, mods, list(model.channels))[0][None]
            d, s, r, w = sess.run(None, {"features": xc})
            if not (np.isfinite(d).all() and np.isfinite(s).all() and (s > 0).all() and ((r >= 0) & (r <= 1)).all()
                    and ((w >= 0) & (w <= 1 + 1e-6)).all()):
                raise RuntimeError(f"{out}: non-finite output or sigma <= 0 for modalities {mods}")
    return res


def _apply_settings(model: torch.nn.Module, items: list[str]) -> dict[str, Any]:
    """EXPORT_SETTINGS with ``KEY=JSON`` overrides, set on ``model`` (and its channel list made the current one)."""
    settings = dict(EXPORT_SETTINGS)
    for item in items:
        key, _, value = item.partition("=")
        if not hasattr(model, key):
            raise SystemExit(f"{item}: the network has no setting {key!r}")
        settings[key] = json.loads(value)
    for key, value in settings.items():
        setattr(model, key, value)
    model.set_channels(CHANNELS)  # the current list (0.7.0: + fault_side, a given rupture trace; no weights)
    return settings


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path,
                    help="default: runs/warp_fusion_blind/best.pt, else runs/warp_fusion/best.pt or last.pt")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--trace-ckpt", default=str(DEFAULT_TRACE_CKPT),
                    help="the graph for a given rupture trace from this checkpoint's weights (default: "
                         f"{DEFAULT_TRACE_CKPT}, 0.8.0; 'same': the --ckpt weights in both graphs, as 0.7.0)")
    ap.add_argument("--trace-set", action="append", default=list(TRACE_SETTINGS), metavar="KEY=JSON",
                    help="an export setting of the trace graph's model (default: sigma_scale=1.0)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="an export setting over EXPORT_SETTINGS (experiments), e.g. --set sar_vertical=true")
    args = ap.parse_args(argv)
    ckpt_path = args.ckpt or default_checkpoint()
    model, ckpt = load_checkpoint(ckpt_path)
    settings = _apply_settings(model, args.set)
    trace_model = None
    meta = build_metadata(model, ckpt, settings)
    if args.trace_ckpt != "same":
        if not Path(args.trace_ckpt).exists():
            raise SystemExit(f"no checkpoint {args.trace_ckpt} for the trace graph: run `make train` (its last stage, "
                             "finetune_v2.json) or rebuild it from the shipped file (tools/checkpoint_from_onnx.py), "
                             "or give --trace-ckpt same")
        trace_model, tck = load_checkpoint(Path(args.trace_ckpt))
        meta["trace_branch"] = {"checkpoint": str(args.trace_ckpt), "step": tck.get("step"),
                                "config": tck.get("config", {}).get("run_dir"),
                                **{k: tck[k] for k in ("val_loss", "val_epe_px_by_combo") if k in tck},
                                "network": _apply_settings(trace_model, args.trace_set)}
    out = export_onnx(model, args.out, meta, trace_model=trace_model)
    res = check_export(model, out, trace_model)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) from {ckpt_path} (step {ckpt.get('step')}); "
          f"max |onnx - torch| on a stand-in scene = {res['max_abs_onnx_minus_torch_m']:.2e} m"
          + (f" (with a trace: {res['max_abs_onnx_minus_torch_m_trace']:.2e} m)"
             if "max_abs_onnx_minus_torch_m_trace" in res else "") + "; finite for every modality subset")


if __name__ == "__main__":
    main()
