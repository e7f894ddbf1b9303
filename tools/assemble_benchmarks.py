"""Assemble BENCHMARKS.md from the sections the benchmark scripts wrote into benchmarks/results/."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sections = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    head = [
        "# QuakeFusion benchmarks",
        "",
        "Made by `make bench` (each `benchmarks/bench_*.py` writes a section into `benchmarks/results/`).",
        f"Last assembled {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} CPU cores,"
        f" Python {platform.python_version()}. Times are medians of repeated runs on a shared machine:"
        " read ratios and orders of magnitude, not the last digit.",
        "",
    ]
    body = [s.read_text().rstrip() + "\n" for s in sections]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(head) + "\n" + "\n".join(body))
    print(f"BENCHMARKS.md: {len(sections)} sections")


if __name__ == "__main__":
    main()
