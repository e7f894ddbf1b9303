"""Robustness (issue #13), signals and concurrency: SIGTERM and SIGINT leave nothing (like Ctrl+C), ``kill -9``
leaves a hidden staging folder that the next run removes, and a second run into a folder in use is refused while
the first completes. Real processes (``python -m backend``) on the Darfield inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio

from backend.config import EstimateConfig, InputRaster
from backend.errors import PipelineError
from backend.outputs import LOCK_NAME
from backend.pipeline import run_estimate
from tests.robust_util import DARFIELD, ROOT, WAVELENGTH, digest, leftovers, tree

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
INPUTS = [DARFIELD / n for n in ("optical.tif", "wrapped_phase.tif", "coherence.tif", "incidence.tif",
                                 "heading.tif")]


def _start(model: Path, out: Path) -> subprocess.Popen:
    """A full-size Darfield run in 64-px tiles (64 tiles, about 2 s), progress on stderr."""
    d = DARFIELD
    args = ["estimate", "--optical-pre", f"{d / 'optical.tif'}:1", "--optical-post", f"{d / 'optical.tif'}:2",
            "--phase", str(d / "wrapped_phase.tif"), "--coherence", str(d / "coherence.tif"), "--wavelength",
            WAVELENGTH, "--incidence", str(d / "incidence.tif"), "--heading", str(d / "heading.tif"), "--model",
            str(model), "--out", str(out), "--tile", "64", "--threads", "1"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen([sys.executable, "-m", "backend", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_tiles(proc: subprocess.Popen) -> str:
    """Read progress until the inference is under way; returns what was read."""
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if "inference: tile" in line:
            return seen
    pytest.fail(f"the run never reached the inference: {seen}")


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT"),
                                                   (signal.SIGHUP, 129, "SIGHUP")])
def test_signal_mid_run_leaves_nothing(tiny_model, tmp_path, sig, code, name) -> None:
    before = digest(INPUTS)
    out = tmp_path / "out"
    proc = _start(tiny_model, out)
    _wait_for_tiles(proc)
    assert any(n.startswith(".quakefusion-tmp-") for n in tree(out))  # partial files exist now
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"cancelled ({name}): nothing was written" in err and "Traceback" not in err
    assert not out.exists()  # the run created it: removed with the staging folder and the lock
    assert digest(INPUTS) == before


def test_signal_keeps_an_existing_folder_and_its_previous_run(tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    first = _start(tiny_model, out)
    first.communicate(timeout=120)
    assert first.returncode == 0
    previous = digest(p for p in out.iterdir())
    proc = _start(tiny_model, out)
    _wait_for_tiles(proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert digest(p for p in out.iterdir()) == previous and leftovers(out) == []


def test_kill_9_leftovers_are_cleaned_by_the_next_run(tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    proc = _start(tiny_model, out)
    _wait_for_tiles(proc)
    proc.kill()
    proc.communicate(timeout=60)
    stale = leftovers(out)
    assert any(n.startswith(".quakefusion-tmp-") for n in stale) and LOCK_NAME in stale  # SIGKILL cannot be caught
    cfg = EstimateConfig(out_dir=out, optical_pre=InputRaster(DARFIELD / "optical.tif", 1),
                         optical_post=InputRaster(DARFIELD / "optical.tif", 2), model_path=tiny_model)
    res = run_estimate(cfg)  # the dead run's lock is not held any more: the folder is free
    assert leftovers(out) == []
    assert sorted(res.run["files"]) == tree(out)


def test_concurrent_run_into_the_same_folder_is_refused(tiny_model, tmp_path) -> None:
    out = tmp_path / "out"
    proc = _start(tiny_model, out)
    _wait_for_tiles(proc)
    small = tmp_path / "small.tif"
    with rasterio.open(DARFIELD / "optical.tif") as ds:  # a different grid (251 x 251): must never mix
        a = ds.read(window=((0, 251), (0, 251)))
        prof = ds.profile | {"width": 251, "height": 251, "transform": ds.transform}
    with rasterio.open(small, "w", **prof) as ds:
        ds.write(a)
    cfg = EstimateConfig(out_dir=out, optical_pre=InputRaster(small, 1), optical_post=InputRaster(small, 2),
                         model_path=tiny_model)
    with pytest.raises(PipelineError, match=r"output folder .* is in use by another QuakeFusion run \(pid "
                       f"{proc.pid} since") as ei:
        run_estimate(cfg)
    assert ei.value.input_name == "out"
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["files"]) == tree(out)
    for name in run["files"]:
        if name.endswith(".tif"):
            with rasterio.open(out / name) as ds:
                assert (ds.width, ds.height) == (384, 384), name
