"""``python -m backend estimate``: help text, a real run on a real crop, and an error message (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from models.testing import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_help_explains_units_and_conventions() -> None:
    p = _run("estimate", "--help")
    assert p.returncode == 0
    for s in ("--phase-sign", "towards the satellite", "radians", "metres", "clockwise from north", "LiCSAR",
              "--grid-like", "--device", "--tile", "--overlap", "displacement_sigma.tif"):
        assert s in p.stdout, s


def test_cli_insar_only_real_crop(tmp_path: Path) -> None:
    src = ROOT / "data" / "thessaly2021" / "phase_wrapped.tif"
    with rasterio.open(src) as ds:
        win = Window(300, 300, 160, 144)
        prof = ds.profile | {"width": 160, "height": 144, "transform": ds.window_transform(win),
                             "blockxsize": 16, "blockysize": 16}
        data = ds.read(1, window=win)
    crop = tmp_path / "crop.tif"
    with rasterio.open(crop, "w", **prof) as ds:
        ds.write(data, 1)
    model = make_tiny_model(tmp_path / "m.onnx")
    out = tmp_path / "out"
    p = _run("estimate", "--phase", str(crop), "--wavelength", "0.05546576", "--incidence", "39", "--heading", "-12",
             "--out", str(out), "--model", str(model), "--tile", "64", "--overlap", "16", "--device", "auto")
    assert p.returncode == 0, p.stderr
    assert "device: cpu" in p.stdout or "device: cuda" in p.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["grid"]["width"] == 160 and run["grid"]["height"] == 144 and run["parameters"]["n_tiles"] > 4
    with rasterio.open(out / "unwrapped_phase.tif") as ds:
        unw = ds.read(1)
        assert ds.transform == prof["transform"]
    ok = np.isfinite(unw)
    assert ok.mean() > 0.9
    d = (unw[ok] - data[ok]) / (2 * np.pi)
    assert np.abs(d - np.rint(d)).max() < 1e-4
    assert "Failed to load library" not in p.stderr  # no alarming ORT CUDA logs on CPU fallback


def test_cli_error_names_input_and_fix(tmp_path: Path) -> None:
    p = _run("estimate", "--phase", str(tmp_path / "nope.tif"), "--wavelength", "0.0555", "--incidence", "39",
             "--heading", "-12", "--out", str(tmp_path / "o"))
    assert p.returncode == 2
    assert "phase (--phase" in p.stderr and "not found" in p.stderr and "Fix:" in p.stderr
    assert not (tmp_path / "o").exists()
