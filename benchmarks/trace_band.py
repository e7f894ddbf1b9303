"""Where the extracted rupture trace lies, with and without the interferogram.

Simulated events (``models.scene.simulate_scene``, seeds 9 800 000+, outside the training and evaluation seeds),
``--size`` px at ``--pixel`` m, all modalities (optical + SAR pairs, interferogram, DEM) through the real pipeline
with the shipped model, as the dialog runs them; the trace extracted as ``python -m backend trace`` does (``auto``:
the line search on the displacement, else the interferogram's long decorrelated lines; moved onto the band), and
as it did before the interferogram was used (``--no-band``: where the displacement alone puts it). Per scene: the
share of the trace within 1 and 2 px of the true trace and the mean distance. ``--blind N`` adds N events without
a surface rupture: a trace found there is a false trace.

Usage: ``.venv/bin/python benchmarks/trace_band.py [--scenes 12] [--blind 6] [--size 512] [--pixel 10]
[--out DIR]`` (prints Markdown; ~1 min a scene on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.geodata import ToolsError, cumulative_length, load_run  # noqa: E402
from backend.trace import TraceParams, extract_trace_stats  # noqa: E402
from benchmarks.geotools_accuracy import trace_distances as distances  # noqa: E402

SEED0 = 9_800_000


def run_scene(seed: int, surface: bool, size: int, pixel: float, root: Path):  # noqa: ANN201
    from backend.config import CancelToken, EstimateConfig
    from backend.pipeline import run_estimate
    from models.scene import simulate_scene
    from models.testing import scene_estimate_inputs

    scene = simulate_scene(seed, size=(size, size), pixel_size_m=pixel,
                           overrides={"mw_range": (6.6, 7.6), "surface_rupture": surface})
    folder = root / f"scene_{seed}"
    if not (folder / "results" / "run.json").exists():
        cfg = EstimateConfig(out_dir=folder / "results", **scene_estimate_inputs(scene, folder / "inputs"))
        run_estimate(cfg, progress=lambda f, m: None, cancel=CancelToken())
    return scene, load_run(folder / "results")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--blind", type=int, default=6)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pixel", type=float, default=10.0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    root = Path(a.out or tempfile.mkdtemp(prefix="qf-trace-band-"))
    print(f"{a.size}^2 at {a.pixel:g} m, all modalities, shipped model; distances to the true trace\n")
    print("| seed | Mw | rupture | trace (displacement only): within 1 / 2 px, mean | moved onto the band: share of "
          "stations; within 1 / 2 px, mean |")
    print("|---|---|---|---|---|")
    rows = []
    jobs = [(SEED0 + k, True) for k in range(a.scenes)] + [(SEED0 + 500 + k, False) for k in range(a.blind)]
    for seed, surface in jobs:
        scene, run = run_scene(seed, surface, a.size, a.pixel, root)
        mw = float(scene.params["event_params"]["mw"])
        cells = []
        for params in (TraceParams(band=None), TraceParams()):
            try:
                lines, _, stats = extract_trace_stats(run, params)
            except ToolsError:
                cells.append(("no trace", None))
                continue
            dd = distances(run, scene, lines)
            share = max((st.get("on_band", 0.0) for st in stats), default=0.0)
            if surface:
                w1, w2 = float(np.mean(dd <= a.pixel)), float(np.mean(dd <= 2 * a.pixel))
                cells.append((f"{100 * w1:.0f} / {100 * w2:.0f} %, {np.nanmean(dd):.0f} m", (w1, w2, share)))
            else:
                cells.append((f"a trace of {cumulative_length(lines[0])[-1]:.0f} m (no rupture)", (0, 0, share)))
        band_txt = cells[1][0] if cells[1][1] is None else f"{100 * cells[1][1][2]:.0f} %; {cells[1][0]}"
        print(f"| {seed} | {mw:.2f} | {'surface' if surface else 'blind'} | {cells[0][0]} | {band_txt} |", flush=True)
        rows.append((surface, cells))
    for k, name in ((0, "displacement only"), (1, "moved onto the band")):
        got = [c[k][1] for s, c in rows if s and c[k][1] is not None]
        if got:
            w1, w2 = np.median([g[0] for g in got]), np.median([g[1] for g in got])
            print(f"\n{name}: a trace in {len(got)} of {sum(s for s, _ in rows)} rupturing scenes; median within "
                  f"1 px {100 * w1:.0f} %, within 2 px {100 * w2:.0f} %; within 2 px on >= 90 % of the trace: "
                  f"{sum(g[1] >= 0.9 for g in got)} scenes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
