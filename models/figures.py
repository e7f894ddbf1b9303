"""Figures of simulated scenes: ``python -m models.figures --seed 3 --out docs/img/simulated_scene.png``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.scene import Scene, simulate_scene


def _stretch(a: np.ndarray, lo: float = 2, hi: float = 98) -> np.ndarray:
    p0, p1 = np.nanpercentile(a, [lo, hi])
    return np.clip((a - p0) / max(p1 - p0, 1e-12), 0, 1)


def scene_figure(scene: Scene, path: str | Path, title: str | None = None) -> Path:
    """Write a 3×5 panel PNG of all modalities and the truth of ``scene``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = scene
    H, W = s.dem.shape
    px = s.pixel_size_m
    ext = [0, W * px / 1000, 0, H * px / 1000]
    fig, axes = plt.subplots(3, 5, figsize=(20, 12.5), constrained_layout=True)
    panels = [
        ("optical pre (DN)", _stretch(s.optical_pre), "gray", None),
        ("optical post (DN)", _stretch(s.optical_post), "gray", None),
        ("SAR amplitude pre (dB)", 20 * np.log10(np.maximum(s.sar_pre, 1e-3)), "gray", "dB"),
        ("SAR amplitude post (dB)", 20 * np.log10(np.maximum(s.sar_post, 1e-3)), "gray", "dB"),
        ("DEM (m)", s.dem, "terrain", "m"),
        ("wrapped phase (rad)", s.wrapped_phase, "twilight", "rad"),
        ("coherence", s.coherence, "magma", ""),
        ("true unwrapped phase (rad)", s.truth_unwrapped_phase, "viridis", "rad"),
        ("truth LOS (m, towards sat.)", s.truth_los, "RdBu_r", "m"),
        ("rupture mask / distance (km)", s.distance_to_rupture_m / 1000 * (1 - 0.7 * s.rupture_mask), "cividis",
         "km"),
        ("truth east (m)", s.truth_enu[0], "RdBu_r", "m"),
        ("truth north (m)", s.truth_enu[1], "RdBu_r", "m"),
        ("truth up (m)", s.truth_enu[2], "RdBu_r", "m"),
        ("optical post − pre (DN)", s.optical_post - s.optical_pre, "RdBu_r", "DN"),
        ("SAR log-ratio post/pre (dB)", 20 * np.log10(np.maximum(s.sar_post, 1e-3) / np.maximum(s.sar_pre, 1e-3)),
         "RdBu_r", "dB"),
    ]
    for ax, (name, arr, cmap, unit) in zip(axes.flat, panels):
        kw: dict = {}
        if cmap == "RdBu_r":
            v = float(np.nanpercentile(np.abs(arr), 99)) or 1e-6
            kw = {"vmin": -v, "vmax": v}
        elif cmap == "twilight":
            kw = {"vmin": -np.pi, "vmax": np.pi}
        elif name.startswith("SAR amplitude"):
            kw = {"vmin": float(np.nanpercentile(arr, 2)), "vmax": float(np.nanpercentile(arr, 99.5))}
        elif name == "coherence":
            kw = {"vmin": 0, "vmax": 1}
        im = ax.imshow(arr, cmap=cmap, extent=ext, interpolation="nearest", **kw)
        ax.set_title(name, fontsize=11)
        if unit is not None:
            fig.colorbar(im, ax=ax, shrink=0.8)
        if s.rupture_mask.any() and name.startswith("truth"):
            ax.contour(s.rupture_mask[::-1], levels=[0.5], colors="k", linewidths=0.6, extent=ext)
    for ax in axes[2]:
        ax.set_xlabel("km")
    ev = s.params.get("event_params", {})
    g = s.params.get("geometry", {})
    t = title or (
        f"seed {s.params['seed']} — {ev.get('mechanism', ev.get('name', ''))} Mw {ev.get('mw', float('nan')):.2f}, "
        f"{'surface-rupturing' if ev.get('surface_rupture') else 'blind'}; pixel {px:.1f} m; "
        f"{g.get('band')}-band λ={s.wavelength_m * 100:.1f} cm, {g.get('pass')}, "
        f"heading {g.get('heading_deg', 0):.0f}°, "
        f"incidence {g.get('incidence_center_deg', 0):.0f}°; DEM {s.params['dem']['source']}, "
        f"texture {s.params['optical']['texture']}; EPSG:{s.crs}"
    )
    fig.suptitle(t, fontsize=13)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--pixel", type=float, default=None)
    ap.add_argument("--event", default=None)
    ap.add_argument("--out", default="docs/img/simulated_scene.png")
    a = ap.parse_args(argv)
    scene = simulate_scene(a.seed, size=tuple(a.size), pixel_size_m=a.pixel, event=a.event)
    print(scene_figure(scene, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
