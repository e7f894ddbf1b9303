"""Speed of the two line searches -> benchmarks/results/trace_search.md.

* ``search_lines`` (``backend/trace_search.py``): the rupture trace on a displacement field (the geologist's tools,
  ``python -m backend trace``, the demo's second run). Fields: 3 components of correlated noise (12 px) with a
  5-6 x noise step along a straight line, 384^2 and 768^2 (the grid is block-averaged to at most 512 px a side).
* ``search_band`` (``backend/trace_band.py``): the long lines of an interferogram's decorrelation band, run by every
  estimate with an interferogram (``rupture_cut``). Field: a 1024^2 smooth random band with one ridge (a 512^2 grid).

Median of ``--reps`` runs (default 3), after a warm-up, in this process, on all cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.trace_band import search_band  # noqa: E402
from backend.trace_search import LineSearchParams, search_lines  # noqa: E402

# Measured on 2026-12-02 (2 cores, the same fields) before the sums along each line came from one sparse operator per
# angle for all arrays, spread over threads (each array resampled with map_coordinates, one angle after the other):
BEFORE_S = {"search_lines 384^2": 52.4, "search_lines 768^2": 50.4, "search_band 1024^2": 30.2}


def step_field(n: int) -> np.ndarray:
    """384^2: seed 5, a 6 x noise east step along row = 150 + 0.4 col; 768^2: seed 3, a 5 x noise north step along
    row = 300 + 0.2 col (the fields the "before" times were measured on)."""
    seed, comp, amp, r0, slope = (5, 0, 6.0, 150.0, 0.4) if n == 384 else (3, 1, 5.0, 300.0, 0.2)
    rng = np.random.default_rng(seed)
    d = np.stack([ndimage.gaussian_filter(rng.normal(size=(n, n)), 12.0) for _ in range(3)])
    d /= d.std(axis=(1, 2), keepdims=True)
    rr, cc = np.mgrid[0:n, 0:n]
    d[comp] += amp * (rr > r0 + slope * cc)
    return d


def band_field(n: int = 1024) -> np.ndarray:
    """A smooth random band with one 7-px ridge along row = 400 + 0.3 col and a nodata corner."""
    rng = np.random.default_rng(0)
    band = ndimage.gaussian_filter(rng.random((n, n)), 3)
    rr, cc = np.mgrid[0:n, 0:n]
    band += 0.3 * (np.abs(rr - (400 + 0.3 * cc)) < 4)
    band[:50, :200] = np.nan
    return band


def timed(fn, reps: int) -> tuple[float, object]:  # noqa: ANN001
    out = fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "trace_search.md",
                    help="results file ('-': print only)")
    a = ap.parse_args(argv)
    rows = []
    for n in (384, 768):
        d = step_field(n)
        t, found = timed(lambda d=d: search_lines(d, None, LineSearchParams(max_traces=2)), a.reps)
        key = f"search_lines {n}^2"
        rows.append(f"| {key} | {t:.1f} | {BEFORE_S[key]:.1f} | {len(found)} (signif {found[0].signif:.2f}) |")
    b = band_field()
    t, found = timed(lambda: search_band(b), a.reps)
    key = "search_band 1024^2"
    rows.append(f"| {key} | {t:.1f} | {BEFORE_S[key]:.1f} | {len(found)} (signif {found[0][1]:.2f}) |")
    text = "\n".join([
        "## Line searches: rupture trace and decorrelation band (benchmarks/bench_trace_search.py)", "",
        f"Median of {a.reps} runs after a warm-up, {os.cpu_count()} cores. The sums along every line of every angle "
        "come from one sparse operator per angle, applied to the data and to all shuffled copies of the null at "
        "once, with the angles spread over threads; the traces found are the same as before to 6 decimals "
        "(before: each array resampled on the turned grid, one angle after the other; measured once on "
        "2026-12-02, 2 cores). In a whole estimate (bench_backend.py's 2048^2 scene: an optical pair and an "
        "interferogram) the rupture cut, which runs search_band, took 21.4 s before and 3.5 s after (run.json "
        "timings, one run each).", "",
        "| search | time (s) | before (s) | lines found |", "|---|---|---|---|", *rows, ""])
    if str(a.out) != "-":
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
