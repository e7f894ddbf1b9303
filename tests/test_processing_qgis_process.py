"""The Processing algorithm through ``qgis_process`` (a separate QGIS process that finds the plugin) and in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.qgis_slow

QGIS_PROCESS = shutil.which("qgis_process")
# Debian's /usr/bin/qgis_process wrapper passes QGIS_OPTS=--noversioncheck from /etc/default/qgis, which the 3.22
# executable rejects ("Command --noversioncheck not known!"): call the real binary beside it when there is one.
if QGIS_PROCESS and os.path.exists(QGIS_PROCESS + ".bin"):
    QGIS_PROCESS += ".bin"
ALG = "quakefusion:estimate_displacement"


@pytest.fixture(scope="module")
def qp_env(tmp_path_factory) -> dict[str, str]:
    """Environment for qgis_process: own profile (HOME/XDG), QGIS_PLUGINPATH with a ``quakefusion`` symlink,
    the venv's packages (rasterio, onnxruntime) on PYTHONPATH; the plugin enabled with ``plugins enable``."""
    if QGIS_PROCESS is None:
        pytest.skip("qgis_process is not installed")
    base = tmp_path_factory.mktemp("qgis_process")
    plugins = base / "plugins"
    plugins.mkdir()
    (plugins / "quakefusion").symlink_to(Path(__file__).resolve().parents[1], target_is_directory=True)
    run_dir = base / "runtime"
    run_dir.mkdir(mode=0o700)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(base / "home"),
           "XDG_DATA_HOME": str(base / "home" / ".local" / "share"), "XDG_RUNTIME_DIR": str(run_dir),
           "QGIS_PLUGINPATH": str(plugins), "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    env.pop("QGIS_CUSTOM_CONFIG_PATH", None)
    out = subprocess.run([QGIS_PROCESS, "plugins", "enable", "quakefusion"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "* quakefusion" in out.stdout
    return env


def _run(env: dict[str, str], *params: str) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, "--json", "run", ALG, "--", *params], env=env, capture_output=True,
                          text=True, timeout=300)


def test_qgis_process_lists_and_runs_the_algorithm(qp_env, sim_scene, qf_model, tmp_path) -> None:
    listing = subprocess.run([QGIS_PROCESS, "list"], env=qp_env, capture_output=True, text=True, timeout=120)
    assert ALG in listing.stdout and "Estimate displacement (multi-modal)" in listing.stdout
    p = sim_scene["paths"]
    out = _run(qp_env, f"PHASE={p['phase']}", f"COHERENCE={p['coherence']}", f"SAR_PRE={p['sar']}", "SAR_PRE_BAND=1",
               f"SAR_POST={p['sar']}", "SAR_POST_BAND=2", f"INCIDENCE_CONSTANT={sim_scene['incidence']:.3f}",
               f"HEADING_CONSTANT={sim_scene['heading']:.3f}", "WAVELENGTH=0", "PHASE_SIGN=0", "DEVICE=2",
               "TILE=64", f"MODEL={qf_model}", "RUN_NAME=cli run", f"OUTPUT_FOLDER={tmp_path / 'out'}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = json.loads(out.stdout[out.stdout.index("{"):])["results"]
    run_dir = tmp_path / "out" / "cli_run"
    assert res["RUN_FOLDER"] == str(run_dir) and res["DEVICE_USED"] == "cpu"
    for key in ("EAST", "NORTH", "UP", "HORIZONTAL", "UNCERTAINTY", "LOS_DISPLACEMENT", "UNWRAPPED_PHASE",
                "REWRAPPED_PHASE", "ARROWS"):
        assert Path(res[key]).exists(), key
        assert Path(res[key]).with_suffix(".qml").exists(), key
    with rasterio.open(res["DISPLACEMENT"]) as ds:
        assert ds.count == 3 and (ds.height, ds.width) == sim_scene["size"]
        assert ds.crs.to_epsg() == sim_scene["crs"]
        enu = ds.read()
    with rasterio.open(res["HORIZONTAL"]) as ds:
        np.testing.assert_allclose(ds.read(1), np.hypot(enu[0], enu[1]), rtol=1e-5)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["parameters"]["wavelength_m"] == pytest.approx(0.05546576)
    assert set(run["inputs"]) == {"phase", "coherence", "sar_pre", "sar_post"}


def test_qgis_process_reports_input_problems_in_words(qp_env, sim_scene, tmp_path) -> None:
    p = sim_scene["paths"]
    out = _run(qp_env, f"OPTICAL_PRE={p['optical']}", f"OUTPUT_FOLDER={tmp_path / 'out'}")
    assert out.returncode != 0
    assert "give both images of the pair (OPTICAL_PRE and OPTICAL_POST) or neither" in (out.stdout + out.stderr)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.tif"))


def test_in_process_algorithm_with_extent(qgis_app, qgis_processing, qgis_new_project, qf_plugin_pkg, sim_scene,
                                          qf_model, tmp_path) -> None:
    """Toolbox / batch / model designer all call the same registered algorithm: run it with processing.run."""
    import processing
    from qgis.core import QgsApplication
    from quakefusion.app.provider import QuakeFusionProvider

    reg = QgsApplication.processingRegistry()
    provider = QuakeFusionProvider()
    assert reg.addProvider(provider)
    try:
        a, _, c, _, e, f = sim_scene["transform"]
        extent = f"{c + 16 * a},{c + 80 * a},{f + 64 * e},{f + 16 * e} [EPSG:{sim_scene['crs']}]"
        p = sim_scene["paths"]
        res = processing.run(ALG, {"OPTICAL_PRE": str(p["optical"]), "OPTICAL_PRE_BAND": 1,
                                   "OPTICAL_POST": str(p["optical"]), "OPTICAL_POST_BAND": 2,
                                   "PHASE": str(p["phase"]), "DEM": str(p["dem"]), "EXTENT": extent, "TILE": 64,
                                   "MODEL": str(qf_model),
                                   "DEVICE": 2, "RUN_NAME": "inproc", "OUTPUT_FOLDER": str(tmp_path / "o")})
        with rasterio.open(res["EAST"]) as ds:
            assert (ds.width, ds.height) == (64, 48)
            assert ds.transform.c == pytest.approx(c + 16 * a) and ds.transform.f == pytest.approx(f + 16 * e)
            assert np.isfinite(ds.read(1)).mean() > 0.5
        assert Path(res["LOS_DISPLACEMENT"]).exists() and Path(res["UNWRAPPED_PHASE"]).exists()
        with rasterio.open(res["UNWRAPPED_PHASE"]) as ds:
            assert (ds.width, ds.height) == (64, 48)
        alg = reg.algorithmById(ALG)
        names = [d.name() for d in alg.parameterDefinitions()]
        for n in ("OPTICAL_PRE", "OPTICAL_PRE_BAND", "PHASE", "COHERENCE", "DEM", "INCIDENCE", "HEADING",
                  "INCIDENCE_CONSTANT", "HEADING_CONSTANT", "WAVELENGTH", "PHASE_SIGN", "EXTENT", "DEVICE", "TILE",
                  "OUTPUT_FOLDER"):
            assert n in names
    finally:
        reg.removeProvider(provider)
    assert sys.modules.get("quakefusion") is not None


def test_qgis_process_two_interferograms(qp_env, tmp_path) -> None:
    """Ascending + descending L band (models/sim_tracks.py), InSAR only: the first as PHASE/COHERENCE/LOS_VECTOR,
    the second through MORE_PHASES / MORE_COHERENCES / MORE_LOS_VECTORS; wavelength and sign as the first."""
    from models.scene import simulate_scene
    from models.sim_tracks import render_tracks, write_tracks

    s = simulate_scene(3, size=(128, 128), pixel_size_m=60.0, overrides={"mw_range": (6.0, 6.4)})
    tracks = render_tracks(s, tracks=(("ascending", "L"), ("descending", "L")), seed=3)
    write_tracks(tmp_path / "in", s, tracks)
    assert tracks[0].wavelength_m == 0.2384 and tracks[1].phase_sign == tracks[0].phase_sign
    sign = 3 if tracks[0].phase_sign == 1 else 4  # "Custom +1" / "Custom -1"
    d = tmp_path / "in"
    out = _run(qp_env, f"PHASE={d / 'phase_1.tif'}", f"COHERENCE={d / 'coherence_1.tif'}",
               f"LOS_VECTOR={d / 'los_vector_1.tif'}", f"MORE_PHASES={d / 'phase_2.tif'}",
               f"MORE_COHERENCES={d / 'coherence_2.tif'}", f"MORE_LOS_VECTORS={d / 'los_vector_2.tif'}",
               "WAVELENGTH=2", f"PHASE_SIGN={sign}", "DEVICE=2", "RUN_NAME=two", f"OUTPUT_FOLDER={tmp_path / 'out'}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = json.loads(out.stdout[out.stdout.index("{"):])["results"]
    run_dir = tmp_path / "out" / "two"
    assert res["INTERFEROGRAMS"] == 2 and res["UNWRAPPED_PHASE"] == str(run_dir / "unwrapped_phase_1.tif")
    for k in (1, 2):
        for stem in ("unwrapped_phase", "los_displacement", "unwrap_regions"):
            assert (run_dir / f"{stem}_{k}.tif").is_file() and (run_dir / f"{stem}_{k}.qml").is_file(), (stem, k)
        with rasterio.open(run_dir / f"unwrapped_phase_{k}.tif") as a, rasterio.open(d / f"phase_{k}.tif") as b:
            kk = (a.read(1).astype(np.float64) - b.read(1)) / (2 * np.pi)
        assert np.nanmax(np.abs(kk - np.rint(kk))) < 1e-4
    with rasterio.open(res["DISPLACEMENT"]) as ds:
        east = ds.read(1)
    assert np.isfinite(east).mean() > 0.9  # asc + desc see east
    run = json.loads((run_dir / "run.json").read_text())
    assert run["parameters"]["interferograms"][1]["wavelength_m"] == pytest.approx(0.2384)
    assert run["model"]["version"].startswith("none")
