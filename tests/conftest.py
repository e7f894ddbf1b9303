"""Shared fixtures: import the plugin the way QGIS does, a small simulated scene, a model file.

* ``qf_plugin_pkg``: the repository root imported as the package ``quakefusion`` (a temp dir holding a symlink
  ``quakefusion`` -> repo root is put on ``sys.path``), exactly like QGIS imports a plugin folder.
* ``sim_scene``: a small simulated event written as GeoTIFFs (``models.scene.simulate_scene``) in a temp dir.
* ``qf_model``: the shipped ``models/quakefusion.onnx`` when it exists, else a tiny stand-in with the same
  I/O and metadata (``models.testing.make_tiny_model``).

Nothing here is autouse, so other test modules are unaffected.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "quakefusion"
UTM = "EPSG:32634"
_PKG_DIR: Path | None = None


def write_raster(path: Path, data, transform, crs: str | None = UTM, nodata: float | None = float("nan"),
                 dtype: str = "float32") -> Path:
    """A GeoTIFF of ``data`` (2-D, or bands first); ``crs=None`` writes none."""
    import numpy as np
    import rasterio

    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    prof = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=dtype,
                transform=transform, nodata=nodata)
    if crs is not None:
        prof["crs"] = crs
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data.astype(dtype))
    return Path(path)


def read_band(path: Path, band: int = 1):
    """One band of a raster as stored (no masking)."""
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(band)


def run_backend(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m backend ARGS`` in a subprocess (from the repository root unless ``cwd``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny ONNX stand-in (same I/O and metadata as the shipped model)."""
    from models.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


def plugin_parent_dir() -> Path:
    """A temp dir holding the symlink ``quakefusion`` -> repo root (created once per session)."""
    global _PKG_DIR
    if _PKG_DIR is None:
        _PKG_DIR = Path(tempfile.mkdtemp(prefix="qf-plugins-"))
        (_PKG_DIR / PLUGIN_NAME).symlink_to(ROOT, target_is_directory=True)
    return _PKG_DIR


@pytest.fixture(scope="session")
def qf_plugin_pkg():
    """The plugin package imported as QGIS does (``import quakefusion``)."""
    parent = str(plugin_parent_dir())
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return importlib.import_module(PLUGIN_NAME)


@pytest.fixture(scope="session")
def qf_model(tmp_path_factory) -> Path:
    shipped = ROOT / "models" / "quakefusion.onnx"
    if shipped.exists():
        return shipped
    from models.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


def write_scene(out: Path, seed: int = 3, size: tuple[int, int] = (96, 96), pixel: float = 30.0) -> dict:
    """Write a simulated scene: optical.tif (2 bands pre/post), sar.tif (2 bands), phase, coherence, dem."""
    import numpy as np
    import rasterio
    from affine import Affine

    from models.scene import simulate_scene

    s = simulate_scene(seed, size=size, pixel_size_m=pixel)
    out.mkdir(parents=True, exist_ok=True)
    prof = dict(driver="GTiff", height=size[0], width=size[1], dtype="float32", crs=f"EPSG:{s.crs}",
                transform=Affine(*s.transform), nodata=float("nan"))
    files = {"optical": (["optical_pre", "optical_post"]), "sar": (["sar_pre", "sar_post"]),
             "phase": ["wrapped_phase"], "coherence": ["coherence"], "dem": ["dem"]}
    paths = {}
    for name, keys in files.items():
        p = out / f"{name}.tif"
        with rasterio.open(p, "w", count=len(keys), **prof) as ds:
            for i, k in enumerate(keys, start=1):
                ds.write(np.asarray(getattr(s, k), dtype=np.float32), i)
                ds.set_band_description(i, k)
        paths[name] = p
    los = s.los_unit_vector
    inc = float(np.degrees(np.arccos(np.clip(los[2].mean(), -1, 1))))
    hdg = float(np.degrees(np.arctan2(los[1].mean(), -los[0].mean())))
    return {"paths": paths, "scene": s, "incidence": inc, "heading": hdg, "crs": s.crs,
            "transform": s.transform, "size": size}


@pytest.fixture
def sim_scene(tmp_path: Path) -> dict:
    return write_scene(tmp_path / "scene")


@pytest.fixture
def scene_factory(tmp_path: Path):
    """``scene_factory(seed=.., size=(H, W), pixel=..)`` -> a written scene (see ``write_scene``)."""
    count = iter(range(1000))
    return lambda **kw: write_scene(tmp_path / f"scene_{next(count)}", **kw)


@pytest.fixture
def qf_clean_settings(qgis_app):
    """Forget QuakeFusion's remembered dialog values (QgsSettings persist between test sessions)."""
    from qgis.core import QgsSettings

    QgsSettings().remove("QuakeFusion")
    yield
    QgsSettings().remove("QuakeFusion")


# ------------------------------------------------------------------ the geologist's tools (Step 10): known truth
MW69 = {"seed": 7, "size": (256, 256), "pixel": 30.0}  # the Mw 6.9 event (seed 7; same event at any grid
# covering 7.68 km: 768 x 768 at 10 m in the acceptance run, 256 x 256 at 30 m here for speed)


@pytest.fixture(scope="session")
def mw69_scene():
    """``models.scene.simulate_scene(7, ...)``: Mw 6.9 strike-slip surface rupture (strike 73.7 deg, rake 2.3 deg:
    left-lateral), 4 patches, slip 2.48 m and 2.06 m across the scene."""
    from models.scene import simulate_scene

    return simulate_scene(MW69["seed"], size=MW69["size"], pixel_size_m=MW69["pixel"])


@pytest.fixture(scope="session")
def mw69_run(mw69_scene, tmp_path_factory) -> Path:
    """A run folder of the Mw 6.9 TRUTH + 5 cm white noise (sigma raster 5 cm) + a synthetic
    rupture_probability.tif (the truth's rupture mask blurred)."""
    from models.testing import write_truth_run

    return write_truth_run(mw69_scene, tmp_path_factory.mktemp("mw69_run"), noise_m=0.05, seed=1)


@pytest.fixture(scope="session")
def mw69_phase_run(mw69_run, mw69_scene, tmp_path_factory) -> Path:
    """The Mw 6.9 truth run folder plus the scene's simulated wrapped phase as ``rewrapped_phase.tif`` (what a run
    with an interferogram writes: the input phase, on the run's grid)."""
    import shutil

    import numpy as np
    import rasterio

    d = tmp_path_factory.mktemp("mw69_phase") / "run"
    shutil.copytree(mw69_run, d)
    with rasterio.open(d / "displacement.tif") as src:
        prof = src.profile | {"count": 1, "dtype": "float32", "nodata": None}
    with rasterio.open(d / "rewrapped_phase.tif", "w", **prof) as ds:
        ds.write(np.asarray(mw69_scene.wrapped_phase, np.float32), 1)
    return d


@pytest.fixture(scope="session")
def mw69_truth(mw69_scene):
    """``truth(x, y)`` -> ``models.testing.true_fault_offsets`` of the Mw 6.9 scene at a map point on the trace."""
    from models.testing import true_fault_offsets

    return lambda x, y: true_fault_offsets(mw69_scene, x, y)
