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


def _candidates(executable: str, prefix: str, exec_prefix: str, base_prefix: str, version: tuple[int, int],
                windows: bool) -> list[Path]:
    exe = Path(executable) if executable else None
    maj, mnr = version
    if windows:  # OSGeo4W / standalone installer: <root>/bin/qgis-bin.exe, <root>/apps/Python3x/python.exe
        out = [Path(p) / "python.exe" for p in (exec_prefix, prefix, base_prefix) if p]
        if exe is not None:
            root = exe.parent.parent
            out.append(root / "apps" / f"Python{maj}{mnr}" / "python.exe")
            out += sorted(root.glob("apps/Python3*/python.exe"), reverse=True)
        return out
    out = []
    for p in (exec_prefix, prefix, base_prefix):  # Linux, macOS (QGIS.app/Contents/Frameworks/Python.framework/...)
        if p:
            out += [Path(p) / "bin" / f"python{maj}.{mnr}", Path(p) / "bin" / f"python{maj}"]
    if exe is not None:  # macOS: QGIS.app/Contents/MacOS/QGIS with bin/python3 beside it
        out += [exe.parent / "bin" / f"python{maj}.{mnr}", exe.parent / "bin" / f"python{maj}"]
    return out


def find_qgis_python(executable: str | None = None, prefix: str | None = None, exec_prefix: str | None = None,
                     base_prefix: str | None = None, version: tuple[int, int] | None = None,
                     windows: bool | None = None) -> Path | None:
    """The Python interpreter QGIS runs (same version, same installation), or None. ``sys.executable`` is the QGIS
    binary on Windows and macOS, so the interpreter is looked for from ``sys.prefix``/``sys.exec_prefix``: on
    Windows ``python.exe`` in the QGIS apps folder (``<QGIS>/apps/Python3x``), elsewhere ``bin/python3.x``. Never a
    ``python3`` that happens to be first on PATH. Arguments default to this interpreter's ``sys`` values."""
    executable = sys.executable if executable is None else executable
    version = tuple(sys.version_info[:2]) if version is None else tuple(version)
    windows = (os.name == "nt") if windows is None else windows
    exe = Path(executable) if executable else None
    name = exe.name.lower() if exe is not None else ""
    if exe is not None and name.startswith("python") and "qgis" not in name and exe.is_file():
        return exe
    for c in _candidates(executable, sys.prefix if prefix is None else prefix,
                         sys.exec_prefix if exec_prefix is None else exec_prefix,
                         sys.base_prefix if base_prefix is None else base_prefix, version, windows):
        if c.is_file():
            return c
    return None


def qgis_python() -> str:
    """The interpreter pip must run with (:func:`find_qgis_python`); when none is found, the path where QGIS's Python
    should be, so that the command shown and the error say which interpreter is meant (never a bare ``python3``)."""
    found = find_qgis_python()
    if found is not None:
        return str(found)
    if os.name == "nt":
        return str(Path(sys.exec_prefix) / "python.exe")
    return str(Path(sys.exec_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")


def gpu_status() -> tuple[bool, str]:
    """(GPU usable?, a sentence for the dialog). A GPU is claimed only when the CUDA provider of onnxruntime really
    initialises here (a session is created on the shipped model, once per QGIS session), not merely when a GPU
    build of onnxruntime is installed."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False, ("onnxruntime is not installed: no device available (see Raster ▸ QuakeFusion ▸ Install "
                       "dependencies…).")
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        version = ort.__version__
    except Exception as exc:  # a broken install must not break the dialog
        return False, f"onnxruntime cannot be loaded ({exc}); CPU only after reinstalling it."
    if "CUDAExecutionProvider" not in providers:
        return False, f"CPU only: this onnxruntime ({version}) has no CUDA provider."
    from backend.model import cuda_initialises

    if cuda_initialises():
        return True, f"GPU: the CUDA provider of onnxruntime-gpu {version} initialises here; Auto uses the GPU."
    return False, (f"CPU only: onnxruntime-gpu {version} is installed but its CUDA provider does not initialise here "
                   "(no NVIDIA GPU or driver, or the CUDA/cuDNN libraries it needs are missing); runs use the CPU.")


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
