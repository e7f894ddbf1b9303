"""Output-grid crop (``EstimateConfig.extent``), which outputs are written, and seams with the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from backend.config import overlap_for
from backend.conventions import wrap
from backend.pipeline import EstimateConfig, PipelineError, run_estimate
from tests.conftest import ROOT, UTM, read_band, write_raster

DARFIELD = ROOT / "data" / "demo_darfield"
LAM = 0.05546576
E0, N0 = 560000.0, 4440000.0


@pytest.fixture()
def scene(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(4)
    h, w = 120, 140
    t = Affine(50.0, 0, E0, 0, -50.0, N0)
    rows, cols = np.mgrid[0:h, 0:w]
    los = 0.03 * np.exp(-((rows - 60) ** 2 + (cols - 70) ** 2) / (2 * 25.0 ** 2))
    texture = 1000 + 200 * rng.standard_normal((h, w))
    return {"phase": write_raster(tmp_path / "phase.tif", wrap(-4 * np.pi / LAM * los), t),
            "optical_pre": write_raster(tmp_path / "pre.tif", texture, t),
            "optical_post": write_raster(tmp_path / "post.tif", np.roll(texture, 1, axis=1), t)}


def test_extent_in_grid_crs_snaps_to_pixels(tmp_path: Path, scene: dict[str, Path], tiny_model: Path) -> None:
    # 1010 m .. 3020 m east of the corner, 520 m .. 2490 m south of it: snapped outwards to whole 50 m pixels
    ext = (E0 + 1010, N0 - 2490, E0 + 3020, N0 - 520, "EPSG:32634")
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "o", phase=scene["phase"], wavelength_m=LAM,
                                      incidence_deg=39, heading_deg=-12, model_path=tiny_model, device="cpu",
                                      extent=ext, tile=64, overlap=16))
    with rasterio.open(res.outputs["unwrapped_phase"]) as ds:
        assert ds.transform == Affine(50.0, 0, E0 + 1000, 0, -50.0, N0 - 500)
        assert (ds.width, ds.height) == (41, 40)  # cols 20..61, rows 10..50
        unw = ds.read(1)
    ph = read_band(scene["phase"])[10:50, 20:61]
    ok = np.isfinite(unw)
    assert ok.mean() > 0.9
    np.testing.assert_allclose(wrap(unw[ok].astype(np.float64) - ph[ok]), 0.0, atol=2e-5)  # same pixels
    run = json.loads(res.outputs["run_json"].read_text())
    assert run["grid"]["width"] == 41 and run["grid"]["extent"][4] == "EPSG:32634"


def test_extent_in_another_crs_and_with_grid_like(tmp_path: Path, scene: dict[str, Path], tiny_model: Path) -> None:
    to_geo = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_geo.transform(E0 + 2025, N0 - 3025)  # centres of pixels (60, 40) and (20, 80)
    lon1, lat1 = to_geo.transform(E0 + 4025, N0 - 1025)
    # grid_like at 100 m (the UI's former way of cropping) + a geographic extent, EPSG given as an int
    write_raster(tmp_path / "like.tif", np.zeros((40, 50)), Affine(100.0, 0, E0, 0, -100.0, N0))
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "o", phase=scene["phase"], optical_pre=scene["optical_pre"],
                                      optical_post=scene["optical_post"], wavelength_m=LAM, incidence_deg=39,
                                      heading_deg=-12, model_path=tiny_model, device="cpu",
                                      grid_like=tmp_path / "like.tif", extent=(lon0, lat0, lon1, lat1, 4326)))
    with rasterio.open(res.outputs["displacement"]) as ds:
        t = ds.transform
        assert t.a == 100.0 and t.e == -100.0
        assert (t.c - E0) % 100 == 0 and (N0 - t.f) % 100 == 0  # on the grid_like's pixel corners
        x0, y1 = t.c, t.f
        x1, y0 = t.c + ds.width * 100, t.f - ds.height * 100
        assert x0 <= E0 + 2025 < x0 + 100 and x1 - 100 < E0 + 4025 <= x1  # the extent's corners, snapped out
        assert y0 <= N0 - 3025 < y0 + 100 and y1 - 100 < N0 - 1025 <= y1


def test_extent_errors_name_the_extent(tmp_path: Path, scene: dict[str, Path], tiny_model: Path) -> None:
    base = dict(out_dir=tmp_path / "o", phase=scene["phase"], wavelength_m=LAM, incidence_deg=39, heading_deg=-12,
                model_path=tiny_model, device="cpu")
    for ext, fragment in (((E0 + 1e6, N0, E0 + 1e6 + 500, N0 + 500, "EPSG:32634"), "does not overlap"),
                          ((E0 + 900, N0 - 100, E0 + 500, N0, None), "empty"),
                          ((E0 + 100, N0 - 100, E0 + 200, N0, None), "larger area"),
                          ((E0, N0 - 100, E0 + 200, N0, "not a crs"), "invalid")):
        with pytest.raises(PipelineError) as ei:
            run_estimate(EstimateConfig(**base, extent=ext))
        assert ei.value.input_name == "extent" and fragment in str(ei.value) and "Fix:" in str(ei.value)
    assert not (tmp_path / "o").exists()


def test_los_and_unwrapped_only_when_meaningful(tmp_path: Path, scene: dict[str, Path], tiny_model: Path) -> None:
    optical = dict(optical_pre=scene["optical_pre"], optical_post=scene["optical_post"], model_path=tiny_model,
                   device="cpu")
    # optical only, no viewing geometry: no LOS and no unwrapped phase
    a = run_estimate(EstimateConfig(out_dir=tmp_path / "a", **optical))
    assert set(a.outputs) == {"displacement", "displacement_sigma", "run_json", "east", "north", "up", "horizontal",
                              "uncertainty", "arrows"}
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.name != "run.log") == sorted(
        p.name for p in a.outputs.values())
    assert (tmp_path / "a" / "run.log").is_file()  # the per-run log beside run.json
    # optical + geometry: the LOS projection of the fused estimate; no band from a phase (the UI shows the last band)
    b = run_estimate(EstimateConfig(out_dir=tmp_path / "b", incidence_deg=39, heading_deg=-12, **optical))
    assert set(b.outputs) == set(a.outputs) | {"los_displacement"}
    with rasterio.open(b.outputs["los_displacement"]) as ds:
        assert ds.count == 1 and "towards the satellite" in ds.descriptions[0]
        los = ds.read(1)
    e, n, u = (read_band(b.outputs["displacement"], i) for i in (1, 2, 3))
    inc, hdg = np.radians(39.0), np.radians(-12.0)
    expect = -np.sin(inc) * np.cos(hdg) * e + np.sin(inc) * np.sin(hdg) * n + np.cos(inc) * u
    np.testing.assert_allclose(los, expect, atol=1e-6)


@pytest.mark.slow
def test_seam_shipped_model_with_the_default_margins(tmp_path: Path, qf_model: Path) -> None:
    """Tiled vs single-pass inference with the shipped network on a simulated strong-event scene (576 px, 10 m,
    all modalities): 512-px tiles overlapping by 255 px (the margins of the default 1024/256) keep 99 % of the
    pixels within 1 % of the signal and all within 5 %.

    The 0.2.0 network draws on ~200 px of context: 512/128 left 1-3 % (p99) on a 768-px scene, 256/120 on the
    Darfield demo scene 9-15 %; hence the default tile 1024 / overlap 256 (docs/backend.md, BENCHMARKS.md).
    """
    from models.dataset import STRONG_OVERRIDES
    from models.scene import simulate_scene
    from models.testing import scene_estimate_inputs

    s = simulate_scene(5, size=(576, 576), pixel_size_m=10.0, overrides=STRONG_OVERRIDES)
    base = dict(**scene_estimate_inputs(s, tmp_path / "in"), model_path=qf_model, device="cpu", unwrap=False)
    single = run_estimate(EstimateConfig(out_dir=tmp_path / "single", tile=576, overlap=0, **base))
    tiled = run_estimate(EstimateConfig(out_dir=tmp_path / "tiled", tile=512, overlap=255, **base))
    assert single.run["parameters"]["n_tiles"] == 1 and tiled.run["parameters"]["n_tiles"] == 4
    for band in (1, 2, 3):
        a = read_band(single.outputs["displacement"], band).astype(np.float64)
        b = read_band(tiled.outputs["displacement"], band).astype(np.float64)
        assert np.isfinite(a).mean() > 0.99 and np.array_equal(np.isfinite(a), np.isfinite(b))
        signal = np.nanpercentile(np.abs(a), 99)
        assert signal > 0
        d = np.abs(a - b)[32:-32, 32:-32]
        assert np.nanpercentile(d, 99) <= 0.01 * signal, (band, np.nanpercentile(d, 99), signal)
        assert np.nanmax(d) <= 0.05 * signal, (band, np.nanmax(d), signal)
    assert EstimateConfig(out_dir=tmp_path).tile == 1024 and EstimateConfig(out_dir=tmp_path).overlap is None
    assert overlap_for(1024) == (256, None) and overlap_for(1024, 200) == (256, None)  # the default margins
    assert overlap_for(512) == (240, None) and overlap_for(512, 230)[0] == 240 and "Fix: tile >=" in \
        overlap_for(512, 250)[1]


def test_wide_raster_written_in_column_chunks(tmp_path: Path, tiny_model: Path) -> None:
    """A raster wider than the writer's 2048 px column chunk: every column written, LOS from its own angles."""
    w, h = 2100, 40
    c = np.arange(w)[None, :] * np.ones((h, 1))
    t = Affine(50.0, 0, E0, 0, -50.0, N0)
    write_raster(tmp_path / "phase.tif", wrap(0.05 * c), t)
    write_raster(tmp_path / "inc.tif", 30.0 + 10.0 * c / w, t)  # incidence varies along the columns
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "o", phase=tmp_path / "phase.tif", wavelength_m=LAM,
                                      incidence_deg=tmp_path / "inc.tif", heading_deg=-12, model_path=tiny_model,
                                      device="cpu", tile=512, overlap=32, unwrap=False))  # the network's writer
    e, n, u = (read_band(res.outputs["displacement"], i).astype(np.float64) for i in (1, 2, 3))
    assert np.isfinite(e).all()
    inc, hdg = np.radians(30.0 + 10.0 * c / w), np.radians(-12.0)
    expect = -np.sin(inc) * np.cos(hdg) * e + np.sin(inc) * np.sin(hdg) * n + np.cos(inc) * u
    np.testing.assert_allclose(read_band(res.outputs["los_displacement"], 1), expect, atol=1e-5)
