"""Held-out evaluation (fixed seeds, never trained on) of the ONNX model vs classical baselines.

    python -m models.evaluate [--config models/configs/eval.json] [--model models/quakefusion.onnx]

Scene sets (config ``profile``): ``random`` (the simulator's own event draw), ``strong`` (large surface-rupturing
events) or any ``overrides`` of ``models.scene.simulate_scene`` given in the config, e.g. the real-texture
semi-synthetic scenes of ``eval_real_texture.json`` (a real first date and a real second date of the Sentinel-2
pair, test window, warped by a known rupture, with cross-sensor effects), ``eval_same_image.json`` (one real
image, no temporal change) and ``eval_no_motion.json`` (the real pair without motion: noise floor, false step).

Runs the ONNX model (ONNX Runtime, features from ``backend.features``; output names from the model's metadata
``outputs``: ``displacement``, ``sigma`` and, when present, ``rupture_probability``) for the configured modality
combinations (the optical pair relit from the DEM as the backend does, ``backend.illumination``; config
``illumination`` "off" or ``--illumination off`` feeds it raw), and on the same optical pairs OpenCV DIS
(``PRESET_MEDIUM``, and the same at finest scale 0) and a COSI-Corr-style correlator with iterative sub-pixel
refinement (``models/baselines.py``). Writes ``<out_dir>/metrics.json`` and ``<out_dir>/metrics.md`` (the
MODEL_CARD tables).

Metrics (pixels within ``margin`` px of the scene edge, and pixels where either optical image is nodata, are
left out for every method):

* E/N end-point error (mean and median |d_EN - truth|, px and m) near the rupture (distance <= ``near_m``) and
  in the far field; LOS RMSE (m, and in lambda/4) and the share of near-rupture pixels with |LOS error| < lambda/4;
  3-D RMSE (m) (network rows);
* **step** (``models/fault_metrics.py``): on fault-perpendicular profiles along the true trace (``profile_px``
  wide), fault-parallel mean on 50-500 m one side minus the other, estimate vs truth: error in px, m and %
  (median over profiles), signed so that < 0 = the step is under-read, for profiles whose true step is >= 0.3 px
  and 0.1-0.3 px;
* **share of the step within +-3 px**: the estimate's jump between the 1-px bands centred at -3 and +3 px from
  the trace, divided by the true jump there (1 = the whole discontinuity is recovered within +-3 px);
* **slope** of estimated vs true fault-parallel displacement: Huber regression with intercept on all pixels
  within ``near_m`` of the trace, per scene (scenes whose true fault-parallel range is >= 0.3 px); median;
* **sigma calibration**: share of |error| < sigma per component (east, north, up) and over E/N; the model's sigma
  is the standard deviation of a Laplace predictive (0.2.0 metadata), for which the ideal share is 0.757
  (0.683 for a Gaussian);
* no-motion set: **noise floor** (median |d_EN|, px) and **false step** (the step metric across a pseudo-trace
  through the scene centre with the drawn event's strike; |step| per profile, px: median, 95th percentile, max);
* **rupture probability** (models with that output): ROC AUC and F1 (p > 0.5) against the simulator's
  ``rupture_mask``, and the median distance (px) of predicted trace pixels (p > 0.5) to the true trace.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from backend.conventions import enu_to_los
from models import fault_metrics as fm
from models.baselines import dis_offsets, phase_correlation_offsets
from models.dataset import (
    COMBOS,
    ILLUMINATION_KEY,
    add_illumination_fits,
    arrays_for,
    is_current,
    load_record,
    relit_view,
    save_record,
    scene_to_record,
)

DEFAULT_CONFIG = Path("models/configs/eval.json")
CORR_VERSION = "v2"  # cache key of the correlator (v2: iterative re-centring, cubic spline)
DIS_MEDIUM = "DIS medium (optical)"
DIS_FS0 = "DIS medium, finest scale 0 (optical)"
CORR = "correlator 32 px, iterative sub-pixel (optical)"
ZERO = "zero displacement (reference)"
LK = "Lucas-Kanade 21 px, in-graph measurement alone (optical)"
STEP_BINS = {"ge0.3": (0.3, np.inf), "0.1-0.3": (0.1, 0.3)}
LAPLACE_SHARE, GAUSS_SHARE = 0.757, 0.683


def model_name(combo: str) -> str:
    return f"QuakeFusion [{combo}]"


def scene_overrides(cfg: dict[str, Any]) -> dict[str, Any] | None:
    if "overrides" in cfg:
        return dict(cfg["overrides"])
    if cfg.get("profile", "random") == "strong":
        from models.dataset import STRONG_OVERRIDES

        return dict(STRONG_OVERRIDES)
    return None


def trace_geometry(scene: Any) -> dict[str, np.ndarray]:
    """Record keys for the fault metrics: straight trace (surface-rupturing patches' top edges, else the
    shallowest patches'; without a fault, a pseudo-trace through the scene centre with the drawn strike)."""
    ev = scene.params.get("event_params", {})
    patches = scene.params.get("patches") or []
    strike = float(ev.get("strike_deg", patches[0]["strike"] if patches else 0.0))
    if isinstance(patches, list) and patches:
        ztop = min(p["top_depth"] for p in patches)
        top = [p for p in patches if p["top_depth"] <= ztop + 1.0]
        segs = []
        for p in top:
            s = np.deg2rad(p["strike"])
            se, sn = np.sin(s) * p["length"] / 2, np.cos(s) * p["length"] / 2
            segs.append([[p["east"] - se, p["north"] - sn], [p["east"] + se, p["north"] + sn]])
        surface = ztop < 1e-6
    else:
        H, W = scene.truth_enu.shape[1:]
        L = max(H, W) * scene.pixel_size_m
        s = np.deg2rad(strike)
        segs = [[[-L * np.sin(s), -L * np.cos(s)], [L * np.sin(s), L * np.cos(s)]]]
        surface = False
    return {"trace_segments": np.asarray(segs, np.float64), "strike_deg": np.float64(strike),
            "surface_rupture": np.float64(surface)}


def cache_tag(overrides: dict[str, Any] | None) -> str:
    """File-name tag of a scene's overrides, so that a config whose overrides change never reads stale scenes."""
    if not overrides:
        return ""
    return "_" + hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]


def test_record(cache: Path, seed: int, size: int, pixel_size_m: float, profile: str = "random",
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One held-out scene as a record (cached). ``profile``: "random" (the simulator's own event draw: mostly
    sub-pixel offsets) or "strong" (``models.dataset.STRONG_OVERRIDES``: offsets of 0.1-5 px near the
    rupture); ``overrides`` (if given) are passed to ``simulate_scene`` instead."""
    ov = overrides if overrides is not None else scene_overrides({"profile": profile})
    p = cache / f"test_{seed:08d}_{pixel_size_m:g}{cache_tag(ov)}.npz"
    if p.exists():
        rec = load_record(p)
        if "strike_deg" in rec and is_current(rec):  # older caches lack the trace geometry or are of an older
            return rec  # simulator: simulate again
    from models.scene import simulate_scene

    scene = simulate_scene(seed, size=(size, size), pixel_size_m=pixel_size_m, overrides=ov)
    rec = scene_to_record(scene)
    rec.update(trace_geometry(scene))
    cache.mkdir(parents=True, exist_ok=True)
    save_record(p, rec)
    return load_record(p)


def scene_list(cfg: dict[str, Any]) -> list[tuple[int, float]]:
    pss = cfg["pixel_sizes_m"]
    return [(cfg["seed_start"] + i, float(pss[i % len(pss)])) for i in range(cfg["count"])]


def record_for(cfg: dict[str, Any], seed: int, ps: float) -> dict[str, Any]:
    return test_record(Path(cfg["cache_dir"]), seed, cfg["size"], ps, cfg.get("profile", "random"),
                       scene_overrides(cfg))


def correlator_cached(cache: Path, seed: int, ps: float, rec: dict, cfg: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Correlator offsets of a test scene, cached next to it (slow; the model does not change them)."""
    tag = cache_tag(scene_overrides(cfg))
    p = cache / f"corr{CORR_VERSION}_w{cfg['pc_window']}s{cfg['pc_step']}_{seed:08d}_{ps:g}{tag}.npz"
    if p.exists():
        with np.load(p) as z:
            return z["dx"], z["dy"], float(z["seconds"])
    t = time.time()
    dx, dy = phase_correlation_offsets(rec["optical_pre"], rec["optical_post"], window=cfg["pc_window"],
                                       step=cfg["pc_step"])
    dt = time.time() - t
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(p, dx=dx, dy=dy, seconds=dt)
    return dx, dy, dt


def precompute(cfg: dict[str, Any]) -> None:
    """Simulate the test scenes and run the correlator on them (no model needed)."""
    scenes = scene_list(cfg)
    for i, (seed, ps) in enumerate(scenes):
        correlator_cached(Path(cfg["cache_dir"]), seed, ps, record_for(cfg, seed, ps), cfg)
        print(f"precomputed {i + 1}/{len(scenes)}", flush=True)


def lk_offsets(rec: dict, window: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """The 0.2 network's own in-graph optical measurement alone (high-passed Lucas-Kanade, ``models/frontend.py``),
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


def true_fault_side(rec: dict, offset_px: float = 0.0) -> np.ndarray:
    """+1 / -1 right / left of the record's rupture trace (``fault_metrics.fault_frame``) moved ``offset_px``."""
    ps = float(rec["pixel_size_m"])
    frame = fm.fault_frame(rec["optical_pre"].shape[-2:], ps, float(rec["strike_deg"]), rec["trace_segments"])
    return np.where(frame["signed"] > offset_px * ps, 1.0, -1.0).astype(np.float32)


def extracted_fault_side(rec: dict, out: dict[str, np.ndarray]) -> np.ndarray | None:
    """``fault_side`` from the trace that ``backend.trace`` extracts from a model output (``OnnxModel.run``'s
    dict), on a local north-up grid; None when it finds none."""
    from affine import Affine

    from backend.geodata import RunData, ToolsError, trace_side
    from backend.trace import extract_trace

    ps = float(rec["pixel_size_m"])
    h, w = out["displacement"].shape[1:]
    run = RunData(disp=out["displacement"].astype(np.float32), transform=Affine(ps, 0.0, 0.0, 0.0, -ps, h * ps),
                  crs_wkt="", sigma=out["sigma"].astype(np.float32), prob=out.get("rupture_probability"))
    try:
        lines, _ = extract_trace(run)
    except ToolsError:
        return None
    return trace_side(*run.pixel_grid_xy(), lines)


class OnnxModel:
    """The exported model through ONNX Runtime; output names from the metadata ``outputs`` dict."""

    def __init__(self, path: Path, trace: dict[str, Any] | None = None, illumination: str = "auto") -> None:
        """``trace`` (config ``trace``): the scene's true rupture trace is given to the model (``fault_side``),
        moved by ``offset_px`` px to its right (a trace drawn off the rupture); with ``"from": "extracted"`` the
        geologist's two-step workflow instead: a blind run, its trace extracted as ``python -m backend trace``
        does (``backend.trace``), and a second run given that trace (no trace found: the blind run is kept, counted
        in ``self.no_trace``); None: no trace."""
        import onnxruntime as ort

        from backend.model import cpu_session_options

        self.trace = trace
        self.illumination = illumination
        self.relit: list[bool] = []  # per model run with an optical pair and a DEM: was the pre image relit
        self._relit_of: tuple[dict, dict] | None = None  # (record, its relit view): the last record seen
        self.no_trace: list[str] = []  # the modality combination of each run where no trace was found
        self.sess = ort.InferenceSession(str(path), cpu_session_options(), providers=["CPUExecutionProvider"])
        self.meta = json.loads(self.sess.get_modelmeta().custom_metadata_map["quakefusion"])  # no torch import
        outs = self.meta.get("outputs") or {}
        names = [o.name for o in self.sess.get_outputs()]
        self.out_names = {"displacement": outs.get("displacement", names[0]), "sigma": outs.get("sigma", names[1])}
        if outs.get("rupture_probability"):
            self.out_names["rupture_probability"] = outs["rupture_probability"]
        self.input_name = self.meta.get("input_name", "features")

    def run(self, rec: dict, combo: str) -> dict[str, np.ndarray]:
        """{"displacement": (3, H, W) m, "sigma": (3, H, W) m[, "rupture_probability": (H, W)]} of one record."""
        if self.illumination != "off":
            rec = self._relit(rec)
        arrays = arrays_for(rec, COMBOS[combo])
        if self.trace is not None and self.trace.get("from") == "extracted":
            side = extracted_fault_side(rec, self._run(rec, arrays))
            if side is None:
                self.no_trace.append(combo)
                return self._run(rec, arrays)
            arrays["fault_side"] = side
        elif self.trace is not None:
            arrays["fault_side"] = true_fault_side(rec, float(self.trace.get("offset_px", 0.0)))
        return self._run(rec, arrays)

    def _relit(self, rec: dict) -> dict:
        """The record as the backend feeds it (``models.dataset.relit_view``, as training does): the relighting
        decision is made once per record, not once per modality combination."""
        if self._relit_of is None or self._relit_of[0] is not rec:
            self._relit_of = (rec, relit_view(add_illumination_fits(rec)))
        return self._relit_of[1]

    def _run(self, rec: dict, arrays: dict[str, Any]) -> dict[str, np.ndarray]:
        from backend.features import build_features, compute_stats

        if ILLUMINATION_KEY in rec and arrays.get("optical_pre") is not None and arrays.get("dem") is not None:
            self.relit.append(bool(json.loads(str(rec[ILLUMINATION_KEY])).get("relit")))
        x = build_features(self.meta["channels"], arrays, stats=compute_stats(arrays),
                           pixel_size_m=rec["pixel_size_m"], wavelength_m=rec["wavelength_m"],
                           phase_sign=int(rec["phase_sign"]))
        keys = list(self.out_names)
        res = self.sess.run([self.out_names[k] for k in keys], {self.input_name: x[None]})
        out = {k: np.asarray(v[0], np.float64) for k, v in zip(keys, res)}
        if "rupture_probability" in out:
            out["rupture_probability"] = out["rupture_probability"].reshape(out["displacement"].shape[1:])
        return out


# ------------------------------------------------------------------------------------------- accumulation


class _Acc:
    """Pooled pixel sums, per-profile steps and per-scene slopes for one method."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}
        self.lists: dict[str, list[np.ndarray]] = {}

    def add(self, key: str, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        self.s[key + ":sum"] = self.s.get(key + ":sum", 0.0) + float(v.sum())
        self.s[key + ":n"] = self.s.get(key + ":n", 0.0) + float(v.size)

    def keep(self, key: str, values: Any) -> None:
        self.lists.setdefault(key, []).append(np.atleast_1d(np.asarray(values, dtype=np.float64)))

    def cat(self, key: str) -> np.ndarray:
        return np.concatenate(self.lists[key]) if key in self.lists else np.zeros(0)

    def mean(self, key: str) -> float:
        n = self.s.get(key + ":n", 0.0)
        return self.s[key + ":sum"] / n if n else float("nan")


def _en_metrics(acc: _Acc, en_px: np.ndarray, rec: dict, sel: np.ndarray, near: np.ndarray) -> None:
    ps = rec["pixel_size_m"]
    true_px = rec["truth_enu"][:2] / ps
    epe = np.linalg.norm(en_px - true_px, axis=0)
    strong = np.linalg.norm(true_px, axis=0) >= 0.5
    acc.keep("near_epe", epe[sel & near].astype(np.float32))
    acc.keep("abs_d", np.linalg.norm(en_px, axis=0)[sel].astype(np.float32))
    for name, m in (("near", sel & near), ("far", sel & ~near), ("all", sel), ("strong", sel & strong)):
        acc.add(f"epe_px_{name}", epe[m])
        acc.add(f"epe_m_{name}", epe[m] * ps)


def _fault_metrics(acc: _Acc, en_px: np.ndarray, rec: dict, sel: np.ndarray, near: np.ndarray,
                   frame: dict, cfg: dict, weights: np.ndarray | None = None) -> None:
    """Steps on profiles (true and estimated, px and m), jumps across +-3 px, per-scene slope; with ``weights``
    (network rows: ``_inverse_variance_fp``) also the step as the offsets tool reads it, on the same profiles."""
    ps = rec["pixel_size_m"]
    est = fm.fault_parallel(en_px, frame)
    true = fm.fault_parallel(rec["truth_enu"][:2] / ps, frame)
    w = float(cfg.get("profile_px", 16))
    inner, outer = cfg.get("step_window_m", [50.0, 500.0])
    bins, nb = fm.profile_bins(frame, ps, w)
    if nb == 0:
        return
    sp, sm = fm.side_means(est, frame, bins, nb, sel, inner, outer, 10)
    tp, tm = fm.side_means(true, frame, bins, nb, sel, inner, outer, 10)
    jp, jm = fm.side_means(est, frame, bins, nb, sel, 2.5 * ps, 3.5 * ps, 3)
    up, um = fm.side_means(true, frame, bins, nb, sel, 2.5 * ps, 3.5 * ps, 3)
    ok = np.isfinite(sp - sm) & np.isfinite(tp - tm)
    acc.keep("step_est_px", (sp - sm)[ok])
    acc.keep("step_true_px", (tp - tm)[ok])
    acc.keep("step_ps_m", np.full(int(ok.sum()), ps))
    acc.keep("jump3_est_px", (jp - jm)[ok])
    acc.keep("jump3_true_px", (up - um)[ok])
    if weights is not None:
        wp, wm = fm.side_means(est, frame, bins, nb, sel, inner, outer, 10, weights=weights)
        acc.keep("wstep_est_px", (wp - wm)[ok])
    m = sel & near
    if m.sum() >= 50:
        x = true[m]
        if np.percentile(x, 95) - np.percentile(x, 5) >= 0.3:
            acc.keep("slope", fm.robust_slope(x, est[m]))


def _inverse_variance_fp(sig_m: np.ndarray, frame: dict, ps: float) -> np.ndarray:
    """1 / sigma^2 (px^-2) of the fault-parallel component, from a (3, H, W) sigma in metres: the weights the
    offsets tool (``backend/offsets.py``) reads a profile with."""
    te, tn = frame["unit_en"]
    return 1.0 / np.maximum(np.hypot(te * sig_m[0], tn * sig_m[1]) / ps, 1e-3) ** 2


def _sigma_metrics(acc: _Acc, enu: np.ndarray, sig: np.ndarray, rec: dict, sel: np.ndarray) -> None:
    err = np.abs(enu - rec["truth_enu"])
    inside = (err < sig)[:, sel].astype(np.float64)
    acc.add("calib", inside.ravel())
    for k, c in enumerate("enu"):
        acc.add(f"calib_{c}", inside[k])
    acc.add("calib_en", inside[:2].ravel())


def _rupture_metrics(acc: _Acc, prob: np.ndarray, rec: dict, sel: np.ndarray) -> None:
    truth = rec["rupture_mask"] > 0.5
    acc.keep("rp_score", prob[sel][::3].astype(np.float32))
    acc.keep("rp_label", truth[sel][::3].astype(np.float32))
    pred = (prob > 0.5) & sel
    acc.add("rp_tp", np.array([(pred & truth).sum()]))
    acc.add("rp_fp", np.array([(pred & ~truth).sum()]))
    acc.add("rp_fn", np.array([(~pred & truth & sel).sum()]))
    if float(rec.get("surface_rupture", 0.0)) > 0.5 and pred.any():
        acc.keep("rp_dist_px", rec["distance_to_rupture_m"][pred] / rec["pixel_size_m"])


def _summary(acc: _Acc) -> dict[str, Any]:
    r: dict[str, Any] = {k: acc.mean(k) for k in ("epe_px_near", "epe_px_far", "epe_px_all", "epe_m_near",
                                                  "epe_m_far", "epe_px_strong")}
    ne = acc.cat("near_epe")
    r["epe_px_near_median"] = float(np.median(ne)) if ne.size else float("nan")
    r["near_pixels"] = acc.s.get("epe_px_near:n", 0)
    r["strong_pixels"] = acc.s.get("epe_px_strong:n", 0)
    ad = acc.cat("abs_d")
    r["noise_floor_px_median"] = float(np.median(ad)) if ad.size else float("nan")
    if "sq3d_m:n" in acc.s:
        r["rmse3d_m"] = float(np.sqrt(acc.mean("sq3d_m")))
        r["los_rmse_m_near"] = float(np.sqrt(acc.mean("los_sq_near")))
        r["los_rmse_m_far"] = float(np.sqrt(acc.mean("los_sq_far")))
        r["los_rmse_m_all"] = float(np.sqrt(acc.mean("los_sq_all")))
        r["los_within_lambda4_near"] = acc.mean("los_ok_near")
        r["los_rmse_lambda4_near"] = float(np.sqrt(acc.mean("los_sq_lam4_near")))
        r["los_rmse_lambda4_far"] = float(np.sqrt(acc.mean("los_sq_lam4_far")))
        r["calibration"] = acc.mean("calib")
        for c in ("e", "n", "u", "en"):
            r[f"calibration_{c}"] = acc.mean(f"calib_{c}")
    # steps on profiles
    est, true, ps = acc.cat("step_est_px"), acc.cat("step_true_px"), acc.cat("step_ps_m")
    j_est, j_true = acc.cat("jump3_est_px"), acc.cat("jump3_true_px")
    r["profiles"] = int(true.size)
    steps: dict[str, Any] = {}
    for tag, (lo, hi) in STEP_BINS.items():
        m = (np.abs(true) >= lo) & (np.abs(true) < hi)
        s: dict[str, Any] = {"profiles": int(m.sum())}
        if m.any():
            e = (est[m] - true[m]) * np.sign(true[m])  # < 0: the estimate under-reads the step
            pct = 100.0 * e / np.abs(true[m])
            jm = m & (np.abs(j_true) >= 0.5 * lo)
            s.update({
                "true_step_px_median": float(np.median(np.abs(true[m]))),
                "true_step_m_median": float(np.median(np.abs(true[m] * ps[m]))),
                "error_px_median": float(np.median(e)), "error_px_mae": float(np.mean(np.abs(e))),
                "error_m_median": float(np.median(e * ps[m])), "error_m_mae": float(np.mean(np.abs(e * ps[m]))),
                "error_pct_median": float(np.median(pct)), "error_pct_mae": float(np.mean(np.abs(pct))),
                "within_5pct": float(np.mean(np.abs(pct) <= 5.0)),
                "share_within_3px_median": float(np.median(j_est[jm] / j_true[jm])) if jm.any() else float("nan"),
            })
        west = acc.cat("wstep_est_px")
        if m.any() and west.size == est.size:  # network rows: the 1/sigma^2-weighted step (offsets tool)
            e = (west[m] - true[m]) * np.sign(true[m])
            pct = 100.0 * e / np.abs(true[m])
            s["weighted_error_pct_median"] = float(np.nanmedian(pct))
            s["weighted_within_5pct"] = float(np.mean(np.abs(pct) <= 5.0))
        steps[tag] = s
    r["step"] = steps
    if est.size:
        a = np.abs(est)
        r["false_step_px"] = {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
                              "max": float(a.max())}
    sl = acc.cat("slope")
    r["slope_scenes"] = int(sl.size)
    r["slope_median"] = float(np.median(sl)) if sl.size else float("nan")
    r["slope_iqr"] = [float(np.percentile(sl, 25)), float(np.percentile(sl, 75))] if sl.size else None
    if "rp_tp:n" in acc.s:
        tp, fp, fn = (acc.s[f"rp_{k}:sum"] for k in ("tp", "fp", "fn"))
        r["rupture_auc"] = fm.binary_auc(acc.cat("rp_score"), acc.cat("rp_label") > 0.5)
        r["rupture_f1"] = float(2 * tp / max(2 * tp + fp + fn, 1.0))
        d = acc.cat("rp_dist_px")
        r["rupture_trace_distance_px_median"] = float(np.median(d)) if d.size else float("nan")
    return r


def evaluate(cfg: dict[str, Any], model_path: Path) -> dict[str, Any]:
    model = OnnxModel(model_path, trace=cfg.get("trace"), illumination=cfg.get("illumination", "auto"))
    out_dir = Path(cfg["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cfg["cache_dir"])
    margin, near_m = int(cfg["margin_px"]), float(cfg["near_m"])
    accs: dict[str, _Acc] = {}
    t0 = time.time()
    scenes = scene_list(cfg)
    timing = {"model_s": 0.0, "correlator_s": 0.0, "dis_s": 0.0}
    events = []
    for i, (seed, ps) in enumerate(scenes):
        rec = record_for(cfg, seed, ps)
        H, W = rec["optical_pre"].shape
        sel = np.zeros((H, W), bool)
        sel[margin:H - margin, margin:W - margin] = True
        sel &= np.all(np.isfinite(rec["truth_enu"]), axis=0)
        sel &= np.isfinite(rec["optical_pre"]) & np.isfinite(rec["optical_post"])  # optical nodata: no method
        near = rec["distance_to_rupture_m"] <= near_m
        frame = fm.fault_frame((H, W), ps, float(rec["strike_deg"]), rec["trace_segments"])

        def score(name: str, en_px: np.ndarray, weights: np.ndarray | None = None,
                  ctx: tuple = (rec, sel, near, frame)) -> _Acc:
            acc = accs.setdefault(name, _Acc())
            _en_metrics(acc, en_px, *ctx[:3])
            _fault_metrics(acc, en_px, *ctx, cfg, weights)
            return acc

        # reference: predicting no displacement
        score(ZERO, np.zeros((2, H, W)))
        # classical baselines (optical only)
        if cfg.get("correlator", True):  # False: diagnosis runs that need only DIS (the correlator is slow)
            dx, dy, dt = correlator_cached(cache, seed, ps, rec, cfg)
            timing["correlator_s"] += dt
            score(CORR, np.stack([dx, -dy]))
        for name, fs in ((DIS_MEDIUM, None), (DIS_FS0, 0)):
            t = time.time()
            dx, dy = dis_offsets(rec["optical_pre"], rec["optical_post"], finest_scale=fs)
            timing["dis_s"] += time.time() - t
            score(name, np.stack([dx, -dy]))
        if cfg.get("lk_row", True):
            try:
                dx, dy = lk_offsets(rec)
                score(LK, np.stack([dx, -dy]))
            except (AttributeError, TypeError, ImportError) as exc:  # the frontend of a later design
                print(f"LK row skipped: {type(exc).__name__}: {exc}", flush=True)
                cfg["lk_row"] = False
        # the network, every configured modality combination
        for combo in cfg["combos"]:
            t = time.time()
            out = model.run(rec, combo)
            timing["model_s"] += time.time() - t
            enu, sig = out["displacement"], out["sigma"]
            acc = score(model_name(combo), enu[:2] / ps, _inverse_variance_fp(sig, frame, ps))
            err = enu - rec["truth_enu"]
            acc.add("sq3d_m", (err ** 2).sum(0)[sel])
            los_err = enu_to_los(err[0], err[1], err[2], rec["los_unit_vector"])
            lam4 = rec["wavelength_m"] / 4.0
            for name, m in (("near", sel & near), ("far", sel & ~near), ("all", sel)):
                acc.add(f"los_sq_{name}", los_err[m] ** 2)
                acc.add(f"los_ok_{name}", (np.abs(los_err[m]) < lam4).astype(np.float64))
                acc.add(f"los_sq_lam4_{name}", (los_err[m] / lam4) ** 2)
            _sigma_metrics(acc, enu, sig, rec, sel)
            if "rupture_probability" in out:
                _rupture_metrics(acc, out["rupture_probability"], rec, sel)
        tf = fm.fault_parallel(rec["truth_enu"][:2] / ps, frame)
        events.append({"seed": seed, "pixel_size_m": ps, "max_abs_fault_parallel_px": float(np.abs(tf[sel]).max())})
        print(f"scene {i + 1}/{len(scenes)} seed {seed} pixel {ps:g} m ({time.time() - t0:.0f} s)", flush=True)
    res: dict[str, Any] = {"config": cfg, "model": str(model_path), "model_version": model.meta.get("model_version"),
                           "sigma_kind": "Laplace (ideal share |err| < sigma = 0.757; Gaussian 0.683)",
                           "timing_s": timing, "scenes": events, "methods": {}}
    res["relit"] = {"runs": len(model.relit), "relit": sum(model.relit)}
    from models.scene import SIMULATOR_VERSION

    res["simulator_version"] = SIMULATOR_VERSION  # the records are re-simulated when older (test_record)
    if (cfg.get("trace") or {}).get("from") == "extracted":
        res["trace_not_found"] = {c: getattr(model, "no_trace", []).count(c) for c in cfg["combos"]}
    for name, acc in accs.items():
        res["methods"][name] = _summary(acc)
    (out_dir / "metrics.json").write_text(json.dumps(res, indent=2))
    (out_dir / "metrics.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return res


# ------------------------------------------------------------------------------------------------ tables


def _f(v: Any, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def describe(cfg: dict[str, Any]) -> str:
    ov = cfg.get("overrides")
    kind = f"overrides {json.dumps(ov)}" if ov else f"{cfg.get('profile', 'random')} events"
    return (f"{cfg['count']} scenes ({kind}), seeds {cfg['seed_start']}..{cfg['seed_start'] + cfg['count'] - 1}, "
            f"{cfg['size']}x{cfg['size']} px, pixel sizes {cfg['pixel_sizes_m']} m (cycled), {cfg['margin_px']}-px "
            f"border excluded; near = within {cfg['near_m']:g} m of the rupture (top-edge trace if blind)."
            + _describe_trace(cfg.get("trace"))
            + (" The optical pair fed as it is (`illumination` off: no relighting from the DEM)."
               if cfg.get("illumination") == "off" else ""))


def _describe_trace(trace: dict[str, Any] | None) -> str:
    if not trace:
        return ""
    if trace.get("from") == "extracted":
        return (" Two runs per scene, as a geologist works: the model blind, the rupture trace extracted from its "
                "output (backend.trace: rupture probability, else the line search), the model again given that "
                "trace (fault_side); where no trace is found the blind run counts.")
    return (f" The model is given the true rupture trace (fault_side), moved {trace.get('offset_px', 0):g} px to its "
            "right.")


def error_table(res: dict[str, Any]) -> list[str]:
    lines = [
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
    return lines


def fault_table(res: dict[str, Any]) -> list[str]:
    """The geologist's table: offsets across the fault, sharpness, slope, sigma; noise floor without motion."""
    no_motion = res["config"].get("no_motion", False)
    if no_motion:
        lines = ["| method [modalities] | noise floor, median \\|d\\| (px) | false step, median \\|·\\| (px) "
                 "| false step, 95th pct (px) | false step, max (px) | profiles | share \\|err\\| < σ (E/N) |",
                 "|---|---|---|---|---|---|---|"]
        for name, r in res["methods"].items():
            if name == ZERO:
                continue
            fs = r.get("false_step_px") or {}
            lines.append(f"| {name} | {_f(r['noise_floor_px_median'], '.3f')} | {_f(fs.get('median'), '.3f')} "
                         f"| {_f(fs.get('p95'), '.3f')} | {_f(fs.get('max'), '.3f')} | {r['profiles']} "
                         f"| {_f(r.get('calibration_en'), '.2f')} |")
        return lines
    lines = ["| method [modalities] | near EPE mean / median (px) | step error, median (%) | step error, mean \\|·\\| "
             "(%) | step error, median (m) | profiles within ±5 % | share of the step within ±3 px | step error "
             "0.1–0.3 px steps, median (%) | slope (median over scenes) | share \\|err\\| < σ (E / N / E+N) "
             "| step error, 1/σ²-weighted as the offsets tool reads it, median (%) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["methods"].items():
        if name == ZERO:
            continue
        s, s2 = r["step"]["ge0.3"], r["step"]["0.1-0.3"]
        cal = "–" if "calibration_en" not in r else (
            f"{r['calibration_e']:.2f} / {r['calibration_n']:.2f} / {r['calibration_en']:.2f}")
        lines.append(
            f"| {name} | {_f(r['epe_px_near'], '.3f')} / {_f(r['epe_px_near_median'], '.3f')} "
            f"| {_f(s.get('error_pct_median'), '+.1f')} | {_f(s.get('error_pct_mae'), '.1f')} "
            f"| {_f(s.get('error_m_median'), '+.3f')} | {_f(s.get('within_5pct'), '.0%')} "
            f"| {_f(s.get('share_within_3px_median'), '.2f')} | {_f(s2.get('error_pct_median'), '+.1f')} "
            f"| {_f(r['slope_median'], '.2f')} | {cal} | {_f(s.get('weighted_error_pct_median'), '+.1f')} |")
    ref = res["methods"][ZERO]
    s, s2 = ref["step"]["ge0.3"], ref["step"]["0.1-0.3"]
    lines += ["", f"Profiles ({res['config'].get('profile_px', 16)} px wide along strike, 50–500 m windows): "
              f"{s['profiles']} with a true step ≥ 0.3 px (median {_f(s.get('true_step_px_median'), '.2f')} px = "
              f"{_f(s.get('true_step_m_median'), '.2f')} m), {s2['profiles']} with 0.1–0.3 px; slope over "
              f"{ref['slope_scenes']} scenes whose true fault-parallel range is ≥ 0.3 px."]
    rp = {n: r for n, r in res["methods"].items() if "rupture_auc" in r}
    if rp:
        lines += ["", "| model [modalities] | rupture probability ROC AUC | F1 (p > 0.5) "
                  "| median distance of p > 0.5 pixels to the true trace (px) |", "|---|---|---|---|"]
        for name, r in rp.items():
            lines.append(f"| {name} | {_f(r['rupture_auc'], '.3f')} | {_f(r['rupture_f1'], '.3f')} "
                         f"| {_f(r['rupture_trace_distance_px_median'], '.2f')} |")
    return lines


def simulator_note(res: dict[str, Any]) -> str:
    """Which simulator made the set's scenes (``models.scene.SIMULATOR_VERSION``; results without one: version 1)."""
    v = res.get("simulator_version", 1)
    return f"*Simulator v{v}*" + (" (SAR amplitude band-limited)." if v >= 2 else
                                  ": SAR amplitude aliased (its rows with SAR read sub-pixel steps short; the SAR "
                                  "item under Limits). Re-run with `make evaluate`.")


def to_markdown(res: dict[str, Any]) -> str:
    cfg = res["config"]
    lines = [f"Held-out test: {describe(cfg)} {simulator_note(res)}", ""]
    rl = res.get("relit")
    if rl and rl["runs"]:
        lines += [f"Pre image relit to the post image's sun from the DEM (`backend.illumination`, as the backend "
                  f"does): {rl['relit']} of {rl['runs']} model runs with an optical pair.", ""]
    if "trace_not_found" in res:
        lines += ["No trace found (the blind run counts) in: " + ", ".join(
            f"{n} of {cfg['count']} scenes [{c}]" for c, n in res["trace_not_found"].items()) + ".", ""]
    if not cfg.get("no_motion", False):
        lines += error_table(res) + [""]
    lines += fault_table(res)
    t = res["timing_s"]
    n = next(iter(res["methods"].values()))
    lines += ["", f"Pixels: {n['near_pixels']:.0f} near the rupture, {n['strong_pixels']:.0f} with |d_EN| ≥ 0.5 px. "
              f"σ: {res.get('sigma_kind', '')}.",
              "", f"Run time (s, whole test set): network {t['model_s']:.1f} (all combinations), "
              f"correlator {t['correlator_s']:.1f}, DIS {t['dis_s']:.1f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--model", type=Path, default=Path("models/quakefusion.onnx"))
    ap.add_argument("--count", type=int, help="override the number of test scenes")
    ap.add_argument("--pc-step", type=int, help="override the correlator's grid step (px)")
    ap.add_argument("--out-dir", help="override the output folder")
    ap.add_argument("--illumination", choices=("auto", "off"),
                    help="override the topographic correction of the optical pair (default: config, else auto)")
    ap.add_argument("--precompute", action="store_true", help="only simulate test scenes + correlator")
    args = ap.parse_args(argv)
    cfg = json.loads(args.config.read_text())
    if args.count:
        cfg["count"] = args.count
    if args.pc_step:
        cfg["pc_step"] = args.pc_step
    if args.out_dir:
        cfg["out_dir"] = args.out_dir
    if args.illumination:
        cfg["illumination"] = args.illumination
    if args.precompute:
        precompute(cfg)
        return
    evaluate(cfg, args.model)


if __name__ == "__main__":
    main()
