"""Helpers of the robustness tests (tests/test_robust_*.py): small real inputs cropped from data/, snapshots of
files (bytes and listing) to prove that inputs are untouched and what a run leaves on disk, temporary mounts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
DARFIELD = ROOT / "data" / "demo_darfield"
THESSALY = ROOT / "data" / "thessaly2021"
BERLIN = ROOT / "data" / "sentinel2_berlin_2016"
WAVELENGTH = "0.05546576"


def crop(src: Path, dst: Path, rows: tuple[int, int], cols: tuple[int, int], bands: list[int] | None = None,
         fn=None, **profile) -> Path:  # noqa: ANN001
    """``src`` cropped to ``rows`` x ``cols`` (a real window of a real file), optionally transformed by ``fn``."""
    with rasterio.open(src) as ds:
        bands = bands or list(range(1, ds.count + 1))
        win = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
        a = ds.read(bands, window=win)
        prof = ds.profile | {"width": a.shape[2], "height": a.shape[1], "count": len(bands),
                             "transform": ds.window_transform(win)}
    if fn is not None:
        a = fn(a)
    prof.update(profile)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **prof) as out:
        out.write(a.astype(prof["dtype"]))
    return dst


def darfield_inputs(folder: Path, size: int = 128) -> dict[str, Path]:
    """The semi-synthetic Darfield inputs, a ``size`` x ``size`` window from the middle of the scene."""
    r = (128, 128 + size)
    names = {"phase": "wrapped_phase.tif", "coherence": "coherence.tif", "optical": "optical.tif",
             "sar": "sar_amplitude.tif", "incidence": "incidence.tif", "heading": "heading.tif", "dem": "dem.tif",
             "unwrapped": "truth_unwrapped_phase.tif"}
    return {k: crop(DARFIELD / v, folder / v, r, r) for k, v in names.items()}


def phase_args(p: dict[str, Path], model: Path, out: Path, *extra: str) -> list[str]:
    """CLI arguments of a phase + coherence + optical run with the angle rasters."""
    return ["estimate", "--phase", str(p["phase"]), "--coherence", str(p["coherence"]),
            "--optical-pre", f"{p['optical']}:1", "--optical-post", f"{p['optical']}:2",
            "--wavelength", WAVELENGTH, "--incidence", str(p["incidence"]), "--heading", str(p["heading"]),
            "--model", str(model), "--out", str(out), "--quiet", *extra]


def optical_args(p: dict[str, Path], model: Path, out: Path, *extra: str) -> list[str]:
    return ["estimate", "--optical-pre", f"{p['optical']}:1", "--optical-post", f"{p['optical']}:2",
            "--model", str(model), "--out", str(out), "--quiet", *extra]


def digest(paths) -> dict[str, str]:  # noqa: ANN001
    """sha256 of every file (inputs before/after a run must be byte-identical)."""
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def tree(folder: Path) -> list[str]:
    """Every entry under ``folder`` (hidden ones included), relative, sorted; [] if it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def leftovers(folder: Path) -> list[str]:
    """Hidden run files (staging folders, the lock) under ``folder``: must be [] after any run."""
    return [n for n in tree(folder) if Path(n).name.startswith(".quakefusion")]


def cli(capsys, *args: str) -> tuple[int, str]:  # noqa: ANN001
    """``python -m backend ARGS`` in this process: (exit code, stdout + stderr)."""
    from backend.cli import main

    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def block_offset(path: Path, row_block: int, col_block: int) -> tuple[int, int]:
    """(byte offset, byte count) of one compressed tile of a GeoTIFF (GDAL's TIFF metadata domain)."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    off = band.GetMetadataItem(f"BLOCK_OFFSET_{col_block}_{row_block}", "TIFF")
    size = band.GetMetadataItem(f"BLOCK_SIZE_{col_block}_{row_block}", "TIFF")
    ds = None
    return int(off), int(size)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(base: Path, size: str = "1m", read_only: bool = False):  # noqa: ANN201
    """A temporary tmpfs mount (root only) of ``size``, optionally remounted read-only; unmounted afterwards."""
    mnt = Path(base) / f"mnt-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def remount_ro(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)


def finite_share(path: Path, band: int = 1) -> float:
    with rasterio.open(path) as ds:
        return float(np.isfinite(ds.read(band)).mean())
