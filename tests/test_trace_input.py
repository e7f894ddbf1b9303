"""A known rupture trace given to a run (``--trace``, ``EstimateConfig.trace``; model 0.7.0's ``fault_side`` channel):
the side of every pixel per tile, what run.json records, what the geologist tools reuse, and the messages for a trace
that cannot be used. The effect on the offsets (sharp steps) is tested on the network (tests/test_network.py) and on
the demo's rupture through the whole pipeline (tests/test_demo_rupture.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from backend.config import EstimateConfig, check
from backend.errors import PipelineError
from backend.infer import fault_side
from backend.io import Grid, InputRaster
from backend.pipeline import run_estimate
from backend.trace import write_trace
from models.testing import DEFAULT_CHANNELS, make_tiny_model
from tests.conftest import read_band, run_backend

E0, N0 = 500000.0, 4200000.0


def test_fault_side_follows_the_line_per_tile() -> None:
    """A line drawn southwards at x = E0 + 200 m on a 10-m grid: looking along it, its right-hand side is the west,
    columns 0-19 (+1), the rest -1; a tile gets exactly its window of the whole grid's values."""
    grid = Grid(CRS.from_epsg(32634), Affine(10.0, 0, E0, 0, -10.0, N0), 64, 48)
    line = np.array([[E0 + 200.0, N0 + 100.0], [E0 + 200.0, N0 - 1000.0]])
    side = fault_side(grid, [line], 0, 0, 48, 64)
    assert side.dtype == np.float32 and (side[:, :20] == 1).all() and (side[:, 20:] == -1).all()
    assert np.array_equal(fault_side(grid, [line], 8, 16, 16, 16), side[8:24, 16:32])
    # the same line drawn northwards: the sides swap
    assert np.array_equal(fault_side(grid, [line[::-1]], 0, 0, 48, 64), -side)


def _trace_across(scene: dict, path: Path, at: float = 0.5) -> Path:
    """A north-south line through a written scene (its CRS) at ``at`` of its width, as a rupture_trace.gpkg."""
    t = Affine(*scene["transform"])
    h, w = scene["size"]
    x = t.c + t.a * w * at
    line = np.array([[x, t.f + 10 * t.e], [x, t.f + (h - 10) * t.e]])
    return write_trace(path, [line], CRS.from_epsg(scene["crs"]).to_wkt())


def _cfg(scene: dict, out: Path, model: Path, **kw) -> EstimateConfig:  # noqa: ANN003
    p = scene["paths"]
    return EstimateConfig(out_dir=out, optical_pre=InputRaster(p["optical"], 1),
                          optical_post=InputRaster(p["optical"], 2), model_path=model, device="cpu", unwrap=False,
                          **kw)


def test_run_with_a_trace_records_it_and_the_tools_reuse_it(tmp_path: Path, sim_scene: dict) -> None:
    from backend.geodata import ToolsError, load_run
    from backend.trace import trace_for_run

    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    trace = _trace_across(sim_scene, tmp_path / "mapped" / "trace.gpkg")
    blind = run_estimate(_cfg(sim_scene, tmp_path / "blind", model))
    given = run_estimate(_cfg(sim_scene, tmp_path / "given", model, trace=trace))
    rt = given.run["parameters"]["rupture_trace"]
    assert rt == {"path": str(trace.resolve()), "lines": 1, "tiles_crossed": 1}
    assert blind.run["parameters"]["rupture_trace"] is None
    # tiles the trace does not cross run without it (one side only: the model's faster branch, same result)
    west = _trace_across(sim_scene, tmp_path / "west.gpkg", at=0.2)  # in the western tiles only
    tiled = run_estimate(_cfg(sim_scene, tmp_path / "tiled", model, trace=west, tile=64, overlap=8))
    n = tiled.run["parameters"]["n_tiles"]
    assert n == 4 and tiled.run["parameters"]["rupture_trace"]["tiles_crossed"] == 2
    assert any("rupture trace given" in n for n in given.run["notes"])
    assert "fault_side" in given.run["model"]["channels"]
    # the (tiny, untrained) network sees the channel: the output changes, the grid does not
    a, b = read_band(blind.outputs["displacement"], 1), read_band(given.outputs["displacement"], 1)
    assert a.shape == b.shape and np.nanmax(np.abs(a - b)) > 1e-4
    # offsets / components on this run use the trace the network was given
    lines, source, _ = trace_for_run(load_run(tmp_path / "given"))
    assert source == "run input" and len(lines) == 1
    with pytest.raises(ToolsError, match="no rupture trace found"):  # blind: extracted (none in this noise)
        trace_for_run(load_run(tmp_path / "blind"))


def test_a_model_with_its_own_trace_weights_takes_them_on_every_tile(tmp_path: Path, sim_scene: dict) -> None:
    """A model whose trace graph has weights of its own (metadata ``trace_branch``, 0.8.0) gets the trace on every
    tile of a run with one, also on tiles the trace does not cross: else the two weight sets would meet at the tile
    seams. The shipped file is such a model."""
    import onnx

    from backend.model import DEFAULT_MODEL, read_metadata

    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    m = onnx.load(str(model))
    props = {p.key: p for p in m.metadata_props}
    meta = json.loads(props["quakefusion"].value)
    props["quakefusion"].value = json.dumps(meta | {"trace_branch": {"step": 0}})
    onnx.save(m, str(model))
    west = _trace_across(sim_scene, tmp_path / "west.gpkg", at=0.2)  # crosses the western tiles only
    tiled = run_estimate(_cfg(sim_scene, tmp_path / "tiled", model, trace=west, tile=64, overlap=8))
    assert tiled.run["parameters"]["n_tiles"] == 4 and tiled.run["parameters"]["rupture_trace"]["tiles_crossed"] == 4
    assert read_metadata(DEFAULT_MODEL).trace_branch_weights


def test_a_trace_that_cannot_be_used_is_refused_by_name(tmp_path: Path, sim_scene: dict) -> None:
    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    probs = check(_cfg(sim_scene, tmp_path / "o1", model, trace=tmp_path / "nope.gpkg"))
    assert [p.input for p in probs] == ["trace"] and "--trace" in probs[0].fix and "not found" in probs[0].text
    far = write_trace(tmp_path / "far.gpkg", [np.array([[0.0, 0.0], [10.0, 10.0]])],
                      CRS.from_epsg(sim_scene["crs"]).to_wkt())
    with pytest.raises(PipelineError) as err:
        run_estimate(_cfg(sim_scene, tmp_path / "o2", model, trace=far))
    assert err.value.input_name == "trace" and "crosses the output grid" in str(err.value)
    old = make_tiny_model(tmp_path / "old.onnx")  # a model without the fault_side channel (0.6.0 and before)
    with pytest.raises(PipelineError) as err:
        run_estimate(_cfg(sim_scene, tmp_path / "o3", old, trace=_trace_across(sim_scene, tmp_path / "t.gpkg")))
    assert err.value.input_name == "trace" and "takes no rupture trace" in str(err.value)
    for out in ("o2", "o3"):  # nothing written
        assert not any((tmp_path / out).glob("*.tif"))


def test_cli_takes_a_trace(tmp_path: Path, sim_scene: dict) -> None:
    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    trace = _trace_across(sim_scene, tmp_path / "trace.gpkg")
    opt = sim_scene["paths"]["optical"]
    p = run_backend("estimate", "--optical-pre", f"{opt}:1", "--optical-post", f"{opt}:2", "--trace", str(trace),
                    "--model", str(model), "--out", str(tmp_path / "run"), "--no-unwrap", "--quiet")
    assert p.returncode == 0, p.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["parameters"]["rupture_trace"]["path"] == str(trace.resolve())
    assert "--trace" in run_backend("estimate", "--help").stdout


# ------------------------------------------------------------------ --trace auto: the trace found by the run itself
def test_find_trace_without_a_trace_keeps_the_blind_run_and_says_why(tmp_path: Path, sim_scene: dict) -> None:
    """``trace_auto`` where the line search finds nothing (this scene's noise through the stand-in network): the
    blind first pass is the run, pixel for pixel; run.json and run.log say why; no trace file, no hidden folder,
    and the previous run's files in the folder are replaced as by any run. (A trace found: the demo's rupture,
    tests/test_demo_rupture.py.)"""
    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    blind = run_estimate(_cfg(sim_scene, tmp_path / "blind", model))
    out = tmp_path / "found"
    out.mkdir()
    (out / "fault_offsets.csv").write_text("an earlier run's tool output\n")
    from backend.outputs import Staging

    killed = Staging.new_tmp(out, "first-pass-")  # a first pass left by a killed job: removed by the next run
    killed.mkdir()
    (killed / "displacement.tif").write_bytes(b"partial")
    msgs: list[tuple[float, str]] = []
    res = run_estimate(_cfg(sim_scene, out, model, trace_auto=True), progress=lambda f, m: msgs.append((f, m)))
    rt = res.run["parameters"]["rupture_trace"]
    assert rt["found"] is False and rt["path"] is None and rt["why"].startswith("no rupture trace found")
    assert any("none found on the first pass" in n for n in res.run["notes"])
    assert "none found on the first pass" in (out / "run.log").read_text()
    assert json.loads((out / "run.json").read_text())["parameters"]["rupture_trace"] == rt
    for band in (1, 2):
        assert np.array_equal(read_band(blind.outputs["displacement"], band),
                              read_band(res.outputs["displacement"], band), equal_nan=True)
    names = {p.name for p in out.iterdir()}
    assert "rupture_trace.gpkg" not in names and "fault_offsets.csv" not in names
    assert not [n for n in names if n.startswith(".")]
    assert res.run["replaced_previous_run_files"] == ["fault_offsets.csv"]
    assert res.outputs["displacement"] == out / "displacement.tif"
    # progress: the first pass in the first half, then the search, monotone
    fr = [f for f, _ in msgs]
    assert fr == sorted(fr) and any(m.startswith("first pass, blind") for _, m in msgs)
    assert any(m.startswith("finding the rupture trace") for _, m in msgs)


def test_find_trace_cancelled_leaves_the_folder_as_it_was(tmp_path: Path, sim_scene: dict) -> None:
    """Cancelled between the passes: the previous run's files stay untouched, a new folder is not left behind,
    and the first pass's hidden folder is gone."""
    from backend.config import CancelToken
    from backend.errors import Cancelled

    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    out = tmp_path / "run"
    run_estimate(_cfg(sim_scene, out, model))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    for folder in (out, tmp_path / "new" / "run"):
        token = CancelToken()

        def progress(f: float, m: str, token: CancelToken = token) -> None:
            if m.startswith("finding the rupture trace"):
                token.cancel()

        with pytest.raises(Cancelled):
            run_estimate(_cfg(sim_scene, folder, model, trace_auto=True), progress=progress, cancel=token)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert not (tmp_path / "new" / "run").exists()


def test_find_trace_is_refused_with_a_trace_or_without_a_pair(tmp_path: Path, sim_scene: dict) -> None:
    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    trace = _trace_across(sim_scene, tmp_path / "trace.gpkg")
    with pytest.raises(PipelineError) as err:
        run_estimate(_cfg(sim_scene, tmp_path / "o1", model, trace=trace, trace_auto=True))
    assert err.value.input_name == "trace" and "not both" in str(err.value)
    p = sim_scene["paths"]
    insar = EstimateConfig(out_dir=tmp_path / "o2", phase=InputRaster(p["phase"]), wavelength_m=0.0555,
                           incidence_deg=39.0, heading_deg=-12.0, trace_auto=True)
    probs = check(insar)
    assert [q.input for q in probs] == ["trace"] and "no optical or SAR amplitude pair" in probs[0].message
    assert "--method band" in probs[0].fix
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_cli_finds_the_trace_with_trace_auto(tmp_path: Path, sim_scene: dict) -> None:
    model = make_tiny_model(tmp_path / "tiny.onnx", channels=[*DEFAULT_CHANNELS, "fault_side"])
    opt = sim_scene["paths"]["optical"]
    p = run_backend("estimate", "--optical-pre", f"{opt}:1", "--optical-post", f"{opt}:2", "--trace", "auto",
                    "--model", str(model), "--out", str(tmp_path / "run"), "--no-unwrap", "--quiet")
    assert p.returncode == 0, p.stderr
    rt = json.loads((tmp_path / "run" / "run.json").read_text())["parameters"]["rupture_trace"]
    assert rt["found_by"] == "first pass (blind)" and rt["found"] is False
    assert "'auto'" in run_backend("estimate", "--help").stdout
