"""Held-out evaluation on simulated test scenes (fixed seeds, never trained on) vs classical baselines.

    python -m models.evaluate [--config models/configs/eval.json] [--model models/quakefusion.onnx]

Runs the shipped ONNX model (ONNX Runtime, features from ``backend.features``) for every modality
combination, and on the same optical pairs a COSI-Corr-style windowed phase correlator and OpenCV
DIS. Writes ``<out_dir>/metrics.json`` and ``<out_dir>/metrics.md`` (the MODEL_CARD table).

Metrics (pixels within ``margin`` px of the scene edge are left out for every method):
E/N end-point error (mean |d_EN|, pixels and metres) near the rupture (distance <= ``near_m``) and in the
far field; LOS RMSE (m) and the share of near-rupture pixels with |LOS error| < lambda/4 (= the joint
unwrapping gets the cycle count right there); 3-D RMSE (m); calibration = share of |error| < sigma
over the three components (a perfect Laplace predictive gives 0.757, a Gaussian 0.683).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from backend.conventions import enu_to_los
from models.baselines import dis_offsets, phase_correlation_offsets
from models.dataset import COMBOS, arrays_for, load_record, save_record, scene_to_record

DEFAULT_CONFIG = Path("models/configs/eval.json")


def test_record(cache: Path, seed: int, size: int, pixel_size_m: float, profile: str = "random") -> dict[str, Any]:
    """``profile``: "random" (the simulator's own event draw: mostly sub-pixel offsets) or "strong" (large
    surface-rupturing events, ``models.dataset.STRONG_OVERRIDES``: offsets of 0.1-5 px near the rupture)."""
    p = cache / f"test_{seed:08d}_{pixel_size_m:g}.npz"
    if p.exists():
        return load_record(p)
    from models.dataset import STRONG_OVERRIDES
    from models.scene import simulate_scene

    ov = STRONG_OVERRIDES if profile == "strong" else None
    rec = scene_to_record(simulate_scene(seed, size=(size, size), pixel_size_m=pixel_size_m, overrides=ov))
    cache.mkdir(parents=True, exist_ok=True)
    save_record(p, rec)
    return rec


def _phasecorr_cached(cache: Path, seed: int, ps: float, rec: dict, cfg: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Phase-correlator offsets of a test scene, cached next to it (slow; the model does not change them)."""
    p = cache / f"pc{cfg['pc_window']}s{cfg['pc_step']}_{seed:08d}_{ps:g}.npz"
    if p.exists():
        with np.load(p) as z:
            return z["dx"], z["dy"], float(z["seconds"])
    t = time.time()
    dx, dy = phase_correlation_offsets(rec["optical_pre"], rec["optical_post"], window=cfg["pc_window"],
                                       step=cfg["pc_step"])
    dt = time.time() - t
    np.savez(p, dx=dx, dy=dy, seconds=dt)
    return dx, dy, dt


def precompute(cfg: dict[str, Any]) -> None:
    """Simulate the test scenes and run the phase correlator on them (no model needed)."""
    cache = Path(cfg["cache_dir"])
    pss = cfg["pixel_sizes_m"]
    for i, seed in enumerate(range(cfg["seed_start"], cfg["seed_start"] + cfg["count"])):
        ps = float(pss[i % len(pss)])
        _phasecorr_cached(cache, seed, ps, test_record(cache, seed, cfg["size"], ps, cfg.get("profile", "random")),
                          cfg)
        print(f"precomputed {i + 1}/{cfg['count']}", flush=True)


class _Acc:
    """Pooled pixel sums for one method."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}
        self.near_epe: list[np.ndarray] = []  # kept for the median (robust to the baselines' gross failures)

    def add(self, key: str, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        self.s[key + ":sum"] = self.s.get(key + ":sum", 0.0) + float(v.sum())
        self.s[key + ":n"] = self.s.get(key + ":n", 0.0) + float(v.size)

    def mean(self, key: str) -> float:
        n = self.s.get(key + ":n", 0.0)
        return self.s[key + ":sum"] / n if n else float("nan")


def _en_metrics(acc: _Acc, en_px: np.ndarray, rec: dict, sel: np.ndarray, near: np.ndarray) -> None:
    ps = rec["pixel_size_m"]
    true_px = rec["truth_enu"][:2] / ps
    epe = np.linalg.norm(en_px - true_px, axis=0)
    strong = np.linalg.norm(true_px, axis=0) >= 0.5
    acc.near_epe.append(epe[sel & near].astype(np.float32))
    for name, m in (("near", sel & near), ("far", sel & ~near), ("all", sel), ("strong", sel & strong)):
        acc.add(f"epe_px_{name}", epe[m])
        acc.add(f"epe_m_{name}", epe[m] * ps)


def lk_offsets(rec: dict, window: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """The network's own in-graph optical measurement alone (high-passed Lucas-Kanade, ``models/frontend.py``),
    on the same normalised optical channels the network sees: shows what the learned fusion adds."""
    import torch

    from backend.features import build_features, compute_stats
    from models import frontend as fe

    arrays = arrays_for(rec, COMBOS["optical"])
    x = build_features(["optical_pre", "optical_post", "mask_optical"], arrays, stats=compute_stats(arrays),
                       pixel_size_m=rec["pixel_size_m"], wavelength_m=rec["wavelength_m"], phase_sign=1)
    t = torch.from_numpy(x[None])
    with torch.no_grad():
        _, _, terms = fe.pair_terms(t[:, 0:1], t[:, 1:2], t[:, 2:3], fe.gaussian_kernel(0.5), fe.gaussian_kernel(3.0))
        d, _, _ = fe.lucas_kanade(terms, window)
    return d[0, 0].numpy(), d[0, 1].numpy()


def _onnx_session(path: Path):
    import onnxruntime as ort

    from models.export import read_metadata

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess, read_metadata(path)


def evaluate(cfg: dict[str, Any], model_path: Path) -> dict[str, Any]:
    from backend.features import build_features, compute_stats

    sess, meta = _onnx_session(model_path)
    specs = meta["channels"]
    out_dir = Path(cfg["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cfg["cache_dir"])
    margin, near_m = int(cfg["margin_px"]), float(cfg["near_m"])
    accs: dict[str, _Acc] = {}
    t0 = time.time()
    seeds = range(cfg["seed_start"], cfg["seed_start"] + cfg["count"])
    pss = cfg["pixel_sizes_m"]
    timing = {"model_s": 0.0, "phasecorr_s": 0.0, "dis_s": 0.0}
    for i, seed in enumerate(seeds):
        ps = float(pss[i % len(pss)])
        rec = test_record(cache, seed, cfg["size"], ps, cfg.get("profile", "random"))
        H, W = rec["optical_pre"].shape
        sel = np.zeros((H, W), bool)
        sel[margin:H - margin, margin:W - margin] = True
        sel &= np.all(np.isfinite(rec["truth_enu"]), axis=0)
        near = rec["distance_to_rupture_m"] <= near_m
        # reference: predicting no displacement (EPE = mean true |d_EN|; most test offsets are sub-pixel)
        _en_metrics(accs.setdefault("zero displacement (reference)", _Acc()), np.zeros((2, H, W)), rec, sel, near)
        # classical baselines (optical only)
        dx, dy, dt = _phasecorr_cached(cache, seed, ps, rec, cfg)
        timing["phasecorr_s"] += dt
        _en_metrics(accs.setdefault("phasecorr32 (optical)", _Acc()), np.stack([dx, -dy]), rec, sel, near)
        t = time.time()
        dx, dy = dis_offsets(rec["optical_pre"], rec["optical_post"])
        timing["dis_s"] += time.time() - t
        _en_metrics(accs.setdefault("DIS (optical)", _Acc()), np.stack([dx, -dy]), rec, sel, near)
        dx, dy = lk_offsets(rec)
        _en_metrics(accs.setdefault("Lucas-Kanade 21 px, in-graph measurement alone (optical)", _Acc()),
                    np.stack([dx, -dy]), rec, sel, near)
        # the network, every modality combination
        for combo in cfg["combos"]:
            arrays = arrays_for(rec, COMBOS[combo])
            x = build_features(specs, arrays, stats=compute_stats(arrays), pixel_size_m=ps,
                               wavelength_m=rec["wavelength_m"], phase_sign=int(rec["phase_sign"]))
            t = time.time()
            enu, sig = sess.run(None, {"features": x[None]})
            timing["model_s"] += time.time() - t
            enu, sig = enu[0].astype(np.float64), sig[0].astype(np.float64)
            acc = accs.setdefault(f"QuakeFusion [{combo}]", _Acc())
            _en_metrics(acc, enu[:2] / ps, rec, sel, near)
            err = enu - rec["truth_enu"]
            acc.add("sq3d_m", (err ** 2).sum(0)[sel])
            los_err = enu_to_los(err[0], err[1], err[2], rec["los_unit_vector"])
            lam4 = rec["wavelength_m"] / 4.0
            for name, m in (("near", sel & near), ("far", sel & ~near), ("all", sel)):
                acc.add(f"los_sq_{name}", los_err[m] ** 2)
                acc.add(f"los_ok_{name}", (np.abs(los_err[m]) < lam4).astype(np.float64))
                acc.add(f"los_sq_lam4_{name}", (los_err[m] / lam4) ** 2)
            acc.add("calib", (np.abs(err) < sig)[:, sel].ravel().astype(np.float64))
        print(f"scene {i + 1}/{len(seeds)} seed {seed} pixel {ps:g} m ({time.time() - t0:.0f} s)", flush=True)
    res: dict[str, Any] = {"config": cfg, "model": str(model_path), "model_version": meta.get("model_version"),
                           "timing_s": timing, "methods": {}}
    for name, acc in accs.items():
        r = {k: acc.mean(k) for k in ("epe_px_near", "epe_px_far", "epe_px_all", "epe_m_near", "epe_m_far",
                                      "epe_px_strong")}
        r["epe_px_near_median"] = float(np.median(np.concatenate(acc.near_epe))) if acc.near_epe else float("nan")
        r["near_pixels"] = acc.s.get("epe_px_near:n", 0)
        r["strong_pixels"] = acc.s.get("epe_px_strong:n", 0)
        if "sq3d_m:n" in acc.s:
            r["rmse3d_m"] = float(np.sqrt(acc.mean("sq3d_m")))
            r["los_rmse_m_near"] = float(np.sqrt(acc.mean("los_sq_near")))
            r["los_rmse_m_far"] = float(np.sqrt(acc.mean("los_sq_far")))
            r["los_rmse_m_all"] = float(np.sqrt(acc.mean("los_sq_all")))
            r["los_within_lambda4_near"] = acc.mean("los_ok_near")
            r["los_rmse_lambda4_near"] = float(np.sqrt(acc.mean("los_sq_lam4_near")))
            r["los_rmse_lambda4_far"] = float(np.sqrt(acc.mean("los_sq_lam4_far")))
            r["calibration"] = acc.mean("calib")
        res["methods"][name] = r
    (out_dir / "metrics.json").write_text(json.dumps(res, indent=2))
    (out_dir / "metrics.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return res


def _f(v: Any, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def to_markdown(res: dict[str, Any]) -> str:
    cfg = res["config"]
    lines = [
        f"Held-out test ({cfg.get('profile', 'random')} events): {cfg['count']} simulated scenes, "
        f"seeds {cfg['seed_start']}.."
        f"{cfg['seed_start'] + cfg['count'] - 1},"
        f" {cfg['size']}x{cfg['size']} px, pixel sizes {cfg['pixel_sizes_m']} m (cycled), {cfg['margin_px']}-px border"
        f" excluded; near = within {cfg['near_m']:g} m of the rupture (top-edge trace if blind).",
        "",
        "| method [modalities] | E/N EPE near (px) | near, median (px) | E/N EPE near (m) | E/N EPE far (px) "
        "| E/N EPE far (m) "
        "| E/N EPE where \\|d\\| ≥ 0.5 px (px) | LOS RMSE near (m) | LOS RMSE near (λ/4) | LOS RMSE far (m) "
        "| near \\|LOS err\\| < λ/4 | 3-D RMSE (m) | share \\|err\\| < σ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res["methods"].items():
        lines.append(
            f"| {name} | {_f(r['epe_px_near'], '.3f')} | {_f(r.get('epe_px_near_median'), '.3f')} "
            f"| {_f(r['epe_m_near'], '.3f')} | {_f(r['epe_px_far'], '.4f')} "
            f"| {_f(r['epe_m_far'], '.4f')} | {_f(r['epe_px_strong'], '.3f')} | {_f(r.get('los_rmse_m_near'), '.4f')} "
            f"| {_f(r.get('los_rmse_lambda4_near'), '.2f')} | {_f(r.get('los_rmse_m_far'), '.4f')} "
            f"| {_f(r.get('los_within_lambda4_near'), '.2f')} | {_f(r.get('rmse3d_m'), '.4f')} "
            f"| {_f(r.get('calibration'), '.2f')} |")
    t = res["timing_s"]
    n = next(iter(res["methods"].values()))
    lines += ["", f"Pixels: {n['near_pixels']:.0f} near the rupture, {n['strong_pixels']:.0f} with |d_EN| ≥ 0.5 px.",
              "", f"Run time (s, whole test set): network {t['model_s']:.1f} (all combinations), "
              f"phase correlator {t['phasecorr_s']:.1f}, DIS {t['dis_s']:.1f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--model", type=Path, default=Path("models/quakefusion.onnx"))
    ap.add_argument("--count", type=int, help="override the number of test scenes")
    ap.add_argument("--precompute", action="store_true", help="only simulate test scenes + phase correlator")
    args = ap.parse_args(argv)
    cfg = json.loads(args.config.read_text())
    if args.count:
        cfg["count"] = args.count
    if args.precompute:
        precompute(cfg)
        return
    evaluate(cfg, args.model)


if __name__ == "__main__":
    main()
