"""Simulator throughput: scenes/s for 256×256 multi-modal scenes, single process and a 2-worker pool.

``python benchmarks/bench_simulator.py [--n 20] [--size 256 256]`` → prints and writes
benchmarks/results/simulator.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.scene import simulate_scene  # noqa: E402


def _one(args: tuple[int, tuple[int, int], str | None]) -> float:
    seed, size, event = args
    t = time.perf_counter()
    simulate_scene(seed, size=size, event=event)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "simulator.md"))
    a = ap.parse_args(argv)
    size = (a.size[0], a.size[1])
    simulate_scene(10_000, size=size)  # warm-up: data caches
    rows = []
    times = [_one((1000 + i, size, None)) for i in range(a.n)]
    rows.append(("random events, 1 process", a.n, sum(times), a.n / sum(times), max(times)))
    t = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as ex:
        list(ex.map(_one, [(10_000, size, None)] * a.workers))  # warm the workers
        t = time.perf_counter()
        list(ex.map(_one, [(2000 + i, size, None) for i in range(2 * a.n)]))
    el = time.perf_counter() - t
    rows.append((f"random events, {a.workers} processes", 2 * a.n, el, 2 * a.n / el, float("nan")))
    dt = [_one((3000 + i, size, "darfield")) for i in range(3)]
    rows.append(("darfield (887 patches, full Okada per seed)", 3, sum(dt), 3 / sum(dt), max(dt)))
    lines = [
        "# Simulator benchmark",
        "",
        f"`python benchmarks/bench_simulator.py --n {a.n} --size {size[0]} {size[1]}` — {size[0]}×{size[1]} scenes "
        "with all modalities (optical pair, SAR pair, wrapped phase, coherence, DEM, LOS, truth).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| case | scenes | seconds | scenes/s | slowest scene (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n, s, r, mx in rows:
        slowest = "–" if mx != mx else f"{mx:.3f}"
        lines.append(f"| {name} | {n} | {s:.2f} | {r:.2f} | {slowest} |")
    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.2f} (the machine is shared; with other jobs running "
              "the 2-process row does not scale)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
