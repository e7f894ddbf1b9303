"""Simulator CLI: write one synthetic scene as GeoTIFFs + JSON.

``python -m models.simulate --seed N --out DIR [--event darfield] [--size H W] [--pixel M] [--figure PNG]``

Every modality and the truth become GeoTIFFs on the same grid (CRS, transform, nodata, band descriptions and
units in the tags); ``params.json`` holds everything that was drawn. Same seed → byte-identical files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from models.scene import Scene, simulate_scene

# file name → (scene keys or (key, band index) per band, band descriptions, units)
OUTPUTS: dict[str, tuple[list[Any], list[str], str]] = {
    "optical.tif": (["optical_pre", "optical_post"], ["optical_pre", "optical_post"], "DN (reflectance-like)"),
    "sar_amplitude.tif": (["sar_pre", "sar_post"], ["sar_amplitude_pre", "sar_amplitude_post"], "linear amplitude"),
    "wrapped_phase.tif": (["wrapped_phase"], ["wrapped_phase"], "rad"),
    "coherence.tif": (["coherence"], ["coherence"], "1"),
    "dem.tif": (["dem"], ["elevation"], "m"),
    "los_unit_vector.tif": ([("los_unit_vector", 0), ("los_unit_vector", 1), ("los_unit_vector", 2)],
                            ["los_east", "los_north", "los_up"], "1 (ground to satellite, ENU)"),
    "truth_enu.tif": ([("truth_enu", 0), ("truth_enu", 1), ("truth_enu", 2)],
                      ["displacement_east", "displacement_north", "displacement_up"], "m"),
    "truth_los.tif": (["truth_los"], ["los_displacement_towards_satellite"], "m"),
    "truth_unwrapped_phase.tif": (["truth_unwrapped_phase"], ["unwrapped_phase"], "rad"),
    "rupture_mask.tif": (["rupture_mask"], ["rupture_mask"], "1"),
    "distance_to_rupture_m.tif": (["distance_to_rupture_m"], ["distance_to_rupture"], "m"),
}


def _band(scene: Scene, spec: Any) -> np.ndarray:
    if isinstance(spec, tuple):
        return np.asarray(getattr(scene, spec[0])[spec[1]], dtype=np.float32)
    return np.asarray(getattr(scene, spec), dtype=np.float32)


def _block(n: int) -> int:
    return 256 if n >= 256 else 16 * max(1, n // 16)


def write_scene(scene: Scene, out_dir: str | Path) -> dict[str, Path]:
    """Write all GeoTIFFs and ``params.json`` of ``scene`` into ``out_dir``; returns name → path."""
    import rasterio
    from affine import Affine

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    H, W = scene.dem.shape
    a, b, c, d, e, f = scene.transform
    transform = Affine(a, b, c, d, e, f)
    written: dict[str, Path] = {}
    common_tags = {
        "wavelength_m": f"{scene.wavelength_m:.8f}", "phase_sign": str(scene.phase_sign),
        "pixel_size_m": f"{scene.pixel_size_m:.4f}", "simulator_seed": str(scene.params.get("seed")),
        "phase_convention": "phase = phase_sign * 4*pi/wavelength * range_increase (backend/conventions.py)",
    }
    for name, (keys, descs, units) in OUTPUTS.items():
        data = np.stack([_band(scene, k) for k in keys])
        is_mask = name == "rupture_mask.tif"
        dtype = "uint8" if is_mask else "float32"
        if is_mask:
            data = data.astype(np.uint8)
        elif name == "distance_to_rupture_m.tif":
            data = np.where(np.isfinite(data), data, np.float32(3.0e38))
        path = out / name
        tmp = out / (name + ".tmp")
        with rasterio.open(
            tmp, "w", driver="GTiff", height=H, width=W, count=len(keys), dtype=dtype, crs=f"EPSG:{scene.crs}",
            transform=transform, nodata=255 if is_mask else float("nan"), compress="deflate",
            tiled=True, blockxsize=_block(W), blockysize=_block(H),
        ) as ds:
            ds.write(data)
            ds.update_tags(units=units, **common_tags)
            for bi, desc in enumerate(descs, start=1):
                ds.set_band_description(bi, desc)
                ds.update_tags(bi, units=units)
        tmp.replace(path)
        written[name] = path
    meta = {
        "crs": f"EPSG:{scene.crs}", "transform": list(scene.transform), "size": [H, W],
        "pixel_size_m": scene.pixel_size_m, "wavelength_m": scene.wavelength_m, "phase_sign": scene.phase_sign,
        "files": {k: {"bands": v[1], "units": v[2]} for k, v in OUTPUTS.items()},
        "params": scene.params,
    }
    pj = out / "params.json"
    pj.write_text(json.dumps(meta, indent=1, sort_keys=True, default=_json_default) + "\n")
    written["params.json"] = pj
    return written


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.simulate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--event", default=None, choices=[None, "darfield"], help="real slip model instead of random")
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--pixel", type=float, default=None, help="pixel size (m); random in 5–100 m if omitted")
    ap.add_argument("--figure", default=None, help="also write a PNG overview of the scene")
    a = ap.parse_args(argv)
    scene = simulate_scene(a.seed, size=(a.size[0], a.size[1]), pixel_size_m=a.pixel, event=a.event)
    files = write_scene(scene, a.out)
    if a.figure:
        from models.figures import scene_figure

        files["figure"] = scene_figure(scene, a.figure)
    for k, p in files.items():
        print(f"{k}: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
