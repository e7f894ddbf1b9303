"""Inference speed of the shipped model alone (ONNX Runtime, CPU, 2 threads) on one 1024 x 1024 tile of a realistic
feature stack (a simulated scene tiled 4 x 4), best of 3 after a warm-up -> benchmarks/results/a_model_speed.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.features import channel_name as feature_channel  # noqa: E402
from backend.model import cpu_session_options, read_metadata  # noqa: E402
from models.dataset import COMBOS, features_and_target, scene_to_record  # noqa: E402
from models.scene import simulate_scene  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "quakefusion.onnx")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "a_model_speed.md",
                    help="results file ('-': print only)")
    ap.add_argument("--compare", type=Path,
                    help="an older model file timed in turn with this one on the same tiles (paired: the ratio holds "
                         "when the machine's speed drifts)")
    a = ap.parse_args(argv)
    model = a.model
    sess = ort.InferenceSession(str(model), cpu_session_options(2), providers=["CPUExecutionProvider"])
    other = (ort.InferenceSession(str(a.compare), cpu_session_options(2), providers=["CPUExecutionProvider"])
             if a.compare else None)
    channels = [feature_channel(c) for c in read_metadata(model).channels]
    x = features_and_target(scene_to_record(simulate_scene(7, size=(256, 256), pixel_size_m=10.0)), COMBOS["all"],
                            channels)[0]
    rows = []
    for n in (512, 1024):
        xx = np.ascontiguousarray(np.tile(x, (1, n // 256, n // 256))[None], dtype=np.float32)
        cases = [("", xx)]
        if "fault_side" in channels:  # a rupture trace given: the graph's other branch
            xt = xx.copy()
            xt[0, channels.index("fault_side")] = np.where(np.arange(n)[None, :] >= n // 2, 1.0, -1.0)
            cases.append((", rupture trace given", xt))
        for tag, inp in cases:
            sess.run(None, {"features": inp})
            if other is None:
                best = min(_timed(sess, inp) for _ in range(3))
                rows.append(f"| {n}²{tag} | {best:.2f} | {n * n / best / 1e6:.3f} |")
                continue
            other.run(None, {"features": inp})
            pairs = [(_timed(sess, inp), _timed(other, inp)) for _ in range(5)]
            best = min(t for t, _ in pairs)
            ratio = float(np.median([t / o for t, o in pairs]))
            rows.append(f"| {n}²{tag} | {best:.2f} | {n * n / best / 1e6:.3f} | {min(o for _, o in pairs):.2f} | "
                        f"{ratio:.2f} |")
    version = read_metadata(model).version
    older = read_metadata(a.compare).version if a.compare else None
    text = "\n".join([
        "## Model inference speed (benchmarks/bench_model_speed.py)", "",
        f"Shipped model {version} alone (ONNX Runtime, CPU, 2 threads), one tile of a realistic feature stack, best of "
        + (f"5 after a warm-up, each run paired with one of model {older} on the same tile (the ratio: median of the "
           "pairs). " if older else "3 after a warm-up. ") + "Target: >= 1 Mpx/s per 1024² tile.", "",
        *((f"| tile | time (s) | Mpx/s | {older} time (s) | time / {older}'s |", "|---|---|---|---|---|") if older
          else ("| tile | time (s) | Mpx/s |", "|---|---|---|")), *rows, ""])
    if str(a.out) != "-":
        a.out.write_text(text)
    print(text)


def _timed(sess: ort.InferenceSession, xx: np.ndarray) -> float:
    t = time.perf_counter()
    sess.run(None, {"features": xx})
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
