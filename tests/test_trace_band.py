"""The rupture trace moved onto the interferogram's decorrelation band (backend/trace_band.py): the simulated Mw 6.9
phase puts a trace drawn 5 px off back on the rupture; the real Thessaly 2021 interferogram (no surface rupture
in it) moves no line; the tools say where the band moved the trace."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio

from backend.geodata import cumulative_length, load_run, read_table, signed_distance
from backend.trace import TRACE_LAYER, TraceParams, extract_trace_stats
from backend.trace_band import BandParams, coherent_along, decorrelation_map, move_onto_band
from models.testing import true_trace_rc

from .test_trace import share_within

ROOT = Path(__file__).resolve().parents[1]


def as_lines(run, rcs) -> list[np.ndarray]:  # noqa: ANN001
    return [np.column_stack(run.xy(rc[:, 0], rc[:, 1])) for rc in rcs]


def test_a_trace_drawn_5_px_off_moves_back_onto_the_rupture(mw69_phase_run, mw69_scene):
    run = load_run(mw69_phase_run)
    band, files = decorrelation_map(mw69_phase_run, run.shape)
    assert files == ["rewrapped_phase.tif"]
    # the band: the wrapped phase loses its consistency within ~2 px (60 m) of the rupture
    dist = np.asarray(mw69_scene.distance_to_rupture_m)
    assert np.nanmean(band[dist < 30]) > 0.55 > 0.25 > np.nanmean(band[(dist > 300) & (dist < 1000)])
    true = true_trace_rc(mw69_scene)
    assert sum(cumulative_length(x)[-1] for x in true) > 200  # px: the whole ~7.9 km trace
    drawn, moved = [], []
    for rc in true:
        t = (rc[-1] - rc[0]) / np.hypot(*(rc[-1] - rc[0]))
        drawn.append(rc + 5.0 * np.array([t[1], -t[0]]))  # 5 px (150 m) to the right of the rupture
        new, share = move_onto_band(drawn[-1], band)
        assert share >= 0.8
        moved.append(new)
    assert share_within(run, mw69_scene, as_lines(run, drawn), tol_px=2.0) == 0.0  # where it started
    assert share_within(run, mw69_scene, as_lines(run, moved), tol_px=1.0) >= 0.9


def test_extracted_trace_says_that_the_band_moved_it(mw69_phase_run, mw69_scene, tmp_path):
    run = load_run(mw69_phase_run)
    lines, source, stats = extract_trace_stats(run, TraceParams(method="line"))
    assert "moved onto the interferogram's decorrelation band (rewrapped_phase.tif)" in source
    assert stats[0]["on_band"] >= 0.7 and stats[0]["signif"] >= 2  # measured 0.75 (stations at the edges: no strip)
    assert share_within(run, mw69_scene, lines, tol_px=1.0) >= 0.9
    plain, plain_source, plain_stats = extract_trace_stats(run, TraceParams(method="line", band=None))
    assert plain_source == "line" and "on_band" not in plain_stats[0]
    # the CLI writes the share as an attribute of the trace and says it
    out = tmp_path / "trace.gpkg"
    res = subprocess.run([sys.executable, "-m", "backend", "trace", str(mw69_phase_run), "--method", "line",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "% of its stations moved onto the band where the interferogram decorrelates" in res.stdout
    names, rows = read_table(out, TRACE_LAYER)
    assert "on_band" in names and len(rows) == 1 and rows[0]["on_band"] >= 0.7
    res = subprocess.run([sys.executable, "-m", "backend", "trace", str(mw69_phase_run), "--method", "line",
                          "--out", str(out), "--no-band"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "decorrelat" not in res.stdout
    assert read_table(out, TRACE_LAYER)[1][0]["on_band"] is None


def test_lines_across_the_real_thessaly_interferogram_do_not_move(tmp_path):
    # Thessaly 2021 (Mw 6.3): a real co-seismic Sentinel-1 interferogram without a mapped surface rupture in it;
    # 30 random lines across it: its decorrelated patches never follow a line along half of it
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(ROOT / "data" / "thessaly2021" / "phase_wrapped.tif", d / "rewrapped_phase.tif")
    with rasterio.open(d / "rewrapped_phase.tif") as ds:
        shape = (ds.height, ds.width)
    band, _ = decorrelation_map(d, shape)
    assert 0.01 < np.nanmean(band) < 0.5 and np.nanmax(band) > 0.5  # it has decorrelated places
    rng = np.random.default_rng(0)
    h, w = shape
    for k in range(30):
        if k % 2:
            a, b = np.array([rng.uniform(0.1, 0.9) * h, 0.0]), np.array([rng.uniform(0.1, 0.9) * h, w - 1.0])
        else:
            a, b = np.array([0.0, rng.uniform(0.1, 0.9) * w]), np.array([h - 1.0, rng.uniform(0.1, 0.9) * w])
        rc = a + np.linspace(0.0, 1.0, 8)[:, None] * (b - a)
        new, share = move_onto_band(rc, band)
        assert share == 0.0 and np.array_equal(new, rc)
        # with the band required at a tenth of the stations instead of half, some lines would move
    moved = [move_onto_band(a + np.linspace(0, 1, 8)[:, None] * (b - a), band, BandParams(min_share=0.0))[1]
             for a, b in ((np.array([0.0, 0.2 * w]), np.array([h - 1.0, 0.7 * w])),
                          (np.array([0.3 * h, 0.0]), np.array([0.6 * h, w - 1.0])))]
    assert max(moved) > 0.0


def test_band_method_and_auto_fall_back_to_the_interferogram(mw69_phase_run, mw69_scene):
    from .test_trace_search import correlated_noise

    run = load_run(mw69_phase_run)
    lines, source, stats = extract_trace_stats(run, TraceParams(method="band"))
    assert source == "band: long decorrelated line(s) of rewrapped_phase.tif" and len(lines) == 1
    assert stats[0]["signif"] >= 1.3 and stats[0]["on_band"] >= 0.5
    assert share_within(run, mw69_scene, lines, tol_px=2.0) >= 0.9
    # a displacement too noisy for the line search (and no rupture probability): auto reads the phase
    run.prob = None
    run.disp = correlated_noise(1, n=run.disp.shape[1])[:, :, :run.disp.shape[2]].astype(np.float32)
    run.sigma = None
    lines, source, stats = extract_trace_stats(run)
    assert source.startswith("band (line search found none): long decorrelated line(s)")
    assert share_within(run, mw69_scene, lines, tol_px=2.0) >= 0.9


def test_a_trace_the_band_cannot_move_is_replaced_by_the_band_line_along_it(mw69_phase_run, mw69_scene):
    # a band too faint piece by piece to move the stations (here: an impossible threshold), but whose whole line
    # the band search finds: the line replaces the trace when it runs within search_px of it
    run = load_run(mw69_phase_run)
    lines, source, stats = extract_trace_stats(run, TraceParams(method="line", band=BandParams(min_z=1e9)))
    assert "(1 replaced by the band's own line along it)" in source
    assert stats[0]["on_band"] >= 0.5 and share_within(run, mw69_scene, lines, tol_px=2.0) >= 0.9
    # not when the band line runs elsewhere: a search reach of 0 px keeps the line-search trace as it is
    lines, source, stats = extract_trace_stats(run, TraceParams(method="line",
                                                                band=BandParams(min_z=1e9, search_px=0)))
    assert source == "line" and stats[0]["on_band"] == 0.0


def test_a_line_where_the_phase_stays_coherent_is_dropped(mw69_phase_run, mw69_scene, tmp_path):
    # an estimate with two clean 1-m steps: across the rupture, and across a line ~90 px south of it (e.g. the
    # estimate's correlated noise), where the simulated interferogram stays coherent. The line search finds both;
    # the band confirms the rupture, so the coherent line is dropped, and the source says why
    d = tmp_path / "run"
    shutil.copytree(mw69_phase_run, d)
    shape = np.asarray(mw69_scene.truth_enu).shape[1:]
    rows, cols = (a.ravel().astype(float) for a in np.mgrid[0:shape[0], 0:shape[1]])
    rc_false = np.array([[215.0, 0.0], [150.0, shape[1] - 1.0]])

    def side(rc: np.ndarray) -> np.ndarray:  # +1 / -1 on either side of a row/col polyline
        return np.sign(signed_distance(cols, rows, rc[:, ::-1])).reshape(shape)

    east = 0.5 * side(np.concatenate(true_trace_rc(mw69_scene))) + np.where(side(rc_false) < 0, 1.0, 0.0)
    east += np.random.default_rng(0).normal(0.0, 0.05, shape)
    with rasterio.open(d / "displacement.tif", "r+") as ds:
        ds.write(east.astype(np.float32), 1)
        ds.write(np.zeros(shape, np.float32), 2)
        ds.write(np.zeros(shape, np.float32), 3)
    run = load_run(d)
    plain, _, _ = extract_trace_stats(run, TraceParams(method="line", band=None))
    assert len(plain) == 2
    lines, source, stats = extract_trace_stats(run, TraceParams(method="line"))
    assert len(lines) == 1 and stats[0]["on_band"] >= 0.7
    assert "1 line(s) dropped: the phase stays as coherent along it as in the scene" in source
    assert share_within(run, mw69_scene, lines, tol_px=1.0) >= 0.9
    band, _ = decorrelation_map(d, run.shape)
    assert coherent_along(rc_false, band) is not None
    assert coherent_along(true_trace_rc(mw69_scene)[0], band) is None  # the rupture: decorrelated
