"""Robustness (issue #13), units, geometry, nodata and sizes: inputs that would run to a confident wrong answer are
refused or warned about with the fix; where the data carry no information the output is NaN, never a small
confident number. Real files from data/ (Darfield, Thessaly, Sentinel-2 Berlin)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio

from backend.config import EstimateConfig, InputRaster, check
from backend.errors import PipelineError
from backend.pipeline import run_estimate
from tests.robust_util import (
    BERLIN,
    THESSALY,
    WAVELENGTH,
    cli,
    crop,
    darfield_inputs,
    digest,
    leftovers,
    optical_args,
    phase_args,
    tree,
)


@pytest.fixture(scope="module")
def inp(tmp_path_factory) -> dict[str, Path]:
    return darfield_inputs(tmp_path_factory.mktemp("darfield"))


def _refused(code: int, text: str, *fragments: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    for f in fragments:
        assert f.lower() in text.lower(), text


def _notes(out: Path) -> str:
    return "\n".join(json.loads((out / "run.json").read_text())["notes"])


# ---------------------------------------------------------------------------------- textureless optical
def test_constant_optical_image_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    flat = crop(inp["optical"], tmp_path / "flat.tif", (0, 128), (0, 128), fn=lambda a: a * 0 + 1234.0)
    before = digest([flat, inp["optical"]])
    code, text = cli(capsys, "estimate", "--optical-pre", f"{inp['optical']}:1", "--optical-post", f"{flat}:2",
                     "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _refused(code, text, "optical_post", "every pixel has the same value (1234)", "no texture",
             "Fix: give the image band itself")
    assert digest([flat, inp["optical"]]) == before and tree(tmp_path / "out") == []


def _with_flat_patch(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[:, 32:96, 32:96] = 255.0  # a saturated cloud in both images
    return a


def test_textureless_patch_without_other_modality_is_nan(capsys, inp, tiny_model, tmp_path) -> None:
    opt = crop(inp["optical"], tmp_path / "cloud.tif", (0, 128), (0, 128), fn=_with_flat_patch)
    out = tmp_path / "out"
    code, text = cli(capsys, *optical_args(dict(inp, optical=opt), tiny_model, out))
    assert code == 0, text
    with rasterio.open(out / "displacement.tif") as ds:
        d = ds.read()
    with rasterio.open(out / "displacement_sigma.tif") as ds:
        s = ds.read()
    inner = (slice(None), slice(40, 88), slice(40, 88))  # the patch minus the texture window at its rim
    assert np.isnan(d[inner]).all() and np.isnan(s[inner]).all()
    assert np.isfinite(d[:, :24, :]).all()  # outside: estimated
    assert "no texture" in text


def test_textureless_patch_with_phase_keeps_up_blanks_east_north(capsys, inp, tiny_model, tmp_path) -> None:
    opt = crop(inp["optical"], tmp_path / "cloud.tif", (0, 128), (0, 128), fn=_with_flat_patch)
    out = tmp_path / "out"
    code, text = cli(capsys, *phase_args(dict(inp, optical=opt), tiny_model, out))
    assert code == 0, text
    with rasterio.open(out / "displacement.tif") as ds:
        d = ds.read()
    patch = d[:, 40:88, 40:88]
    assert np.isnan(patch[0]).all() and np.isnan(patch[1]).all()
    # one interferogram without a horizontal estimate there measures only its LOS: up is not fabricated (Step 8
    # 3-D inversion); the LOS from the unwrapped phase is still there
    assert np.isnan(patch[2]).all()
    with rasterio.open(out / "los_displacement.tif") as ds:
        assert np.isfinite(ds.read(ds.count)[40:88, 40:88]).mean() > 0.9
    assert "east and north (and their sigma) are NaN there" in _notes(out)
    assert "3-D inversion: up: NaN" in _notes(out)


def test_textured_inputs_have_no_texture_note(capsys, inp, tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    assert cli(capsys, *optical_args(inp, tiny_model, out))[0] == 0
    assert "texture" not in _notes(out)
    with rasterio.open(out / "displacement.tif") as ds:
        assert np.isfinite(ds.read()).all()


# ---------------------------------------------------------------------------------- phase units
def test_los_metres_given_as_wrapped_phase_is_refused(capsys, tiny_model, tmp_path) -> None:
    los = THESSALY / "los_reference.tif"  # LiCSAR unwrapped LOS displacement in metres
    before = digest([los])
    code, text = cli(capsys, "estimate", "--phase", str(los), "--wavelength", WAVELENGTH, "--incidence", "39",
                     "--heading", "-12", "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _refused(code, text, "phase", "not a wrapped interferogram", "displacement in metres",
             "wrap(4*pi/wavelength * d)")
    assert digest([los]) == before and tree(tmp_path / "out") == []


def test_unwrapped_phase_given_as_wrapped_is_called_unwrapped_not_degrees(capsys, inp, tiny_model, tmp_path) -> None:
    code, text = cli(capsys, *phase_args(dict(inp, phase=inp["unwrapped"]), tiny_model, tmp_path / "out"))
    _refused(code, text, "outside [-pi, pi]", "UNWRAPPED phase", "arctan2(sin(A),cos(A))")
    assert "degrees" not in text and tree(tmp_path / "out") == []


def test_wrapped_phase_in_degrees(capsys, tiny_model, tmp_path) -> None:
    deg = crop(THESSALY / "phase_wrapped.tif", tmp_path / "deg.tif", (200, 456), (200, 456), fn=np.degrees)
    code, text = cli(capsys, "estimate", "--phase", str(deg), "--wavelength", WAVELENGTH, "--incidence", "39",
                     "--heading", "-12", "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _refused(code, text, "look like wrapped degrees", "phase * pi / 180")


def test_phase_in_0_2pi_is_accepted_with_a_note(capsys, tiny_model, tmp_path) -> None:
    p = crop(THESSALY / "phase_wrapped.tif", tmp_path / "p02.tif", (200, 328), (200, 328),
             fn=lambda a: np.where(a == 0, 0, np.mod(a, 2 * np.pi)))
    out = tmp_path / "out"
    code, text = cli(capsys, "estimate", "--phase", str(p), "--wavelength", WAVELENGTH, "--incidence", "39",
                     "--heading", "-12", "--model", str(tiny_model), "--out", str(out), "--quiet")
    assert code == 0, text
    assert "wrapped to [-pi, pi) on reading" in _notes(out)


def test_all_zero_phase_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    z = crop(inp["phase"], tmp_path / "zero.tif", (0, 128), (0, 128), fn=lambda a: a * 0)
    code, text = cli(capsys, *phase_args(dict(inp, phase=z), tiny_model, tmp_path / "out"))
    _refused(code, text, "every pixel is 0: no phase")
    assert tree(tmp_path / "out") == []


# ---------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize(("inc", "hdg", "fragments"), [
    ("0.569", "-0.198", ["incidence 0.569 looks like RADIANS (32.6 deg)", "--incidence 32.6"]),
    ("0", "-12", ["incidence 0 deg", "0 = looking straight down"]),
    ("90", "-12", ["incidence 90 deg", "90 = looking horizontally"]),
    ("139", "-12", ["outside 0..90"]),
    ("39", "400", ["heading 400 deg is outside -360..360"]),
])
def test_impossible_or_radian_geometry_is_refused(capsys, inp, tiny_model, tmp_path, inc, hdg, fragments) -> None:
    code, text = cli(capsys, "estimate", "--phase", str(inp["phase"]), "--wavelength", WAVELENGTH, "--incidence",
                     inc, "--heading", hdg, "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _refused(code, text, *fragments)
    assert not (tmp_path / "out").exists()


def test_radian_heading_with_radian_incidence_both_reported(inp, tiny_model, tmp_path) -> None:
    cfg = EstimateConfig(out_dir=tmp_path, phase=inp["phase"], wavelength_m=0.0555, incidence_deg=0.569,
                         heading_deg=-0.198, model_path=tiny_model)
    texts = [p.text for p in check(cfg)]
    assert any("heading -0.198 looks like RADIANS (-11.34 deg)" in t for t in texts), texts


def test_radian_heading_alone_gets_a_note(capsys, inp, tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    code, text = cli(capsys, "estimate", "--phase", str(inp["phase"]), "--coherence", str(inp["coherence"]),
                     "--wavelength", WAVELENGTH, "--incidence", "39", "--heading", "-0.198", "--model",
                     str(tiny_model), "--out", str(out), "--quiet")
    assert code == 0, text
    assert "heading -0.198 deg is unusual for a satellite" in text and "-11.34 deg" in text


def test_incidence_raster_in_radians_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    rad = crop(inp["incidence"], tmp_path / "inc_rad.tif", (0, 128), (0, 128), fn=np.radians)
    code, text = cli(capsys, *phase_args(dict(inp, incidence=rad), tiny_model, tmp_path / "out"))
    _refused(code, text, "incidence", "look like RADIANS", "degrees(A)")
    assert tree(tmp_path / "out") == []


def test_heading_raster_in_radians_gets_a_note(capsys, inp, tiny_model, tmp_path) -> None:
    rad = crop(inp["heading"], tmp_path / "hdg_rad.tif", (0, 128), (0, 128), fn=np.radians)
    out = tmp_path / "out"
    code, text = cli(capsys, *phase_args(dict(inp, heading=rad), tiny_model, out))
    assert code == 0, text
    assert "heading: heading values" in _notes(out) and "if they are radians" in _notes(out)


def test_incidence_raster_zero_fill_is_no_data(capsys, inp, tiny_model, tmp_path) -> None:
    fill = crop(inp["incidence"], tmp_path / "inc0.tif", (0, 128), (0, 128),
                fn=lambda a: np.where(np.arange(128)[None, None, :] < 8, 0.0, a))
    out = tmp_path / "out"
    code, text = cli(capsys, *phase_args(dict(inp, incidence=fill), tiny_model, out))
    assert code == 0, text
    assert "incidence: 6.2% of the pixels are exactly 0 (impossible incidence): treated as no data" in text
    with rasterio.open(out / "los_displacement.tif") as ds:
        assert np.isnan(ds.read(1)[:, :8]).all() and np.isfinite(ds.read(1)[:, 16:]).mean() > 0.9


def test_incidence_raster_negative_or_beyond_90_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    bad = crop(inp["incidence"], tmp_path / "inc95.tif", (0, 128), (0, 128), fn=lambda a: a + 55)
    code, text = cli(capsys, *phase_args(dict(inp, incidence=bad), tiny_model, tmp_path / "out"))
    _refused(code, text, "incidence values span", "outside 0..90", "impossible for SAR")
    assert tree(tmp_path / "out") == []


def test_constant_sar_amplitude_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    flat = crop(inp["sar"], tmp_path / "sar_flat.tif", (0, 128), (0, 128), fn=lambda a: a * 0 + 0.5)
    code, text = cli(capsys, "estimate", "--sar-pre", f"{inp['sar']}:1", "--sar-post", f"{flat}:2", "--model",
                     str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _refused(code, text, "sar_post", "every pixel has the same value (0.5)")


def test_wavelength_in_centimetres(capsys, inp, tiny_model, tmp_path) -> None:
    code, text = cli(capsys, *[("5.55" if a == WAVELENGTH else a) for a in phase_args(inp, tiny_model, tmp_path)])
    _refused(code, text, "wavelength 5.55 m is not a radar wavelength", "not centimetres")


# ---------------------------------------------------------------------------------- nodata
def test_zero_fill_without_nodata_tag_is_no_data_with_a_note(capsys, tiny_model, tmp_path) -> None:
    """Sentinel-2 crops with the swath edge filled with 0 and no nodata value (a real L1C property)."""
    pre = crop(BERLIN / "pair_ref.tif", tmp_path / "pre.tif", (512, 768), (256, 512))
    post = crop(BERLIN / "pair_tgt.tif", tmp_path / "post.tif", (512, 768), (256, 512))
    with rasterio.open(pre) as ds:
        assert ds.nodata is None
        zero = ds.read(1) == 0
    assert 0.05 < zero.mean() < 0.95
    out = tmp_path / "out"
    code, text = cli(capsys, "estimate", "--optical-pre", str(pre), "--optical-post", str(post), "--model",
                     str(tiny_model), "--out", str(out), "--quiet")
    assert code == 0, text
    assert "exactly 0 and the file has no nodata value: 0 is treated as no data" in text
    assert "gdal_edit.py -a_nodata 0" in text
    with rasterio.open(out / "displacement.tif") as ds:
        up = ds.read(3)
    assert np.isnan(up[zero]).mean() > 0.95


def test_zero_in_a_dem_is_a_value_with_a_note(capsys, inp, tiny_model, tmp_path) -> None:
    dem = crop(inp["dem"], tmp_path / "dem0.tif", (0, 128), (0, 128), nodata=None,
               fn=lambda a: np.where(np.arange(128)[None, :, None] < 20, 0.0, a))
    out = tmp_path / "out"
    code, text = cli(capsys, *optical_args(inp, tiny_model, out, "--dem", str(dem)))
    assert code == 0, text
    assert "dem:" in text and "0 is read as a value" in text


def test_coherence_threshold_one_leaves_a_note(capsys, inp, tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    code, text = cli(capsys, *phase_args(inp, tiny_model, out, "--coh-min", "1.0"))
    assert code == 0, text
    assert "the unwrapped phase is trusted on only 0 % of the pixels that have a phase" in text
    assert "lower --coh-min" in text
    with rasterio.open(out / "unwrap_regions.tif") as ds:  # MCF gives a value everywhere, none of it trusted
        assert (ds.read(1) == 0).all()


def test_coherence_threshold_above_one_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    code, text = cli(capsys, *phase_args(inp, tiny_model, tmp_path / "out", "--coh-min", "1.5"))
    _refused(code, text, "coherence threshold 1.5 is outside 0..1")


def test_input_covering_a_sliver_of_the_grid(capsys, inp, tiny_model, tmp_path) -> None:
    """The optical pair covers 0.15 % of the grid defined by --grid-like (a 10 x 10 px corner of a 256 x 256 grid)."""
    big = crop(THESSALY / "phase_wrapped.tif", tmp_path / "grid.tif", (0, 256), (0, 256))
    with rasterio.open(big) as ds:
        t = ds.transform
    corner = tmp_path / "corner.tif"
    with rasterio.open(inp["optical"]) as ds:
        a = ds.read(window=((0, 10), (0, 10)))
        prof = ds.profile | {"width": 10, "height": 10, "crs": "EPSG:32634", "transform": t}
    with rasterio.open(corner, "w", **prof) as ds:
        ds.write(a)
    out = tmp_path / "out"
    code, text = cli(capsys, "estimate", "--optical-pre", f"{corner}:1", "--optical-post", f"{corner}:2",
                     "--grid-like", str(big), "--model", str(tiny_model), "--out", str(out), "--quiet", "--tile", "64")
    assert code == 0, text
    assert "optical_pre covers only 0.15 % of the output grid" in text
    assert "only 0.15 % of the output grid has a displacement" in text
    run = json.loads((out / "run.json").read_text())
    assert run["valid_fraction"] == pytest.approx(100 / 256**2)
    assert run["tiles_without_data"] >= 1


def test_no_usable_pixel_fails_and_writes_nothing(capsys, inp, tiny_model, tmp_path) -> None:
    """Optical pair of one area, grid of another area that it does not reach with data (all NaN there)."""
    nan_half = crop(inp["optical"], tmp_path / "nan.tif", (0, 128), (0, 128),
                    fn=lambda a: np.where(np.arange(128)[None, None, :] < 64, np.nan, a))
    code, text = cli(capsys, "estimate", "--optical-pre", f"{nan_half}:1", "--optical-post", f"{nan_half}:2",
                     "--extent", "586400", "5165600", "592800", "5178400", "--model", str(tiny_model), "--out",
                     str(tmp_path / "out"), "--quiet")
    _refused(code, text, "no pixel of the output grid has usable data", "nothing was written")
    assert tree(tmp_path / "out") == []


def test_one_pixel_wide_strip_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    strip = crop(inp["optical"], tmp_path / "strip.tif", (0, 128), (60, 61))
    code, text = cli(capsys, "estimate", "--optical-pre", f"{strip}:1", "--optical-post", f"{strip}:2",
                     "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _refused(code, text, "is only 1 x 128 px", "at least 8 x 8 px", "Fix: give inputs covering a larger area")
    assert tree(tmp_path / "out") == [] and leftovers(tmp_path) == []


def test_empty_tiles_skip_the_model(capsys, inp, tiny_model, tmp_path) -> None:
    """A 128-px phase inside a 1024 x 1024 grid (1.6 % valid): tiles without data do not run the model."""
    t = rasterio.open(inp["phase"]).transform
    grid = tmp_path / "grid.vrt"
    grid.write_text(f"""<VRTDataset rasterXSize="1024" rasterYSize="1024"><SRS>EPSG:32759</SRS>
<GeoTransform>{t.c}, {t.a}, 0, {t.f}, 0, {t.e}</GeoTransform>
<VRTRasterBand dataType="Float32" band="1"/></VRTDataset>""")
    out = tmp_path / "out"
    code, text = cli(capsys, *phase_args(inp, tiny_model, out, "--grid-like", str(grid), "--tile", "256"))
    assert code == 0, text
    run = json.loads((out / "run.json").read_text())
    assert run["grid"]["width"] == 1024 and run["valid_fraction"] == pytest.approx(128**2 / 1024**2, rel=0.02)
    assert run["tiles_without_data"] >= run["parameters"]["n_tiles"] - 4
    assert "only 1.6 % of the output grid has a displacement" in text


# ---------------------------------------------------------------------------------- run settings
@pytest.mark.parametrize(("flag", "value", "fragment"), [
    ("--threads", "-3", "threads -3 is outside 1..1024"), ("--threads", "0", "threads 0 is outside"),
    ("--batch", "0", "batch 0 is outside 1..64"), ("--batch", "1000", "batch 1000 is outside 1..64"),
    ("--tile", "5", "tile 5 px is outside 64..4096"), ("--overlap", "900", "overlap 900 invalid"),
])
def test_run_settings_out_of_range(capsys, inp, tiny_model, tmp_path, flag, value, fragment) -> None:
    code, text = cli(capsys, *optical_args(inp, tiny_model, tmp_path / "out", flag, value))
    _refused(code, text, fragment, "Fix:")
    assert not (tmp_path / "out").exists()


def test_band_out_of_range(capsys, inp, tiny_model, tmp_path) -> None:
    code, text = cli(capsys, "estimate", "--optical-pre", f"{inp['optical']}:1", "--optical-post",
                     f"{inp['optical']}:3", "--model", str(tiny_model), "--out", str(tmp_path / "o"), "--quiet")
    _refused(code, text, "band 3 requested but the file has 2 band(s)")


def test_sar_in_db_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    db = crop(inp["sar"], tmp_path / "db.tif", (0, 128), (0, 128), fn=lambda a: 20 * np.log10(a))
    code, text = cli(capsys, "estimate", "--sar-pre", f"{db}:1", "--sar-post", f"{db}:2", "--model",
                     str(tiny_model), "--out", str(tmp_path / "o"), "--quiet")
    _refused(code, text, "looks like dB", "10**(dB/20)")


def test_inputs_in_crs_that_do_not_overlap(capsys, inp, tiny_model, tmp_path) -> None:
    moved = crop(inp["coherence"], tmp_path / "coh_elsewhere.tif", (0, 128), (0, 128), crs="EPSG:32634")
    code, text = cli(capsys, *phase_args(dict(inp, coherence=moved), tiny_model, tmp_path / "o"))
    _refused(code, text, "coherence", "overlap")


def test_model_file_that_is_not_onnx(capsys, inp, tmp_path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00" * 100)
    code, text = cli(capsys, *optical_args(inp, bad, tmp_path / "o"))
    _refused(code, text, "model", "ONNX Runtime cannot load it")
    assert tree(tmp_path / "o") == []


def test_geographic_input_note_free_run_json_lists_files(capsys, inp, tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    assert cli(capsys, *phase_args(inp, tiny_model, out))[0] == 0
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["files"]) == tree(out)
    assert run["replaced_previous_run_files"] == [] and math.isfinite(run["valid_fraction"])


def test_in_process_errors_name_the_input(inp, tiny_model, tmp_path) -> None:
    cfg = EstimateConfig(out_dir=tmp_path / "o", phase=InputRaster(THESSALY / "los_reference.tif"),
                         wavelength_m=0.0555, incidence_deg=39.0, heading_deg=-12.0, model_path=tiny_model)
    with pytest.raises(PipelineError) as ei:
        run_estimate(cfg)
    assert ei.value.input_name == "phase"


def test_phase_scaled_by_1000_is_named(capsys, tiny_model, tmp_path) -> None:
    scaled = crop(THESSALY / "phase_wrapped.tif", tmp_path / "pha_x1000.tif", (200, 456), (200, 456),
                  fn=lambda a: np.round(a * 1000), dtype="int16", nodata=None)
    code, text = cli(capsys, "estimate", "--phase", str(scaled), "--wavelength", WAVELENGTH, "--incidence", "39",
                     "--heading", "-12", "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _refused(code, text, "radians scaled by 1000", "divide by 1000")
    assert "UNWRAPPED" not in text


def test_coherence_in_percent(capsys, inp, tiny_model, tmp_path) -> None:
    pct = crop(inp["coherence"], tmp_path / "coh_pct.tif", (0, 128), (0, 128), fn=lambda a: a * 100)
    code, text = cli(capsys, *phase_args(dict(inp, coherence=pct), tiny_model, tmp_path / "out"))
    _refused(code, text, "outside 0..1", "look like percent: divide by 100")


def test_infinite_values_are_no_data(capsys, inp, tiny_model, tmp_path) -> None:
    inf = crop(inp["optical"], tmp_path / "inf.tif", (0, 128), (0, 128),
               fn=lambda a: np.where(np.arange(128)[None, :, None] < 16, np.inf, a))
    out = tmp_path / "out"
    code, text = cli(capsys, *optical_args(dict(inp, optical=inf), tiny_model, out))
    assert code == 0, text
    with rasterio.open(out / "displacement.tif") as ds:
        d = ds.read()
    assert np.isnan(d[:, :16]).all() and np.isfinite(d[:, 24:]).all()


def test_same_image_as_pre_and_post_gets_a_note(capsys, inp, tiny_model, tmp_path) -> None:
    link = tmp_path / "same.tif"
    link.symlink_to(inp["optical"])
    code, text = cli(capsys, "estimate", "--optical-pre", f"{inp['optical']}:1", "--optical-post", f"{link}:1",
                     "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 0, text
    assert "optical_pre and optical_post are the same image" in text and "0 by construction" in text
