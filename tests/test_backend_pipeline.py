"""Backend pipeline: alignment, nodata, seams, congruence, cancellation, bad inputs (real files, real ONNX)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from backend.align import AlignedSource
from backend.conventions import wrap
from backend.io import InputRaster, grid_from, validate_input
from backend.pipeline import Cancelled, CancelToken, EstimateConfig, PipelineError, run_estimate
from backend.tiling import StripBlender, iter_tiles, tile_weight
from models.testing import make_tiny_model
from tests.conftest import ROOT, UTM, read_band, write_raster

THESSALY = ROOT / "data" / "thessaly2021"
LAM = 0.05546576


# ------------------------------------------------------------------------------------------ alignment
E0, N0 = 560000.0, 4440000.0


def _plane(e: np.ndarray, n: np.ndarray) -> np.ndarray:
    return 1000.0 + 0.01 * (e - E0) - 0.02 * (n - N0)


def test_alignment_different_crs_and_resolutions(tmp_path: Path) -> None:
    # reference phase grid: UTM 34N, 100 m, 60 x 80
    t_ref = Affine(100.0, 0, E0, 0, -100.0, N0)
    h, w = 60, 80
    rows, cols = np.mgrid[0:h, 0:w]
    e_ref, n_ref = E0 + (cols + 0.5) * 100, N0 - (rows + 0.5) * 100
    ramp = 0.35 * cols + 0.2 * rows  # rad, fringes crossing +-pi many times
    write_raster(tmp_path / "phase.tif", wrap(ramp), t_ref)

    # optical in geographic coordinates (~ 0.0005 deg, coarser in x), values = plane of its UTM position
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    to_geo = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_geo.transform(E0 - 500, N0 + 500)
    dlon, dlat = 0.0006, 0.0004
    gh, gw = 180, 180
    gr, gc = np.mgrid[0:gh, 0:gw]
    ge, gn = to_utm.transform(lon0 + (gc + 0.5) * dlon, lat0 - (gr + 0.5) * dlat)
    write_raster(tmp_path / "optical.tif", _plane(ge, gn), Affine(dlon, 0, lon0, 0, -dlat, lat0), crs="EPSG:4326")

    # DEM finer (25 m) in UTM, with -9999 nodata block, and a phase at 50 m shifted by half a pixel
    t_dem = Affine(25.0, 0, E0 - 200, 0, -25.0, N0 + 200)
    dr, dc = np.mgrid[0:260, 0:340]
    dem = _plane(E0 - 200 + (dc + 0.5) * 25, N0 + 200 - (dr + 0.5) * 25)
    dem[100:140, 100:140] = -9999
    write_raster(tmp_path / "dem.tif", dem, t_dem, nodata=-9999)

    ph = validate_input("phase", InputRaster(tmp_path / "phase.tif"))
    grid = grid_from(ph)
    assert grid.shape == (60, 80) and grid.pixel_size_m == pytest.approx(100.0)
    with AlignedSource(validate_input("optical_post", InputRaster(tmp_path / "optical.tif")), grid) as src:
        opt = src.read(0, 0, h, w)
    inner = (slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(opt[inner], _plane(e_ref, n_ref)[inner], atol=0.1)  # < 0.05 px position error
    with AlignedSource(validate_input("dem", InputRaster(tmp_path / "dem.tif")), grid) as src:
        d = src.read(0, 0, h, w)
    assert src.resampling.name == "average"
    good = np.isfinite(d)
    np.testing.assert_allclose(d[good], _plane(e_ref, n_ref)[good], atol=1e-3)
    # the nodata block (rows/cols 100..140 of the DEM = grid rows ~27..33, cols ~23..33) stays nodata
    assert np.isnan(d[29:32, 26:31]).all()
    # known point: grid pixel (10, 20) centre
    assert d[10, 20] == pytest.approx(_plane(E0 + 2050.0, N0 - 1050.0), abs=1e-3)

    # phase at 50 m, same ramp per metre, resampled to 100 m through exp(i phi)
    t50 = Affine(50.0, 0, E0, 0, -50.0, N0)
    r50, c50 = np.mgrid[0:120, 0:160]
    ramp50 = 0.35 * (c50 + 0.5) / 2 - 0.175 + 0.2 * (r50 + 0.5) / 2 - 0.1
    write_raster(tmp_path / "phase50.tif", wrap(ramp50), t50)
    with AlignedSource(validate_input("phase", InputRaster(tmp_path / "phase50.tif")), grid, "phase") as src:
        p = src.read(0, 0, h, w)
    err = np.abs(wrap(p - ramp))
    assert np.nanmax(err[inner]) < 0.02  # numeric interpolation across the +-pi jumps would give errors ~pi
    # reading a window that passes the grid's edge gives NaN outside the source
    with AlignedSource(ph, grid, "phase") as src:
        part = src.read(h - 5, w - 5, 10, 10)
    assert np.isfinite(part[:5, :5]).all() and np.isnan(part[5:, :]).all()


def test_geographic_reference_goes_to_local_utm(tmp_path: Path) -> None:
    t = Affine(0.001, 0, 22.0, 0, -0.001, 39.9)
    write_raster(tmp_path / "geo_phase.tif", np.zeros((50, 60)) + 0.5, t, crs="EPSG:4326")
    grid = grid_from(validate_input("phase", InputRaster(tmp_path / "geo_phase.tif")))
    assert grid.crs.to_epsg() == 32634
    assert 80 <= grid.pixel_size_m <= 90  # 0.001 deg of longitude at 39.9 N ~ 85 m


# ------------------------------------------------------------------------------------------ tiling
def test_blender_partition_and_order() -> None:
    h, w = 150, 170
    out = np.full((1, h, w), np.nan, np.float32)

    def writer(r0: int, block: np.ndarray) -> None:
        assert np.isnan(out[:, r0:r0 + block.shape[1]]).all()  # each row once
        out[:, r0:r0 + block.shape[1]] = block

    b = StripBlender(1, h, w, 64, writer)
    field = np.add.outer(np.arange(h), 2 * np.arange(w)).astype(np.float32)
    for r0, c0, th, tw in iter_tiles(h, w, 64, 16, 16):
        tile = np.full((1, th, tw), np.nan, np.float32)
        hh, ww = min(th, h - r0), min(tw, w - c0)
        tile[0, :hh, :ww] = field[r0:r0 + hh, c0:c0 + ww]
        b.add(r0, c0, tile, tile_weight(th, tw, r0, c0, h, w, 16))
    b.finish()
    np.testing.assert_allclose(out[0], field, rtol=1e-6)


def _scene(tmp_path: Path, h: int = 200, w: int = 232) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    t = Affine(50.0, 0, E0, 0, -50.0, N0)
    rows, cols = np.mgrid[0:h, 0:w]
    los = 0.02 * np.exp(-((rows - h / 2) ** 2 + (cols - w / 2) ** 2) / (2 * 40.0 ** 2))
    phase = wrap(-4 * np.pi / LAM * los + 0.2 * rng.standard_normal((h, w)))
    texture = 1000 + 200 * rng.standard_normal((h, w))
    paths = {
        "phase": write_raster(tmp_path / "phase.tif", phase, t),
        "coherence": write_raster(tmp_path / "coh.tif", np.clip(0.8 + 0.05 * rng.standard_normal((h, w)), 0, 1), t),
        "optical_pre": write_raster(tmp_path / "opt_pre.tif", texture, t),
        "optical_post": write_raster(tmp_path / "opt_post.tif", np.roll(texture, 1, axis=1), t),
        "dem": write_raster(tmp_path / "dem.tif", 300 + 0.05 * rows * 50, t),
    }
    return paths


def _cfg(paths: dict[str, Path], out: Path, model: Path, **kw: object) -> EstimateConfig:
    base = dict(out_dir=out, phase=paths.get("phase"), coherence=paths.get("coherence"),
                optical_pre=paths.get("optical_pre"), optical_post=paths.get("optical_post"), dem=paths.get("dem"),
                wavelength_m=LAM, incidence_deg=39.0, heading_deg=-12.0, model_path=model, device="cpu")
    base.update(kw)
    return EstimateConfig(**base)  # type: ignore[arg-type]


def test_seam_tiled_equals_single_pass(tmp_path: Path, tiny_model: Path) -> None:
    paths = _scene(tmp_path, 192, 224)  # multiples of 16: the single pass needs no padding past the raster edge
    # the network's own output (unwrap=False: no 3-D inversion on top) is what tiling must not change
    single = run_estimate(_cfg(paths, tmp_path / "single", tiny_model, tile=256, overlap=0, unwrap=False))
    tiled = run_estimate(_cfg(paths, tmp_path / "tiled", tiny_model, tile=64, overlap=16, batch=3, unwrap=False))
    assert single.run["parameters"]["n_tiles"] == 1 and tiled.run["parameters"]["n_tiles"] > 12
    for band in (1, 2, 3):
        a = read_band(single.outputs["displacement"], band)
        b = read_band(tiled.outputs["displacement"], band)
        signal = np.nanpercentile(np.abs(a), 99)
        assert np.nanmax(np.abs(a - b)) <= 0.01 * signal
    single = run_estimate(_cfg(paths, tmp_path / "single_u", tiny_model, tile=256, overlap=0))
    tiled = run_estimate(_cfg(paths, tmp_path / "tiled_u", tiny_model, tile=64, overlap=16, batch=3))
    a = read_band(single.outputs["unwrapped_phase"])
    b = read_band(tiled.outputs["unwrapped_phase"])
    m = np.isfinite(a) & np.isfinite(b)
    assert m.mean() > 0.95
    np.testing.assert_allclose(a[m], b[m], atol=1e-3)


def test_outputs_congruence_nodata_and_metadata(tmp_path: Path, tiny_model: Path) -> None:
    paths = _scene(tmp_path)
    # nodata: a hole in the phase (NaN) and in the optical pair (nodata -9999)
    with rasterio.open(paths["phase"], "r+") as ds:
        p = ds.read(1)
        p[20:30, 40:60] = np.nan
        ds.write(p, 1)
    for key in ("optical_pre", "optical_post"):
        with rasterio.open(paths[key]) as ds:
            a, t = ds.read(1), ds.transform
        a[20:30, 50:70] = -9999
        write_raster(paths[key], a, t, nodata=-9999)
    res = run_estimate(_cfg(paths, tmp_path / "out", tiny_model, tile=96, overlap=16))
    assert set(res.outputs) == {"displacement", "displacement_sigma", "los_displacement", "unwrapped_phase",
                                "run_json", "east", "north", "up", "horizontal", "uncertainty", "rewrapped_phase",
                                "arrows", "unwrap_regions"}
    # derived products: computed from the same arrays as the displacement (the 3-D inversion's)
    d = np.stack([read_band(res.outputs["displacement"], b) for b in (1, 2, 3)])
    fused = read_band(res.outputs["los_displacement"], 1)  # the network's estimate in LOS
    assert res.run["valid_fraction"] == pytest.approx(np.isfinite(fused).mean(), abs=1e-12)
    np.testing.assert_array_equal(read_band(res.outputs["horizontal"]), np.hypot(d[0], d[1]).astype(np.float32))
    np.testing.assert_array_equal(read_band(res.outputs["east"]), d[0])
    u = read_band(res.outputs["unwrapped_phase"])
    np.testing.assert_array_equal(read_band(res.outputs["rewrapped_phase"]),
                                  ((u + np.pi) % (2 * np.pi) - np.pi).astype(np.float32))
    phase_in = read_band(paths["phase"])
    unw = read_band(res.outputs["unwrapped_phase"])
    valid = np.isfinite(unw)
    assert valid.mean() > 0.9
    np.testing.assert_allclose(wrap(unw[valid].astype(np.float64) - phase_in[valid]), 0.0, atol=2e-5)
    assert np.isnan(unw[20:30, 40:60]).all()  # no phase -> no unwrapped phase
    assert np.isnan(fused[20:30, 50:60]).all()  # neither phase nor optical there
    assert np.isfinite(fused[20:30, 40:50]).all() and np.isfinite(fused[20:30, 60:70]).all()  # one of them
    # E/N: the network's where it has them (kept at its own sigma); NaN where neither phase nor optical
    assert np.isnan(d[0][20:30, 50:60]).all() and np.isfinite(d[0][np.isfinite(fused)]).mean() > 0.99
    with rasterio.open(res.outputs["displacement"]) as ds:
        assert [x.split(" (")[0] for x in ds.descriptions] == ["east displacement", "north displacement",
                                                                "up displacement"]
        assert ds.units == ("m", "m", "m") and np.isnan(ds.nodata) and ds.profile["tiled"]
        assert ds.compression.name.lower() == "deflate" and ds.crs.to_epsg() == 32634
        assert ds.transform == Affine(50.0, 0, E0, 0, -50.0, N0)
    with rasterio.open(res.outputs["los_displacement"]) as ds:
        assert ds.count == 2 and "towards the satellite" in ds.descriptions[0] and "unwrapped" in ds.descriptions[1]
    run = json.loads(res.outputs["run_json"].read_text())
    assert run["device"] == "cpu" and run["model"]["version"] == "test-tiny"
    assert run["inputs"]["phase"]["path"].endswith("phase.tif") and run["timings"]["total_s"] > 0
    assert not list((tmp_path / "out").glob(".quakefusion-tmp-*"))


@pytest.mark.slow
def test_insar_only_thessaly_crop_runs(tmp_path: Path, tiny_model: Path) -> None:
    # real data, phase only (no coherence): zeros are read as nodata, pseudo-coherence drives the unwrapping
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "o", phase=THESSALY / "phase_wrapped.tif",
                                      wavelength_m=LAM, incidence_deg=39, heading_deg=-12, model_path=tiny_model,
                                      device="cpu", tile=256, overlap=32))
    unw = read_band(res.outputs["unwrapped_phase"])
    ph = read_band(THESSALY / "phase_wrapped.tif")
    assert np.isnan(unw[ph == 0]).all()
    assert res.run["parameters"]["unwrap"]["interferograms"][0]["coherence_source"].startswith("phase-gradient pseudo")
    assert res.run["model"]["version"].startswith("none") and res.run["parameters"]["n_tiles"] == 0
    assert np.isfinite(unw).mean() > 0.9


# ------------------------------------------------------------------------------------------ cancel/fail
def test_cancel_mid_run_leaves_nothing(tmp_path: Path, tiny_model: Path) -> None:
    paths = _scene(tmp_path)
    token = CancelToken()
    seen: list[str] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if message.startswith("inference: tile 3/"):
            token.cancel()

    out = tmp_path / "new_out"
    with pytest.raises(Cancelled):
        run_estimate(_cfg(paths, out, tiny_model, tile=64, overlap=16), progress=progress, cancel=token)
    assert any(m.startswith("inference: tile 3/") for m in seen)
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    token2 = CancelToken()
    with pytest.raises(Cancelled):
        run_estimate(_cfg(paths, existing, tiny_model, tile=64, overlap=16),
                     progress=lambda f, m: token2.cancel() if "unwrapping" in m or "tile 9/" in m else None,
                     cancel=token2)
    assert list(existing.iterdir()) == []


def test_failed_run_leaves_nothing(tmp_path: Path) -> None:
    bad_model = make_tiny_model(tmp_path / "bad.onnx", channels=["phase_cos", "no_such_channel"])
    paths = _scene(tmp_path)
    with pytest.raises(PipelineError) as err:
        run_estimate(_cfg(paths, tmp_path / "out", bad_model))
    assert err.value.input_name == "model" and str(bad_model) in err.value.message
    assert "'no_such_channel'" in err.value.message and "Fix:" in err.value.message
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.fixture()
def good(tmp_path: Path) -> dict[str, Path]:
    return _scene(tmp_path, 64, 64)


def _expect(cfg: EstimateConfig, name: str, *fragments: str) -> None:
    with pytest.raises(PipelineError) as ei:
        run_estimate(cfg)
    assert ei.value.input_name == name, str(ei.value)
    for f in fragments:
        assert f.lower() in str(ei.value).lower(), str(ei.value)
    assert "Fix:" in str(ei.value)


def test_bad_inputs_messages(tmp_path: Path, good: dict[str, Path], tiny_model: Path) -> None:
    out = tmp_path / "out"
    t = Affine(50.0, 0, E0, 0, -50.0, N0)
    z = np.zeros((64, 64))
    _expect(_cfg({**good, "phase": tmp_path / "missing.tif"}, out, tiny_model), "phase", "not found")
    write_raster(tmp_path / "nocrs.tif", z, t, crs=None)
    _expect(_cfg({**good, "dem": tmp_path / "nocrs.tif"}, out, tiny_model), "dem", "coordinate reference system",
            "gdal_edit")
    write_raster(tmp_path / "deg.tif", np.linspace(-170, 170, 64 * 64).reshape(64, 64), t)
    _expect(_cfg({**good, "phase": tmp_path / "deg.tif"}, out, tiny_model), "phase", "degrees")
    write_raster(tmp_path / "unw.tif", np.linspace(-400, 600, 64 * 64).reshape(64, 64), t)
    _expect(_cfg({**good, "phase": tmp_path / "unw.tif"}, out, tiny_model), "phase", "wrapped")
    write_raster(tmp_path / "coh255.tif", np.full((64, 64), 200.0), t)
    _expect(_cfg({**good, "coherence": tmp_path / "coh255.tif"}, out, tiny_model), "coherence", "255")
    write_raster(tmp_path / "db.tif", np.full((64, 64), -12.0), t)
    _expect(_cfg(good, out, tiny_model, sar_pre=tmp_path / "db.tif", sar_post=tmp_path / "db.tif"), "sar_pre",
            "dB")
    write_raster(tmp_path / "cplx.tif", np.exp(1j * z), t, nodata=None, dtype="complex64")
    _expect(_cfg({**good, "phase": tmp_path / "cplx.tif"}, out, tiny_model), "phase", "complex", "angle")
    _expect(_cfg({**good, "phase": InputRaster(good["phase"], 3)}, out, tiny_model), "phase", "band 3")
    write_raster(tmp_path / "far.tif", z + 100, Affine(50.0, 0, E0 + 1e6, 0, -50.0, N0))
    _expect(_cfg({**good, "dem": tmp_path / "far.tif"}, out, tiny_model), "dem", "does not overlap")
    write_raster(tmp_path / "allnan.tif", z + np.nan, t)
    _expect(_cfg({**good, "dem": tmp_path / "allnan.tif"}, out, tiny_model), "dem", "no valid pixel")
    _expect(_cfg({**good, "optical_post": None}, out, tiny_model), "optical_post", "both")
    _expect(_cfg(good, out, tiny_model, wavelength_m=None), "wavelength", "metres")
    _expect(_cfg(good, out, tiny_model, wavelength_m=5.5), "wavelength", "metres")
    _expect(_cfg(good, out, tiny_model, incidence_deg=None), "incidence", "--incidence")
    _expect(_cfg(good, out, tiny_model, incidence_deg=139.0), "incidence", "0..90")
    _expect(_cfg({"dem": good["dem"]}, out, tiny_model), "phase", "displacement-sensitive")
    _expect(_cfg(good, out, tmp_path / "nomodel.onnx"), "model", "not found")
    assert not out.exists()


def test_device_cuda_is_explicit(tmp_path: Path, good: dict[str, Path], tiny_model: Path) -> None:
    import onnxruntime as ort

    from backend.model import OnnxModel

    m = OnnxModel(tiny_model, device="auto")
    assert m.device in ("cpu", "cuda")
    # "auto" asks a one-node model whether the CUDA provider starts (not the network: a network session whose CUDA
    # provider fails falls back to a slow default CPU build, 33-45 s for the shipped model); same answer
    import onnx

    from backend.model import _PROBE_MODEL, cuda_provider_initialises

    probe = onnx.load_from_string(_PROBE_MODEL)
    onnx.checker.check_model(probe)
    assert [n.op_type for n in probe.graph.node] == ["Identity"]
    x = np.array([1.5], np.float32)
    cpu = ort.InferenceSession(_PROBE_MODEL, providers=["CPUExecutionProvider"])
    assert cpu.run(None, {"x": x})[0].tolist() == [1.5]
    assert cuda_provider_initialises() == (m.device == "cuda")
    if m.device == "cpu":  # no working CUDA here: asking for it is an error that says what to do
        assert "CUDAExecutionProvider" not in m.providers
        with pytest.raises(PipelineError, match="CUDA"):
            OnnxModel(tiny_model, device="cuda")
    else:
        assert "CUDAExecutionProvider" in ort.get_available_providers()


def test_grid_like_overrides_the_output_grid(tmp_path: Path, tiny_model: Path) -> None:
    paths = _scene(tmp_path, 96, 96)  # 50 m grid
    t100 = Affine(100.0, 0, E0 + 500, 0, -100.0, N0 - 500)
    write_raster(tmp_path / "like.tif", np.zeros((30, 32)), t100)
    res = run_estimate(_cfg(paths, tmp_path / "out", tiny_model, grid_like=tmp_path / "like.tif", tile=64,
                            overlap=16))
    with rasterio.open(res.outputs["unwrapped_phase"]) as ds:
        assert ds.transform == t100 and ds.shape == (30, 32)
        unw = ds.read(1)
    assert res.run["grid"]["defined_by"] == "grid_like"
    # the 50 m phase was averaged through exp(i phi) onto the 100 m grid: still congruent with that average
    with AlignedSource(validate_input("phase", InputRaster(paths["phase"])), res.grid, "phase") as src:
        ph = src.read(0, 0, 30, 32)
    ok = np.isfinite(unw)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(wrap(unw[ok].astype(np.float64) - ph[ok]), 0.0, atol=2e-5)


def test_output_marked_uninformative_is_not_written_and_the_notes_say_why(tmp_path: Path) -> None:
    """A model whose metadata marks ``rupture_probability`` uninformative (0.7.0: its head learnt only the base rate)
    still computes it, but the run does not write it (a flat ~0.1 layer would read as "no rupture here"): no file,
    no output key, the reason in the notes and in run.json; the other outputs are those of the same model without
    the mark, to the bit."""
    why = "this model's rupture head has not learnt (test)"
    marked = make_tiny_model(tmp_path / "marked.onnx", rupture=True, uninformative={"rupture_probability": why})
    plain = make_tiny_model(tmp_path / "plain.onnx", rupture=True)
    paths = _scene(tmp_path)
    res = run_estimate(_cfg(paths, tmp_path / "out", marked, tile=512, unwrap=False))
    ref = run_estimate(_cfg(paths, tmp_path / "ref", plain, tile=512, unwrap=False))
    assert "rupture_probability" not in res.outputs and not (tmp_path / "out" / "rupture_probability.tif").exists()
    assert (tmp_path / "ref" / "rupture_probability.tif").is_file()
    assert f"rupture_probability.tif not written: {why}" in res.run["notes"]
    assert res.run["model"]["outputs_not_written"] == {"rupture_probability": why}
    assert np.array_equal(read_band(res.outputs["displacement"]), read_band(ref.outputs["displacement"]),
                          equal_nan=True)


def test_shipped_model_marks_its_rupture_head_uninformative() -> None:
    """The shipped file says its rupture head has not learnt (models/export.py UNINFORMATIVE_OUTPUTS; AUC 0.48-0.54
    on the held-out sets in models/MODEL_CARD.md), with the way to a trace in the reason."""
    from backend.infer import extra_outputs
    from backend.model import DEFAULT_MODEL, read_metadata

    meta = read_metadata(DEFAULT_MODEL)
    assert "rupture_probability" in meta.outputs and extra_outputs(meta) == ["sar_share"]
    assert "has not learnt" in meta.uninformative_outputs["rupture_probability"]
    assert "python -m backend trace" in meta.uninformative_outputs["rupture_probability"]


def test_rupture_probability_output_and_receptive_field_from_metadata(tmp_path: Path) -> None:
    """A model whose metadata lists ``rupture_probability`` gets it stitched like the other outputs and written as
    rupture_probability.tif (float32, NaN nodata, 0..1); ``receptive_field_px`` sets the default overlap."""
    model = make_tiny_model(tmp_path / "rupture.onnx", rupture=True, receptive_field_px=100)
    paths = _scene(tmp_path)
    res = run_estimate(_cfg(paths, tmp_path / "out", model, tile=512, unwrap=False))
    assert res.run["parameters"]["overlap"] == 128 and res.run["model"]["receptive_field_px"] == 100
    assert res.run["parameters"]["n_tiles"] == 1 and "rupture_probability" in res.run["model"]["outputs"]
    with rasterio.open(res.outputs["rupture_probability"]) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "float32" and np.isnan(ds.nodata)
        assert ds.transform == rasterio.open(res.outputs["displacement"]).transform
        p = ds.read(1)
    d = read_band(res.outputs["displacement"])
    assert np.array_equal(np.isnan(p), np.isnan(d))  # same validity as the displacement
    assert np.nanmin(p) >= 0.0 and np.nanmax(p) <= 1.0 and np.nanstd(p) > 0
    # tiled (64/16, many tiles) == one tile, as for the other outputs
    tiled = run_estimate(_cfg(paths, tmp_path / "tiled", model, tile=64, overlap=16, unwrap=False))
    assert tiled.run["parameters"]["n_tiles"] > 12
    q = read_band(tiled.outputs["rupture_probability"])
    b = 8  # the raster's own border: tiles passing the edge see other zero padding than the single tile
    np.testing.assert_allclose(q[b:-b, b:-b], p[b:-b, b:-b], atol=0.02)
