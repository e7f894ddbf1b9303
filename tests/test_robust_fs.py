"""Robustness (issue #13), file system: inputs are never written or removed (symbolic and hard links, every output
name), one run per folder, the previous run's files are replaced, tracebacks become messages (--out a file,
read-only folders, a full disk, a corrupt tile). Every case checks the message, the exit code, that the inputs are
byte-identical afterwards and what is (not) left on disk. Root-only faults use a temporary tmpfs mount."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import rasterio

from backend.config import EstimateConfig, InputRaster
from backend.errors import PipelineError
from backend.outputs import LOCK_NAME, FolderLock, is_output_name
from backend.pipeline import run_estimate
from tests.robust_util import (
    DARFIELD,
    block_offset,
    cli,
    crop,
    darfield_inputs,
    digest,
    is_root,
    leftovers,
    optical_args,
    phase_args,
    remount_ro,
    tmpfs,
    tree,
)

NEED_ROOT = pytest.mark.skipif(not is_root(), reason="needs root to mount a read-only / tiny tmpfs (run as root)")


@pytest.fixture(scope="module")
def inp(tmp_path_factory) -> dict[str, Path]:
    return darfield_inputs(tmp_path_factory.mktemp("darfield"))


@pytest.fixture
def all_inputs(inp) -> dict[str, str]:
    return digest(inp.values())


def _assert_refused(code: int, text: str, *fragments: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    for f in fragments:
        assert f.lower() in text.lower(), text


# ---------------------------------------------------------------------------------- Bad 1: inputs never written
def test_symlinked_input_resolving_to_an_output_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    clash = tmp_path / "clash"
    clash.mkdir()
    target = shutil.copy(inp["phase"], clash / "unwrapped_phase.tif")
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "myphase.tif").symlink_to(target)
    before = digest([target, *inp.values()])
    p = dict(inp, phase=tmp_path / "link" / "myphase.tif")
    code, text = cli(capsys, *phase_args(p, tiny_model, clash))
    _assert_refused(code, text, "would be overwritten", "unwrapped_phase.tif", f"(it is {target})", "Fix:")
    assert digest([target, *inp.values()]) == before
    assert tree(clash) == ["unwrapped_phase.tif"]


def test_hard_linked_input_is_refused(capsys, inp, tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    src = shutil.copy(inp["phase"], tmp_path / "phase_copy.tif")
    os.link(src, out / "displacement.tif")  # the same file under an output name
    before = digest([src, *inp.values()])
    code, text = cli(capsys, *phase_args(dict(inp, phase=Path(src)), tiny_model, out))
    _assert_refused(code, text, "phase", "would be overwritten", "displacement.tif")
    assert digest([src, *inp.values()]) == before and os.path.samefile(src, out / "displacement.tif")
    assert tree(out) == ["displacement.tif"]


@pytest.mark.parametrize("name", ["run.json", "unwrapped_phase_2.tif", "los_displacement_1.tif",
                                  "rupture_probability.tif", "displacement_east.vrt", "fault_offsets.tif",
                                  "Displacement.TIF", "horizontal_magnitude.qml"])
def test_input_under_any_output_name_is_refused(capsys, inp, tiny_model, tmp_path, name) -> None:
    out = tmp_path / "out"
    out.mkdir()
    src = shutil.copy(inp["optical"], out / name)  # GDAL reads a GeoTIFF whatever its name
    before = digest([src])
    code, text = cli(capsys, "estimate", "--optical-pre", f"{src}:1", "--optical-post", f"{src}:2", "--model",
                     str(tiny_model), "--out", str(out), "--quiet")
    _assert_refused(code, text, "optical_pre", "would be overwritten", name)
    assert digest([src]) == before and tree(out) == [name]


def test_symlinked_output_folder_is_resolved(capsys, inp, tiny_model, tmp_path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    src = shutil.copy(inp["phase"], real / "unwrapped_phase.tif")
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    before = digest([src])
    code, text = cli(capsys, *phase_args(dict(inp, phase=Path(src)), tiny_model, tmp_path / "alias"))
    _assert_refused(code, text, "would be overwritten")
    assert digest([src]) == before and tree(real) == ["unwrapped_phase.tif"]


def test_grid_like_under_an_output_name_is_refused(inp, tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    gl = shutil.copy(inp["coherence"], out / "uncertainty.tif")
    cfg = EstimateConfig(out_dir=out, phase=inp["phase"], wavelength_m=0.0555, incidence_deg=39.0,
                         heading_deg=-12.0, grid_like=InputRaster(gl), model_path=tiny_model)
    with pytest.raises(PipelineError, match="grid_like .* would be overwritten") as ei:
        run_estimate(cfg)
    assert ei.value.input_name == "grid_like" and tree(out) == ["uncertainty.tif"]


def test_output_names_cover_styles_sidecars_per_interferogram_and_tools() -> None:
    for name in ("run.json", "displacement.qml", "unwrapped_phase_12.tif", "los_displacement_3.tif",
                 "rewrapped_phase_2.tif", "rupture_probability.tif", "rupture_trace.gpkg", "fault_offsets.csv",
                 "fault_offsets.gpkg", "report.pdf", "displacement.tif.aux.xml", "displacement_arrows.gpkg-wal"):
        assert is_output_name(name), name
    for name in ("my_phase.tif", "displacement_v2.tif", "notes.txt", "run.json.bak", "phase.tif"):
        assert not is_output_name(name), name


# ---------------------------------------------------------------------------------- Bad 3: messages, not tracebacks
def test_out_is_an_existing_file(capsys, inp, tiny_model, tmp_path, all_inputs) -> None:
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    code, text = cli(capsys, *optical_args(inp, tiny_model, f))
    _assert_refused(code, text, f"output folder {f}", "is a file, not a folder", "Fix:")
    assert f.read_text() == "keep me" and digest(inp.values()) == all_inputs
    assert tree(tmp_path) == ["results.txt"]


def test_out_below_a_file(capsys, inp, tiny_model, tmp_path) -> None:
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    code, text = cli(capsys, *optical_args(inp, tiny_model, f / "sub"))
    _assert_refused(code, text, f"{f} is a file, not a folder")
    assert tree(tmp_path) == ["results.txt"]


@NEED_ROOT
def test_read_only_output_folder_is_reported_before_the_model_loads(capsys, inp, tmp_path, all_inputs) -> None:
    bad_model = tmp_path / "broken.onnx"
    bad_model.write_bytes(b"not an onnx model")  # loading it would fail: the folder must be checked first
    with tmpfs(tmp_path, "1m") as mnt:
        (mnt / "run").mkdir()
        remount_ro(mnt)
        code, text = cli(capsys, *optical_args(inp, bad_model, mnt / "run"))
        _assert_refused(code, text, f"output folder {mnt / 'run'}", "cannot write there", "Read-only file system",
                        "Fix: choose a folder you can write to")
        assert "onnx" not in text.lower()
        assert tree(mnt) == ["run"]
    assert digest(inp.values()) == all_inputs


@NEED_ROOT
def test_output_folder_under_a_read_only_parent(capsys, inp, tiny_model, tmp_path) -> None:
    with tmpfs(tmp_path, "1m") as mnt:
        remount_ro(mnt)
        code, text = cli(capsys, *optical_args(inp, tiny_model, mnt / "new" / "run"))
        _assert_refused(code, text, "cannot write there", "Read-only file system")
        assert tree(mnt) == []


@NEED_ROOT
def test_tiny_disk_is_refused_before_writing(capsys, inp, tiny_model, tmp_path, all_inputs) -> None:
    with tmpfs(tmp_path, "64k") as mnt:
        code, text = cli(capsys, *phase_args(inp, tiny_model, mnt / "run"))
        _assert_refused(code, text, "MiB free on its disk", "this run writes up to about", "Fix: free some space")
        assert tree(mnt) == []
    assert digest(inp.values()) == all_inputs


@NEED_ROOT
def test_disk_filling_up_during_the_run(capsys, tiny_model, tmp_path) -> None:
    """384 x 384 px InSAR only (no network): the up-front estimate (1.2 MB: LOS, unwrapped and re-wrapped phase,
    regions) fits in 1.4 MB, the real files (about 1.8 MB) do not."""
    d = tmp_path / "in"
    d.mkdir()
    p = {k: Path(shutil.copy(DARFIELD / v.name, d)) for k, v in darfield_inputs(tmp_path / "src").items()}
    before = digest(p.values())
    with tmpfs(tmp_path, "1400k") as mnt:
        args = [a for a in phase_args(p, tiny_model, mnt / "run") if not a.startswith(str(p["optical"]))]
        args = [a for a in args if a not in ("--optical-pre", "--optical-post")]
        code, text = cli(capsys, *args)
        _assert_refused(code, text, "failed: the disk is full", "Nothing was written", "Fix: free some space")
        assert tree(mnt) == []
    assert digest(p.values()) == before


def test_corrupt_tile_in_the_middle(capsys, inp, tiny_model, tmp_path) -> None:
    src = crop(inp["optical"], tmp_path / "in" / "optical.tif", (0, 128), (0, 128), blockxsize=32, blockysize=32,
               tiled=True, compress="deflate")
    off, size = block_offset(src, 2, 1)
    data = bytearray(src.read_bytes())
    data[off + 8:off + size] = b"\x5a" * (size - 8)  # the deflate stream of one tile in the middle is garbage
    src.write_bytes(bytes(data))
    before = digest([src])
    code, text = cli(capsys, "estimate", "--optical-pre", f"{src}:1", "--optical-post", f"{src}:2", "--model",
                     str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _assert_refused(code, text, f"optical_pre (--optical-pre {src}): GDAL cannot read it",
                    "IReadBlock failed at X offset 1, Y offset 2", "damaged or incomplete", "gdalinfo -checksum")
    assert digest([src]) == before and tree(tmp_path / "out") == []


def test_truncated_geotiff(capsys, inp, tiny_model, tmp_path) -> None:
    src = tmp_path / "half.tif"
    src.write_bytes(inp["optical"].read_bytes()[: inp["optical"].stat().st_size // 2])
    before = digest([src])
    code, text = cli(capsys, "estimate", "--optical-pre", f"{src}:1", "--optical-post", f"{src}:2", "--model",
                     str(tiny_model), "--out", str(tmp_path / "out"), "--quiet")
    _assert_refused(code, text, "optical_pre", "GDAL cannot read it")
    assert digest([src]) == before and tree(tmp_path / "out") == []


def test_input_is_a_folder_or_not_a_raster(capsys, inp, tiny_model, tmp_path) -> None:
    txt = tmp_path / "phase.tif"
    txt.write_text("this is not a raster")
    code, text = cli(capsys, *phase_args(dict(inp, phase=txt), tiny_model, tmp_path / "out"))
    _assert_refused(code, text, "phase", "GDAL cannot read it", "Fix:")
    code, text = cli(capsys, *phase_args(dict(inp, phase=tmp_path), tiny_model, tmp_path / "out2"))
    _assert_refused(code, text, "phase", "GDAL cannot read it")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_path_with_spaces_and_unicode(capsys, inp, tiny_model, tmp_path, all_inputs) -> None:
    out = tmp_path / "résultats Darfield 2010" / "run 1"
    code, text = cli(capsys, *optical_args(inp, tiny_model, out))
    assert code == 0, text
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["files"]) == tree(out) and leftovers(out) == []
    assert digest(inp.values()) == all_inputs


# ---------------------------------------------------------------------------------- Bad 4: one run per folder
def test_second_concurrent_run_is_refused(capsys, inp, tiny_model, tmp_path, all_inputs) -> None:
    out = tmp_path / "out"
    out.mkdir()
    lock = FolderLock(out)
    lock.acquire()  # a run in progress (another process or thread holds the folder)
    try:
        code, text = cli(capsys, *optical_args(inp, tiny_model, out))
        _assert_refused(code, text, f"output folder {out} is in use by another QuakeFusion run (pid {os.getpid()}",
                        "Fix: wait until it has finished, or choose another output folder")
        assert tree(out) == [LOCK_NAME]
    finally:
        lock.release()
    assert tree(out) == [] and digest(inp.values()) == all_inputs


def test_stale_lock_file_of_a_killed_run_does_not_block(capsys, inp, tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("pid 999999 since 2026-01-01 00:00:00\n")  # kill -9: file left, lock gone
    code, text = cli(capsys, *optical_args(inp, tiny_model, out))
    assert code == 0, text
    assert leftovers(out) == []


def test_new_run_replaces_the_previous_runs_files(capsys, inp, tiny_model, tmp_path, all_inputs) -> None:
    out = tmp_path / "out"
    code, text = cli(capsys, *phase_args(inp, tiny_model, out))
    assert code == 0, text
    assert {"unwrapped_phase.tif", "los_displacement.tif"} <= set(tree(out))
    for extra in ("displacement.qml", "unwrapped_phase.qml", "rupture_trace.gpkg", "report.pdf",
                  "displacement.tif.aux.xml"):  # styles, the geologist's tools, a GDAL side-car of the old run
        (out / extra).write_text("old run")
    (out / "my notes.txt").write_text("the user's own file")
    code, text = cli(capsys, *optical_args(inp, tiny_model, out))
    assert code == 0, text
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["files"] + ["my notes.txt"]) == tree(out)
    assert "unwrapped_phase.tif" not in tree(out) and "los_displacement.tif" not in tree(out)
    assert {"unwrapped_phase.tif", "los_displacement.tif", "report.pdf", "rupture_trace.gpkg",
            "displacement.qml"} <= set(run["replaced_previous_run_files"])
    assert "note: replaced the previous run's files" in text
    assert (out / "my notes.txt").read_text() == "the user's own file"
    assert digest(inp.values()) == all_inputs


def test_failed_run_keeps_the_previous_results(capsys, inp, tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    assert cli(capsys, *phase_args(inp, tiny_model, out))[0] == 0
    before = digest(out.iterdir())
    bad = tmp_path / "coh255.tif"
    crop(inp["coherence"], bad, (0, 128), (0, 128), fn=lambda a: a * 255)
    code, text = cli(capsys, *phase_args(dict(inp, coherence=bad), tiny_model, out))
    _assert_refused(code, text, "coherence", "divide by 255")
    assert digest(out.iterdir()) == before and leftovers(out) == []


def test_cancelled_run_keeps_the_previous_results(inp, tiny_model, tmp_path) -> None:
    from backend.errors import Cancelled

    out = tmp_path / "out"
    cfg = EstimateConfig(out_dir=out, optical_pre=InputRaster(inp["optical"], 1),
                         optical_post=InputRaster(inp["optical"], 2), model_path=tiny_model, tile=64)
    run_estimate(cfg)
    before = digest(out.iterdir())
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 3  # a few tiles in

    with pytest.raises(Cancelled):
        run_estimate(cfg, cancel=cancel)
    assert digest(out.iterdir()) == before and leftovers(out) == []


def test_failed_run_removes_the_folder_it_created(inp, tiny_model, tmp_path) -> None:
    blank = crop(inp["phase"], tmp_path / "nan.tif", (0, 128), (0, 128), fn=lambda a: a * float("nan"))
    out = tmp_path / "new" / "out"
    cfg = EstimateConfig(out_dir=out, phase=blank, wavelength_m=0.0555, incidence_deg=39.0, heading_deg=-12.0,
                         model_path=tiny_model)
    with pytest.raises(PipelineError, match="no valid pixel"):
        run_estimate(cfg)
    assert not out.exists()


def test_rasters_in_a_folder_are_all_of_one_run(capsys, inp, tiny_model, tmp_path) -> None:
    """A 64 x 64 crop run then the 128 x 128 run into the same folder: every raster has the last run's grid."""
    out = tmp_path / "out"
    small = {k: crop(v, tmp_path / "small" / v.name, (0, 64), (0, 64)) for k, v in inp.items()}
    assert cli(capsys, *phase_args(small, tiny_model, out))[0] == 0
    assert cli(capsys, *optical_args(inp, tiny_model, out))[0] == 0
    run = json.loads((out / "run.json").read_text())
    for name in run["files"]:
        if name.endswith((".tif", ".vrt")):
            with rasterio.open(out / name) as ds:
                assert (ds.width, ds.height) == (run["grid"]["width"], run["grid"]["height"]) == (128, 128), name


def test_per_interferogram_outputs_are_committed_and_replaced(capsys, inp, tiny_model, tmp_path) -> None:
    """Step 8 writes ``unwrapped_phase_<k>.tif`` / ``los_displacement_<k>.tif`` through ``Staging.file``: they are
    moved in with the run and removed by the next run like every other output."""
    from backend.outputs import Staging

    out = tmp_path / "out"
    with Staging(out) as st:
        for name in ("unwrapped_phase_2.tif", "los_displacement_2.tif"):
            shutil.copy(inp["phase"], st.file(name))
        st.path("run_json").write_text("{}")
        final = st.commit()
    assert sorted(p.name for p in final.values()) == tree(out) == ["los_displacement_2.tif", "run.json",
                                                                   "unwrapped_phase_2.tif"]
    with pytest.raises(ValueError, match="not an output name"):
        Staging(out).file("my_phase.tif")
    code, text = cli(capsys, *optical_args(inp, tiny_model, out))
    assert code == 0, text
    assert "unwrapped_phase_2.tif" not in tree(out) and leftovers(out) == []
    assert "los_displacement_2.tif" in json.loads((out / "run.json").read_text())["replaced_previous_run_files"]


def test_partial_files_of_killed_runs_in_sibling_run_folders_are_cleaned(tmp_path) -> None:
    """The dialog and Processing write each run into a new sub-folder: a killed run's sub-folder is cleaned by the
    next run under the same output folder (unless a run holds it)."""
    from backend.outputs import clean_stale_runs

    root = tmp_path / "QuakeFusion runs"
    dead = root / "run_killed" / ".quakefusion-tmp-0badc0de"
    dead.mkdir(parents=True)
    (dead / "displacement.tif").write_bytes(b"partial")
    busy = root / "run_busy" / ".quakefusion-tmp-00c0ffee"
    busy.mkdir(parents=True)
    kept = root / "run_old_with_results"
    (kept / ".quakefusion-tmp-deadbeef").mkdir(parents=True)
    (kept / "displacement.tif").write_bytes(b"complete")
    lock = FolderLock(root / "run_busy")
    lock.acquire()
    try:
        assert clean_stale_runs(root) == [root / "run_killed", kept]
    finally:
        lock.release()
    assert tree(root) == ["run_busy", "run_busy/.quakefusion-tmp-00c0ffee", "run_old_with_results",
                          "run_old_with_results/displacement.tif"]
