"""backend.sarproducts: LiCSAR and HyP3 product folders -> phase, coherence, line of sight (synthetic GeoTIFFs named
like the real products), and ``--insar-product`` through the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin
from rasterio.windows import Window

from backend import cli
from backend.align import AlignedSource, Angles
from backend.config import InputRaster
from backend.conventions import SENTINEL1_WAVELENGTH_M, enu_to_los, los_unit_vector
from backend.errors import PipelineError
from backend.io import grid_from, validate_input
from backend.sarproducts import hyp3_angles_to_deg, hyp3_los_vector, read_product
from tests.conftest import ROOT, run_backend

H, W = 12, 16
CRS = "EPSG:32634"
T = from_origin(561000.0, 4441000.0, 80.0, 80.0)
PAIR = "20210301_20210313"
FRAME = "102A_05166_131313"
HYP3 = "S1AA_20210301T162324_20210313T162324_VVP012_INT80_G_ueF_1A2B"
# Sentinel-1 ascending, incidence 40, heading -12: ground -> satellite (-0.629, -0.134, 0.766)
ASC = los_unit_vector(40.0, -12.0)


def _tif(path: Path, data: np.ndarray, nodata: float | None = None, transform=T, crs=CRS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(data, 1)
    return path


def _phase(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, (H, W)).astype(np.float32)


def _read(p: InputRaster | Path) -> np.ndarray:
    with rasterio.open(p.path if isinstance(p, InputRaster) else p) as ds:
        return ds.read(1, masked=True).filled(np.nan)


def _licsar(root: Path, *, cc_uint8: bool = True, skip: tuple[str, ...] = ()) -> Path:
    """The portal layout: <frame>/interferograms/<pair>/ and <frame>/metadata/."""
    pair = root / FRAME / "interferograms" / PAIR
    _tif(pair / f"{PAIR}.geo.diff_pha.tif", _phase())
    _tif(pair / f"{PAIR}.geo.unw.tif", _phase() * 5)
    cc = np.full((H, W), 200, np.uint8) if cc_uint8 else np.full((H, W), 0.5, np.float32)
    _tif(pair / f"{PAIR}.geo.cc.tif", cc)
    for comp, v in zip("ENU", ASC):
        if comp not in skip:
            _tif(root / FRAME / "metadata" / f"{FRAME}.geo.{comp}.tif", np.full((H, W), v, np.float32))
    _tif(root / FRAME / "metadata" / f"{FRAME}.geo.hgt.tif", np.full((H, W), 250.0, np.float32))
    return pair


def _hyp3(root: Path, *, skip: tuple[str, ...] = (), theta_deg: float = 50.0, phi_deg: float = -168.0) -> Path:
    d = root / HYP3
    if "wrapped_phase" not in skip:
        _tif(d / f"{HYP3}_wrapped_phase.tif", _phase(1))
    _tif(d / f"{HYP3}_unw_phase.tif", np.where(np.arange(W) < 2, 0.0, _phase(1) + 4 * np.pi).astype(np.float32),
         nodata=0.0)
    _tif(d / f"{HYP3}_corr.tif", np.full((H, W), 0.7, np.float32))
    theta = np.full((H, W), np.radians(theta_deg), np.float32)
    theta[0, 0] = 0.0  # HyP3's fill value
    if "lv_theta" not in skip:
        _tif(d / f"{HYP3}_lv_theta.tif", theta, nodata=0.0)
    if "lv_phi" not in skip:
        _tif(d / f"{HYP3}_lv_phi.tif", np.full((H, W), np.radians(phi_deg), np.float32), nodata=0.0)
    _tif(d / f"{HYP3}_dem.tif", np.full((H, W), 300.0, np.float32))
    _tif(d / f"{HYP3}_water_mask.tif", np.ones((H, W), np.uint8))
    return d


def _pipeline_los(prod) -> np.ndarray:  # noqa: ANN001
    """The LOS unit vector the pipeline computes from the product's geometry (validate, align, Angles)."""
    geo = prod.geometry()
    if "los_vector" in geo:
        ins = [validate_input(n, r) for n, r in zip(("los_east", "los_north", "los_up"), geo["los_vector"])]
        grid = grid_from(ins[0])
        return Angles(None, None, tuple(AlignedSource(i, grid) for i in ins)).los(0, 0, H, W)
    inc = validate_input("incidence", geo["incidence_deg"])
    grid = grid_from(inc)
    hdg = geo["heading_deg"]
    hdg = AlignedSource(validate_input("heading", hdg), grid) if isinstance(hdg, InputRaster) else hdg
    return Angles(AlignedSource(inc, grid), hdg).los(0, 0, H, W)


# ------------------------------------------------------------------------------------------ conventions
def test_hyp3_angles_give_the_ground_to_satellite_vector() -> None:
    # ascending: the satellite looks east from the west, 50 deg above the horizon, phi = -168 deg (WSW)
    v = hyp3_los_vector(np.radians(50.0), np.radians(-168.0))
    assert np.allclose(v, [-0.62874, -0.13364, 0.76604], atol=1e-5)
    assert np.allclose(v, ASC, atol=1e-12)
    inc, hdg = hyp3_angles_to_deg(np.radians(50.0), np.radians(-168.0))
    assert inc == pytest.approx(40.0) and np.allclose(los_unit_vector(inc, hdg), v, atol=1e-12)
    # 1 m east moves away from a satellite in the west: -0.629 m towards it; 10 cm up: +0.0766 m
    assert enu_to_los(1.0, 0.0, 0.0, v) == pytest.approx(-0.62874, abs=1e-5)
    assert enu_to_los(0.0, 0.0, 0.1, v) == pytest.approx(0.076604, abs=1e-6)
    # descending: theta 55, phi -12 deg (satellite ESE) = incidence 35, heading -168
    d = hyp3_los_vector(np.radians(55.0), np.radians(-12.0))
    assert np.allclose(d, los_unit_vector(35.0, -168.0), atol=1e-12) and d[0] > 0.5


# ------------------------------------------------------------------------------------------ HyP3
def test_hyp3_folder_resolves_and_the_pipeline_reads_its_geometry(tmp_path: Path) -> None:
    d = _hyp3(tmp_path)
    prod = read_product(d, tmp_path / "cache")
    assert prod.kind == "HyP3" and prod.name == HYP3
    assert Path(prod.phase.path) == d / f"{HYP3}_wrapped_phase.tif"
    assert Path(prod.coherence.path) == d / f"{HYP3}_corr.tif"
    assert prod.wavelength_m == SENTINEL1_WAVELENGTH_M and prod.phase_sign == 1
    assert Path(prod.dem.path) == d / f"{HYP3}_dem.tif" and "water_mask" in prod.files
    inc, hdg = _read(prod.incidence_deg), _read(prod.heading_deg)
    assert np.isnan(inc[0, 0])  # theta 0 = HyP3 no data
    assert np.allclose(inc[1:, 1:], 40.0, atol=1e-4) and np.allclose(hdg, 348.0, atol=1e-4)
    los = _pipeline_los(prod)
    assert np.allclose(los[:, 1:, 1:], ASC[:, None, None], atol=1e-5)
    # any of its files names the same product
    again = read_product(d / f"{HYP3}_lv_phi.tif", tmp_path / "cache")
    assert again.phase == prod.phase and again.incidence_deg == prod.incidence_deg


def test_hyp3_without_wrapped_phase_wraps_the_unwrapped_one(tmp_path: Path) -> None:
    d = _hyp3(tmp_path, skip=("wrapped_phase",))
    prod = read_product(d / f"{HYP3}_unw_phase.tif", tmp_path / "cache")
    w = _read(prod.phase)
    assert np.isnan(w[:, :2]).all()  # HyP3 did not unwrap there (0)
    assert np.allclose(w[:, 2:], _phase(1)[:, 2:], atol=1e-5)
    assert any("unw_phase" in n for n in prod.notes) and prod.files["phase"].name.endswith("_unw_phase.tif")


def test_hyp3_missing_look_vector_names_the_file_and_the_fix(tmp_path: Path) -> None:
    d = _hyp3(tmp_path, skip=("lv_phi",))
    with pytest.raises(PipelineError) as e:
        read_product(d, tmp_path / "cache")
    msg = str(e.value)
    assert f"{HYP3}_lv_phi.tif" in msg and "include_look_vectors" in msg and "Fix:" in msg and "--heading" in msg


def test_hyp3_fallback_ellipsoid_incidence_and_heading_from_the_parameter_file(tmp_path: Path) -> None:
    d = _hyp3(tmp_path, skip=("lv_theta", "lv_phi"))
    _tif(d / f"{HYP3}_inc_map_ell.tif", np.full((H, W), np.radians(40.0), np.float32), nodata=0.0)
    _tif(d / f"{HYP3}_inc_map.tif", np.full((H, W), np.radians(10.0), np.float32))  # local: never used
    (d / f"{HYP3}.txt").write_text("Reference Pass Direction: ASCENDING\nHeading: -12.0\nBaseline: 40.1\n")
    prod = read_product(d, tmp_path / "cache")
    assert prod.heading_deg == -12.0 and np.allclose(_read(prod.incidence_deg), 40.0, atol=1e-4)
    assert np.allclose(_pipeline_los(prod), ASC[:, None, None], atol=1e-5)


# ------------------------------------------------------------------------------------------ LiCSAR
def test_licsar_portal_layout_resolves_from_folder_file_or_frame(tmp_path: Path) -> None:
    pair = _licsar(tmp_path)
    meta = tmp_path / FRAME / "metadata"
    for given in (pair, pair / f"{PAIR}.geo.cc.tif", tmp_path / FRAME):
        prod = read_product(given, tmp_path / "cache")
        assert prod.kind == "LiCSAR" and prod.name == PAIR
        assert Path(prod.phase.path) == pair / f"{PAIR}.geo.diff_pha.tif"
        assert [Path(r.path) for r in prod.los_vector] == [meta / f"{FRAME}.geo.{c}.tif" for c in "ENU"]
        assert Path(prod.dem.path) == meta / f"{FRAME}.geo.hgt.tif"
        assert prod.files["coherence"] == pair / f"{PAIR}.geo.cc.tif"
    # uint8 coherence 200 -> 200/255, and the user is told
    assert np.allclose(_read(prod.coherence), 200 / 255) and round(200 / 255, 3) == 0.784
    assert any("0..255" in n and "scaled" in n for n in prod.notes)
    assert validate_input("coherence", prod.coherence).notes == []
    assert np.allclose(_pipeline_los(prod), ASC[:, None, None], atol=1e-6)


def test_licsar_licsbas_geoc_layout_and_float_coherence(tmp_path: Path) -> None:
    geoc = tmp_path / "GEOC"
    _tif(geoc / PAIR / f"{PAIR}.geo.unw.tif", _phase(3) + 2 * np.pi)  # no diff_pha: wrapped from unw
    _tif(geoc / PAIR / f"{PAIR}.geo.cc.tif", np.full((H, W), 0.5, np.float32))
    for comp, v in zip("ENU", ASC):
        _tif(geoc / f"{FRAME}.geo.{comp}.tif", np.full((H, W), v, np.float32))
    prod = read_product(geoc / PAIR, tmp_path / "cache")
    assert Path(prod.coherence.path) == geoc / PAIR / f"{PAIR}.geo.cc.tif"  # float 0..1: used as is
    assert np.allclose(_read(prod.phase), _phase(3), atol=1e-5)
    assert Path(prod.los_vector[0].path) == geoc / f"{FRAME}.geo.E.tif" and prod.dem is None


def test_licsar_missing_up_component_names_the_file_and_the_fix(tmp_path: Path) -> None:
    pair = _licsar(tmp_path, skip=("U",))
    with pytest.raises(PipelineError) as e:
        read_product(pair, tmp_path / "cache")
    msg = str(e.value)
    assert f"{FRAME}.geo.U.tif" in msg and "missing" in msg and "Fix:" in msg and "COMET-LiCS" in msg
    assert f"{FRAME}.geo.E.tif" not in msg.split("Fix:")[0]


def test_unreadable_product_paths_say_what_to_give(tmp_path: Path) -> None:
    _licsar(tmp_path)
    second = tmp_path / FRAME / "interferograms" / "20210313_20210325"
    _tif(second / "20210313_20210325.geo.diff_pha.tif", _phase())
    cases = {tmp_path / FRAME: "holds 2 LiCSAR interferograms",
             tmp_path / FRAME / "metadata" / f"{FRAME}.geo.E.tif": "frame file, not an interferogram",
             tmp_path / "nope": "not found", tmp_path / "empty": "no LiCSAR interferogram"}
    (tmp_path / "empty").mkdir()
    zp = tmp_path / f"{HYP3}.zip"
    zp.write_bytes(b"PK")
    cases[zp] = "not a readable zip archive"
    for path, text in cases.items():
        with pytest.raises(PipelineError) as e:
            read_product(path, tmp_path / "cache")
        assert text in str(e.value) and "Fix:" in str(e.value), (path, str(e.value))


def test_a_hyp3_zip_is_read_as_downloaded_without_touching_it(tmp_path: Path) -> None:
    import zipfile

    folder = _hyp3(tmp_path / "src")
    zp = tmp_path / "dl" / f"{HYP3}.zip"
    zp.parent.mkdir()
    with zipfile.ZipFile(zp, "w") as z:  # the ASF layout: <name>/<name>_*.tif
        for f in sorted(folder.iterdir()):
            z.write(f, f"{HYP3}/{f.name}")
    before = zp.read_bytes()
    from_zip = read_product(zp, tmp_path / "cache")
    from_dir = read_product(folder, tmp_path / "cache")
    assert from_zip.kind == "HyP3" and from_zip.name == HYP3
    np.testing.assert_array_equal(_read(from_zip.phase), _read(from_dir.phase))
    np.testing.assert_array_equal(_read(from_zip.coherence), _read(from_dir.coherence))
    np.testing.assert_allclose(_read(from_zip.incidence_deg), _read(from_dir.incidence_deg))
    assert any("read from" in n for n in from_zip.notes)
    assert zp.read_bytes() == before and sorted(p.name for p in zp.parent.iterdir()) == [zp.name]
    assert read_product(zp, tmp_path / "cache").phase.path == from_zip.phase.path  # extracted once
    empty = tmp_path / "other.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "x")
    with pytest.raises(PipelineError, match="holds no HyP3 interferogram"):
        read_product(empty, tmp_path / "cache")


# ------------------------------------------------------------------------------------------ CLI
def _args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    cli._add_estimate_args(ap)
    return ap.parse_args([*argv, "--out", "o"])


def test_cli_products_expand_into_interferograms_and_explicit_options_win(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QUAKEFUSION_CACHE", str(tmp_path / "cache"))
    pair, hyp = _licsar(tmp_path / "l"), _hyp3(tmp_path / "h")
    cfg, problems, notes = cli.config_and_notes(_args("--insar-product", str(pair), "--insar-product", str(hyp)))
    assert problems == [] and len(cfg.ifgs()) == 2
    lic, h3 = cfg.ifgs()
    assert isinstance(lic.los_vector, tuple) and lic.wavelength_m == SENTINEL1_WAVELENGTH_M and lic.phase_sign == 1
    assert str(h3.incidence_deg.path).endswith(".vrt") and h3.los_vector is None
    assert Path(cfg.dem.path).name == f"{FRAME}.geo.hgt.tif" and any("DEM from the LiCSAR" in n for n in notes)
    # explicit geometry for the 2nd interferogram replaces the product's; --coherence/--dem given once win
    coh = _tif(tmp_path / "coh.tif", np.full((H, W), 0.9, np.float32))
    cfg, problems, _ = cli.config_and_notes(_args(
        "--insar-product", str(pair), "--insar-product", str(hyp), "--incidence", "0", "--incidence", "35",
        "--heading", "0", "--heading", "-168", "--coherence", str(coh), "--dem", str(coh)))
    lic, h3 = cfg.ifgs()
    assert (h3.incidence_deg, h3.heading_deg, h3.los_vector) == (35.0, -168.0, None)
    assert Path(lic.coherence.path) == coh == Path(h3.coherence.path) and Path(cfg.dem.path) == coh
    # --phase first, then the products; a product that cannot be read is a problem naming it
    cfg, problems, _ = cli.config_and_notes(_args("--phase", str(coh), "--insar-product", str(tmp_path / "x")))
    assert len(cfg.ifgs()) == 1 and problems[0].input == "insar_product" and "not found" in problems[0].message


def _crop(dst: Path) -> None:
    src = ROOT / "data" / "thessaly2021" / "phase_wrapped.tif"
    with rasterio.open(src) as ds:
        win = Window(300, 300, 96, 80)
        prof = ds.profile | {"width": 96, "height": 80, "transform": ds.window_transform(win), "tiled": False}
        prof.pop("blockxsize"), prof.pop("blockysize")
        data = ds.read(1, window=win)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **prof) as ds:
        ds.write(data, 1)


def test_cli_run_uses_the_product_geometry(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    monkeypatch.setenv("QUAKEFUSION_CACHE", str(tmp_path / "cache"))
    d = tmp_path / HYP3
    _crop(d / f"{HYP3}_wrapped_phase.tif")
    with rasterio.open(d / f"{HYP3}_wrapped_phase.tif") as ds:
        shape, t, crs = ds.shape, ds.transform, ds.crs
    _tif(d / f"{HYP3}_corr.tif", np.full(shape, 0.8, np.float32), transform=t, crs=crs)
    _tif(d / f"{HYP3}_lv_theta.tif", np.full(shape, np.radians(50.0), np.float32), 0.0, t, crs)
    _tif(d / f"{HYP3}_lv_phi.tif", np.full(shape, np.radians(-168.0), np.float32), 0.0, t, crs)
    out = tmp_path / "out"
    p = run_backend("estimate", "--insar-product", str(d), "--out", str(out), "--model", str(tiny_model),
                    "--tile", "64", "--overlap", "16", "--quiet")
    assert p.returncode == 0, p.stderr
    assert "note: HyP3" in p.stderr and "incidence = 90 - theta" in p.stderr
    run = json.loads((out / "run.json").read_text())
    ifg = run["parameters"]["interferograms"][0]
    assert ifg["phase"].endswith("_wrapped_phase.tif") and ifg["wavelength_m"] == SENTINEL1_WAVELENGTH_M
    assert ifg["incidence_deg"].endswith(".vrt") and ifg["heading_deg"].endswith(".vrt")
    assert run["inputs"]["coherence"]["path"].endswith("_corr.tif") and "incidence" in run["inputs"]
    with rasterio.open(ifg["incidence_deg"]) as ds:
        assert np.allclose(ds.read(1), 40.0, atol=1e-4)
    with rasterio.open(out / "unwrapped_phase.tif") as ds:
        assert np.isfinite(ds.read(1)).mean() > 0.9


def test_cli_asc_licsar_plus_desc_hyp3_equals_the_explicit_options(tmp_path: Path, tiny_model: Path,
                                                                    monkeypatch) -> None:
    """Ascending as a LiCSAR folder, descending as a HyP3 product (look-vector angles): the run gives the same
    east/north/up as the same rasters given with --phase/--coherence/--los-vector (ground -> satellite E/N/U)."""
    from models.scene import simulate_scene
    from models.sim_tracks import render_tracks

    monkeypatch.setenv("QUAKEFUSION_CACHE", str(tmp_path / "cache"))
    s = simulate_scene(3, size=(96, 96), pixel_size_m=60.0, overrides={"mw_range": (6.0, 6.2)})
    asc, desc = render_tracks(s, tracks=(("ascending", "C"), ("descending", "C")), seed=3)
    t, crs = Affine(*s.transform), f"EPSG:{s.crs}"
    ref: dict[str, list[str]] = {"--phase": [], "--coherence": [], "--los-vector": []}
    for tr, kind in ((asc, "licsar"), (desc, "hyp3")):
        sign = tr.phase_sign  # the products' sign is +1
        phase = (tr.wrapped_phase if sign == 1 else -tr.wrapped_phase).astype(np.float32)
        v = np.broadcast_to(np.asarray(tr.los_unit_vector, np.float32), (3, *phase.shape))
        if kind == "licsar":
            d = tmp_path / FRAME / "interferograms" / PAIR
            ph = _tif(d / f"{PAIR}.geo.diff_pha.tif", phase, transform=t, crs=crs)
            co = _tif(d / f"{PAIR}.geo.cc.tif", tr.coherence.astype(np.float32), transform=t, crs=crs)
            enu = [_tif(tmp_path / FRAME / "metadata" / f"{FRAME}.geo.{c}.tif", np.ascontiguousarray(v[i]),
                        transform=t, crs=crs) for i, c in enumerate("ENU")]
            lic = d
        else:
            d = tmp_path / HYP3
            ph = _tif(d / f"{HYP3}_wrapped_phase.tif", phase, transform=t, crs=crs)
            co = _tif(d / f"{HYP3}_corr.tif", tr.coherence.astype(np.float32), transform=t, crs=crs)
            _tif(d / f"{HYP3}_lv_theta.tif", np.arcsin(v[2]).astype(np.float32), 0.0, t, crs)
            _tif(d / f"{HYP3}_lv_phi.tif", np.arctan2(v[1], v[0]).astype(np.float32), 0.0, t, crs)
            enu = [_tif(tmp_path / "ref" / f"desc_{c}.tif", np.ascontiguousarray(v[i]), transform=t, crs=crs)
                   for i, c in enumerate("ENU")]
        ref["--phase"].append(str(ph))
        ref["--coherence"].append(str(co))
        ref["--los-vector"].append(",".join(map(str, enu)))
    common = ["--model", str(tiny_model), "--tile", "64", "--overlap", "16", "--quiet"]
    p = run_backend("estimate", "--insar-product", str(lic), "--insar-product", str(tmp_path / HYP3),
                    "--out", str(tmp_path / "prod"), *common)
    assert p.returncode == 0, p.stderr
    argv = [x for k, vals in ref.items() for v in vals for x in (k, v)]
    q = run_backend("estimate", *argv, "--wavelength", str(SENTINEL1_WAVELENGTH_M), "--phase-sign", "1",
                    "--out", str(tmp_path / "ref_out"), *common)
    assert q.returncode == 0, q.stderr
    with rasterio.open(tmp_path / "prod" / "displacement.tif") as a, \
            rasterio.open(tmp_path / "ref_out" / "displacement.tif") as b:
        da, db = a.read(), b.read()
    ok = np.isfinite(db[0])
    assert ok.mean() > 0.8 and np.array_equal(np.isfinite(da[0]), ok)  # asc + desc constrain east
    assert np.allclose(da[:, ok], db[:, ok], atol=1e-5, equal_nan=True) and np.abs(db[0, ok]).max() > 0.01


# ------------------------------------------------------------------------------------------ Processing (app/runner)
def test_processing_runspec_products_become_interferograms(tmp_path: Path, monkeypatch) -> None:
    from app.runner import RunSpec, build_config, problems

    monkeypatch.setenv("QUAKEFUSION_CACHE", str(tmp_path / "cache"))
    pair, hyp = _licsar(tmp_path / "l"), _hyp3(tmp_path / "h")
    spec = RunSpec(out_root=tmp_path / "out", run_name="r", incidence_deg=39.0, heading_deg=-12.0,
                   products=[str(pair), str(hyp)])
    cfg = build_config(spec, tmp_path / "out" / "r")
    lic, h3 = cfg.ifgs()
    assert Path(lic.phase.path).name == f"{PAIR}.geo.diff_pha.tif" and isinstance(lic.los_vector, tuple)
    assert str(h3.incidence_deg.path).endswith(".vrt") and h3.wavelength_m == SENTINEL1_WAVELENGTH_M
    assert Path(cfg.dem.path).name == f"{FRAME}.geo.hgt.tif"
    assert problems(spec, str.upper) == []
    (tmp_path / "h" / HYP3 / f"{HYP3}_lv_theta.tif").unlink()
    found = problems(spec, str.upper)
    assert found[0].input == "insar_product" and f"{HYP3}_lv_theta.tif" in found[0].message
    with pytest.raises(PipelineError, match="lv_theta"):
        build_config(spec, tmp_path / "out" / "r")
