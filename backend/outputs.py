"""The output files: names, GeoTIFF profile, the staging folder and the row writer of the tiled inference.

Outputs are written into a temporary folder inside ``out_dir`` (:class:`Staging`) and moved in only when the run
succeeds; a failed or cancelled run leaves nothing (and removes ``out_dir`` if the run created it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from . import products
from .conventions import enu_to_los
from .errors import PipelineError
from .io import Grid

# key -> file name. The first five are the backend's core outputs; the rest are derived products (products.py).
OUTPUT_NAMES = {"displacement": "displacement.tif", "displacement_sigma": "displacement_sigma.tif",
                "los_displacement": "los_displacement.tif", "unwrapped_phase": "unwrapped_phase.tif",
                "run_json": "run.json", "rupture_probability": "rupture_probability.tif",
                "east": "displacement_east.vrt", "north": "displacement_north.vrt", "up": "displacement_up.vrt",
                "horizontal": "horizontal_magnitude.tif", "uncertainty": "uncertainty.tif",
                "rewrapped_phase": "rewrapped_phase.tif", "arrows": "displacement_arrows.gpkg",
                "unwrap_regions": "unwrap_regions.tif"}
SAR_SHARE_FILE = ".sar_share.tif"  # staged, never published: sar_share for the (experimental) inversion coupling
COLUMN_CHUNK = 2048  # the writer works on column chunks: temporaries stay small on wide rasters


def profile(grid: Grid, count: int) -> dict[str, Any]:
    """Float32 tiled deflate GeoTIFF, NaN = no data."""
    bs = 256 if min(grid.width, grid.height) >= 256 else 16 * max(1, min(grid.width, grid.height) // 16)
    prof: dict[str, Any] = dict(driver="GTiff", width=grid.width, height=grid.height, count=count, dtype="float32",
                                crs=grid.crs, transform=grid.transform, nodata=float("nan"), compress="deflate",
                                predictor=3, BIGTIFF="IF_SAFER")
    if bs >= 16:
        prof.update(tiled=True, blockxsize=bs, blockysize=bs)
    return prof


def open_out(path: Path, grid: Grid, descriptions: list[str], units: list[str], tags: dict[str, str]) -> Any:
    ds = rasterio.open(path, "w", **profile(grid, len(descriptions)))
    for i, (d, u) in enumerate(zip(descriptions, units), start=1):
        ds.set_band_description(i, d)
        ds.update_tags(i, units=u)
    ds.units = tuple(units)
    ds.update_tags(**tags)
    return ds


# Files a run (or the geologist's tools working on a run folder) may write, as patterns: the backend's outputs,
# per-interferogram outputs (``unwrapped_phase_<k>.tif``...), the tools' outputs, the ``.qml`` styles beside them
# and GDAL/SQLite side-cars. An input must never have one of these names in the output folder (or be the same file,
# e.g. through a hard link), and a new run removes the previous run's files of these names (docs/robustness.md).
PER_IFG_KEYS = ("unwrapped_phase", "los_displacement", "rewrapped_phase", "unwrap_regions")
TOOL_OUTPUTS = ("rupture_trace.gpkg", "fault_offsets.gpkg", "fault_offsets.csv", "report.pdf", "run.log")
SIDECARS = (".aux.xml", ".ovr", "-wal", "-shm", "-journal")
LOCK_NAME = ".quakefusion.lock"
TMP_PREFIX = ".quakefusion-tmp-"
COMMITTING = threading.Event()  # set while a run moves its files in (the CLI defers signals meanwhile)
BANDS_WRITTEN = 13  # float32 bands a run writes at most (displacement 3, sigma 3, LOS 2, phases 2, products 3)
BANDS_PER_IFG = 6  # and per further interferogram (LOS 2, phases 2, regions 1 int32, margin 1)


def _name_regex() -> re.Pattern[str]:
    alts = []
    for key, name in OUTPUT_NAMES.items():
        stem, ext = os.path.splitext(name)
        num = r"(?:_\d+)?" if key in PER_IFG_KEYS else ""
        alts.append(re.escape(stem) + num + "(?:" + re.escape(ext) + r"|\.qml)")
    for name in TOOL_OUTPUTS:
        stem, ext = os.path.splitext(name)
        alts.append(re.escape(stem) + (r"\.\w+" if stem == "fault_offsets" else "(?:" + re.escape(ext) + r"|\.qml)"))
    side = "|".join(re.escape(x) for x in SIDECARS)
    return re.compile(f"(?:{'|'.join(alts)})(?:{side})?", re.IGNORECASE)


_OUTPUT_RE = _name_regex()


def is_output_name(name: str) -> bool:
    """True for a file name a run or the run-folder tools may write (compared without case: Windows, macOS)."""
    return _OUTPUT_RE.fullmatch(name) is not None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_overwritten(paths: dict[str, Path], out_dir: Path) -> None:
    """Never write (or remove) an input: refuse when an input, followed through symbolic links, lies in the output
    folder under a name a run writes, or is the same file (hard link, bind mount) as such a file there."""
    out_real = Path(os.path.realpath(out_dir))
    try:
        existing = [e for e in out_real.iterdir() if is_output_name(e.name)] if out_real.is_dir() else []
    except OSError:  # unreadable folder: Staging reports it with the fix
        existing = []
    for name, p in paths.items():
        real = Path(os.path.realpath(p))
        clash = None
        if real.parent == out_real and is_output_name(real.name):
            clash = real.name
        else:
            clash = next((e.name for e in existing if _same_file(e, real)), None)
        if clash is not None:
            how = "" if str(real) == str(Path(p).absolute()) else f" (it is {real})"
            raise PipelineError(f"{name} ({p}){how} would be overwritten or removed by this run's {clash} in the "
                                f"output folder {out_dir}. Fix: choose another output folder (--out), or move the "
                                "input out of it", name)


def _folder_error(out_dir: Path, exc: OSError) -> PipelineError:
    if isinstance(exc, (FileExistsError, NotADirectoryError)) or (out_dir.exists() and not out_dir.is_dir()):
        bad = next((p for p in (out_dir, *out_dir.parents) if p.exists() and not p.is_dir()), out_dir)
        return PipelineError(f"output folder {out_dir}: {bad} is a file, not a folder. Fix: give a folder path "
                             "(it is created if missing)", "out")
    if exc.errno == errno.ENOSPC:
        return PipelineError(f"output folder {out_dir}: the disk is full ({exc.strerror}). Fix: free some space or "
                             "choose a folder on another disk", "out")
    return PipelineError(f"output folder {out_dir}: cannot write there ({exc.strerror or exc}). Fix: choose a "
                         "folder you can write to (e.g. in your home folder), or change its permissions", "out")


class FolderLock:
    """An exclusive, non-blocking lock of a run folder (``.quakefusion.lock``, removed on release). The operating
    system releases it when the process dies (``kill -9``), so a crashed run never blocks the folder."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                holder = _read_holder(self.path)
                raise PipelineError(f"output folder {self.path.parent} is in use by another QuakeFusion run{holder}. "
                                    "Fix: wait until it has finished, or choose another output folder", "out")
            try:  # the previous holder may have removed the file between our open and our lock: retry
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
                self.fd = fd
                return
            os.close(fd)
        raise PipelineError(f"output folder {self.path.parent}: cannot lock it. Fix: choose another folder", "out")

    def release(self) -> None:
        if self.fd is None:
            return
        if os.name != "nt":  # POSIX: remove while still holding the lock (Windows cannot remove an open file)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self.fd)  # closing releases the lock
        self.fd = None


def _try_lock(fd: int) -> bool:
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _read_holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""


def clean_stale_runs(root: Path) -> list[Path]:
    """Remove what killed runs left in the run folders directly under ``root`` (the dialog's and Processing's
    "output folder"): hidden staging folders of folders no run holds (their lock can be taken), and such a folder
    itself when nothing else is in it. Returns the folders cleaned. Never touches a folder in use."""
    cleaned = []
    root = Path(root)
    if not root.is_dir():
        return cleaned
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if not any(sub.glob(TMP_PREFIX + "*")):
            continue
        lock = FolderLock(sub)
        try:
            lock.acquire()
        except (PipelineError, OSError):
            continue  # in use, or not ours to touch
        try:
            for p in sub.glob(TMP_PREFIX + "*"):
                shutil.rmtree(p, ignore_errors=True)
        finally:
            lock.release()
        cleaned.append(sub)
        with contextlib.suppress(OSError):
            sub.rmdir()  # only when empty
    return cleaned


class Staging:
    """Context manager of one run's files in ``out_dir``:

    * creates ``out_dir`` if needed (clear errors for a file in the way, a read-only or full disk) and locks it
      (:class:`FolderLock`: one run per folder);
    * removes hidden temporary folders left by killed runs;
    * writes into a new hidden temporary folder; :meth:`commit` removes the previous run's output files, moves the
      new ones in (``run.json`` last) and returns them;
    * on any exit removes the temporary folder and the lock (and ``out_dir`` if the run created it and failed).
    """

    def __init__(self, out_dir: Path, need_bytes: int = 0, tmp: Path | None = None) -> None:
        """``tmp``: an existing temporary folder of ``out_dir`` (see :meth:`new_tmp`) whose files are staged already
        (a blind first pass of ``trace_auto`` that becomes the run); default: a new one."""
        self.out_dir = Path(os.path.abspath(out_dir))
        self.need_bytes = int(need_bytes)
        self.created = False
        self.tmp = Path(os.path.abspath(tmp)) if tmp is not None else self.new_tmp(self.out_dir)
        self.lock = FolderLock(self.out_dir)
        self.removed: list[str] = []

    def __enter__(self) -> Staging:
        created = [p for p in (self.out_dir, *self.out_dir.parents) if not p.exists()]
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _folder_error(self.out_dir, exc) from exc
        if not self.out_dir.is_dir():
            raise _folder_error(self.out_dir, NotADirectoryError(errno.ENOTDIR, "not a folder"))
        self.created = bool(created)
        try:
            try:
                self.lock.acquire()
            except PipelineError:
                raise
            except OSError as exc:
                raise _folder_error(self.out_dir, exc) from exc
            self._remove_stale_tmp()
            try:
                self.tmp.mkdir(exist_ok=True)
                probe = self.tmp / ".write-test"
                probe.write_bytes(b"0" * 4096)
                probe.unlink()
            except OSError as exc:
                raise _folder_error(self.out_dir, exc) from exc
            free = shutil.disk_usage(self.tmp).free
            if free < self.need_bytes:
                raise PipelineError(f"output folder {self.out_dir}: only {free / 2**20:.1f} MiB free on its disk, "
                                    f"this run writes up to about {self.need_bytes / 2**20:.1f} MiB. Fix: free some "
                                    "space or choose a folder on another disk", "out")
        except BaseException:
            self._cleanup(failed=True)
            raise
        return self

    @staticmethod
    def new_tmp(out_dir: Path, tag: str = "") -> Path:
        """A new temporary folder name inside ``out_dir`` (not created): hidden, and removed by the next run into
        ``out_dir`` when a killed run left it behind."""
        return Path(os.path.abspath(out_dir)) / f"{TMP_PREFIX}{tag}{uuid.uuid4().hex[:8]}"

    def _remove_stale_tmp(self) -> None:
        for p in self.out_dir.glob(TMP_PREFIX + "*"):
            if p.is_dir() and not p.is_symlink() and p != self.tmp:
                shutil.rmtree(p, ignore_errors=True)

    def path(self, key: str) -> Path:
        return self.tmp / OUTPUT_NAMES[key]

    def file(self, name: str) -> Path:
        """Staging path of an output without a key in OUTPUT_NAMES (e.g. ``unwrapped_phase_2.tif``); its name must
        be an output name (:func:`is_output_name`) so that inputs are protected from it and the next run replaces
        it."""
        if not is_output_name(name):
            raise ValueError(f"{name!r} is not an output name (see outputs.is_output_name)")
        return self.tmp / name

    def produced(self) -> dict[str, Path]:
        """key -> staged file: the OUTPUT_NAMES keys, then any other staged file under its stem."""
        out = {k: self.path(k) for k in OUTPUT_NAMES if self.path(k).exists()}
        known = {p.name for p in out.values()}
        for p in sorted(self.tmp.iterdir()):
            if p.is_file() and p.name not in known and not p.name.startswith("."):
                out[p.stem] = p
        return out

    def stale(self) -> list[str]:
        """Names of files in ``out_dir`` that an earlier run (or its tools) wrote: removed by :meth:`commit`."""
        return sorted(e.name for e in self.out_dir.iterdir() if is_output_name(e.name) and not e.is_dir())

    def commit(self) -> dict[str, Path]:
        """Previous run's files out (moved into the temporary folder, removed with it), new files in, run.json last."""
        staged = self.produced()
        order = [k for k in staged if k != "run_json"] + (["run_json"] if "run_json" in staged else [])
        trash = self.tmp / ".previous-run"
        trash.mkdir()
        COMMITTING.set()
        try:
            for name in self.stale():
                os.replace(self.out_dir / name, trash / name)
                self.removed.append(name)
            final: dict[str, Path] = {}
            for key in order:
                os.replace(staged[key], self.out_dir / staged[key].name)
                final[key] = self.out_dir / staged[key].name
        finally:
            COMMITTING.clear()
        return final

    def _cleanup(self, failed: bool) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.lock.release()
        if failed and self.created:
            with contextlib.suppress(OSError):
                self.out_dir.rmdir()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._cleanup(failed=exc_type is not None)


class InferenceWriter:
    """Opens the per-pixel outputs of the inference and writes finished rows of the blended result.

    Block layout (``channels``): 0-2 displacement, 3-5 sigma, then one band per extra model output
    (``rupture_probability``), the no-texture mask (optical pair without texture and no SAR pair: east/north and
    their sigma are NaN there, no modality measures horizontal motion), last the validity weight. Derived per-pixel
    products (horizontal magnitude, 3-D uncertainty, arrows) are computed from the same in-memory rows.
    """

    def __init__(self, staging: Staging, grid: Grid, tags: dict[str, str], angles: Any, extra: list[str],
                 with_phase: bool, keep_sar_share: bool = False) -> None:
        """``keep_sar_share``: stage the model's ``sar_share`` raster (``SAR_SHARE_FILE``, never published) for the
        3-D inversion's SAR coupling; otherwise only its median is kept (``sar_share_median``), from the rows."""
        self.grid, self.angles, self.extra = grid, angles, extra
        self.share_hist = np.zeros(101, np.int64)  # sar_share > 0.01 in 0.01 bins
        self.ds: dict[str, Any] = {}
        self.ds["displacement"] = open_out(staging.path("displacement"), grid,
                                           ["east displacement", "north displacement", "up displacement"],
                                           ["m"] * 3, tags)
        self.ds["displacement_sigma"] = open_out(staging.path("displacement_sigma"), grid,
                                                 ["east 1-sigma", "north 1-sigma", "up 1-sigma"], ["m"] * 3, tags)
        if "rupture_probability" in extra:
            self.ds["rupture_probability"] = open_out(staging.path("rupture_probability"), grid,
                                                      ["probability that the pixel lies on a surface rupture"],
                                                      ["1"], tags)
        if "sar_share" in extra and keep_sar_share:  # a dot file: not published
            self.ds["sar_share"] = open_out(staging.tmp / SAR_SHARE_FILE, grid,
                                            ["share of the horizontal from the SAR amplitude candidates"], ["1"], tags)
        if angles.given and not with_phase:
            # without unwrapping: the fused estimate in LOS (with it, the unwrapping stage writes the LOS files)
            desc = ["LOS displacement, fused estimate (positive towards the satellite)"]
            self.ds["los_displacement"] = open_out(staging.path("los_displacement"), grid, desc, ["m"], tags)
        self.ds["horizontal"] = open_out(staging.path("horizontal"), grid,
                                         ["horizontal displacement magnitude sqrt(E^2+N^2)"], ["m"], tags)
        self.ds["uncertainty"] = open_out(staging.path("uncertainty"), grid,
                                          ["3-D 1-sigma uncertainty sqrt(sE^2+sN^2+sU^2)"], ["m"], tags)
        self.arrows = products.ArrowGrid(grid.height, grid.width)
        self.valid_px = 0  # pixels with a displacement (run.json "valid_fraction")
        self.flat_px = 0  # pixels without optical texture nor a SAR pair: no east/north

    @property
    def channels(self) -> int:
        return 8 + len(self.extra)

    @property
    def sar_share_median(self) -> float | None:
        """Median of the model's ``sar_share`` over the pixels that take any weight from the SAR pair (to 0.01),
        None where none does (no SAR pair, or a model without that output)."""
        n = int(self.share_hist.sum())
        if n == 0:
            return None
        return float(np.searchsorted(np.cumsum(self.share_hist), (n + 1) // 2) / 100.0)

    def __call__(self, row0: int, block: np.ndarray) -> None:
        n = block.shape[1]
        for c0 in range(0, self.grid.width, COLUMN_CHUNK):
            cw = min(COLUMN_CHUNK, self.grid.width - c0)
            sub = block[:, :, c0:c0 + cw]
            valid = sub[-1] > 0.5
            self.valid_px += int(np.count_nonzero(valid))
            disp = np.where(valid, sub[0:3], np.nan).astype(np.float32)
            sig = np.where(valid, sub[3:6], np.nan).astype(np.float32)
            flat = sub[-2] > 0.5
            if flat.any():
                self.flat_px += int(np.count_nonzero(flat))
                disp[0:2, flat] = np.nan
                sig[0:2, flat] = np.nan
            win = Window(c0, row0, cw, n)
            self.ds["displacement"].write(disp, window=win)
            self.ds["displacement_sigma"].write(sig, window=win)
            for i, key in enumerate(self.extra):
                if key == "sar_share":
                    v = sub[6 + i][valid]
                    v = v[v > 0.01]
                    self.share_hist += np.bincount(np.clip(np.rint(v * 100), 0, 100).astype(np.int64), minlength=101)
                    if key not in self.ds:
                        continue
                self.ds[key].write(np.where(valid, sub[6 + i], np.nan).astype(np.float32), 1, window=win)
            if "los_displacement" in self.ds:
                lu = self.angles.los(row0, c0, n, cw)
                self.ds["los_displacement"].write(enu_to_los(disp[0], disp[1], disp[2], lu).astype(np.float32), 1,
                                                  window=win)
            self.ds["horizontal"].write(products.horizontal_magnitude(disp), 1, window=win)
            self.ds["uncertainty"].write(products.uncertainty_3d(sig), 1, window=win)
            self.arrows.add(row0, c0, disp)

    def close(self) -> None:
        for ds in self.ds.values():
            ds.close()
        self.ds.clear()

    def __enter__(self) -> InferenceWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_regions(path: Path, grid: Grid, regions: np.ndarray, tags: dict[str, str]) -> None:
    """``unwrap_regions*.tif``: int32, 0 = not unwrapped / not trusted, ids 1..n (same id = consistent cycles)."""
    prof = profile(grid, 1) | {"dtype": "int32", "nodata": None, "predictor": 2}
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(regions.astype(np.int32), 1)
        ds.set_band_description(1, "unwrapping region id (0 = not unwrapped or not trusted; pixels with the same id "
                                   "have consistent integer cycles; different ids: relative cycle count unknown)")
        ds.update_tags(**tags)


def write_displacement(staging: Staging, grid: Grid, tags: dict[str, str], enu: np.ndarray, sigma: np.ndarray,
                       how: str) -> products.ArrowGrid:
    """(Re)write displacement.tif, displacement_sigma.tif, horizontal_magnitude.tif and uncertainty.tif from whole
    (3, H, W) arrays (the 3-D inversion's result; NaN = not constrained) and return the arrows' block means."""
    ds = {"displacement": open_out(staging.path("displacement"), grid,
                                   [f"east displacement ({how})", f"north displacement ({how})",
                                    f"up displacement ({how})"], ["m"] * 3, tags),
          "displacement_sigma": open_out(staging.path("displacement_sigma"), grid,
                                         ["east 1-sigma", "north 1-sigma", "up 1-sigma"], ["m"] * 3, tags),
          "horizontal": open_out(staging.path("horizontal"), grid,
                                 ["horizontal displacement magnitude sqrt(E^2+N^2)"], ["m"], tags),
          "uncertainty": open_out(staging.path("uncertainty"), grid,
                                  ["3-D 1-sigma uncertainty sqrt(sE^2+sN^2+sU^2)"], ["m"], tags)}
    arrows = products.ArrowGrid(grid.height, grid.width)
    try:
        for r0 in range(0, grid.height, COLUMN_CHUNK // 2):
            d = enu[:, r0:r0 + COLUMN_CHUNK // 2].astype(np.float32)
            s = sigma[:, r0:r0 + COLUMN_CHUNK // 2].astype(np.float32)
            win = Window(0, r0, grid.width, d.shape[1])
            ds["displacement"].write(d, window=win)
            ds["displacement_sigma"].write(s, window=win)
            ds["horizontal"].write(products.horizontal_magnitude(d), 1, window=win)
            ds["uncertainty"].write(products.uncertainty_3d(s), 1, window=win)
            arrows.add(r0, 0, d)
    finally:
        for x in ds.values():
            x.close()
    return arrows


def write_views(staging: Staging, grid: Grid, arrows: products.ArrowGrid) -> list[str]:
    """One-band VRTs of displacement.tif and the arrows; returns notes (arrows skipped without GDAL bindings)."""
    for band, key in enumerate(products.COMPONENTS, start=1):
        products.band_vrt(staging.path("displacement"), band, staging.path(key), grid, f"{key} displacement (m)")
    try:
        written = products.write_arrows(arrows.points(grid.transform), grid.crs.to_wkt(), staging.path("arrows"))
    except RuntimeError as exc:  # OGR reports write failures (a full disk) as RuntimeError: an I/O error here
        raise OSError(f"{OUTPUT_NAMES['arrows']}: {exc or 'OGR write failed'}") from exc
    if written is None:
        return ["displacement arrows not written: GDAL's Python bindings (osgeo) are not installed"]
    return []


def write_run_json(path: Path, run: dict[str, Any]) -> None:
    path.write_text(json.dumps(jsonable(run), indent=2))


def jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    return o
