"""Build the plugin zip for QGIS's *Plugins > Manage and Install Plugins > Install from ZIP*.

The zip holds one folder, ``quakefusion/``, with what the plugin needs at run time: the QGIS wiring (``plugin.py``,
``app/``), the widgets (``ui/``), the backend, the shipped ONNX model and its card, the licence and the docs.
Tests, training/demo/evaluation code (``models/*.py``), benchmarks, bundled data and development files stay out.
Fails if the zip would exceed 25 MB.
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_FOLDER = "quakefusion"
MAX_BYTES = 25 * 1024 * 1024

INCLUDE = [
    "metadata.txt", "__init__.py", "plugin.py", "icon.png", "resources.qrc", "LICENSE", "README.md",
    "requirements.txt", "ui/*", "app/*", "backend/*", "models/quakefusion.onnx", "models/MODEL_CARD.md", "docs/*.md",
    "docs/img/*.png", "resources/*.qpt",
]
EXCLUDE = ["tests/*", "benchmarks/*", "tools/*", "data/*", ".ci/*", "*/__pycache__/*", "*.pyc"]


def plugin_files(root: Path = ROOT) -> list[str]:
    """Tracked (and untracked, not ignored) files that belong in the plugin zip, repository-relative."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.split()
    keep = []
    for name in sorted(set(listed)):
        if not (root / name).is_file():
            continue
        if any(fnmatch.fnmatch(name, pat) for pat in EXCLUDE):
            continue
        if "/" not in name and not any(fnmatch.fnmatch(name, p) for p in INCLUDE if "/" not in p):
            continue
        if "/" in name and not any(fnmatch.fnmatch(name, p) for p in INCLUDE if "/" in p):
            continue
        keep.append(name)
    return keep


def build(out: Path, root: Path = ROOT) -> Path:
    """Write the zip to ``out`` and return it."""
    files = plugin_files(root)
    if "metadata.txt" not in files or "__init__.py" not in files:
        raise SystemExit("package: metadata.txt and __init__.py must be in the repository root")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in files:
            zf.write(root / name, f"{PLUGIN_FOLDER}/{name}")
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        raise SystemExit(f"package: {size / 1e6:.1f} MB exceeds the 25 MB limit of the QGIS plugin repository")
    tmp.replace(out)
    print(f"{out} ({size / 1e6:.2f} MB, {len(files)} files)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / f"{PLUGIN_FOLDER}.zip")
    args = parser.parse_args(argv)
    build(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
