"""`make package` makes a zip QGIS can install: one plugin folder, run-time files only, <= 25 MB."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

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
