"""Accuracy of the geologist's tools on the simulated Mw 6.9 rupture (issue #14's acceptance case).

``models.simulate --seed 7 --size 768 768 --pixel 10``: the TRUTH (optionally + white noise, with that sigma in
displacement_sigma.tif) and a synthetic rupture_probability.tif (the truth's rupture mask blurred) are written as a
run folder (models.testing.write_truth_run); the trace is extracted (probability and step maps) and compared with
the true trace (distance_to_rupture_m), the stacked offsets with the true slip of the patch under each profile.

With ``--model`` (the shipped ONNX by default: ``--model models/quakefusion.onnx``) the same event is also run
through the real pipeline (``backend.pipeline.run_estimate`` on the simulated optical + SAR + InSAR files, as the
dialog would) and the tools are measured on the *model's* output, with the extracted trace and with the true trace;
once more with the true trace given to the network (``--trace``, model 0.7.0), and once more with the trace
extracted from the first run (``auto``, as ``python -m backend trace``: the geologist's two-step workflow; measured
along that trace, "given trace"). ``--optical-only``: the model runs get the optical pair and the DEM only.

Usage: ``.venv/bin/python benchmarks/geotools_accuracy.py [--size 768] [--pixel 10] [--out DIR] [--model [ONNX]]
[--optical-only] [--reuse]`` (prints Markdown).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.geodata import ToolsError, cumulative_length, load_run  # noqa: E402
from backend.offsets import offsets_along_trace  # noqa: E402
from backend.trace import TraceParams, extract_trace, read_trace  # noqa: E402
from models.scene import simulate_scene  # noqa: E402
from models.testing import true_fault_offsets, write_truth_run  # noqa: E402


def trace_distances(run, scene, lines) -> np.ndarray:  # noqa: ANN001
    """Distance (m) to the true trace every metre along the extracted polylines."""
    dist = np.asarray(scene.distance_to_rupture_m, float)
    out = []
    for line in lines:
        cl = cumulative_length(line)
        s = np.arange(0.0, cl[-1], 1.0)
        out.append(run.sample(dist, np.interp(s, cl, line[:, 0]), np.interp(s, cl, line[:, 1])))
    return np.concatenate(out)


OPTICAL_ONLY = ("optical_pre", "optical_post", "dem")


def model_run(scene, folder: Path, model: Path, trace: Path | None = None,  # noqa: ANN001 (Scene)
              optical_only: bool = False) -> Path:
    """The pipeline on the scene's simulated input files (all modalities, or the optical pair and the DEM), as
    the dialog runs it (``trace``: a rupture trace given to the network, ``--trace``); the run folder."""
    from backend.config import CancelToken, EstimateConfig
    from backend.pipeline import run_estimate
    from models.testing import scene_estimate_inputs

    inputs = scene_estimate_inputs(scene, folder / "inputs")
    if optical_only:
        inputs = {k: v for k, v in inputs.items() if k in OPTICAL_ONLY}
    cfg = EstimateConfig(out_dir=folder / "results", model_path=model, trace=trace, **inputs)
    run_estimate(cfg, progress=lambda f, m: None, cancel=CancelToken())
    return folder / "results"


def true_trace_lines(scene, run) -> list[np.ndarray]:  # noqa: ANN001
    """The simulator's surface trace segments as polylines in the run's map coordinates."""
    from models.evaluate import trace_geometry

    segs = trace_geometry(scene)["trace_segments"].reshape(-1, 2, 2)  # local (east, north) m, scene centre = 0
    h, w = run.shape
    x0, y0 = run.transform * (w / 2.0, h / 2.0)
    xmin, ymin, xmax, ymax = run.bounds
    m = 2 * run.pixel_size
    out = []
    for seg in segs + np.array([x0, y0]):  # the part inside the raster (a segment meets a rectangle once)
        t = np.linspace(0.0, 1.0, 2001)[:, None]
        p = seg[0] + t * (seg[1] - seg[0])
        inside = np.flatnonzero((p[:, 0] > xmin + m) & (p[:, 0] < xmax - m)
                                & (p[:, 1] > ymin + m) & (p[:, 1] < ymax - m))
        if inside.size > 1:
            out.append(p[[inside[0], inside[-1]]])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--pixel", type=float, default=10.0)
    ap.add_argument("--out", default=None, help="folder for the run folders (default: a temporary one)")
    ap.add_argument("--model", nargs="?", const="models/quakefusion.onnx", default=None,
                    help="also measure on the output of this ONNX model run through the pipeline")
    ap.add_argument("--optical-only", action="store_true",
                    help="the model runs get the optical pair and the DEM only (no SAR, no interferogram)")
    ap.add_argument("--reuse", action="store_true", help="reuse OUT/model/results when it holds a finished run")
    ap.add_argument("--sar-psf", type=float, default=None,
                    help="the simulator's SAR impulse response, 1-sigma in pixels (``sar_psf_px``; default: its own)")
    a = ap.parse_args(argv)
    pix = a.pixel
    scene = simulate_scene(7, size=(a.size, a.size), pixel_size_m=pix,
                           overrides=None if a.sar_psf is None else {"sar_psf_px": a.sar_psf})
    root = Path(a.out or tempfile.mkdtemp(prefix="qf-geotools-"))
    print(f"Mw {scene.params['event_params']['mw']:.2f}, {a.size}^2 at {pix:g} m; spacing 500 m, width 200 m, "
          f"exclude {3 * pix:g} m\n")
    print("| input | trace | within 2 px | mean dist | stack length | median abs err (parallel) | max | median sigma "
          "| err <= sigma | max > 1 km from patch ends |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    runs = [(f"truth + {noise * 100:g} cm", load_run(write_truth_run(scene, root / f"truth_noise{noise:g}",
                                                                      noise_m=noise, seed=1)))
            for noise in (0.0, 0.05)]
    tag = " (optical + DEM)" if a.optical_only else ""
    if a.model:
        done = root / "model" / "results"
        if not (a.reuse and (done / "run.json").exists()):
            done = model_run(scene, root / "model", Path(a.model), optical_only=a.optical_only)
        runs.append((f"model {Path(a.model).name}{tag}", load_run(done)))
    true_lines = [np.asarray(seg, float) for seg in true_trace_lines(scene, runs[0][1])]
    if a.model:  # the true trace given to the network (model 0.7.0: --trace), as a geologist's mapped trace
        from backend.trace import write_trace

        done = root / "model_trace" / "results"
        if not (a.reuse and (done / "run.json").exists()):
            given = write_trace(root / "true_trace.gpkg", true_lines, runs[0][1].crs_wkt)
            done = model_run(scene, root / "model_trace", Path(a.model), trace=given, optical_only=a.optical_only)
        runs.append((f"model {Path(a.model).name}{tag}, true trace given", load_run(done)))
        # the geologist's two-step workflow: the trace extracted from the first run (python -m backend trace:
        # auto, moved onto the interferogram's decorrelation band), given to a second run, whose tools then use it
        done = root / "model_extracted" / "results"
        first = runs[-2][1]
        if not (a.reuse and (done / "run.json").exists()):
            extracted, _ = extract_trace(first)
            given = write_trace(root / "extracted_trace.gpkg", extracted, first.crs_wkt)
            done = model_run(scene, root / "model_extracted", Path(a.model), trace=given,
                             optical_only=a.optical_only)
        runs.append((f"model {Path(a.model).name}{tag}, extracted trace given", load_run(done)))
    for label, run in runs:
        for method in ("probability", "step", "line", "auto", "true trace", "given trace"):
            if method == "given trace":
                if not label.endswith("extracted trace given"):
                    continue
                lines = read_trace(root / "extracted_trace.gpkg", run.crs_wkt)
            elif method == "true trace":
                if not label.startswith("model"):
                    continue
                lines = true_lines
            else:
                try:
                    lines, _ = extract_trace(run, TraceParams(method=method))
                except ToolsError as exc:  # e.g. a model whose rupture probability never reaches 0.5
                    print(f"| {label} | {method} | no trace: {str(exc).split('. Fix')[0]} |  |  |  |  |  |  |  |")
                    continue
            dd = trace_distances(run, scene, lines)
            for length in (1000.0, 2000.0):
                prof = offsets_along_trace(run, lines, 500.0, length, 200.0, 3 * pix)
                truth = [true_fault_offsets(scene, p.x, p.y) for p in prof]
                v = np.array([p.offsets["parallel"][0] for p in prof])
                sg = np.array([p.offsets["parallel"][1] for p in prof])
                tv = np.array([t["parallel"] for t in truth])
                far = np.array([t["to_patch_end_m"] > 1000 for t in truth])
                err = np.abs(v - tv)
                rel = err / np.abs(tv)
                print(f"| {label} | {method} | {100 * np.mean(dd <= 2 * pix):.1f} % of "
                      f"{sum(cumulative_length(x)[-1] for x in lines) / 1000:.2f} km | {dd.mean():.1f} m | "
                      f"{length:g} m | {1000 * np.median(err):.1f} mm ({100 * np.median(rel):.2f} %) | "
                      f"{100 * rel.max():.1f} % | {1000 * np.median(sg):.1f} mm | {100 * np.mean(err <= sg):.0f} % | "
                      f"{100 * rel[far].max():.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
