"""Fault offsets from stacked profiles (backend/offsets.py), single profiles, arrows and the CLI, on known truth."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest

from backend.geodata import load_run, read_table, write_layers
from backend.offsets import CSV_COLUMNS, offset_layers, offsets_along_trace, profile_along_line
from backend.tools_cli import main
from backend.trace import TraceParams, extract_trace, trace_layers
from backend.vectors import ARROW_FIELDS, arrow_layers, make_arrows


def fault_scene(rake: float, slip: float = 1.5, strike: float = 30.0, size: int = 96, pixel: float = 25.0):
    """A scene-like object (what models.testing.write_truth_run needs) of one vertical surface-rupturing
    Okada patch through the centre: rake 180 = right-lateral, 0 = left-lateral."""
    from models.okada import Patch, patches_displacement

    p = Patch(east=0.0, north=0.0, top_depth=0.0, strike=strike, dip=89.9, rake=rake, slip=slip, length=20e3,
              width=10e3)
    c = (np.arange(size) + 0.5 - size / 2) * pixel
    E, N = np.meshgrid(c, -c)
    u = np.stack(patches_displacement([p], E, N))
    s = math.radians(strike)
    dist = np.abs(E * math.cos(s) - N * math.sin(s))
    x0, y0 = 500000.0, 4000000.0
    return SimpleNamespace(truth_enu=u, crs=32633, transform=(pixel, 0.0, x0 - size / 2 * pixel, 0.0, -pixel,
                                                              y0 + size / 2 * pixel),
                           rupture_mask=dist <= 1.5 * pixel, params={"seed": None, "event_params": {"rake": rake}},
                           pixel_size_m=pixel, centre=(x0, y0), strike=strike)


def test_offsets_cli_along_the_extracted_trace_match_the_truth(mw69_run, mw69_truth):
    rc = main(["offsets", str(mw69_run), "--spacing", "500", "--length", "2000", "--width", "200",
               "--exclude", "90"])
    assert rc == 0
    for name in ("rupture_trace.gpkg", "fault_offsets.gpkg", "fault_offsets.csv", "slip_along_strike.png"):
        assert (mw69_run / name).stat().st_size > 0
    with (mw69_run / "fault_offsets.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:7] == CSV_COLUMNS
    assert 15 <= len(rows) <= 16  # ~7.9 km of trace every 500 m
    err, sig, rel = [], [], []
    for r in rows:
        truth = mw69_truth(float(r["x"]), float(r["y"]))
        v, s = float(r["parallel_m"]), float(r["parallel_sigma_m"])
        assert v > 0  # rake 2 deg = left-lateral -> positive (documented: negative = right-lateral)
        err.append(abs(v - truth["parallel"]))
        sig.append(s)
        rel.append(abs(v - truth["parallel"]) / truth["parallel"])
        if truth["to_patch_end_m"] > 1000:  # away from the slip step between two patches
            assert rel[-1] < 0.05
            assert abs(float(r["vertical_m"]) - truth["vertical"]) < 3 * float(r["vertical_sigma_m"]) + 0.02
            assert abs(float(r["normal_m"]) - truth["normal"]) < 3 * float(r["normal_sigma_m"]) + 0.02
        assert 0.005 < s < 0.1
    assert np.median(rel) < 0.10 and np.median(rel) < 0.02
    assert np.median(err) <= np.median(sig)  # the stated sigma covers the typical error
    assert 0.5 <= np.mean(np.array(err) <= np.array(sig)) <= 0.95  # ~68 % within 1 sigma: honest, not inflated
    names, pts = read_table(mw69_run / "fault_offsets.gpkg", "offsets")
    assert all(len(n) <= 10 for n in names) and len(pts) == len(rows)
    np.testing.assert_allclose([p["par_m"] for p in pts], [float(r["parallel_m"]) for r in rows], atol=1e-4)
    _, lines = read_table(mw69_run / "fault_offsets.gpkg", "profiles")
    assert len(lines) == len(rows) and lines[0]["_geom"].startswith("LINESTRING")


@pytest.mark.parametrize("rake,sign", [(180.0, -1), (0.0, 1)])
def test_right_lateral_is_negative_whatever_the_trace_direction(tmp_path, rake, sign):
    from models.testing import write_truth_run

    sc = fault_scene(rake)
    run = load_run(write_truth_run(sc, tmp_path / "run", probability=False))
    x0, y0 = sc.centre
    s = math.radians(sc.strike)
    t = np.array([math.sin(s), math.cos(s)])
    line = np.array([[x0, y0] - 1000 * t, [x0, y0] + 1000 * t])
    for drawn in (line, line[::-1]):
        prof = offsets_along_trace(run, [drawn], spacing=500, length=1000, width=100, exclude=50)
        assert len(prof) == 4
        for p in prof:
            v, sg = p.offsets["parallel"]
            assert sign * v == pytest.approx(1.5, rel=0.03)
            assert abs(p.offsets["vertical"][0]) < 0.01 and abs(p.offsets["normal"][0]) < 0.01
    # the trace extracted from the displacement step, and a single profile drawn across the fault either way
    lines, source = extract_trace(run, TraceParams(method="step"))
    assert source == "step" and len(lines) == 1
    n = np.array([t[1], -t[0]])
    for a, b in (([x0, y0] - 800 * n, [x0, y0] + 800 * n), ([x0, y0] + 800 * n, [x0, y0] - 800 * n)):
        pr = profile_along_line(run, np.array([a, b]), width=100, exclude=50)
        assert pr.fault_m == pytest.approx(800, abs=0.5 * sc.pixel_size_m)
        assert sign * pr.steps["parallel"]["value"] == pytest.approx(1.5, rel=0.03)
        assert pr.steps["parallel"]["sigma"] < 0.05
        assert set(pr.values) == {"east", "north", "up", "parallel", "normal"}
        assert len(pr.distance_m) == len(pr.values["east"]) > 50
        pr.write_csv(tmp_path / "profile.csv")
        with (tmp_path / "profile.csv").open() as f:
            prow = list(csv.DictReader(f))
        assert len(prow) == len(pr.distance_m) and "parallel_m" in prow[0]
        names, pts = read_table(pr.write_gpkg(tmp_path / "profile.gpkg", run.crs_wkt), "profile_pts")
        assert len(pts) == len(pr.distance_m) and names[0] == "dist_m"
        _, pl = read_table(tmp_path / "profile.gpkg", "profile_line")
        assert pl[0]["par_m"] == pytest.approx(pr.steps["parallel"]["value"])
        pr.plot(tmp_path / "profile.png")
        assert (tmp_path / "profile.png").stat().st_size > 10_000


def test_shapefile_export_keeps_field_names_and_azimuths(mw69_run, tmp_path):
    run = load_run(mw69_run)
    lines, _ = extract_trace(run)
    prof = offsets_along_trace(run, lines, 1000, 2000, 200, 90)
    shp = write_layers(tmp_path / "shp", offset_layers(prof, 2000, 200, 90) + trace_layers(lines, "probability"),
                       run.crs_wkt)
    assert {p.name for p in shp} == {"offsets.shp", "profiles.shp", "rupture_trace.shp", "trace_seg.shp"}
    names, rows = read_table(tmp_path / "shp" / "offsets.shp")
    assert names == list(offset_layers(prof, 1, 1, 1)[0].fields)
    assert rows[0]["par_m"] == pytest.approx(prof[0].offsets["parallel"][0], abs=1e-5)
    res = make_arrows(run, step_px=32, trace=lines)
    written = write_layers(tmp_path / "arrows.shp", arrow_layers(res, run.bounds, ellipses=True), run.crs_wkt)
    assert len(written) == 4
    names, rows = read_table(tmp_path / "arrows_arrows.shp")
    assert names == list(ARROW_FIELDS)
    az = np.array([r["azimuth"] for r in rows])
    de, dn = np.array([r["de_m"] for r in rows]), np.array([r["dn_m"] for r in rows])
    np.testing.assert_allclose(az, np.mod(np.degrees(np.arctan2(de, dn)), 360), atol=1e-4)
    assert az.std() > 10  # not all north
    np.testing.assert_allclose([r["length"] for r in rows], np.hypot(de, dn) * res["scale"], rtol=1e-5)
    _, ref = read_table(tmp_path / "arrows_arrow_ref.shp")
    assert ref[0]["label"] == f"{res['ref_m']:g} m" and ref[0]["length"] == pytest.approx(res["ref_m"] * res["scale"])


def test_arrows_are_never_averaged_across_the_trace(mw69_run, mw69_scene):
    run = load_run(mw69_run)
    lines, _ = extract_trace(run)
    truth = np.asarray(mw69_scene.truth_enu)
    samp = make_arrows(run, step_px=8)
    r, c = run.rowcol(np.array([a["x"] for a in samp["arrows"]]), np.array([a["y"] for a in samp["arrows"]]))
    np.testing.assert_allclose([a["de_m"] for a in samp["arrows"]],
                               run.disp[0, np.round(r).astype(int), np.round(c).astype(int)], atol=1e-6)
    mean = make_arrows(run, step_px=8, trace=lines, mode="mean")
    t = np.array([math.sin(math.radians(73.7)), math.cos(math.radians(73.7))])
    for a in mean["arrows"]:
        i, j = (int(round(v)) for v in run.rowcol(a["x"], a["y"]))
        par_truth = truth[0, i, j] * t[0] + truth[1, i, j] * t[1]
        # within 5 cm + noise of the truth at its own pixel: a cross-trace average would be off by ~1 m
        assert abs(a["de_m"] * t[0] + a["dn_m"] * t[1] - par_truth) < 0.15


def test_outputs_open_in_qgis_as_editable_layers(qgis_app, mw69_run, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem, QgsVectorDataProvider, QgsVectorLayer, QgsWkbTypes

    assert main(["offsets", str(mw69_run), "--spacing", "1000", "--length", "2000", "--width", "200",
                 "--exclude", "90", "--out-dir", str(tmp_path)]) == 0
    assert main(["arrows", str(mw69_run), "--out", str(tmp_path / "shp"), "--step", "32", "--ellipses"]) == 0
    run = load_run(mw69_run)
    crs = QgsCoordinateReferenceSystem.fromWkt(run.crs_wkt)
    cases = [(tmp_path / "rupture_trace.gpkg", "rupture_trace", QgsWkbTypes.LineGeometry, 1),
             (tmp_path / "rupture_trace.gpkg", "trace_seg", QgsWkbTypes.LineGeometry, None),
             (tmp_path / "fault_offsets.gpkg", "offsets", QgsWkbTypes.PointGeometry, 8),
             (tmp_path / "fault_offsets.gpkg", "profiles", QgsWkbTypes.LineGeometry, 8),
             (tmp_path / "shp" / "arrows.shp", None, QgsWkbTypes.PointGeometry, 64),
             (tmp_path / "shp" / "ellipses.shp", None, QgsWkbTypes.PolygonGeometry, 64)]
    for path, layer, geom, count in cases:
        uri = f"{path}|layername={layer}" if layer else str(path)
        lyr = QgsVectorLayer(uri, layer or path.stem, "ogr")
        assert lyr.isValid(), uri
        assert lyr.geometryType() == geom
        assert lyr.crs() == crs
        if count is not None:
            assert lyr.featureCount() == count, uri
        caps = lyr.dataProvider().capabilities()
        assert caps & QgsVectorDataProvider.ChangeGeometries and caps & QgsVectorDataProvider.AddFeatures
    arrows = QgsVectorLayer(str(tmp_path / "shp" / "arrows.shp"), "arrows", "ogr")
    assert [f.name() for f in arrows.fields()] == list(ARROW_FIELDS)
    az = [f["azimuth"] for f in arrows.getFeatures()]
    assert max(az) - min(az) > 90  # real azimuths, not a truncated field read as 0 (north)


def test_an_edited_trace_in_the_run_folder_is_used_and_kept(mw69_run, tmp_path):
    import shutil

    from backend.geodata import point_at
    from backend.trace import write_trace

    run_dir = tmp_path / "run"
    shutil.copytree(mw69_run, run_dir)
    run = load_run(run_dir)
    lines, _ = extract_trace(run)
    half = np.array([lines[0][0], point_at(lines[0], 3000.0)])  # "edited" in QGIS: the first 3 km only
    write_trace(run_dir / "rupture_trace.gpkg", [half], run.crs_wkt, "user")
    before = (run_dir / "rupture_trace.gpkg").read_bytes()
    args = ["offsets", str(run_dir), "--spacing", "500", "--length", "2000", "--width", "200", "--no-plot"]
    assert main(args) == 0
    with (run_dir / "fault_offsets.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 6  # 250, 750, ..., 2750 m
    assert (run_dir / "rupture_trace.gpkg").read_bytes() == before
    assert main(args + ["--new-trace"]) == 0
    with (run_dir / "fault_offsets.csv").open() as f:
        assert len(list(csv.DictReader(f))) >= 15
    _, rows = read_table(run_dir / "rupture_trace.gpkg", "rupture_trace")
    assert rows[0]["source"] == "probability" and rows[0]["length_m"] > 7000


def test_fault_component_and_significance_rasters(mw69_run, mw69_truth, tmp_path):
    import rasterio

    assert main(["components", str(mw69_run), "--out-dir", str(tmp_path)]) == 0
    run = load_run(mw69_run)
    lines, _ = extract_trace(run)
    with rasterio.open(tmp_path / "fault_components.tif") as ds:
        comp = ds.read()
        assert ds.count == 4 and ds.crs.to_wkt() == run.crs_wkt and ds.transform == run.transform
        assert ds.descriptions[0].startswith("fault-parallel") and ds.tags(1)["units"] == "m"
    with rasterio.open(tmp_path / "significance.tif") as ds:
        sig = ds.read(1)
    # 3 px each side of the trace, 2 km along it: right minus left of d.t = the true left-lateral slip
    from backend.geodata import point_at

    c = point_at(lines[0], 2000.0)
    t = (point_at(lines[0], 2100.0) - point_at(lines[0], 1900.0)) / 200.0
    n = np.array([t[1], -t[0]])
    r, l_ = c + 3 * run.pixel_size * n, c - 3 * run.pixel_size * n
    par = run.sample(comp[0], np.array([r[0], l_[0]]), np.array([r[1], l_[1]]))
    assert par[0] - par[1] == pytest.approx(mw69_truth(*c)["parallel"], abs=0.25)  # 5 cm noise per pixel
    assert par[0] > 0 > par[1]
    np.testing.assert_allclose(comp[2], 0.05, rtol=1e-5)  # sigma_E = sigma_N = 5 cm -> 5 cm along any t
    assert np.nanmedian(sig) > 10  # ~1 m displacements with 5 cm errors


def test_sigma_of_stacked_offsets_covers_spatially_correlated_noise(tmp_path):
    """A network's output is smooth over its windows: noise correlated over ~15 px. With the error correlation
    measured on each stack (the default) the stated sigma covers the offsets' errors at least as a 1-sigma should;
    assuming independent pixels (corr_px=1) it covers about half of them."""
    import rasterio
    from scipy import ndimage

    from models.testing import write_truth_run

    sc = fault_scene(rake=0.0, size=160, pixel=25.0)
    ref_dir = write_truth_run(sc, tmp_path / "truth", probability=False)
    lines = [np.array([[sc.centre[0] - 1500 * math.sin(math.radians(30)), sc.centre[1] - 1500 * math.cos(
        math.radians(30))], [sc.centre[0] + 1500 * math.sin(math.radians(30)),
                             sc.centre[1] + 1500 * math.cos(math.radians(30))]])]
    ref = [p.offsets["parallel"][0] for p in offsets_along_trace(load_run(ref_dir), lines, 300, 1000, 200)]
    z = {"auto": [], "independent": []}
    for seed in range(6):
        run_dir = write_truth_run(sc, tmp_path / f"noisy{seed}", probability=False)
        rng = np.random.default_rng(seed)
        noise = ndimage.gaussian_filter(rng.normal(size=(3, 160, 160)), (0, 6, 6))
        noise *= 0.1 / noise.std()  # 10 cm per pixel, correlated over ~15 px
        with rasterio.open(run_dir / "displacement.tif", "r+") as ds:
            ds.write((ds.read() + noise).astype(np.float32))
        with rasterio.open(run_dir / "displacement_sigma.tif", "r+") as ds:
            ds.write(np.full((3, 160, 160), 0.1, np.float32))
        run = load_run(run_dir)
        for key, cp in (("auto", None), ("independent", 1.0)):
            prof = offsets_along_trace(run, lines, 300, 1000, 200, corr_px=cp)
            z[key] += [abs(p.offsets["parallel"][0] - r) / p.offsets["parallel"][1] for p, r in zip(prof, ref)]
    share = {k: float(np.mean(np.array(v) < 1.0)) for k, v in z.items()}
    assert len(z["auto"]) >= 40
    # measured: 0.88 (a little conservative) against 0.53 when the pixels are taken as independent
    assert 0.68 <= share["auto"] <= 0.95, share
    assert share["independent"] < 0.6 and share["auto"] > share["independent"] + 0.2, share


def test_offsets_keep_what_supports_a_line_search_trace(mw69_run, tmp_path, capsys):
    # offsets that extract their own trace by line search write its step_z / signif into their rupture_trace.gpkg
    args = ["offsets", str(mw69_run), "--spacing", "1000", "--length", "2000", "--width", "200", "--no-plot",
            "--new-trace", "--method", "line", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    assert "times the largest of shuffled copies" in capsys.readouterr().out
    _, rows = read_table(tmp_path / "rupture_trace.gpkg", "rupture_trace")
    assert rows[0]["source"] == "line" and rows[0]["signif"] >= 2.0 and rows[0]["step_z"] > 0


def test_a_side_with_every_sample_at_one_distance_has_no_line_not_a_crash() -> None:
    """Found on a model run: a stack side whose samples all lie 30 m from the trace (to 1e-9 m) made the normal
    matrix singular to rounding, its 'inverse' had a negative variance and sqrt raised. Now: NaN, as for < 3
    samples; a well-spread side still fits, in any units."""
    from backend.offsets import fit_side

    rng = np.random.default_rng(0)
    d = 30.0 + rng.uniform(0, 1e-9, 19)
    a, sa, b = fit_side(d, rng.normal(1.0, 0.5, 19), np.full(19, 1.9), 1.0)
    assert math.isnan(a) and math.isnan(sa) and math.isnan(b)
    d = np.linspace(30.0, 500.0, 40)
    for unit in (1.0, 1e-3):  # metres or kilometres: the same line
        a, sa, b = fit_side(d * unit, 2.0 + 0.001 * d, np.full(40, 0.1), 1.0)
        assert a == pytest.approx(2.0, abs=1e-9) and b * unit == pytest.approx(0.001, abs=1e-12) and 0 < sa < 0.1


def test_small_offsets_of_a_run_that_fused_the_sar_pair_carry_a_caution(mw69_run, tmp_path, capsys):
    """The fused SAR amplitude pair reads small steps short near a rupture (slope 0.81 vs 0.93 optical alone on
    this Mw 6.9 scene, models/MODEL_CARD.md): the offsets tool says so, and what to do, for offsets below one
    pixel; not for a run without the SAR pair, nor for offsets of a pixel or more."""
    from backend.geodata import read_run_json, run_pixel_size
    from backend.offsets import fusion_caveats
    from backend.report import make_report
    from models.testing import copy_run_with_inputs as _with_inputs

    both = _with_inputs(mw69_run, tmp_path / "both", ["optical_pre", "optical_post", "sar_pre", "sar_post", "dem"])
    assert main(["offsets", str(both), "--spacing", "1000", "--length", "2000", "--width", "200",
                 "--exclude", "90"]) == 0
    err = capsys.readouterr().err
    assert "note: This run fused the SAR amplitude pair" in err and "optical pair and the DEM only" in err
    assert "(30 m here)" in err  # one pixel of this 30-m grid
    with (both / "fault_offsets.csv").open() as f:
        par = [float(r["parallel_m"]) for r in csv.DictReader(f)]
    assert 1.9 < np.median(par) < 2.6  # 0.07-0.09 px: below the 1-px limit
    run = load_run(both)
    assert run_pixel_size(both) == run.pixel_size == 30.0 and read_run_json(both) == run.run_json
    assert len(fusion_caveats(run.run_json, run.pixel_size, par)) == 1
    # median >= 1 px (30 m): the SAR pair does no harm there
    assert fusion_caveats(run.run_json, run.pixel_size, [35.0, 31.0, 25.0]) == []
    optical = _with_inputs(mw69_run, tmp_path / "optical", ["optical_pre", "optical_post", "dem"])
    assert fusion_caveats(read_run_json(optical), run_pixel_size(optical), par) == []
    sar_only = _with_inputs(mw69_run, tmp_path / "sar", ["sar_pre", "sar_post"])
    # nothing to compare with: its sigma says it
    assert fusion_caveats(read_run_json(sar_only), run_pixel_size(sar_only), par) == []
    rep = make_report(both, tmp_path / "report.pdf")  # the report's summary page carries it too
    assert rep["pages"] == 4 and any(n.startswith("This run fused the SAR amplitude pair") for n in rep["notes"])
