"""Train the fusion network on simulated scenes (CPU-friendly, reproducible from a seed, resumable).

    python -m models.train --config models/configs/default.json [--resume] [--steps N] [--max-minutes M]

Every step draws scene seeds from the training range with a seeded generator; a scene missing from
the cache (``data.cache_dir``) is simulated and saved on the spot, so the draw sequence does not
depend on what a background cache generator (``python -m models.dataset``) has finished yet.
Checkpoints ``<run_dir>/last.pt`` every ``ckpt_minutes`` (model, optimiser, step, RNG states) and
``<run_dir>/best.pt`` on the best validation loss (fixed validation scenes, fixed modality subsets).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.dataset import (
    COMBOS,
    ILLUMINATION_KEY,
    add_illumination_fits,
    features_and_target,
    is_current,
    load_record,
    relit_view,
    rupture_target,
    save_record,
    simulate_record,
)
from models.frontcache import get_measured, sample_item, stack_measurements
from models.fusion import build_model, count_params
from models.network import enu_px_from_d

DEFAULT_CONFIG = Path("models/configs/default.json")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: Path) -> dict[str, Any]:
    """A JSON config; ``"base": "other.json"`` (relative to this file) is loaded first and overridden key by key."""
    path = Path(path)
    cfg = json.loads(path.read_text())
    base = cfg.pop("base", None)
    return _merge(load_config(path.parent / base), cfg) if base else cfg


def get_record(cache_dir: Path, seed: int, size: int, backend: str, relight: bool = True) -> dict[str, Any]:
    """A cached (else simulated and cached) training record; with ``relight`` (config ``data.relight``, default
    True, as the backend runs) the view with the pre image relit from the DEM (``models.dataset.relit_view``; the
    decision is made once and cached with the raw record)."""
    p = cache_dir / f"scene_{seed:08d}.npz"
    rec = None
    if p.exists():
        try:
            rec = load_record(p)
        except Exception:  # half-written by a concurrent generator: simulate ourselves
            rec = None
        if rec is not None and backend != "standin" and not is_current(rec):
            rec = None  # made by an older simulator (models.scene.SIMULATOR_VERSION): simulated again
    fresh = rec is None
    if fresh:
        rec = simulate_record(seed, (size, size), backend)
    if relight and ILLUMINATION_KEY not in rec:
        rec, fresh = add_illumination_fits(rec), True
    if fresh:
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_record(p, rec)
    return relit_view(rec) if relight else rec


def laplace_nll(d_px: torch.Tensor, logb: torch.Tensor, target_enu_px: torch.Tensor,
                valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean Laplace NLL over valid pixels and the 3 components; also the mean |error| (px)."""
    err = (enu_px_from_d(d_px) - target_enu_px).abs()
    nll = err * torch.exp(-logb) + logb
    v = valid.unsqueeze(1)
    n = v.sum().clamp(min=1.0) * 3.0
    return (nll * v).sum() / n, (err * v).sum() / n


def near_rupture_weight(rupture: torch.Tensor, w_near: float, near_px: int) -> torch.Tensor:
    """1 + ``w_near`` on pixels within ``near_px`` of a surface rupture (B, H, W), 1 elsewhere.

    The step a geologist reads lives in the few pixels next to the trace; with a flat L1 they are outweighed by
    the far field, where mixing in windows that straddle the fault costs nothing (issue #11)."""
    if w_near <= 0.0 or near_px <= 0:
        return torch.ones_like(rupture)
    near = F.max_pool2d(rupture.unsqueeze(1), 2 * near_px + 1, 1, near_px)[:, 0]
    return 1.0 + w_near * near


def l1_nll_loss(d_px: torch.Tensor, logb: torch.Tensor, target_enu_px: torch.Tensor,
                valid: torch.Tensor, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain L1 for the mean + Laplace NLL for the scale with the error detached (pixels).

    The mean is not weighted by the predicted scale, so an over-confident scale cannot switch the
    mean's gradient off (part of what let the first model sit at zero displacement). ``weight`` (B, H, W)
    weights the L1 of the mean only (the scale's NLL stays unweighted, so sigma stays calibrated)."""
    err = (enu_px_from_d(d_px) - target_enu_px).abs()
    nll_b = err.detach() * torch.exp(-logb) + logb
    v = valid.unsqueeze(1)
    n = v.sum().clamp(min=1.0) * 3.0
    mae = (err * v).sum() / n
    l1 = mae
    if weight is not None:
        vw = v * weight.unsqueeze(1)
        l1 = (err * vw).sum() / (vw.sum().clamp(min=1.0) * 3.0)
    return l1 + (nll_b * v).sum() / n, mae


def local_bias_loss(d_px: torch.Tensor, target_enu_px: torch.Tensor, valid: torch.Tensor, k: int,
                    weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |E/N error averaged over k x k neighbourhoods| (px): the local *bias* of the estimate.

    A per-pixel L1 lets a mix trade bias for noise: near a rupture the wide windows that straddle it are less noisy
    and read a smaller step, and the per-pixel loss prefers them. The step a geologist reads averages over hundreds
    of pixels, where noise cancels and bias does not; this term penalises what survives the averaging (issue #11:
    unbiased before smooth). ``weight`` (B, H, W) weights it like the L1 (near the rupture)."""
    err = (enu_px_from_d(d_px) - target_enu_px)[:, :2] * valid.unsqueeze(1)
    num = F.avg_pool2d(err, k, 1, k // 2, count_include_pad=False)
    den = F.avg_pool2d(valid.unsqueeze(1), k, 1, k // 2, count_include_pad=False)
    ok = (den > 0.5).float()[:, 0]
    bias = (num / den.clamp(min=1e-3)).abs().sum(1) * ok
    w = ok if weight is None else ok * weight
    return (bias * (w / ok.clamp(min=1.0))).sum() / w.sum().clamp(min=1.0) / 2.0


def batch_tensors(items: list[tuple[np.ndarray, ...]]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.stack([i[k] for i in items])) for k in range(len(items[0])))


def validation_set(cfg: dict[str, Any]) -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    d = cfg["data"]
    start, count = d["val_seeds"]
    combos = list(d.get("val_combos", COMBOS))
    out = []
    for i in range(count):
        rec = get_record(Path(d["val_dir"]), start + i, d["scene_size"], d.get("val_backend", "sim_real"),
                         relight=bool(d.get("relight", True)))
        combo = combos[i % len(combos)]
        out.append((combo, batch_tensors([(*features_and_target(rec, COMBOS[combo]), rupture_target(rec))])))
    return out


@torch.no_grad()
def evaluate_val(model: torch.nn.Module, val: list, meas: list, w_rupt: float = 0.2) -> dict[str, Any]:
    """Validation NLL, EPE (px), rupture BCE; ``val_loss`` = NLL + w_rupt BCE selects the best checkpoint."""
    model.eval()
    nll_sum, en_sum, zero_sum, bce_sum, n = 0.0, 0.0, 0.0, 0.0, 0
    per: dict[str, list[float]] = {}
    for i, (combo, (x, t, v, r)) in enumerate(val):
        if len(meas) <= i:  # the fixed front end, once per validation scene
            meas.append(model.measure(x))
        d, logb, rupt = model.fuse(x, meas[i])
        nll, _ = laplace_nll(d, logb, t, v)
        epe = torch.linalg.vector_norm(enu_px_from_d(d)[:, :2] - t[:, :2], dim=1)
        e = float((epe * v).sum() / v.sum().clamp(min=1))
        per.setdefault(combo, []).append(e)
        en_sum += e
        zero_sum += float((torch.linalg.vector_norm(t[:, :2], dim=1) * v).sum() / v.sum().clamp(min=1))
        bce_sum += float(F.binary_cross_entropy_with_logits(rupt[:, 0], r))
        nll_sum += float(nll)
        n += 1
    model.train()
    return {"val_loss": (nll_sum + w_rupt * bce_sum) / n, "val_nll": nll_sum / n, "val_rupture_bce": bce_sum / n,
            "val_epe_px": en_sum / n, "val_epe_px_zero_reference": zero_sum / n,
            "val_epe_px_by_combo": {k: round(float(np.mean(v)), 4) for k, v in per.items()}}


def lr_at(step: int, cfg: dict[str, Any], time_frac: float = 0.0) -> float:
    """Warm-up then cosine decay over the run; progress is the larger of steps done and time used (``max_minutes``),
    so a run stopped by its time budget still ends at the low learning rate."""
    tr = cfg["train"]
    warm, total, lr = tr.get("warmup", 200), tr["steps"], tr["lr"]
    if step < warm:
        return lr * (step + 1) / warm
    p = min(1.0, max((step - warm) / max(1, total - warm), time_frac))
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def save_ckpt(path: Path, model, opt, step: int, cfg, rng: np.random.Generator, extra: dict | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "config": cfg,
                "seed": cfg["seed"], "np_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                **(extra or {})}, tmp)
    tmp.replace(path)


def train(cfg: dict[str, Any], resume: bool = False) -> Path:
    tr, d = cfg["train"], cfg["data"]
    torch.set_num_threads(int(tr.get("threads", 2)))
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    random.seed(seed)
    rng = np.random.default_rng(seed)
    run_dir = Path(cfg["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    model = build_model(cfg.get("model", {}))
    if cfg.get("init_from") and not (resume and (Path(cfg["run_dir"]) / "last.pt").exists()):
        init = torch.load(cfg["init_from"], map_location="cpu", weights_only=False)
        res = model.load_state_dict(init["model"], strict=False)  # new parameters keep their initial values
        if res.unexpected_keys:
            raise ValueError(f"{cfg['init_from']}: parameters this model does not have: {res.unexpected_keys}")
        print(f"initialised from {cfg['init_from']} (step {init.get('step')}); new: {res.missing_keys}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=tr["lr"], weight_decay=tr.get("weight_decay", 1e-4))
    step, best, t_before = 0, float("inf"), 0.0
    last = run_dir / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best, t_before = ck["step"], ck.get("best", float("inf")), float(ck.get("time_s", 0.0))
        rng.bit_generator.state = ck["np_rng"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed from {last} at step {step}", flush=True)
    print(f"model: {count_params(model)} parameters; config {json.dumps(cfg)}", flush=True)
    val = validation_set(cfg)
    measurer = build_model(cfg.get("model", {})).eval()  # the same fixed front end, without gradients
    measurer.use_side = model.use_side = False  # no trace in training scenes (fault_side 0): same result, faster
    val_meas: list = []
    log = (run_dir / "log.jsonl").open("a")
    sources = [(Path(src["cache_dir"]), tuple(src["seeds"]), src["backend"]) for src in d["sources"]]
    weights = np.array([float(src["weight"]) for src in d["sources"]])
    weights = weights / weights.sum()
    t_start = time.time()
    t_ckpt = time.time()
    max_s = float(tr.get("max_minutes", 1e9)) * 60
    w_rupt = float(tr.get("w_rupture", 0.2))
    relight = bool(d.get("relight", True))  # the pre image relit from the DEM, as the backend feeds the network
    model.train()
    bar = tqdm(total=tr["steps"], initial=step, dynamic_ncols=True, mininterval=10)
    run_loss = run_err = 0.0
    while step < tr["steps"]:
        items = []
        for _ in range(tr["batch"]):
            cdir, (s0, s1), be = sources[int(rng.choice(len(sources), p=weights))]
            seed_i = int(rng.integers(s0, s1))
            rec = get_record(cdir, seed_i, d["scene_size"], be, relight=relight)
            meas = get_measured(measurer, cdir, seed_i, rec, relit=relight)
            items.append(sample_item(rec, meas, rng, d["crop"], model.channels, p_keep=d.get("p_keep", 0.6)))
        x, t, v, r = batch_tensors([i[:4] for i in items])
        lr = lr_at(step, cfg, (time.time() - t_start + t_before) / max_s)
        for g in opt.param_groups:
            g["lr"] = lr
        dp, lb, rupt = model.fuse(x, stack_measurements([i[4] for i in items]))
        wgt = near_rupture_weight(r, float(tr.get("w_near", 0.0)), int(tr.get("near_px", 0)))
        loss, l1 = l1_nll_loss(dp, lb, t, v, wgt)
        if float(tr.get("w_bias", 0.0)) > 0.0:
            loss = loss + float(tr["w_bias"]) * local_bias_loss(dp, t, v, int(tr.get("bias_px", 7)), wgt)
        pos_w = torch.tensor(float(tr.get("pos_weight", 5.0)))
        bce = F.binary_cross_entropy_with_logits(rupt[:, 0], r, pos_weight=pos_w)
        loss = loss + w_rupt * bce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tr.get("clip", 1.0))
        opt.step()
        step += 1
        run_loss = 0.98 * run_loss + 0.02 * loss.item() if step > 1 else loss.item()
        run_err = 0.98 * run_err + 0.02 * l1.item() if step > 1 else l1.item()
        bar.update(1)
        bar.set_postfix(loss=f"{run_loss:.3f}", mae_px=f"{run_err:.3f}", lr=f"{lr:.1e}")
        done = step >= tr["steps"] or time.time() - t_start + t_before > max_s
        if step % tr.get("val_every", 500) == 0 or done:
            m = evaluate_val(model, val, val_meas, w_rupt)
            rec = {"step": step, "time_s": round(time.time() - t_start + t_before), "train_loss": run_loss,
                   "train_mae_px": run_err, **m}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            tqdm.write(json.dumps(rec))
            if m["val_loss"] < best:
                best = m["val_loss"]
                save_ckpt(run_dir / "best.pt", model, opt, step, cfg, rng, {"val_loss": best, "best": best, **m})
        if time.time() - t_ckpt > tr.get("ckpt_minutes", 4) * 60 or done:
            save_ckpt(last, model, opt, step, cfg, rng, {"best": best, "time_s": time.time() - t_start + t_before})
            t_ckpt = time.time()
        if done:
            break
    bar.close()
    print(f"finished at step {step} after {(time.time() - t_start) / 60:.1f} min; best val_nll {best:.4f}", flush=True)
    return run_dir / "best.pt"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--resume", action="store_true", help="continue from <run_dir>/last.pt")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--run-dir")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    if args.steps:
        cfg["train"]["steps"] = args.steps
    if args.max_minutes:
        cfg["train"]["max_minutes"] = args.max_minutes
    if args.run_dir:
        cfg["run_dir"] = args.run_dir
    train(cfg, resume=args.resume)


if __name__ == "__main__":
    main()
