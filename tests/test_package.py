"""`make package` makes a zip QGIS can install: one plugin folder, run-time files only, <= 25 MB."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _package_module():
    spec = importlib.util.spec_from_file_location("qf_package", ROOT / "tools" / "package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zip_layout_and_size(tmp_path: Path) -> None:
    out = _package_module().build(tmp_path / "quakefusion.zip")
    assert out.stat().st_size <= 25 * 1024 * 1024
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
    assert all(n.startswith("quakefusion/") for n in names)
    for needed in ("metadata.txt", "__init__.py", "icon.png", "LICENSE", "backend/conventions.py"):
        assert f"quakefusion/{needed}" in names
    for banned in ("quakefusion/tests/", "quakefusion/benchmarks/", "quakefusion/data/", "quakefusion/.ci/",
                   "quakefusion/tools/", "quakefusion/Makefile"):
        assert not any(n.startswith(banned) for n in names), banned
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)
    if (ROOT / "models" / "quakefusion.onnx").exists():
        assert "quakefusion/models/quakefusion.onnx" in names
    assert not any(n.startswith("quakefusion/models/") and n.endswith(".py") for n in names)
    # the Help button opens docs/user_guide.md of the installed plugin: every picture it shows is shipped with it
    import re

    pictures = re.findall(r"\(img/([\w.-]+\.png)\)", (ROOT / "docs" / "user_guide.md").read_text())
    assert len(pictures) >= 5
    for pic in pictures:
        assert f"quakefusion/docs/img/{pic}" in names, pic


@pytest.mark.slow
def test_zip_installs_into_a_fresh_profile_and_runs(tmp_path: Path) -> None:
    """Unzip into a fresh QGIS profile's plugin folder and run an estimate from there (its own backend and model):
    the pixel values equal the repository's run on the same input."""
    import json
    import os
    import subprocess
    import sys

    import numpy as np
    import rasterio

    out = _package_module().build(tmp_path / "quakefusion.zip")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        plugins = tmp_path / "profile" / "python" / "plugins"
        zf.extractall(plugins)
    for dev in ("demo.py", "testing.py", "metrics.py", "evaluation.py", "_testing.py"):
        assert not any(n.endswith(f"/{dev}") for n in names), dev
    plugin = plugins / "quakefusion"
    ev = json.loads((ROOT / "data" / "thessaly2021" / "event.json").read_text())
    args = ["--phase", str(ROOT / "data" / "thessaly2021" / "phase_wrapped.tif"), "--wavelength",
            str(ev["wavelength_m"]), "--incidence", str(ev["incidence_deg"]), "--heading", str(ev["heading_deg"]),
            "--extent", "0", "0", "0", "0", "--device", "cpu", "--quiet", "--no-unwrap"]
    with rasterio.open(ROOT / "data" / "thessaly2021" / "phase_wrapped.tif") as ds:
        b = ds.bounds
    cx, cy = (b.left + b.right) / 2, (b.bottom + b.top) / 2
    args[args.index("--extent") + 1:args.index("--extent") + 5] = [str(cx - 6000), str(cy - 6000), str(cx + 6000),
                                                                    str(cy + 6000)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    runs = {}
    for name, cwd in (("installed", plugin), ("repository", ROOT)):
        o = tmp_path / name
        p = subprocess.run([sys.executable, "-m", "backend", "estimate", *args, "--out", str(o)], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        run = json.loads((o / "run.json").read_text())
        assert Path(run["model"]["path"]).resolve().is_relative_to(cwd.resolve())  # its own model file
        with rasterio.open(o / "displacement.tif") as ds:
            runs[name] = ds.read()
            assert 120 <= ds.width <= 121 and 120 <= ds.height <= 121  # 12 km at 100 m, snapped outwards
    a = runs["installed"]
    assert np.isfinite(a).mean() > 0.5 and np.nanmax(np.abs(a)) > 0
    np.testing.assert_array_equal(a, runs["repository"])
    assert np.isfinite(a[0, 60, 60]) and a[0, 60, 60] == runs["repository"][0, 60, 60]
