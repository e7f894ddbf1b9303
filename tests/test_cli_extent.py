"""``python -m backend estimate --extent ... --extent-crs ...`` (subprocess, real crop of the Thessaly phase)."""

from __future__ import annotations

import json
from pathlib import Path

import rasterio
from pyproj import Transformer

from tests.conftest import ROOT, run_backend

PHASE = ROOT / "data" / "thessaly2021" / "phase_wrapped.tif"


def test_cli_extent_in_lonlat(tmp_path: Path, tiny_model: Path) -> None:
    with rasterio.open(PHASE) as ds:
        t, crs = ds.transform, ds.crs
    # pixel centres (row 400, col 300) and (row 300, col 420) of the 100 m UTM grid, given in lon/lat
    to_geo = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_geo.transform(t.c + 300.5 * t.a, t.f + 400.5 * t.e)
    lon1, lat1 = to_geo.transform(t.c + 420.5 * t.a, t.f + 300.5 * t.e)
    model = tiny_model
    out = tmp_path / "out"
    p = run_backend("estimate", "--phase", str(PHASE), "--wavelength", "0.05546576", "--incidence", "39", "--heading",
             "-12", "--out", str(out), "--model", str(model), "--tile", "64", "--overlap", "16",
             "--extent", str(lon0), str(lat0), str(lon1), str(lat1), "--extent-crs", "EPSG:4326")
    assert p.returncode == 0, p.stderr
    with rasterio.open(out / "unwrapped_phase.tif") as ds:
        # the lon/lat box is not a UTM rectangle: its bounding box covers the two centres, snapped to pixels
        assert ds.crs == crs and ds.res == (100.0, 100.0)
        col0 = round((ds.transform.c - t.c) / 100)
        row0 = round((t.f - ds.transform.f) / 100)
        assert col0 <= 300 and col0 + ds.width >= 421 and row0 <= 300 and row0 + ds.height >= 401
        assert ds.width <= 125 and ds.height <= 105
    run = json.loads((out / "run.json").read_text())
    assert run["grid"]["extent"][4] == "EPSG:4326"


def test_cli_extent_error(tmp_path: Path) -> None:
    p = run_backend("estimate", "--phase", str(PHASE), "--wavelength", "0.05546576", "--incidence", "39", "--heading",
             "-12", "--out", str(tmp_path / "o"), "--extent", "0", "0", "10", "10", "--extent-crs", "EPSG:32634")
    assert p.returncode == 2
    assert "extent does not overlap" in p.stderr and "Fix:" in p.stderr
    assert not (tmp_path / "o").exists()
