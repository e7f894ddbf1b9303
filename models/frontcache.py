"""Cached fixed measurements for training (the network's parameter-free front end, computed once per scene).

The front end of model 0.3 (coarse-to-fine warped Lucas-Kanade, ``WarpFusionNet.measure``) has no parameters but
costs ~95 % of a training step on 2 CPU cores. It is computed once per simulated scene, on the whole scene with
every modality, and stored next to the scene (``scene_<seed>.meas.npz``, float16). A training sample crops and
flips the scene *and* its measurements together (a flip negates the offset component and swaps the left/right or
up/down one-sided windows), and zeroes the measurements of a dropped modality, which is exactly what the front end
gives for an absent pair (all-zero images and masks).

    python -m models.frontcache --config models/configs/default.json   # fill the caches (background)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.dataset import COMBOS, _flip, crop_record, features_and_target, random_present, rupture_target

KEYS = ("cand_o", "ldet_o", "lres_o", "a_o", "cand_s", "ldet_s", "lres_s")
# window order (models.fusion): full, left, right, up, down at r; small; full, left, right, up, down at 2r + 1
X_SWAP = [0, 2, 1, 3, 4, 5, 6, 8, 7, 9, 10]
Y_SWAP = [0, 1, 2, 4, 3, 5, 6, 7, 8, 10, 9]


def measure_record(model: torch.nn.Module, rec: dict[str, Any]) -> dict[str, np.ndarray]:
    x, _, _ = features_and_target(rec, COMBOS["all"], list(model.channels))
    with torch.no_grad():
        m = model.measure(torch.from_numpy(x)[None])
    return {k: v[0].numpy().astype(np.float16) for k, v in m.items()}


def meas_path(cache_dir: Path, seed: int, relit: bool = True) -> Path:
    """The scene's cached measurements: of the relit record (``models.dataset.relit_view``, the default) or of the
    raw one (``.meas.npz``, caches made before relighting)."""
    return cache_dir / f"scene_{seed:08d}.{'relit.' if relit else ''}meas.npz"


def get_measured(model: torch.nn.Module, cache_dir: Path, seed: int, rec: dict[str, Any],
                 relit: bool = True) -> dict[str, np.ndarray]:
    p = meas_path(cache_dir, seed, relit)
    version = float(np.asarray(rec.get("simulator_version", 0.0)))  # measurements of the record's own scene only
    if p.exists():
        try:
            with np.load(p) as z:
                if "simulator_version" in z.files and float(z["simulator_version"]) == version:
                    return {k: z[k] for k in KEYS}
        except Exception:  # half-written by a concurrent filler: recompute
            pass
    m = measure_record(model, rec)
    tmp = p.with_suffix(".tmp.npz")
    np.savez(tmp, **m, simulator_version=np.float64(version))
    tmp.replace(p)
    return m


def flip_measurements(m: dict[str, np.ndarray], fx: bool, fy: bool) -> dict[str, np.ndarray]:
    out = {}
    for k, v in m.items():
        v = v.astype(np.float32)
        if fx:
            v = v[..., ::-1]
        if fy:
            v = v[..., ::-1, :]
        if k != "a_o":
            if fx:
                v = v[X_SWAP]
            if fy:
                v = v[Y_SWAP]
        if k.startswith("cand"):
            v = v.copy()
            if fx:
                v[:, 0] = -v[:, 0]
            if fy:
                v[:, 1] = -v[:, 1]
        out[k] = np.ascontiguousarray(v)
    return out


def sample_item(rec: dict[str, Any], meas: dict[str, np.ndarray], rng: np.random.Generator, crop: int,
                channels: list[str], p_keep: float = 0.6) -> tuple[Any, ...]:
    """A random crop, flips and modality subset -> (features, target ENU px, valid, rupture target, measurements)."""
    H, W = rec["optical_pre"].shape[-2:]
    y0, x0 = int(rng.integers(0, H - crop + 1)), int(rng.integers(0, W - crop + 1))
    fx, fy = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    r = _flip(crop_record(rec, y0, x0, crop, crop), fx, fy)
    m = flip_measurements({k: v[..., y0:y0 + crop, x0:x0 + crop] for k, v in meas.items()}, fx, fy)
    present = random_present(rng, p_keep)
    for mod, keys in (("optical", ("cand_o", "ldet_o", "lres_o", "a_o")), ("sar", ("cand_s", "ldet_s", "lres_s"))):
        if mod not in present:
            for k in keys:
                m[k] = np.zeros_like(m[k])
    x, t, v = features_and_target(r, present, channels)
    # the cached optical measurements are valid where the whole-scene mask was; the crop's own mask may differ
    # only by NaN pixels of the crop itself, which are the same pixels
    return x, t, v, rupture_target(r), m


def stack_measurements(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([i[k] for i in items])) for k in KEYS}


def main(argv: list[str] | None = None) -> None:
    from models.fusion import build_model
    from models.train import get_record, load_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("models/configs/default.json"))
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    torch.set_num_threads(1)
    model = build_model(cfg["model"]).eval()
    model.use_side = False  # training scenes carry no trace (fault_side 0): the same result, ~half the time
    d = cfg["data"]
    relight = bool(d.get("relight", True))
    t0, n = time.time(), 0
    for src in d["sources"]:
        cdir, (s0, s1) = Path(src["cache_dir"]), src["seeds"]
        for seed in range(s0 + args.worker, s1, args.workers):
            if meas_path(cdir, seed, relight).exists():
                continue
            rec = get_record(cdir, seed, d["scene_size"], src["backend"], relight=relight)
            get_measured(model, cdir, seed, rec, relit=relight)
            n += 1
            if n % 100 == 0:
                print(f"{n} scenes measured in {time.time() - t0:.0f} s", flush=True)
    print(f"done: {n} scenes in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
