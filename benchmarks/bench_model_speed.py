"""Inference speed of the shipped model alone (ONNX Runtime, CPU, 2 threads) on one 1024 x 1024 tile of a realistic
feature stack (a simulated scene tiled 4 x 4), best of 3 after a warm-up -> benchmarks/results/a_model_speed.md."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.model import read_metadata  # noqa: E402
from models.dataset import COMBOS, features_and_target, scene_to_record  # noqa: E402
from models.scene import simulate_scene  # noqa: E402


def main() -> None:
    model = ROOT / "models" / "quakefusion.onnx"
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    x = features_and_target(scene_to_record(simulate_scene(7, size=(256, 256), pixel_size_m=10.0)), COMBOS["all"])[0]
    rows = []
    for n in (512, 1024):
        xx = np.ascontiguousarray(np.tile(x, (1, n // 256, n // 256))[None], dtype=np.float32)
        sess.run(None, {"features": xx})
        best = min(_timed(sess, xx) for _ in range(3))
        rows.append(f"| {n}² | {best:.2f} | {n * n / best / 1e6:.3f} |")
    version = read_metadata(model).version
    text = "\n".join([
        "## Model inference speed (benchmarks/bench_model_speed.py)", "",
        f"Shipped model {version} alone (ONNX Runtime, CPU, 2 threads), one tile of a realistic feature stack, best of "
        "3 after a warm-up. Target: >= 1 Mpx/s per 1024² tile.", "",
        "| tile | time (s) | Mpx/s |", "|---|---|---|", *rows, ""])
    out = ROOT / "benchmarks" / "results" / "a_model_speed.md"
    out.write_text(text)
    print(text)


def _timed(sess: ort.InferenceSession, xx: np.ndarray) -> float:
    t = time.perf_counter()
    sess.run(None, {"features": xx})
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
