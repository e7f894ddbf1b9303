"""Backend speed / memory / seam benchmark -> benchmarks/results/backend.md.

For each raster size (1k^2, 4k^2, 16k^2) a scene of an optical pair and an interferogram (written by windows)
goes through the whole pipeline in a fresh subprocess (``python -m backend estimate``); we report end-to-end and
inference-only Mpx/s (from run.json) and the subprocess's peak resident memory (ru_maxrss). Sizes whose estimated
run time with the shipped model exceeds ``--budget`` seconds run with a lighter configuration (the tiny test
network of models/testing.py, same pipeline); the table says which.

Seam check: tiled (512/64) vs single-pass inference with the shipped model on a 1024^2 multi-modal crop of
the Darfield demo scene's texture; max |difference| as a share of the displacement signal (99th percentile).

Usage: ``.venv/bin/python benchmarks/bench_backend.py [--sizes 1024 4096 16384] [--budget 600]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
MODEL = ROOT / "models" / "quakefusion.onnx"


def make_scene(folder: Path, n: int, block: int = 1024, rows: int | None = None) -> dict[str, Path]:
    """An optical pair (smooth random texture, the post image with its own noise) and an interferogram (wrapped
    fringes of a smooth bowl + constant coherence), ``rows`` (default n) x n, 30 m UTM, written by blocks. The
    optical pair makes the pipeline run the network (without optical or SAR it is not run)."""
    from scipy import ndimage

    folder.mkdir(parents=True, exist_ok=True)
    t = Affine(30.0, 0, 500000.0, 0, -30.0, 4400000.0)
    nr = rows or n
    prof = dict(driver="GTiff", width=n, height=nr, count=1, dtype="float32", crs="EPSG:32634", transform=t,
                nodata=float("nan"), tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=3,
                BIGTIFF="IF_SAFER")
    names = ("phase", "coherence", "optical_pre", "optical_post")
    paths = {k: folder / f"{k}.tif" for k in names}
    ds = {k: rasterio.open(paths[k], "w", **prof) for k in names}
    try:
        for r0 in range(0, nr, block):
            h = min(block, nr - r0)
            for c0 in range(0, n, block):
                w = min(block, n - c0)
                win = Window(c0, r0, w, h)
                rr, cc = np.mgrid[r0:r0 + h, c0:c0 + w].astype(np.float64)
                bowl = 40.0 * np.exp(-(((rr - nr / 2) ** 2 + (cc - n / 2) ** 2) / (2 * (n / 5) ** 2)))
                ds["phase"].write(np.round((((bowl + np.pi) % (2 * np.pi)) - np.pi), 3).astype(np.float32), 1,
                                  window=win)
                ds["coherence"].write(np.full((h, w), 0.8, np.float32), 1, window=win)
                rng = np.random.default_rng([r0, c0])
                tex = 1000.0 + 3000.0 * ndimage.gaussian_filter(rng.standard_normal((h, w)), 1.5)
                ds["optical_pre"].write(tex.astype(np.float32), 1, window=win)
                ds["optical_post"].write((tex + 20.0 * rng.standard_normal((h, w))).astype(np.float32), 1,
                                         window=win)
    finally:
        for d in ds.values():
            d.close()
    return paths


def run_child(paths: dict[str, Path], out: Path, model: Path, tile: int, extra: list[str]) -> dict:
    code = (
        "import json,resource,sys;from backend.cli import main;rc=main(sys.argv[1:]);"
        "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss);sys.exit(rc)"
    )
    cmd = [sys.executable, "-c", code, "estimate", "--phase", str(paths["phase"]), "--coherence",
           str(paths["coherence"]), "--optical-pre", str(paths["optical_pre"]), "--optical-post",
           str(paths["optical_post"]), "--wavelength", "0.05546576", "--incidence", "39", "--heading", "-12",
           "--out", str(out), "--model", str(model), "--tile", str(tile), "--overlap", str(tile // 4),
           "--device", "cpu", "--quiet", *extra]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    rss_kb = int(next(line.split()[1] for line in p.stdout.splitlines() if line.startswith("MAXRSS_KB")))
    run = json.loads((out / "run.json").read_text())
    return {"wall_s": wall, "peak_rss_mb": rss_kb / 1024, "run": run}


def inference_rate(model: Path, tile: int = 1024, reps: int = 3) -> float:
    from backend.model import OnnxModel

    m = OnnxModel(model, device="cpu")
    c = len(m.meta.channels)
    x = np.random.default_rng(0).standard_normal((1, c, tile, tile)).astype(np.float32)
    m.run(x)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        m.run(x)
        ts.append(time.perf_counter() - t0)
    return tile * tile / 1e6 / float(np.median(ts))


def seam_check(model: Path) -> list[tuple[str, str, float, float, float]]:
    """Max |tiled - single pass| / signal with the shipped model: (scene, tiling, whole, interior, signal)."""
    from backend.io import InputRaster
    from backend.pipeline import EstimateConfig, run_estimate

    d = ROOT / "data" / "demo_darfield"
    p = json.loads((d / "params.json").read_text())
    darfield = dict(optical_pre=InputRaster(d / "optical.tif", 1), optical_post=InputRaster(d / "optical.tif", 2),
                    sar_pre=InputRaster(d / "sar_amplitude.tif", 1), sar_post=InputRaster(d / "sar_amplitude.tif", 2),
                    phase=InputRaster(d / "wrapped_phase.tif"), coherence=InputRaster(d / "coherence.tif"),
                    dem=InputRaster(d / "dem.tif"), wavelength_m=p["wavelength_m"],
                    incidence_deg=InputRaster(d / "incidence.tif"), heading_deg=InputRaster(d / "heading.tif"))
    rows = []
    with tempfile.TemporaryDirectory() as td:
        from models.dataset import STRONG_OVERRIDES
        from models.scene import simulate_scene
        from models.testing import scene_estimate_inputs

        s = simulate_scene(5, size=(768, 768), pixel_size_m=10.0, overrides=STRONG_OVERRIDES)
        strong = scene_estimate_inputs(s, Path(td) / "strong")
        for scene, inputs, single, tilings in (("simulated strong event 768^2, 10 m, all modalities", strong, 768,
                                                ((512, 128), (512, 192), (512, 255))),
                                               ("Darfield demo 384^2 (100 m), all modalities", darfield, 384,
                                                ((256, 64), (256, 120)))):  # InSAR only: the network is not run
            base = dict(inputs, model_path=model, device="cpu", unwrap=False)
            a = run_estimate(EstimateConfig(out_dir=Path(td) / "single", tile=single, overlap=0, **base))
            with rasterio.open(a.outputs["displacement"]) as ds:
                x = ds.read()
            for tile, ov in tilings:
                b = run_estimate(EstimateConfig(out_dir=Path(td) / f"t{tile}", tile=tile, overlap=ov, **base))
                with rasterio.open(b.outputs["displacement"]) as ds:
                    y = ds.read()
                sig = np.nanpercentile(np.abs(x), 99, axis=(1, 2))
                whole = float(np.max(np.nanmax(np.abs(x - y), axis=(1, 2)) / sig))
                inner = float(np.max(np.nanmax(np.abs(x - y)[:, 32:-32, 32:-32], axis=(1, 2)) / sig))
                p99 = float(np.max(np.nanpercentile(np.abs(x - y)[:, 32:-32, 32:-32], 99, axis=(1, 2)) / sig))
                rows.append((scene, f"{tile}/{ov}", whole, inner, p99, float(sig.max())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    ap.add_argument("--budget", type=float, default=120.0, help="max estimated seconds per size with the real model")
    ap.add_argument("--name", default="backend", help="results file benchmarks/results/NAME.md")
    ap.add_argument("--no-seam", action="store_true", help="skip the seam check")
    ap.add_argument("--slab-rows", type=int, default=2048,
                    help="sizes above 4096 run as a slab of this many rows at full width (the memory of the windowed "
                         "pipeline depends on the width, not the height); 0 = full")
    a = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    from models.export import MODEL_VERSION
    from models.testing import make_tiny_model

    lines = ["## Backend speed and memory (benchmarks/bench_backend.py)", "",
             f"Measured with model {MODEL_VERSION} on {time.strftime('%Y-%m-%d')}.", ""]
    rate = inference_rate(MODEL) if MODEL.exists() else float("nan")
    rate512 = inference_rate(MODEL, 512) if MODEL.exists() else float("nan")
    lines.append(f"Shipped model ({MODEL.name}), inference only, one 1024x1024 tile (the default), CPU, "
                 f"{os.cpu_count()} threads: **{rate:.3f} Mpx/s** (target >= 1 Mpx/s); one 512x512 tile: "
                 f"{rate512:.3f} Mpx/s.")
    lines.append("")
    lines += ["| size | configuration | end-to-end Mpx/s | inference-only Mpx/s | unwrap (s) | wall (s) | "
              "peak RSS (MB) |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as td:
        tiny = make_tiny_model(Path(td) / "tiny.onnx")
        for n in a.sizes:
            nr = a.slab_rows if (n > 4096 and 0 < a.slab_rows < n) else n
            paths = make_scene(Path(td) / f"in{n}", n, rows=nr)
            est = nr * n / 1e6 / max(rate, 1e-9)
            size = f"{n}^2" if nr == n else f"{n} wide x {nr} rows (cheaper 16k config: 1/{n // nr} of the rows)"
            configs = []
            if MODEL.exists() and est <= a.budget:
                configs.append(("shipped model", MODEL))
            configs.append(("lighter: tiny test network (same pipeline)", tiny))
            for label, model in configs:
                r = run_child(paths, Path(td) / f"out{n}_{len(label)}", model, 1024, [])
                run = r["run"]
                tm = run["timings"]
                lines.append(f"| {size} | {label} | {run['throughput_mpx_s']['end_to_end']:.3f} | "
                             f"{run['throughput_mpx_s']['inference_only']:.3f} | {tm.get('unwrap_s', 0):.1f} | "
                             f"{r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} |")
                print(lines[-1], flush=True)
                for f in (Path(td) / f"out{n}_{len(label)}").glob("*.tif"):
                    f.unlink()
            for f in paths.values():
                f.unlink()
    lines += ["", "Input: an optical pair + one interferogram (phase + coherence), 30 m, tile 1024, overlap 256 "
              "(the default), batch 1, CPU. Peak RSS of the "
              "whole process (Python, GDAL, ONNX Runtime included). Inputs are read and outputs written by windows; "
              "the tile blender holds one strip of tile rows at full width and the unwrapping works on 1024^2 "
              "blocks, so memory grows with the raster's width, not its area. The 16k row is a 16384-wide slab of "
              f"{a.slab_rows} rows (a full 16k^2 run is {16384 // max(a.slab_rows, 1)} times the slab"
              + ("; one is in backend_16k.md)." if (RESULTS / "backend_16k.md").exists() else ").")]
    if MODEL.exists() and not a.no_seam:
        lines += ["", "Seams (shipped model): tiled vs single-pass inference, max |difference| as a share of the 99th "
                  "percentile |displacement| (per component, worst component). 'interior' leaves out 32 px at the "
                  "raster edge, where the single pass pads the raster to a multiple of the model's tile_multiple "
                  "and the tiled run does not (an edge effect, not a seam).", "",
                  "| scene | tile/overlap | whole raster | interior | interior p99 | signal (m) |",
                  "|---|---|---|---|---|---|"]
        for scene, tiling, whole, inner, p99, sig in seam_check(MODEL):
            lines.append(f"| {scene} | {tiling} | {whole * 100:.2f} % | {inner * 100:.2f} % | {p99 * 100:.2f} % | "
                         f"{sig:.3f} |")
            print(lines[-1], flush=True)
        lines += ["", "Tiling and blending themselves are exact when the network's receptive field fits in a quarter "
                  "of the overlap (tests/test_backend_pipeline.py::test_seam_tiled_equals_single_pass, tiny network: "
                  "max difference 0 % of the signal)."]
    (RESULTS / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / (a.name + '.md')}")


if __name__ == "__main__":
    main()
