"""Figure of one held-out test scene: truth vs QuakeFusion (optical / all modalities) vs the baselines.

    python -m models.figure_eval [--config models/configs/eval_strong.json] [--index 2]
                                 [--out docs/img/model_vs_baselines.png]

Rows: east and north displacement (metres); columns: truth, DIS, phase correlator, QuakeFusion [optical],
QuakeFusion [all], and QuakeFusion [all] 1-sigma. Same colour scale per row; the rupture trace is drawn.
Uses the test scene cache of ``models.evaluate`` (simulated if missing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from models.baselines import dis_offsets
from models.evaluate import OnnxModel, correlator_cached, record_for


def make_figure(cfg: dict, index: int, model: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed = cfg["seed_start"] + index
    ps = float(cfg["pixel_sizes_m"][index % len(cfg["pixel_sizes_m"])])
    cache = Path(cfg["cache_dir"])
    rec = record_for(cfg, seed, ps)
    net = OnnxModel(model)
    opt = net.run(rec, "optical")["displacement"]
    out_all = net.run(rec, "all")
    allm, sig = out_all["displacement"], out_all["sigma"]
    ddx, ddy = dis_offsets(rec["optical_pre"], rec["optical_post"], finest_scale=0)
    pdx, pdy, _ = correlator_cached(cache, seed, ps, rec, cfg)
    m = int(cfg["margin_px"])
    sl = np.s_[m:-m, m:-m]
    truth = rec["truth_enu"]
    cols = [("truth", truth[0], truth[1]), ("DIS finest scale 0 (optical)", ddx * ps, -ddy * ps),
            ("correlator 32 px, iterative sub-pixel (optical)", pdx * ps, -pdy * ps),
            ("QuakeFusion [optical]", opt[0], opt[1]), ("QuakeFusion [all]", allm[0], allm[1])]
    fig, axes = plt.subplots(2, 6, figsize=(24, 8.6), constrained_layout=True)
    H, W = truth.shape[1:]
    ext = [0, (W - 2 * m) * ps / 1000, 0, (H - 2 * m) * ps / 1000]
    trace = rec["rupture_mask"][sl] > 0
    for r, comp in enumerate(("east", "north")):
        lim = float(np.nanpercentile(np.abs(truth[r][sl]), 99.5)) or 1.0
        for c, (name, e, n) in enumerate(cols):
            a = (e, n)[r][sl]
            ax = axes[r, c]
            im = ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=ext)
            err = np.nanmean(np.hypot(cols[c][1][sl] - truth[0][sl], cols[c][2][sl] - truth[1][sl])) / ps
            ax.set_title(f"{name}\n{comp} (m)" + ("" if c == 0 else f"  — E/N EPE {err:.3f} px"), fontsize=10)
            if trace.any():
                yy, xx = np.nonzero(trace)
                ax.plot(xx * ps / 1000, ext[3] - yy * ps / 1000, ",", color="k", alpha=0.3)
            ax.set_xlabel("km")
            if c == 4:
                fig.colorbar(im, ax=axes[r, :5].tolist(), shrink=0.8, label=f"{comp} displacement (m)")
        ax = axes[r, 5]
        im2 = ax.imshow(sig[r][sl], cmap="magma", extent=ext)
        ax.set_title(f"QuakeFusion [all] 1-σ {comp} (m)", fontsize=10)
        fig.colorbar(im2, ax=ax, shrink=0.8)
    fig.suptitle(f"Held-out simulated scene (seed {seed}, {cfg.get('profile', 'random')} event, pixel {ps:g} m, "
                 f"{'C' if rec['wavelength_m'] < 0.1 else 'L'}-band) — never seen in training", fontsize=13)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("models/configs/eval_strong.json"))
    ap.add_argument("--index", type=int, default=2)
    ap.add_argument("--model", type=Path, default=Path("models/quakefusion.onnx"))
    ap.add_argument("--out", type=Path, default=Path("docs/img/model_vs_baselines.png"))
    args = ap.parse_args(argv)
    print(make_figure(json.loads(args.config.read_text()), args.index, args.model, args.out))


if __name__ == "__main__":
    main()
