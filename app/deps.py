"""Python dependencies of the backend inside the user's QGIS: what is missing, and the pip command to fix it.

No Qt and no heavy import: ``missing()`` asks importlib whether the modules can be found and reads installed
versions from the package metadata (``affine`` must stay < 3: rasterio 1.4 + affine 3 break ``ds.res`` and
``tuple(transform)``, see requirements.txt).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

REQUIRED = {"onnxruntime": "onnxruntime", "rasterio": "rasterio", "scipy": "scipy"}  # module -> pip name (CPU)
GPU_PIP = "onnxruntime-gpu"
RASTERIO_SPEC = "rasterio>=1.3,<1.5"
AFFINE_SPEC = "affine>=2.4,<3"
AFFINE_MAX_MAJOR = 3  # affine >= 3 is a problem, reported like a missing package
SCIPY_SPEC = "scipy>=1.10"
ORT_SPEC = ">=1.17"


def _affine_too_new() -> bool:
    try:
        major = int(importlib.metadata.version("affine").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return major >= AFFINE_MAX_MAJOR


def missing(modules: dict[str, str] | None = None) -> list[str]:
    """Module names of ``modules`` (default: onnxruntime, rasterio, scipy) that cannot be imported, plus
    ``"affine<3"`` when the installed affine is too new for rasterio (only with the default modules)."""
    out = [m for m in (modules or REQUIRED) if importlib.util.find_spec(m) is None]
    if modules is None and _affine_too_new():
        out.append("affine<3")
    return out


def numpy_version() -> str | None:
    try:
        import numpy

        return str(numpy.__version__)
    except Exception:
        return None


def qgis_python() -> str:
    """The Python interpreter of this QGIS (sys.executable is the QGIS binary on Windows and macOS)."""
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    cands = [Path(sys.exec_prefix) / "python.exe", Path(sys.exec_prefix) / "python3.exe",
             Path(sys.exec_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}",
             Path(sys.exec_prefix) / "bin" / "python3", Path("/usr/bin/python3")]
    for c in cands:
        if c.exists():
            return str(c)
    return "python3"


def pip_args(gpu: bool = False, user: bool = True) -> list[str]:
    """Arguments after the interpreter: ``-m pip install ...`` keeping QGIS's numpy (no numpy 2 upgrade)."""
    args = ["-m", "pip", "install", "--disable-pip-version-check"]
    if user and sys.prefix == sys.base_prefix and os.name != "nt":
        args.append("--user")
    args += [(GPU_PIP if gpu else "onnxruntime") + ORT_SPEC, RASTERIO_SPEC, AFFINE_SPEC, SCIPY_SPEC]
    nv = numpy_version()
    if nv:
        args.append(f"numpy=={nv}")  # pins the numpy QGIS ships: its GDAL bindings are built against it
    return args


def pip_command(gpu: bool = False) -> str:
    """The whole command as a user would type it."""
    parts = [qgis_python(), *pip_args(gpu)]
    return " ".join(f'"{p}"' if (" " in p or "<" in p or ">" in p) else p for p in parts)
