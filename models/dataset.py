"""Training / validation data: simulated scenes -> cached .npz -> random crops with modality dropout.

* ``scene_to_record(scene)`` -> dict of float32 arrays + scalars (what the cache stores).
* ``make_cache(out_dir, seeds, size)`` simulates scenes (``models.scene.simulate_scene``) into
  ``out_dir/scene_<seed>.npz``; run it in the background (``python -m models.dataset``).
* ``sample_features(record, rng, ...)`` -> (features (C,H,W), target ENU in pixels (3,H,W), valid mask,
  rupture target (H,W))
  with modality dropout applied at the array level, then ``backend.features.build_features``:
  training sees exactly what inference sees.
* ``standin_scene(seed, size)``: a tiny stand-in generator (smooth texture shifted by a smooth
  field with a step across a "fault") used ONLY for smoke tests when the simulator is absent.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from backend.conventions import enu_to_los, los_to_phase, los_unit_vector, wrap
from backend.features import build_features, compute_stats
from models.channels import CHANNELS, MODALITIES

ARRAY_KEYS = ("optical_pre", "optical_post", "sar_pre", "sar_post", "wrapped_phase", "coherence", "dem",
              "los_unit_vector", "truth_enu", "truth_los", "distance_to_rupture_m", "rupture_mask")
SCALAR_KEYS = ("pixel_size_m", "wavelength_m", "phase_sign")

# Fixed modality subsets used for validation / evaluation (name -> modalities present).
COMBOS: dict[str, tuple[str, ...]] = {
    "optical": ("optical", "dem"),
    "sar": ("sar", "dem"),
    "insar": ("insar", "dem"),
    "optical+sar": ("optical", "sar", "dem"),
    "optical+insar": ("optical", "insar", "dem"),
    "all": ("optical", "sar", "insar", "dem"),
}


def _get(scene: Any, key: str) -> Any:
    if isinstance(scene, Mapping):
        return scene.get(key)
    return getattr(scene, key, None)


def scene_to_record(scene: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for k in ARRAY_KEYS:
        v = _get(scene, k)
        if v is not None:
            rec[k] = np.asarray(v, dtype=np.float32)
    for k in SCALAR_KEYS:
        rec[k] = float(_get(scene, k))
    params = _get(scene, "params")
    if isinstance(params, Mapping) and "simulator_version" in params:
        rec["simulator_version"] = float(params["simulator_version"])
    return rec


def is_current(rec: Mapping[str, Any]) -> bool:
    """Whether a cached simulated record was made by this simulator (``models.scene.SIMULATOR_VERSION``); records
    of an older one (or without a version) are simulated again."""
    from models.scene import SIMULATOR_VERSION

    if "simulator_version" not in rec:
        return False
    return int(float(np.asarray(rec["simulator_version"]))) == SIMULATOR_VERSION


# Scene profiles: "sim" = the simulator's own random draw (most events move the ground by far less
# than a pixel); "sim_strong" = large surface-rupturing events (Mw 6.8-7.9) at 5-15 m pixels, so that
# offsets of 0.3-5 px are common (used to oversample measurable signal in training).
STRONG_OVERRIDES = {"mw_range": (6.8, 7.9), "surface_rupture": True}
STRONG_PIXEL_RANGE_M = (5.0, 15.0)


REAL_PIXEL_RANGE_M = (3.0, 15.0)


def real_overrides(seed: int) -> tuple[dict[str, Any], float]:
    """"sim_real" profile (model 0.3): strong surface ruptures (steps up to ~5 px at 3-15 m pixels, half of them with
    the slip scaled up to 3x), 60 % on the
    real two-date Sentinel-2 pair (training window), cross-sensor effects on 70 %, off-fault spreading on 30 %."""
    r = np.random.default_rng([seed, 11])
    ps = round(float(np.exp(r.uniform(*np.log(REAL_PIXEL_RANGE_M)))), 2)
    ov: dict[str, Any] = {**STRONG_OVERRIDES, "mw_range": (6.6, 7.9), "sensor_effects": bool(r.random() < 0.7)}
    if r.random() < 0.6:
        ov.update(texture="s2_pair", texture_region="train")
    if r.random() < 0.3:
        ov["offfault_px"] = float(r.uniform(0.7, 4.0))
    if r.random() < 0.5:
        ov["displacement_scale"] = float(np.exp(r.uniform(0.0, np.log(3.0))))
    return ov, ps


def simulate_record(seed: int, size: tuple[int, int], backend: str = "sim") -> dict[str, Any]:
    if backend == "standin":
        return standin_scene(seed, size)
    from models.scene import simulate_scene

    if backend == "sim_real":
        ov, ps = real_overrides(seed)
        return scene_to_record(simulate_scene(seed, size=size, pixel_size_m=ps, overrides=ov))

    if backend == "sim_strong":
        lo, hi = np.log(STRONG_PIXEL_RANGE_M)
        ps = round(float(np.exp(np.random.default_rng([seed, 7]).uniform(lo, hi))), 2)
        return scene_to_record(simulate_scene(seed, size=size, pixel_size_m=ps, overrides=STRONG_OVERRIDES))
    return scene_to_record(simulate_scene(seed, size=size))


def load_record(path: Path) -> dict[str, Any]:
    with np.load(path) as z:
        rec = {k: z[k] for k in z.files}
    for k in SCALAR_KEYS:
        rec[k] = float(rec[k])
    return rec


def save_record(path: Path, rec: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in rec.items()})
    os.replace(tmp, path)


ILLUMINATION_KEY = "illumination_fits"  # a record's relighting decision (backend.illumination.fit_pair, JSON)


def add_illumination_fits(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The record with its relighting decision (``fit_pair`` on its optical pair and DEM, as JSON under
    :data:`ILLUMINATION_KEY`; "{}" without a pair or a DEM). Made once per scene: the caller caches the record."""
    import json

    from backend import illumination

    out = dict(rec)
    if ILLUMINATION_KEY not in out:
        fits = illumination.fit_pair(out, float(out["pixel_size_m"])) if out.get("dem") is not None else {}
        out[ILLUMINATION_KEY] = json.dumps(fits)
    return out


def relit_view(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the backend feeds it to the network: the pre image relit to the post image's sun where its
    decision (:func:`add_illumination_fits`) says so (``backend.illumination.apply``). A view for features: never
    cache it (the cached record keeps the raw pre image)."""
    import json

    from backend import illumination

    fits = json.loads(str(rec[ILLUMINATION_KEY])) if ILLUMINATION_KEY in rec else None
    return illumination.apply(rec, fits, float(rec["pixel_size_m"]))


def make_cache(out_dir: Path, seeds: Iterable[int], size: tuple[int, int], backend: str = "sim") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        p = out_dir / f"scene_{seed:08d}.npz"
        if p.exists():
            with np.load(p) as z:  # the version key only (an NpzFile reads its arrays on access)
                if backend == "standin" or is_current(z):
                    continue
        try:
            rec = simulate_record(seed, size, backend)
        except Exception as exc:  # a bad draw must not stop the cache
            print(f"seed {seed}: {type(exc).__name__}: {exc}", flush=True)
            continue
        save_record(p, rec)


# ----------------------------------------------------------------------------- sampling
def _flip(rec: dict[str, Any], fx: bool, fy: bool) -> dict[str, Any]:
    """Flip columns (fx: east -> -east) and/or rows (fy: north -> -north); vectors follow."""
    if not (fx or fy):
        return rec
    out = dict(rec)
    for k, v in rec.items():
        if isinstance(v, np.ndarray) and v.ndim >= 2:
            if fx:
                v = v[..., :, ::-1]
            if fy:
                v = v[..., ::-1, :]
            out[k] = np.ascontiguousarray(v)
    for k in ("los_unit_vector", "truth_enu"):
        if k in out:
            v = out[k].copy()
            if fx:
                v[0] = -v[0]
            if fy:
                v[1] = -v[1]
            out[k] = v
    return out


def crop_record(rec: Mapping[str, Any], y0: int, x0: int, h: int, w: int) -> dict[str, Any]:
    out = {}
    for k, v in rec.items():
        out[k] = v[..., y0:y0 + h, x0:x0 + w] if isinstance(v, np.ndarray) and v.ndim >= 2 else v
    return out


def arrays_for(rec: Mapping[str, Any], present: Iterable[str]) -> dict[str, Any]:
    """Input arrays of ``rec`` for the modalities in ``present`` (others None)."""
    present = set(present)
    arrays: dict[str, Any] = {}
    for mod, keys in MODALITIES.items():
        for k in keys:
            arrays[k] = rec.get(k) if mod in present else None
    arrays["los_unit_vector"] = rec.get("los_unit_vector") if "insar" in present else None
    return arrays


def features_and_target(rec: Mapping[str, Any], present: Iterable[str], channels: list[str] | None = None,
                        stats: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """features (C,H,W), target (east, north, up) in pixels (3,H,W), valid (H,W) float32."""
    arrays = arrays_for(rec, present)
    if stats is None:
        stats = compute_stats(arrays)
    x = build_features(channels or CHANNELS, arrays, stats=stats, pixel_size_m=rec["pixel_size_m"],
                       wavelength_m=rec["wavelength_m"], phase_sign=int(rec["phase_sign"]))
    t = rec["truth_enu"] / rec["pixel_size_m"]
    valid = np.all(np.isfinite(t), axis=0).astype(np.float32)
    return x, np.nan_to_num(t).astype(np.float32), valid


def random_present(rng: np.random.Generator, p_keep: float = 0.6, p_dem: float = 0.8) -> tuple[str, ...]:
    while True:
        present = [m for m in ("optical", "sar", "insar") if rng.random() < p_keep]
        if present:
            break
    if rng.random() < p_dem:
        present.append("dem")
    return tuple(present)


def rupture_target(rec: Mapping[str, Any], width_px: float = 1.0) -> np.ndarray:
    """1 where a surface rupture passes within ``width_px`` of the pixel centre (label of ``rupture_probability``)."""
    mask = rec.get("rupture_mask")
    dist = rec.get("distance_to_rupture_m")
    if mask is None or dist is None or not np.any(mask > 0):
        return np.zeros(np.shape(rec["truth_enu"])[-2:], np.float32)
    return (np.nan_to_num(dist, nan=np.inf) <= width_px * rec["pixel_size_m"]).astype(np.float32)


def sample_features(rec: Mapping[str, Any], rng: np.random.Generator, crop: int,
                    channels: list[str] | None = None, p_keep: float = 0.6,
                    present: tuple[str, ...] | None = None) -> tuple[np.ndarray, ...]:
    """A random crop (flipped at random) -> (features, target ENU px, valid, rupture target)."""
    H, W = rec["optical_pre"].shape[-2:]
    y0 = int(rng.integers(0, H - crop + 1))
    x0 = int(rng.integers(0, W - crop + 1))
    r = crop_record(rec, y0, x0, crop, crop)
    r = _flip(dict(r), bool(rng.random() < 0.5), bool(rng.random() < 0.5))
    if present is None:
        present = random_present(rng, p_keep)
    return (*features_and_target(r, present, channels), rupture_target(r))


# ----------------------------------------------------------------------------- stand-in generator
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (n - n.mean()) / (n.std() + 1e-9)


def standin_scene(seed: int, size: tuple[int, int] = (128, 128), pixel_size_m: float | None = None) -> dict[str, Any]:
    """Smoke-test stand-in: NOT physics. Texture shifted by a smooth field with a step across a line."""
    rng = np.random.default_rng(seed)
    H, W = size
    ps = float(pixel_size_m or rng.uniform(5.0, 30.0))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    ang = rng.uniform(0, np.pi)
    dist_px = (xx - W / 2 - rng.uniform(-10, 10)) * np.cos(ang) + (yy - H / 2) * np.sin(ang)
    amp = rng.uniform(0.5, 3.0) * ps * rng.uniform(0.1, 1.0)
    prof = np.arctan(dist_px / rng.uniform(0.3, 3.0)) / np.pi  # -0.5..0.5 step
    strike = np.array([-np.sin(ang), np.cos(ang)])  # along the line (x, y)
    east = amp * prof * strike[0]
    north = -amp * prof * strike[1]
    up = 0.3 * amp * np.exp(-np.abs(dist_px) / 20.0) * np.sign(dist_px)
    tex = _smooth_noise(rng, (H + 40, W + 40), 1.5) + 0.5 * _smooth_noise(rng, (H + 40, W + 40), 4.0)
    cy, cx = np.mgrid[20:H + 20, 20:W + 20].astype(np.float64)
    pre = ndimage.map_coordinates(tex, [cy, cx], order=3)
    post = ndimage.map_coordinates(tex, [cy + north / ps, cx - east / ps], order=3)
    dn = lambda a: (100 + 30 * a + rng.normal(0, 0.5, a.shape)).astype(np.float32)  # noqa: E731
    amp_pre = np.exp(0.5 * pre) * rng.rayleigh(1.0, pre.shape)
    amp_post = np.exp(0.5 * post) * rng.rayleigh(1.0, pre.shape)
    wl = float(rng.choice([0.05546576, 0.2384]))
    sign = int(rng.choice([1, -1]))
    los = los_unit_vector(np.full((H, W), rng.uniform(30, 45)), np.full((H, W), rng.choice([-12.0, -168.0])))
    los_m = enu_to_los(east, north, up, los)
    coh = np.clip(0.8 - 0.7 * np.exp(-np.abs(dist_px) / 4.0), 0.05, 1)
    noise = rng.normal(0, 1, (H, W)) * np.sqrt(1 - coh ** 2) / np.maximum(coh, 0.1)
    phase = wrap(los_to_phase(los_m, wl, sign) + noise)
    return {
        "optical_pre": dn(pre), "optical_post": dn(post),
        "sar_pre": amp_pre.astype(np.float32), "sar_post": amp_post.astype(np.float32),
        "wrapped_phase": phase.astype(np.float32), "coherence": coh.astype(np.float32),
        "dem": (500 + 200 * _smooth_noise(rng, (H, W), 10.0)).astype(np.float32),
        "los_unit_vector": los.astype(np.float32),
        "truth_enu": np.stack([east, north, up]).astype(np.float32), "truth_los": los_m.astype(np.float32),
        "distance_to_rupture_m": (np.abs(dist_px) * ps).astype(np.float32),
        "rupture_mask": (np.abs(dist_px) < 1.5).astype(np.float32),
        "pixel_size_m": ps, "wavelength_m": wl, "phase_sign": float(sign),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Pre-generate a cache of simulated scenes (.npz).")
    ap.add_argument("--out", type=Path, default=Path("runs/cache/train"))
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--stride", type=int, default=1, help="for several workers: worker i uses start+i, stride n")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--backend", choices=["sim", "sim_strong", "sim_real", "standin"], default="sim")
    args = ap.parse_args(argv)
    t0 = time.time()
    seeds = range(args.start, args.start + args.count, args.stride)
    make_cache(args.out, seeds, (args.size, args.size), args.backend)
    print(f"cache {args.out}: {len(seeds)} seeds in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
