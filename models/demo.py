"""``python -m models.demo``: the real pipeline on the bundled data, with accuracy figures.

(a) Thessaly 2021 (real Sentinel-1 LiCSAR interferogram, InSAR only): agreement of our unwrapped phase with
    LiCSAR's own unwrapped solution.
(b) Darfield 2010 semi-synthetic multi-modal scene (data/demo_darfield, made with ``python -m models.simulate``):
    accuracy of east/north/up and of the unwrapping against the simulator's truth.

(c) A simulated Mw 7.4 surface rupture at 10 m pixels (the simulator's strong-event profile on the bundled
    Sentinel-2 / Landsat textures and DEMs; needs the development environment, ``models/``): horizontal accuracy
    near the rupture against the truth, next to OpenCV DIS on the same optical pair when OpenCV is installed.

``python -m models.demo --prepare SIMULATOR_OUTPUT_DIR`` turns the simulator's output folder into
data/demo_darfield (incidence/heading rasters from the LOS unit vector; only the files the demo needs).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import rasterio

from backend.config import CancelToken, EstimateConfig, InputRaster
from backend.conventions import TWO_PI, los_to_angles
from backend.pipeline import run_estimate
from models import fault_metrics as fm
from models.evaluate import trace_geometry

from .metrics import (
    agreement_within_pi,
    classify_cross_rupture,
    cross_rupture_cycle_error,
    exact_cycle_share,
    true_cross_rupture_cycles,
)

ROOT = Path(__file__).resolve().parents[1]
THESSALY = ROOT / "data" / "thessaly2021"
DARFIELD = ROOT / "data" / "demo_darfield"


def _read(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as ds:
        a = ds.read(band, masked=True)
    return np.ma.filled(a.astype(np.float64), np.nan)


def _progress(tag: str):  # noqa: ANN202
    last = [-1.0]

    def f(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.25 or fraction >= 1.0:
            last[0] = fraction
            print(f"  [{tag} {fraction * 100:5.1f} %] {message}", flush=True)

    return f


def thessaly_reference_phase(los_reference: np.ndarray) -> np.ndarray:
    """LiCSAR's unwrapped solution of the Thessaly interferogram in the wrapped input's phase units (rad):
    ``los_reference.tif`` times ``reference_phase_per_m`` of ``event.json`` (10 / wavelength, measured: the file
    holds the phase x wavelength / 10; data/thessaly2021/README.md)."""
    ev = json.loads((THESSALY / "event.json").read_text())
    return float(ev["reference_phase_per_m"]) * np.asarray(los_reference, np.float64)


def demo_thessaly(out: Path, device: str = "auto", model: Path | None = None) -> dict:
    ev = json.loads((THESSALY / "event.json").read_text())
    lam = float(ev["wavelength_m"])
    cfg = EstimateConfig(out_dir=out, phase=InputRaster(THESSALY / "phase_wrapped.tif"), wavelength_m=lam,
                         incidence_deg=float(ev["incidence_deg"]), heading_deg=float(ev["heading_deg"]), phase_sign=1,
                         device=device, model_path=model)
    res = run_estimate(cfg, progress=_progress("thessaly"), cancel=CancelToken())
    unw = _read(res.outputs["unwrapped_phase"])
    ref_phase = thessaly_reference_phase(_read(THESSALY / "los_reference.tif"))  # phase_sign +1
    ref_los = ref_phase * lam / (4.0 * np.pi)  # range increase positive (m)
    share, n = agreement_within_pi(unw, ref_phase)
    coverage = float(np.mean(np.isfinite(unw[np.isfinite(ref_phase)])))
    rms_model = None  # InSAR only: the network is not run (no fused LOS estimate; los_displacement = unwrapped)
    with rasterio.open(res.outputs["los_displacement"]) as ds:
        two = ds.count == 2
    if two:
        fused = _read(res.outputs["los_displacement"], 1)  # towards the satellite
        m = np.isfinite(fused) & np.isfinite(ref_los)
        d = fused[m] - (-ref_los[m])
        d -= np.median(d)
        rms_model = float(np.sqrt(np.mean(d ** 2)))
    regions = _read(res.outputs["unwrap_regions"])
    trusted = regions > 0
    share_trusted, _ = agreement_within_pi(np.where(trusted, unw, np.nan), ref_phase)
    return {"agreement_with_licsar": share, "pixels_compared": n, "coverage_of_licsar_valid": coverage,
            "agreement_on_trusted_regions": share_trusted, "trusted_share": float(trusted[np.isfinite(unw)].mean()),
            "n_regions": int(regions.max()),
            "fused_los_rms_vs_licsar_m": rms_model, "device": res.device, "out": str(out),
            "time_s": res.run["timings"]["total_s"]}


def demo_darfield(out: Path, device: str = "auto", model: Path | None = None) -> dict:
    p = json.loads((DARFIELD / "params.json").read_text())
    cfg = EstimateConfig(
        out_dir=out, optical_pre=InputRaster(DARFIELD / "optical.tif", 1),
        optical_post=InputRaster(DARFIELD / "optical.tif", 2), sar_pre=InputRaster(DARFIELD / "sar_amplitude.tif", 1),
        sar_post=InputRaster(DARFIELD / "sar_amplitude.tif", 2), phase=InputRaster(DARFIELD / "wrapped_phase.tif"),
        coherence=InputRaster(DARFIELD / "coherence.tif"), dem=InputRaster(DARFIELD / "dem.tif"),
        wavelength_m=float(p["wavelength_m"]), incidence_deg=InputRaster(DARFIELD / "incidence.tif"),
        heading_deg=InputRaster(DARFIELD / "heading.tif"), phase_sign=int(p["phase_sign"]), device=device,
        model_path=model)
    res = run_estimate(cfg, progress=_progress("darfield"), cancel=CancelToken())
    out_m: dict = {"device": res.device, "out": str(out), "time_s": res.run["timings"]["total_s"]}
    tru_enu = []
    for i, comp in enumerate(("east", "north", "up")):
        est = _read(res.outputs["displacement"], i + 1)
        tru = _read(DARFIELD / "truth_enu.tif", i + 1)
        tru_enu.append(tru)
        m = np.isfinite(est) & np.isfinite(tru)
        out_m[f"rmse_{comp}_m"] = float(np.sqrt(np.mean((est[m] - tru[m]) ** 2)))
        out_m[f"truth_rms_{comp}_m"] = float(np.sqrt(np.mean(tru[m] ** 2)))
    te, tn = tru_enu[0], tru_enu[1]
    out_m["pixel_size_m"] = float(p["pixel_size_m"])
    out_m["truth_horizontal_p99_px"] = float(np.nanpercentile(np.hypot(te, tn), 99)) / float(p["pixel_size_m"])
    unw = _read(res.outputs["unwrapped_phase"])
    truth = _read(DARFIELD / "truth_unwrapped_phase.tif")
    out_m["exact_cycle_share"], _ = exact_cycle_share(unw, truth)
    out_m["unwrapped_coverage"] = float(np.mean(np.isfinite(unw)))
    dist = _read(DARFIELD / "distance_to_rupture_m.tif")
    trace = np.isfinite(dist) & (dist <= 0.75 * float(p["pixel_size_m"]))
    out_m["true_cycles_across_rupture"] = true_cross_rupture_cycles(truth, trace)
    out_m["cross_rupture_cycle_error"] = cross_rupture_cycle_error(unw, truth, trace)
    k = np.rint((unw - truth) / TWO_PI)
    # exact / separate (sides in different regions or untrusted: flagged) / wrong (one region: silently wrong)
    out_m["cross_rupture_count"], _ = classify_cross_rupture(unw, _read(res.outputs["unwrap_regions"]), truth,
                                                             trace, gap_px=0.0)
    out_m["absolute_cycle_offset_median"] = float(np.nanmedian(k)) if np.isfinite(k).any() else float("nan")
    return out_m


def demo_strong_rupture(out: Path, device: str = "auto", model: Path | None = None, seed: int = 7) -> dict:
    """A simulated surface rupture at 10 m (the screenshots' scene): the regime the optical offsets resolve."""
    from models.dataset import STRONG_OVERRIDES  # development environment only (numpy simulator, no torch)
    from models.scene import simulate_scene

    from .testing import scene_estimate_inputs

    s = simulate_scene(seed, size=(384, 384), pixel_size_m=10.0, overrides=STRONG_OVERRIDES)
    cfg = EstimateConfig(out_dir=out / "results", **scene_estimate_inputs(s, out / "inputs"), device=device,
                         model_path=model)
    res = run_estimate(cfg, progress=_progress("rupture"), cancel=CancelToken())
    ps = float(s.pixel_size_m)
    est = np.stack([_read(res.outputs["displacement"], i) for i in (1, 2)]).astype(np.float64)
    truth = np.asarray(s.truth_enu[:2], dtype=np.float64)
    near = np.asarray(s.distance_to_rupture_m) <= 1000.0
    sel = np.zeros(near.shape, bool)
    sel[16:-16, 16:-16] = True
    sel &= np.all(np.isfinite(est), axis=0)
    epe = np.hypot(*(est - truth)) / ps
    out_m: dict = {"device": res.device, "out": str(out / "results"), "time_s": res.run["timings"]["total_s"],
                   "mw": float(s.params["event_params"]["mw"]), "pixel_size_m": ps,
                   "truth_horizontal_p99_m": float(np.percentile(np.hypot(*truth), 99)),
                   "epe_px_near": float(epe[sel & near].mean()), "epe_m_near": float(epe[sel & near].mean() * ps),
                   "zero_epe_px_near": float((np.hypot(*truth) / ps)[sel & near].mean())}
    # the offset a geologist reads: fault-parallel mean on 50-500 m one side minus the other, per 160-m profile,
    # and the jump between 25-35 m either side (+-3 px): how sharp the rupture is
    geo = trace_geometry(s)
    frame = fm.fault_frame(truth.shape[1:], ps, float(geo["strike_deg"]), geo["trace_segments"])

    def step_m(en: np.ndarray, inner: float = 50.0, outer: float = 500.0, min_px: int = 10) -> float:
        return float(np.nanmedian(fm.profile_steps(fm.fault_parallel(en, frame), frame, sel, ps, inner, outer,
                                                   min_px=min_px)))

    out_m["step_true_m"], out_m["step_model_m"] = step_m(truth), step_m(est)
    out_m["jump3_true_m"], out_m["jump3_model_m"] = step_m(truth, 2.5 * ps, 3.5 * ps, 3), step_m(est, 2.5 * ps,
                                                                                                   3.5 * ps, 3)
    # the geologist's second run: the trace extracted from this run (as the Rupture trace tool does), given back
    out_m.update(_rerun_with_trace(out, cfg, step_m, np.asarray(s.distance_to_rupture_m, np.float64)))
    try:
        from models.baselines import dis_offsets

        dx, dy = dis_offsets(s.optical_pre, s.optical_post)
        dis = np.hypot(dx - truth[0] / ps, -dy - truth[1] / ps)
        out_m["dis_epe_px_near"] = float(dis[sel & near].mean())
        out_m["step_dis_m"] = step_m(np.stack([dx * ps, -dy * ps]))
        out_m["jump3_dis_m"] = step_m(np.stack([dx * ps, -dy * ps]), 2.5 * ps, 3.5 * ps, 3)
    except ImportError:  # OpenCV not installed
        out_m["dis_epe_px_near"] = out_m["step_dis_m"] = out_m["jump3_dis_m"] = None
    return out_m


def _rerun_with_trace(out: Path, cfg: EstimateConfig, step_m, distance_m: np.ndarray) -> dict:  # noqa: ANN001
    """The geologist's second run as one job (``--trace auto``, ``EstimateConfig.trace_auto``): a blind first pass,
    its rupture trace extracted as ``python -m backend trace`` does, then the run with that trace. Where the trace
    lies (the share of its length within 1 and 2 px of the true trace, ``distance_m`` the distance raster), the step
    and the jump at +-3 px of that run, and whether the trace is the one the Rupture trace tool extracts from the
    first run (``out/results``)."""
    from dataclasses import replace

    from backend.geodata import ToolsError, cumulative_length, load_run
    from backend.trace import TRACE_FILE, TRACE_LAYER, extract_trace, read_trace

    res = run_estimate(replace(cfg, out_dir=out / "results_with_trace", trace_auto=True),
                       progress=_progress("rupture, trace found and given"), cancel=CancelToken())
    rt = res.run["parameters"]["rupture_trace"]
    if not rt.get("path"):
        return {"trace_source": f"none: {rt.get('why')}"}
    run = load_run(out / "results_with_trace")
    lines = read_trace(out / "results_with_trace" / TRACE_FILE, run.crs_wkt, TRACE_LAYER)
    try:  # the Rupture trace tool on the first run finds the same lines
        tool = extract_trace(load_run(out / "results"))[0]
        same = len(tool) == len(lines) and all(np.allclose(a, b, atol=1e-3) for a, b in zip(tool, lines))
    except ToolsError:
        same = False
    dist = []
    for line in lines:  # sampled every metre
        cl = cumulative_length(line)
        at = np.arange(0.0, cl[-1], 1.0)
        dist.append(run.sample(distance_m, np.interp(at, cl, line[:, 0]), np.interp(at, cl, line[:, 1])))
    dist = np.concatenate(dist) / run.pixel_size
    where = {"trace_within_1px": float(np.mean(dist <= 1.0)), "trace_within_2px": float(np.mean(dist <= 2.0)),
             "trace_mean_distance_m": float(np.nanmean(dist) * run.pixel_size), "trace_as_the_tool": same}
    est = np.stack([_read(res.outputs["displacement"], i) for i in (1, 2)]).astype(np.float64)
    ps = res.grid.pixel_size_m
    return where | {"trace_source": rt["source"], "out_with_trace": str(out / "results_with_trace"),
            "time_with_trace_s": res.run["timings"]["total_s"], "first_pass_s": res.run["timings"]["first_pass_s"],
            "step_with_trace_m": step_m(est), "jump3_with_trace_m": step_m(est, 2.5 * ps, 3.5 * ps, 3)}


def run_demo(out: Path, device: str = "auto", model: Path | None = None) -> int:
    out = Path(out)
    print(f"QuakeFusion demo -> {out.resolve()}")
    print("(a) Thessaly 2021, real Sentinel-1 interferogram (COMET LiCSAR), InSAR only")
    a = demo_thessaly(out / "thessaly2021", device, model)
    print(f"    results: {a['out']}  (device {a['device']}, {a['time_s']:.1f} s)")
    print(f"    unwrapped phase vs LiCSAR's unwrapped solution: {a['agreement_with_licsar'] * 100:.2f} % of "
          f"{a['pixels_compared']} pixels within +-pi (after removing the median difference); "
          f"coverage {a['coverage_of_licsar_valid'] * 100:.1f} % of LiCSAR's valid pixels")
    print(f"    on the trusted unwrap regions ({a['trusted_share'] * 100:.1f} % of the unwrapped pixels, "
          f"{a['n_regions']} regions): {a['agreement_on_trusted_regions'] * 100:.2f} %")
    if a["fused_los_rms_vs_licsar_m"] is not None:
        print(f"    fused LOS estimate vs LiCSAR: rms {a['fused_los_rms_vs_licsar_m'] * 100:.1f} cm (after a constant)")
    print("(b) Darfield 2010 slip model, semi-synthetic multi-modal scene (real texture, simulated physics)")
    b = demo_darfield(out / "darfield_semisynthetic", device, model)
    print(f"    results: {b['out']}  (device {b['device']}, {b['time_s']:.1f} s)")
    for comp in ("east", "north", "up"):
        rmse, rms = b[f"rmse_{comp}_m"] * 100, b[f"truth_rms_{comp}_m"] * 100
        print(f"    {comp:5s} rmse {rmse:6.1f} cm   (truth rms {rms:.1f} cm)")
    print(f"    (at {b['pixel_size_m']:g} m pixels the true horizontal motion is at most "
          f"{b['truth_horizontal_p99_px']:.3f} px (p99), below the optical/SAR per-pixel noise floor of ~0.02-0.05 px: "
          f"since 0.3.0 no model pulls towards zero, so the estimate here is that noise and its sigma says so; see "
              "models/MODEL_CARD.md)")
    print(f"    unwrapping: {b['exact_cycle_share'] * 100:.2f} % of unwrapped pixels with the right cycle "
          f"({b['unwrapped_coverage'] * 100:.1f} % unwrapped, rest masked); cross-rupture cycle error "
          f"{b['cross_rupture_cycle_error']:+.0f} (true step {b['true_cycles_across_rupture']:.1f} cycles; "
          + {"exact": "exact", "separate": "the sides are separate unwrap regions: flagged, not silent",
             "wrong": "SILENTLY WRONG: both sides in one region"}.get(b["cross_rupture_count"], "no trace")
          + f"); absolute offset {b['absolute_cycle_offset_median']:+.0f} cycles")
    summary = {"thessaly2021": a, "darfield_semisynthetic": b}
    try:
        import models.scene  # noqa: F401  (development environment: the simulator is there)
    except ImportError:
        print("(c) skipped: the simulator (models/) is not installed with the plugin")
    else:
        print("(c) simulated surface rupture at 10 m (strong-event profile, seed 7: not a training seed; bundled "
              "textures and DEMs), all modalities")
        c = demo_strong_rupture(out / "simulated_rupture_10m", device, model)
        print(f"    results: {c['out']}  (device {c['device']}, {c['time_s']:.1f} s)")
        dis = c["dis_epe_px_near"]
        print(f"    Mw {c['mw']:.1f}, horizontal motion up to {c['truth_horizontal_p99_m']:.1f} m (p99); "
              f"within 1 km of the rupture: east/north error {c['epe_px_near']:.3f} px = {c['epe_m_near'] * 100:.0f} cm"
              + (f" (OpenCV DIS on the same optical pair: {dis:.3f} px" if dis is not None else " (")
              + f"; predicting zero: {c['zero_epe_px_near']:.3f} px)")
        t, m_, d_ = c["step_true_m"], c["step_model_m"], c["step_dis_m"]
        print(f"    offset across the fault (fault-parallel, 50-500 m either side, median of 160-m profiles): "
              f"true {t:+.2f} m, QuakeFusion {m_:+.2f} m ({(m_ - t) / abs(t) * 100:+.0f} %)"
              + (f", OpenCV DIS {d_:+.2f} m ({(d_ - t) / abs(t) * 100:+.0f} %)" if d_ is not None else ""))
        jt = c["jump3_true_m"]
        print(f"    sharpness: jump between 25-35 m either side {c['jump3_model_m']:+.2f} m of {jt:+.2f} m "
              f"({c['jump3_model_m'] / jt * 100:.0f} % of it within +-3 px of the trace"
              + (f"; DIS {c['jump3_dis_m'] / jt * 100:.0f} %)" if c["jump3_dis_m"] is not None else ")"))
        if "step_with_trace_m" in c:
            w, j = c["step_with_trace_m"], c["jump3_with_trace_m"]
            print(f"    rupture trace found and given (--trace auto: a blind first pass, "
                  f"{c['first_pass_s']:.0f} s, its trace extracted"
                  + (", the same as python -m backend trace on the run above" if c["trace_as_the_tool"] else "")
                  + f"; {c['trace_source']}): {c['trace_within_1px'] * 100:.0f} % of it within 1 px of the true "
                  f"trace, {c['trace_within_2px'] * 100:.0f} % within 2 px (mean {c['trace_mean_distance_m']:.0f} m)")
            print(f"    run with that trace: offset {w:+.2f} m ({(w - t) / abs(t) * 100:+.0f} %), "
                  f"jump at +-3 px {j:+.2f} m ({j / jt * 100:.0f} %)  -> {c['out_with_trace']}")
        else:
            print(f"    --trace auto found no rupture trace: {c['trace_source']}")
        summary["simulated_rupture_10m"] = c
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"summary: {(out / 'demo_summary.json').resolve()}")
    return 0


# ------------------------------------------------------------------------------- data preparation
def prepare_darfield(sim_dir: Path, dest: Path = DARFIELD) -> None:
    """Copy the simulator's output into data/demo_darfield with incidence/heading rasters (degrees)."""
    sim_dir = Path(sim_dir)
    dest.mkdir(parents=True, exist_ok=True)
    prof_extra = dict(compress="deflate", predictor=3, tiled=True, blockxsize=256, blockysize=256)
    for name in ("optical.tif", "sar_amplitude.tif", "wrapped_phase.tif", "coherence.tif", "dem.tif",
                 "truth_enu.tif", "truth_unwrapped_phase.tif", "distance_to_rupture_m.tif"):
        with rasterio.open(sim_dir / name) as src:
            prof = src.profile | prof_extra
            data = src.read()
            with rasterio.open(dest / name, "w", **prof) as dst:
                dst.write(data)
                dst.update_tags(**src.tags())
                for b in range(1, src.count + 1):
                    dst.set_band_description(b, src.descriptions[b - 1])
                    dst.update_tags(b, **src.tags(b))
    with rasterio.open(sim_dir / "los_unit_vector.tif") as src:
        e, n, u = src.read().astype(np.float64)
        prof = src.profile | prof_extra | {"count": 1}
    inc, hdg = los_to_angles(np.stack([e, n, u]))
    for name, arr, desc in (("incidence.tif", inc, "incidence angle (deg from vertical)"),
                            ("heading.tif", hdg, "heading (deg clockwise from north)")):
        with rasterio.open(dest / name, "w", **prof) as dst:
            dst.write(arr, 1)
            dst.set_band_description(1, desc)
            dst.update_tags(1, units="deg")
    shutil.copy(sim_dir / "params.json", dest / "params.json")


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m models.demo", description="Run the pipeline on the bundled data "
                                 "(Thessaly 2021, semi-synthetic Darfield, a simulated rupture).")
    ap.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--model", default=None, help="ONNX model (default: models/quakefusion.onnx)")
    ap.add_argument("--prepare", metavar="SIM_DIR", default=None,
                    help="instead: rebuild data/demo_darfield from a simulator output folder")
    a = ap.parse_args(argv)
    if a.prepare:
        prepare_darfield(Path(a.prepare))
        return 0
    return run_demo(Path(a.out), device=a.device, model=Path(a.model) if a.model else None)


if __name__ == "__main__":
    sys.exit(main())
