"""The SAR amplitude pair's vertical leak, removed in the 3-D inversion (``backend.inversion.sar_up_coupling``).

A geocoded amplitude image moves by the apparent shift d_h - U cot(theta) g (g: ground range, away from the
satellite); the fused horizontal takes a share w of its weight from the SAR candidates (the model's ``sar_share``
output), so it carries -w U cot(theta) g. With an interferogram of the same track the inversion can model it
(``EstimateConfig(sar_vertical_coupling=True)``, "coupled" below; experimental, off by default) or not ("off", as
the product runs). This runs simulated real-texture ruptures (the profile
of evaluation set (c), seeds outside it) through the real pipeline with every modality, both ways, and measures
east/north/up against the truth: median |error| on pixels > 300 m from the rupture, the fault-parallel slope and
the step across the fault (50-500 m windows, 16-px profiles, as ``models.evaluate``).

Usage: ``.venv/bin/python benchmarks/sar_vertical.py [--seeds 9900000 8] [--size 256] [--out DIR]`` (Markdown).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import fault_metrics as fm  # noqa: E402
from models.evaluate import trace_geometry  # noqa: E402
from models.scene import simulate_scene  # noqa: E402

PROFILE = {"texture": "s2_pair", "texture_region": "test", "sensor_effects": True, "surface_rupture": True,
           "mw_range": [6.8, 7.6]}


def run(scene, folder: Path, geometry: str, model: Path | None) -> tuple[np.ndarray, dict]:  # noqa: ANN001
    import json

    import rasterio

    from backend.config import CancelToken, EstimateConfig
    from backend.pipeline import run_estimate
    from models.testing import scene_estimate_inputs

    inputs = scene_estimate_inputs(scene, folder / "inputs")
    cfg = EstimateConfig(out_dir=folder / geometry, sar_vertical_coupling=geometry == "coupled", model_path=model,
                         **inputs)
    run_estimate(cfg, progress=lambda f, m: None, cancel=CancelToken())
    with rasterio.open(folder / geometry / "displacement.tif") as ds:
        disp = ds.read().astype(np.float64)
    return disp, json.loads((folder / geometry / "run.json").read_text())


def scores(scene, disp: np.ndarray) -> dict[str, float]:  # noqa: ANN001
    ps = scene.pixel_size_m
    t = np.asarray(scene.truth_enu, np.float64)
    H, W = t.shape[1:]
    sel = np.zeros((H, W), bool)
    sel[16:-16, 16:-16] = True
    sel &= np.all(np.isfinite(disp[:2]), axis=0)
    far = sel & (np.asarray(scene.distance_to_rupture_m) > 300.0)
    geo = trace_geometry(scene)
    frame = fm.fault_frame((H, W), ps, float(geo["strike_deg"]), geo["trace_segments"])
    est_fp, true_fp = fm.fault_parallel(disp[:2], frame), fm.fault_parallel(t[:2], frame)
    bins, nb = fm.profile_bins(frame, ps, 16)
    out = {"en_far_m": float(np.median(np.hypot(*(disp[:2, far] - t[:2, far])))) if far.any() else np.nan,
           "slope": fm.robust_slope(true_fp[far], est_fp[far]) if np.ptp(true_fp[far]) > 0.1 * ps else np.nan,
           "u_far_m": np.nan, "step_pct": np.nan, "u_share": float(np.mean(np.isfinite(disp[2, sel])))}
    uf = far & np.isfinite(disp[2])
    if uf.sum() > 100:
        out["u_far_m"] = float(np.median(np.abs(disp[2, uf] - t[2, uf])))
    if nb:
        sp, sm = fm.side_means(est_fp, frame, bins, nb, sel, 50.0, 500.0, 10)
        tp, tm = fm.side_means(true_fp, frame, bins, nb, sel, 50.0, 500.0, 10)
        ok = np.isfinite(sp - sm) & np.isfinite(tp - tm) & (np.abs(tp - tm) >= 0.1 * ps)
        if ok.any():
            out["step_pct"] = float(np.median(100 * ((sp - sm) - (tp - tm))[ok] / np.abs(tp - tm)[ok]
                                              * np.sign(tp - tm)[ok]))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs=2, default=[9900000, 8], metavar=("START", "COUNT"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--pixel", type=float, default=10.0)
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped models/quakefusion.onnx")
    ap.add_argument("--out", type=Path, default=None, help="keep the run folders here (default: a temporary one)")
    a = ap.parse_args(argv)
    tmp = None if a.out else tempfile.TemporaryDirectory()
    root = a.out or Path(tmp.name)
    rows = ["| seed | Mw, rake | U p5..p95 (m) | SAR share | E/N err far (m) off → coupled | slope off → coupled "
            "| step error off → coupled | U err far (m) off → coupled |", "|---|---|---|---|---|---|---|---|"]
    acc: dict[str, list[float]] = {}
    for seed in range(a.seeds[0], a.seeds[0] + a.seeds[1]):
        scene = simulate_scene(seed, size=(a.size, a.size), pixel_size_m=a.pixel, overrides=dict(PROFILE))
        res = {}
        for geometry in ("off", "coupled"):
            disp, rj = run(scene, root / f"s{seed}", geometry, a.model)
            res[geometry] = scores(scene, disp) | {"share": rj.get("sar_share_median") or 0.0}
        o, i = res["off"], res["coupled"]
        ev = scene.params.get("event_params", {})
        u = np.asarray(scene.truth_enu)[2]
        rows.append(f"| {seed} | {ev.get('mw', float('nan')):.2f}, {ev.get('rake_deg', float('nan')):.0f}° | "
                    f"{np.percentile(u, 5):+.2f}..{np.percentile(u, 95):+.2f} | {i['share']:.2f} | "
                    f"{o['en_far_m']:.3f} → {i['en_far_m']:.3f} | {o['slope']:.2f} → {i['slope']:.2f} | "
                    f"{o['step_pct']:+.1f} → {i['step_pct']:+.1f} % | {o['u_far_m']:.3f} → {i['u_far_m']:.3f} |")
        for g, r in res.items():
            for k, v in r.items():
                acc.setdefault(f"{g}_{k}", []).append(v)
        print(rows[-1], flush=True)

    def med(key: str) -> str:
        v = np.asarray(acc[key], float)
        return f"{np.nanmedian(v):.3f}" if np.isfinite(v).any() else "–"

    rows.append(f"| median | | | | {med('off_en_far_m')} → {med('coupled_en_far_m')} | {med('off_slope')} → "
                f"{med('coupled_slope')} | {med('off_step_pct')} → {med('coupled_step_pct')} % | "
                f"{med('off_u_far_m')} → {med('coupled_u_far_m')} |")
    print("\n".join(["## SAR vertical leak (benchmarks/sar_vertical.py)", "", *rows]))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
