"""``python -m backend estimate``: help text, a real run on a real crop, and an error message (subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from tests.conftest import ROOT, run_backend


def test_help_explains_units_and_conventions() -> None:
    p = run_backend("estimate", "--help")
    assert p.returncode == 0
    for s in ("--phase-sign", "towards the satellite", "radians", "metres", "clockwise from north", "LiCSAR",
              "--grid-like", "--device", "--tile", "--overlap", "displacement_sigma.tif"):
        assert s in p.stdout, s


def test_cli_insar_only_real_crop(tmp_path: Path, tiny_model: Path) -> None:
    src = ROOT / "data" / "thessaly2021" / "phase_wrapped.tif"
    with rasterio.open(src) as ds:
        win = Window(300, 300, 160, 144)
        prof = ds.profile | {"width": 160, "height": 144, "transform": ds.window_transform(win),
                             "blockxsize": 16, "blockysize": 16}
        data = ds.read(1, window=win)
    crop = tmp_path / "crop.tif"
    with rasterio.open(crop, "w", **prof) as ds:
        ds.write(data, 1)
    out = tmp_path / "out"
    p = run_backend("estimate", "--phase", str(crop), "--wavelength", "0.05546576", "--incidence", "39", "--heading",
                    "-12", "--out", str(out), "--model", str(tiny_model), "--tile", "64", "--overlap", "16", "--device",
                    "auto")
    assert p.returncode == 0, p.stderr
    assert "device: cpu" in p.stdout or "device: cuda" in p.stdout
    run = json.loads((out / "run.json").read_text())
    # InSAR only: the network is not run (it would add nothing), whirlwind's MCF unwraps
    assert run["grid"]["width"] == 160 and run["grid"]["height"] == 144 and run["parameters"]["n_tiles"] == 0
    assert run["model"]["version"].startswith("none") and (out / "unwrap_regions.tif").is_file()
    with rasterio.open(out / "unwrapped_phase.tif") as ds:
        unw = ds.read(1)
        assert ds.transform == prof["transform"]
    ok = np.isfinite(unw)
    assert ok.mean() > 0.9
    d = (unw[ok] - data[ok]) / (2 * np.pi)
    assert np.abs(d - np.rint(d)).max() < 1e-4
    assert "Failed to load library" not in p.stderr  # no alarming ORT CUDA logs on CPU fallback


def test_cli_error_names_input_and_fix(tmp_path: Path) -> None:
    p = run_backend("estimate", "--phase", str(tmp_path / "nope.tif"), "--wavelength", "0.0555", "--incidence", "39",
             "--heading", "-12", "--out", str(tmp_path / "o"))
    assert p.returncode == 2
    assert "phase (--phase" in p.stderr and "not found" in p.stderr and "Fix:" in p.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_tile_512_works_with_the_default_overlap(tmp_path: Path, tiny_model: Path) -> None:
    """Was: `--tile 512` failed (overlap 256 >= tile/2). Now the default overlap follows the overlap rule (240 px),
    the run succeeds and writes every product, the same files as the dialog."""
    src = ROOT / "data" / "thessaly2021" / "phase_wrapped.tif"
    with rasterio.open(src) as ds:
        x0, y1 = ds.bounds.left, ds.bounds.top
    out = tmp_path / "out"
    p = run_backend("estimate", "--phase", str(src), "--wavelength", "0.05546576", "--incidence", "39", "--heading",
                    "-12", "--extent", str(x0), str(y1 - 60000), str(x0 + 60000), str(y1), "--out", str(out), "--model",
                    str(tiny_model), "--tile", "512", "--device", "cpu", "--quiet", "--no-unwrap")
    assert p.returncode == 0, p.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["tile"] == 512 and run["parameters"]["overlap"] == 240
    assert run["grid"]["width"] == 600 and run["parameters"]["n_tiles"] == 4  # starts 0 and 88 on each axis
    for name in ("horizontal_magnitude.tif", "uncertainty.tif", "displacement_arrows.gpkg",
                 "displacement_east.vrt"):
        assert (out / name).is_file(), name
    with rasterio.open(out / "displacement.tif") as d, rasterio.open(out / "horizontal_magnitude.tif") as h:
        e, n = d.read(1), d.read(2)
        np.testing.assert_array_equal(h.read(1), np.hypot(e, n).astype(np.float32))
        assert np.isfinite(e).mean() > 0.5


def test_cli_lists_every_problem(tmp_path: Path) -> None:
    p = run_backend("estimate", "--optical-pre", "a.tif", "--coherence", "c.tif", "--tile", "10", "--out",
                    str(tmp_path / "o"))
    assert p.returncode == 2
    lines = [x for x in p.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 3, p.stderr  # the pair, no phase for coherence, tile range: each with its fix
    assert "--optical-pre is given without --optical-post" in p.stderr and "tile 10 px is outside 64..4096" in p.stderr
    assert all("Fix:" in x for x in lines) and not (tmp_path / "o").exists()
