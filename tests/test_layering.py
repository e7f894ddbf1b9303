"""Layers point one way: no module of backend/ imports models/, torch or Qt (checked on the source with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANNED = ("models", "torch", "qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "app", "ui", "plugin")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module)
            elif node.level >= 2:  # from .. import x: reaches out of backend/
                names.add("." * node.level + (node.module or ""))
    return names


def test_backend_imports_no_models_torch_or_qt() -> None:
    files = sorted((ROOT / "backend").glob("*.py"))
    assert len(files) >= 15 and (ROOT / "backend" / "pipeline.py") in files
    bad = {f.name: sorted(n for n in _imports(f) if n.split(".")[0] in BANNED or n.startswith(".."))
           for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_development_module_in_backend() -> None:
    for name in ("demo.py", "_testing.py", "evaluation.py"):
        assert not (ROOT / "backend" / name).exists(), name
