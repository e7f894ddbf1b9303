"""Fault-perpendicular profile on a held-out real-texture scene: truth, model +- sigma (and, for a model that takes
a rupture trace, the same model given the true trace), DIS, correlator.

    python -m models.figure_profile [--config models/configs/eval_real_texture_large.json] [--seed S]
                                    [--model models/quakefusion.onnx] [--out docs/img/fault_profile.png]

Left: the fault-parallel displacement (m) against the signed distance to the true trace (m), averaged over
every pixel along the trace in 1-px distance bins (the stack a geologist draws by hand in QGIS); the model's
shaded band is its mean per-pixel 1-sigma; the grey bands are the 50-500 m windows of the step metric. Right:
the post image with the trace. Without ``--seed``, the scene with the largest true step of the config's set.
Uses the scene/correlator cache of ``models.evaluate`` (simulated if missing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from models import fault_metrics as fm
from models.baselines import dis_offsets
from models.evaluate import OnnxModel, correlator_cached, record_for, scene_list


def _setup(rec: dict, cfg: dict) -> tuple[dict, np.ndarray]:
    ps = rec["pixel_size_m"]
    H, W = rec["optical_pre"].shape
    m = int(cfg["margin_px"])
    sel = np.zeros((H, W), bool)
    sel[m:H - m, m:W - m] = True
    sel &= np.isfinite(rec["optical_pre"]) & np.isfinite(rec["optical_post"])
    frame = fm.fault_frame((H, W), ps, float(rec["strike_deg"]), rec["trace_segments"])
    a0, a1 = frame["a_range"]
    sel &= (frame["along"] >= a0) & (frame["along"] <= a1)
    return frame, sel


def pick_scene(cfg: dict) -> tuple[int, float]:
    """The scene of the set with the largest true fault-parallel step (50-500 m windows, median over profiles)."""
    best, key = None, -1.0
    for seed, ps in scene_list(cfg):
        rec = record_for(cfg, seed, ps)
        frame, sel = _setup(rec, cfg)
        st = fm.profile_steps(fm.fault_parallel(rec["truth_enu"][:2], frame), frame, sel, ps)
        st = st[np.isfinite(st)]
        v = float(np.median(np.abs(st)) / ps) if st.size else 0.0
        if v > key:
            best, key = (seed, ps), v
    assert best is not None
    return best


def make_figure(cfg: dict, seed: int | None, model_path: Path, out: Path, half_width_m: float = 1000.0) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if seed is None:
        seed, ps = pick_scene(cfg)
    else:
        ps = dict(scene_list(cfg))[seed]
    rec = record_for(cfg, seed, ps)
    frame, sel = _setup(rec, cfg)
    model = OnnxModel(model_path)
    out_m = model.run(rec, "optical")
    te, tn = frame["unit_en"]
    sig_fp = np.sqrt((te * out_m["sigma"][0]) ** 2 + (tn * out_m["sigma"][1]) ** 2)
    cdx, cdy, _ = correlator_cached(Path(cfg["cache_dir"]), seed, ps, rec, cfg)
    ddx, ddy = dis_offsets(rec["optical_pre"], rec["optical_post"], finest_scale=0)
    curves = {
        "truth": (fm.fault_parallel(rec["truth_enu"][:2], frame), "k", 2.2),
        f"QuakeFusion {model.meta.get('model_version', '')} [optical]": (
            fm.fault_parallel(out_m["displacement"][:2], frame), "tab:blue", 1.8),
    }
    if any(c.get("name") == "fault_side" for c in model.meta.get("channels", []) if isinstance(c, dict)):
        traced = OnnxModel(model_path, trace={"offset_px": 0}).run(rec, "optical")  # the true trace given (0.7.0)
        curves[f"QuakeFusion {model.meta.get('model_version', '')} [optical], trace given"] = (
            fm.fault_parallel(traced["displacement"][:2], frame), "tab:purple", 1.8)
    curves |= {
        "DIS medium, finest scale 0": (fm.fault_parallel(np.stack([ddx, -ddy]) * ps, frame), "tab:orange", 1.2),
        "correlator 32 px, iterative sub-pixel": (fm.fault_parallel(np.stack([cdx, -cdy]) * ps, frame),
                                                  "tab:green", 1.2),
    }
    d = frame["signed"]
    edges = np.arange(-half_width_m, half_width_m + ps, ps)
    centre = 0.5 * (edges[1:] + edges[:-1])
    idx = np.digitize(d, edges) - 1
    ok = sel & (idx >= 0) & (idx < centre.size)
    cnt = np.bincount(idx[ok], minlength=centre.size).astype(float)

    def binned(v: np.ndarray) -> np.ndarray:
        s = np.bincount(idx[ok], weights=v[ok], minlength=centre.size)
        return np.where(cnt >= 5, s / np.maximum(cnt, 1), np.nan)

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 6.2), gridspec_kw={"width_ratios": [2.1, 1]},
                                  constrained_layout=True)
    for lo, hi in ((-500, -50), (50, 500)):
        ax.axvspan(lo, hi, color="0.92", zorder=0)
    lines = []
    one = np.where(sel, 0, -1)  # one profile: the whole trace
    lim = 0.0
    for name, (v, col, lw) in curves.items():
        prof = binned(v)
        if name == "truth":
            lim = 2.5 * float(np.nanmax(np.abs(prof)))
        if name.startswith("QuakeFusion") and not name.endswith("trace given"):
            sg = binned(sig_fp)
            ax.fill_between(centre, prof - sg, prof + sg, color=col, alpha=0.2, lw=0, label=f"{name} ± 1σ (per pixel)")
        ax.plot(centre, prof, color=col, lw=lw, label=name)
        plus, minus = fm.side_means(v, frame, one, 1, sel, 50.0, 500.0, 10)
        lines.append(f"{name}: {(plus - minus)[0]:+.2f} m")
    ax.axvline(0, color="r", lw=0.8, ls="--")
    ax.set_ylim(-lim, lim)  # baselines' gross failures may leave the frame
    ax.set_xlabel("signed distance to the rupture trace (m)", fontsize=12)
    ax.set_ylabel("fault-parallel displacement (m)", fontsize=12)
    ax.tick_params(labelsize=11)
    ax.legend(loc="upper left", fontsize=10)
    ax.grid(alpha=0.3)
    ax.text(0.99, 0.02, "step on 50–500 m windows (grey):\n" + "\n".join(lines), transform=ax.transAxes,
            ha="right", va="bottom", fontsize=10, family="monospace",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})
    ev = f"seed {seed}, {ps:g} m pixels, strike {float(rec['strike_deg']):.0f}°"
    ax.set_title(f"Fault-perpendicular profile, stacked along the whole trace ({ev})", fontsize=12)
    H, W = rec["optical_pre"].shape
    ext = [0, W * ps / 1000, 0, H * ps / 1000]
    post = rec["optical_post"]
    lo, hi = np.nanpercentile(post, [1, 99])
    ax2.imshow(post, cmap="gray", vmin=lo, vmax=hi, extent=ext)
    seg = np.asarray(rec["trace_segments"]).reshape(-1, 2)
    E0, N0 = W * ps / 2, H * ps / 2  # local (scene centre = 0) -> image extent (km)
    ax2.plot((seg[:, 0] + E0) / 1000, (seg[:, 1] + N0) / 1000, "r-", lw=1.5, label="true rupture trace")
    ax2.set_xlim(ext[0], ext[1])
    ax2.set_ylim(ext[2], ext[3])
    ax2.set_xlabel("km", fontsize=11)
    ax2.legend(loc="lower right", fontsize=10)
    ax2.set_title("post image (real second date, cross-sensor effects)", fontsize=12)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("models/configs/eval_real_texture_large.json"))
    ap.add_argument("--seed", type=int)
    ap.add_argument("--model", type=Path, default=Path("models/quakefusion.onnx"))
    ap.add_argument("--out", type=Path, default=Path("docs/img/fault_profile.png"))
    args = ap.parse_args(argv)
    print(make_figure(json.loads(args.config.read_text()), args.seed, args.model, args.out))


if __name__ == "__main__":
    main()
