"""Where the step across the fault is lost: the learned mix against the network's own fixed candidates.

    .venv/bin/python tools/diagnose_step.py CONFIG VARIANTS [COUNT] [--ckpt runs/warp_fusion_blind/best.pt]

``CONFIG`` is an evaluation config name (``models/configs/<CONFIG>.json``, e.g. ``eval_real_texture_large``),
``VARIANTS`` a comma-separated list, each read on the first ``COUNT`` scenes (optical only) by
``models.evaluate`` with its baselines, results in ``runs/diag2/<CONFIG>_<variant>/``; ``--off`` switches simulator
effects off one at a time (``effects_off`` in ``models/scene.py``; results in ``<CONFIG>_off-<effects>_<variant>``):

* ``full``: the checkpoint as trained (the learned mix); ``gainK``: the same with the residual score times K;
  ``no31``: the learned mix with the 31-px candidates replaced by the 15-px ones;
* ``wgT``: the learned mix with the 31-px full window gated off where its halves disagree by > T px; ``wgsT``:
  the whole 31-px set and the full 15-px window gated by their halves; ``wgsTkK``: the allowance T px + K x the
  halves' predicted noise; ``wghT``: ``wgsT`` and the 15-px up/down halves closed where its left/right halves
  disagree by > T px, and vice versa (``half_gate``);
* ``soft``: the parameter-free residual-weighted mix of the candidates (``models.fusion.soft_select``);
* ``hard``: per pixel, the candidate with the best residual score;
* ``cK``: candidate K alone (0 the 15-px window, 1-4 its halves, 5 the 7-px window, 6 the 31-px window);
* an ``itN_`` prefix: the front end with N full-resolution iterations (``itNh_``: the best-residual window carried
  between iterations, ``itNs_``: the mix of the sharp windows, never a 31-px one; see ``WarpFusionNet._between``);
* a ``tr_`` prefix (first): the true rupture trace given (``fault_side``: windows stop at it);
* an ``mw_`` prefix (before any ``itN_``): the front end with ``mask_warp`` (fits on warped-valid pixels only).

Prints, per variant, the near-rupture median EPE, the slope, the noise floor and the step error / share of the
step within +-3 px (median over profiles). Numbers of 0.4.0 are in models/MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.features import build_features, compute_stats  # noqa: E402
from models import evaluate as ev  # noqa: E402
from models import fusion as fu  # noqa: E402
from models.dataset import COMBOS, arrays_for  # noqa: E402
from models.export import load_checkpoint  # noqa: E402
from models.scene import EFFECTS  # noqa: E402


class Variant:
    """Stands in for ``models.evaluate.OnnxModel``: the checkpoint read one way (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, variant: str) -> None:
        self.model, self.variant = model, variant
        self.meta = {"channels": list(model.channels), "model_version": f"diag-{variant}"}

    def _measure(self, x: torch.Tensor, v: str) -> tuple[dict, str]:
        old = self.model.iters, self.model.between, self.model.mask_warp
        if v.startswith("mw_"):
            self.model.mask_warp, v = True, v[3:]
        if v.startswith("it"):
            head, v = v.split("_", 1)
            n = "".join(ch for ch in head[2:] if ch.isdigit())
            self.model.iters = int(n)
            self.model.between = {"h": "hard", "s": "sharp"}.get(head[2 + len(n):], "soft")
        try:
            return self.model.measure(x), v
        finally:
            self.model.iters, self.model.between, self.model.mask_warp = old

    @torch.no_grad()
    def run(self, rec: dict, combo: str) -> dict[str, np.ndarray]:
        arrays = arrays_for(rec, COMBOS[combo])
        channels = [n for n in self.meta["channels"] if n != "fault_side"]
        if self.variant.startswith("tr_"):  # the true trace given (fault_side: sign of the signed distance)
            arrays = {**arrays, "fault_side": ev.true_fault_side(rec)}
            channels = [*channels, "fault_side"]
        x = build_features(channels, arrays, stats=compute_stats(arrays),
                           pixel_size_m=rec["pixel_size_m"], wavelength_m=rec["wavelength_m"],
                           phase_sign=int(rec["phase_sign"]))
        x = torch.from_numpy(x[None]).float()
        self.model.set_channels(channels)
        m, v = self._measure(x, self.variant[3:] if self.variant.startswith("tr_") else self.variant)
        ldets, lress = list(m["ldet_o"].split(1, 1)), list(m["lres_o"].split(1, 1))
        if v == "no31":  # the learned mix with the 31-px set replaced by the 15-px one (same order of windows)
            m = dict(m)
            for k in ("cand_o", "ldet_o", "lres_o"):
                m[k] = m[k].clone()
                m[k][:, 6:11] = m[k][:, 0:5]
            v = "full"
        self.model.wide_gate_set = v.startswith(("wgs", "wgh"))
        self.model.half_gate = v.startswith("wgh")
        if v.startswith("wg"):  # the learned mix with the wide gate (see WarpFusionNet._wide_gate)
            t, _, k = (v[3:] if v.startswith(("wgs", "wgh")) else v[2:]).partition("k")
            self.model.wide_gate_px, self.model.wide_gate_k, v = float(t), float(k or 0.0), "full"
        else:
            self.model.wide_gate_px = 0.0
        if v == "full" or v.startswith("gain"):
            g0 = self.model.score_gain.data.clone()
            if v.startswith("gain"):
                self.model.score_gain.data *= float(v[4:])
            dxy = self.model.fuse(x, m)[0][:, :2]
            self.model.score_gain.data.copy_(g0)
        elif v == "soft":
            dxy = fu.soft_select(list(m["cand_o"].unbind(1)), ldets, lress)
        elif v == "hard":
            dxy = fu.hard_select(list(m["cand_o"].unbind(1)), ldets, lress)
        elif v.startswith("c"):
            dxy = m["cand_o"][:, int(v[1:])]
        else:
            raise SystemExit(f"unknown variant {self.variant!r}")
        ps = rec["pixel_size_m"]
        dx, dy = dxy[0, 0].numpy(), dxy[0, 1].numpy()
        enu = np.stack([dx * ps, -dy * ps, np.zeros_like(dx)]).astype(np.float64)
        return {"displacement": enu, "sigma": np.ones_like(enu)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("variants")
    ap.add_argument("count", type=int, nargs="?", default=12)
    ap.add_argument("--ckpt", type=Path, default=Path("runs/warp_fusion_blind/best.pt"))
    ap.add_argument("--off", default="", help="comma-separated simulator effects switched off (``effects_off`` in "
                    f"models/scene.py): {', '.join(EFFECTS)}")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_checkpoint(a.ckpt)
    model.eval()
    cfg = json.loads(Path(f"models/configs/{a.config}.json").read_text())
    cfg.update(count=a.count, combos=["optical"], lk_row=False)
    tag = ""
    if a.off:
        cfg["overrides"] = {**cfg["overrides"], "effects_off": a.off.split(",")}
        tag = "_off-" + a.off.replace(",", "+")
        cfg["cache_dir"] = cfg["cache_dir"] + tag
        cfg["correlator"] = False
    for i, v in enumerate(a.variants.split(",")):
        ev.OnnxModel = lambda _path, v=v, **_kw: Variant(model, v)
        cfg["out_dir"] = f"runs/diag2/{a.config}{tag}_{v}"
        with contextlib.redirect_stdout(io.StringIO()):
            res = ev.evaluate(dict(cfg), Path("unused"))
        for name, r in res["methods"].items():
            if "QuakeFusion" in name or i == 0:
                st = {t: (round(b.get("error_pct_median", float("nan")), 1),
                          round(b.get("share_within_3px_median", float("nan")), 2), b["profiles"])
                      for t, b in r["step"].items()}
                print(f"{tag or 'all effects'} {v:8s} {name[:40]:40s} near median {r['epe_px_near_median']:.3f} slope "
                      f"{r['slope_median']:.3f} floor {r['noise_floor_px_median']:.3f} step {st}", flush=True)


if __name__ == "__main__":
    main()
