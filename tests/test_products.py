"""backend/products.py: arrow block means from row strips, band VRTs, magnitudes (no QGIS)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from backend.io import Grid
from backend.products import ArrowGrid, band_vrt, horizontal_magnitude, rewrap, uncertainty_3d
from tests.conftest import UTM, write_raster


def test_arrow_grid_from_unaligned_chunks_equals_block_nanmean() -> None:
    rng = np.random.default_rng(0)
    h, w = 301, 517
    d = rng.standard_normal((3, h, w))
    d[:, rng.random((h, w)) < 0.2] = np.nan
    d[:, :40, :60] = np.nan  # covers blocks (0, 0) and (0, 1) of 22 px: no arrow there
    g = ArrowGrid(h, w)
    for r0 in range(0, h, 37):  # strips and chunks that do not line up with the arrow blocks
        for c0 in range(0, w, 100):
            g.add(r0, c0, d[:, r0:r0 + 37, c0:c0 + 100])
    s = g.step
    assert s == math.ceil(517 / 24) == 22
    nr, nc = math.ceil(h / s), math.ceil(w / s)
    blocks = np.pad(d, ((0, 0), (0, nr * s - h), (0, nc * s - w)), constant_values=np.nan).reshape(3, nr, s, nc, s)
    with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        ref = np.nanmean(blocks, axis=(2, 4))
    np.testing.assert_allclose(g.sums / np.maximum(g.counts, 1), np.nan_to_num(ref), atol=1e-12)
    t = Affine(10.0, 0, 1000.0, 0, -10.0, 5000.0)
    pts = g.points(t)
    assert len(pts) == int(np.isfinite(ref[0]).sum()) == nr * nc - 2
    x, y, e, n, u = pts[0]  # first block with data: row 0, column 2 -> centre (55, 11) px
    assert (x, y) == (1000.0 + 55 * 10.0, 5000.0 - 11 * 10.0)
    assert e == pytest.approx(ref[0, 0, 2], abs=1e-12) and u == pytest.approx(ref[2, 0, 2], abs=1e-12)
    x, y, *_ = pts[-1]  # the last block is cut by the raster edge: centre of what is inside
    assert (x, y) == (1000.0 + (23 * 22 + (517 - 23 * 22) / 2) * 10.0, 5000.0 - (13 * 22 + (301 - 13 * 22) / 2) * 10.0)


def test_band_vrt_points_at_the_band_relative_and_georeferenced(tmp_path: Path) -> None:
    t = Affine(30.0, 0, 500000.0, 0, -30.0, 4400000.0)
    data = np.arange(3 * 20 * 25, dtype=np.float32).reshape(3, 20, 25)
    src = write_raster(tmp_path / "displacement.tif", data, t)
    grid = Grid(rasterio.crs.CRS.from_string(UTM), t, 25, 20)
    vrt = band_vrt(src, 2, tmp_path / "north.vrt", grid, "north displacement (m)")
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in (src, vrt):
        f.rename(moved / f.name)  # relative path: the folder can be moved
    with rasterio.open(moved / "north.vrt") as ds:
        assert ds.count == 1 and ds.transform == t and ds.crs.to_epsg() == 32634 and np.isnan(ds.nodata)
        assert ds.descriptions[0] == "north displacement (m)"
        np.testing.assert_array_equal(ds.read(1), data[1])


def test_pixel_products() -> None:
    d = np.array([[[3.0]], [[4.0]], [[12.0]]], np.float32)
    assert horizontal_magnitude(d)[0, 0] == 5.0 and uncertainty_3d(d)[0, 0] == 13.0
    assert uncertainty_3d(d).dtype == np.float32
    np.testing.assert_allclose(rewrap(np.array([3 * np.pi, -np.pi, 0.5])), [-np.pi, -np.pi, 0.5], atol=1e-6)
