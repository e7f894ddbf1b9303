"""backend/illumination.py: the sun fitted to the DEM's shading, the pre image relit to the post image's sun, the
decision on the data, and the pipeline with the shipped model (a sun that changes between the dates on relief)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from backend import illumination as il
from tests.conftest import run_backend

PIX = 10.0


def _terrain(n: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A rough DEM (m; ~100 m of relief, 10 m pixels) and an albedo texture (0.05..0.5), both smooth at 1-3 px."""
    rng = np.random.default_rng(seed)
    dem = ndimage.gaussian_filter(rng.standard_normal((n, n)), 6.0)
    dem = 100.0 * dem / dem.std() + ndimage.gaussian_filter(rng.standard_normal((n, n)), 1.5) * 8.0
    alb = ndimage.gaussian_filter(rng.standard_normal((n, n)), 1.2)
    alb = np.clip(0.25 + 0.08 * alb / alb.std(), 0.05, 0.5)
    return dem, alb


def _lit(alb: np.ndarray, dem: np.ndarray, az: float, el: float, ambient: float = 0.25) -> np.ndarray:
    """The simulator's radiance model (models/scene.py): albedo * (ambient + direct sun on the slope), in DN."""
    shade = il.hillshade(dem, PIX, az, el)
    return 1000.0 * alb * (ambient + (1 - ambient) * shade / math.sin(math.radians(el)))


def test_hillshade_of_a_plane_is_the_cosine_of_the_sun_on_its_normal() -> None:
    x = np.arange(32) * PIX
    dem = np.tile(math.tan(math.radians(30.0)) * x, (32, 1))  # rises to the east: the normal leans 30 deg west
    assert il.hillshade(dem, PIX, 270.0, 60.0)[16, 16] == pytest.approx(1.0, abs=1e-9)  # sun along the normal
    assert il.hillshade(dem, PIX, 90.0, 30.0)[16, 16] == pytest.approx(0.0, abs=1e-9)  # grazing, from the east
    assert il.hillshade(dem, PIX, 0.0, 45.0)[16, 16] == pytest.approx(math.cos(math.radians(30)) * math.sqrt(0.5))
    north = il.hillshade(dem.T, PIX, 0.0, 60.0)  # the same plane rising to the south (rows) faces north
    assert north[16, 16] == pytest.approx(1.0, abs=1e-9)


def test_the_sun_is_fitted_and_the_relit_pre_image_is_lit_like_the_post_image() -> None:
    dem, alb = _terrain()
    pre, post = _lit(alb, dem, 150.0, 55.0), _lit(alb, dem, 245.0, 28.0)
    f = il.fit_illumination(pre, dem, PIX)
    assert f.usable and abs(f.azimuth_deg - 150.0) < 3 and abs(f.elevation_deg - 55.0) < 3 and f.correlation > 0.5
    fits = il.fit_pair({"optical_pre": pre, "optical_post": post, "dem": dem}, PIX)
    assert fits["relit"]
    assert abs(fits["optical_post"]["azimuth_deg"] - 245.0) < 3 and abs(fits["optical_post"]["elevation_deg"] - 28) < 3
    before, after = fits["similarity"]
    assert before < 0.7 and after > 0.97
    relit = il.apply({"optical_pre": pre, "optical_post": post, "dem": dem}, fits, PIX)["optical_pre"]
    assert np.corrcoef(relit.ravel(), post.ravel())[0, 1] > 0.99  # the same illumination as the post image
    assert np.corrcoef(pre.ravel(), post.ravel())[0, 1] < 0.8
    json.dumps(fits)  # goes into run.json
    assert "relit to the post image's sun" in il.describe(fits)


def _lucas_kanade(pre: np.ndarray, post: np.ndarray, window: int = 15) -> np.ndarray:
    """Per-pixel (rows, columns) shift of ``post`` against ``pre`` by one Lucas-Kanade step on ``window``-px
    windows, each image normalised to zero mean and unit variance (sub-pixel shifts only)."""
    a, b = ((x - x.mean()) / x.std() for x in (np.asarray(pre, float), np.asarray(post, float)))
    gr, gc = np.gradient(0.5 * (a + b))
    dt = b - a
    box = lambda x: ndimage.uniform_filter(x, window)  # noqa: E731
    srr, scc, src, srt, sct = box(gr * gr), box(gc * gc), box(gr * gc), box(gr * dt), box(gc * dt)
    det = srr * scc - src * src
    return -np.stack([(scc * srt - src * sct) / det, (srr * sct - src * srt) / det])


def test_relighting_leaves_the_ground_motion_alone() -> None:
    """The post image is the scene moved by (-0.3, 0.4) px with its shading (the DEM moved with the ground):
    the relit pre image differs from it by that shift alone, and local matching reads it; on the raw pair the
    shading that moved with the sun reads as motion."""
    dem, alb = _terrain(seed=3)
    shift = np.array([-0.3, 0.4])  # rows (south), columns (east)
    pre = _lit(alb, dem, 180.0, 22.0)
    post = ndimage.shift(_lit(alb, dem, 230.0, 65.0), shift, order=3, mode="nearest")
    arrays = {"optical_pre": pre, "optical_post": post, "dem": dem}
    relit = il.apply(arrays, il.fit_pair(arrays, PIX), PIX)["optical_pre"]
    c = (slice(None), slice(16, -16), slice(16, -16))

    def err(a: np.ndarray) -> float:  # median error of the local shifts (px)
        d = _lucas_kanade(a, post)[c] - shift[:, None, None]
        return float(np.median(np.hypot(*d)))

    ideal = err(_lit(alb, dem, 230.0, 65.0))  # the pre image as the post sun would have lit it: 0.079 px (one LK step)
    assert err(relit) < ideal + 0.01  # measured 0.080 px
    assert err(pre) > 5 * ideal  # measured 0.69 px


def test_no_relighting_without_a_change_of_sun_or_without_relief() -> None:
    dem, alb = _terrain(seed=1)
    pre = _lit(alb, dem, 160.0, 40.0)
    post = _lit(alb * np.exp(0.05 * np.random.default_rng(2).standard_normal(alb.shape)), dem, 160.0, 40.0)
    arrays = {"optical_pre": pre, "optical_post": post, "dem": dem}
    fits = il.fit_pair(arrays, PIX)
    assert not fits["relit"] and "already the same" in fits["reason"]
    assert np.array_equal(il.apply(arrays, fits, PIX)["optical_pre"], pre)
    flat = il.fit_pair({"optical_pre": pre, "optical_post": post, "dem": np.full_like(dem, 312.0)}, PIX)
    assert not flat["relit"] and flat["optical_pre"]["reason"].startswith("the DEM is flat")
    assert "not relit" in il.describe(flat)
    assert il.fit_pair({"optical_pre": pre, "optical_post": post, "dem": None}, PIX) == {}


def _sun_change_scene() -> tuple:
    from models.scene import simulate_scene

    # simulator seed 9 at 192 x 192, 10 m: real ASTER relief (Patagonia), sun 144/60 deg -> 246/29 deg, Mw 6.9
    sc = simulate_scene(9, size=(192, 192), pixel_size_m=PIX)
    assert sc.params["optical"]["sun_pre"][1] > 55 and sc.params["optical"]["sun_post"][1] < 35
    return sc


def test_the_pipeline_relights_and_the_shipped_model_stops_reading_the_sun_as_motion(tmp_path: Path) -> None:
    from models.testing import write_scene_inputs

    sc = _sun_change_scene()
    p = write_scene_inputs(sc, tmp_path / "in")
    far = np.asarray(sc.distance_to_rupture_m) > 500
    errs, runs = {}, {}
    for mode in ("auto", "off"):
        out = tmp_path / mode
        proc = run_backend("estimate", "--optical-pre", str(p["optical_pre"]), "--optical-post", str(p["optical_post"]),
                           "--dem", str(p["dem"]), "--illumination", mode, "--out", str(out), "--quiet")
        assert proc.returncode == 0, proc.stderr
        with rasterio.open(out / "displacement.tif") as ds:
            d = ds.read().astype(np.float64)
        errs[mode] = float(np.nanmedian(np.hypot(*(d[:2] - np.asarray(sc.truth_enu)[:2]))[far])) / PIX
        runs[mode] = json.loads((out / "run.json").read_text())
    # measured 0.03 px relit, 0.42 px raw (the sun's shading read as motion)
    assert errs["auto"] < 0.08 and errs["off"] > 0.3
    ill = runs["auto"]["stats"]["illumination"]
    assert runs["auto"]["parameters"]["illumination"] == "auto" and ill["relit"]
    assert ill["similarity"][1] > ill["similarity"][0] + 0.2
    for key, (az, el) in (("optical_pre", sc.params["optical"]["sun_pre"]),
                          ("optical_post", sc.params["optical"]["sun_post"])):
        assert abs(ill[key]["azimuth_deg"] - az) < 10 and abs(ill[key]["elevation_deg"] - el) < 10
    assert any("relit to the post image's sun" in n for n in runs["auto"]["notes"])
    assert "illumination" not in runs["off"]["stats"] and runs["off"]["parameters"]["illumination"] == "off"
    assert not any("relit" in n for n in runs["off"]["notes"])


def test_where_the_dem_has_no_value_the_relit_pre_image_has_none() -> None:
    """A DEM void: no shading to divide out there, and an unlit patch inside a relit image would be an edge that
    does not move with the ground; the pre image is missing there instead (and only where relit)."""
    dem, alb = _terrain(seed=4)
    pre, post = _lit(alb, dem, 150.0, 55.0), _lit(alb, dem, 245.0, 28.0)
    holed = dem.copy()
    holed[80:100, 60:90] = np.nan
    arrays = {"optical_pre": pre, "optical_post": post, "dem": holed}
    fits = il.fit_pair(arrays, PIX)
    assert fits["relit"]
    relit = il.apply(arrays, fits, PIX)["optical_pre"]
    assert np.isnan(relit[80:100, 60:90]).all()
    assert np.isfinite(relit[:70]).all() and np.isfinite(relit[110:]).all()
    ring = np.isnan(relit) & np.isfinite(holed)  # the gradient needs both neighbours: one pixel around the void
    assert ring.sum() <= 2 * (20 + 30) + 4 + 10
