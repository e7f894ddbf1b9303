"""Accuracy of the geologist's tools on the simulated Mw 6.9 rupture (issue #14's acceptance case).

``models.simulate --seed 7 --size 768 768 --pixel 10``: the TRUTH (optionally + white noise, with that sigma in
displacement_sigma.tif) and a synthetic rupture_probability.tif (the truth's rupture mask blurred) are written as a
run folder (models.testing.write_truth_run); the trace is extracted (probability and step maps) and compared with
the true trace (distance_to_rupture_m), the stacked offsets with the true slip of the patch under each profile.

Usage: ``.venv/bin/python benchmarks/geotools_accuracy.py [--size 768] [--pixel 10] [--out DIR]`` (prints Markdown).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.geodata import cumulative_length, load_run  # noqa: E402
from backend.offsets import offsets_along_trace  # noqa: E402
from backend.trace import TraceParams, extract_trace  # noqa: E402
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--pixel", type=float, default=10.0)
    ap.add_argument("--out", default=None, help="folder for the run folders (default: a temporary one)")
    a = ap.parse_args(argv)
    pix = a.pixel
    scene = simulate_scene(7, size=(a.size, a.size), pixel_size_m=pix)
    root = Path(a.out or tempfile.mkdtemp(prefix="qf-geotools-"))
    print(f"Mw {scene.params['event_params']['mw']:.2f}, {a.size}^2 at {pix:g} m; spacing 500 m, width 200 m, "
          f"exclude {3 * pix:g} m\n")
    print("| input | trace | within 2 px | mean dist | stack length | median abs err (parallel) | max | median sigma "
          "| err <= sigma | max > 1 km from patch ends |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for noise in (0.0, 0.05):
        run = load_run(write_truth_run(scene, root / f"truth_noise{noise:g}", noise_m=noise, seed=1))
        for method in ("probability", "step"):
            lines, _ = extract_trace(run, TraceParams(method=method))
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
                print(f"| truth + {noise * 100:g} cm | {method} | {100 * np.mean(dd <= 2 * pix):.1f} % of "
                      f"{sum(cumulative_length(x)[-1] for x in lines) / 1000:.2f} km | {dd.mean():.1f} m | "
                      f"{length:g} m | {1000 * np.median(err):.1f} mm ({100 * np.median(rel):.2f} %) | "
                      f"{100 * rel.max():.1f} % | {1000 * np.median(sg):.1f} mm | {100 * np.mean(err <= sg):.0f} % | "
                      f"{100 * rel[far].max():.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
