"""Interferograms straight from the product folders users download: LiCSAR/COMET frames and ASF HyP3 (GAMMA).

:func:`read_product` takes one product file or folder, detects the product by its file names and returns a
:class:`ProductInputs`: the wrapped phase, the coherence (0..1), the viewing geometry in a form the pipeline
already reads (E/N/U unit-vector rasters, or incidence/heading rasters in degrees), the DEM when the product
ships one, and the Sentinel-1 wavelength and phase sign. Nothing is computed in memory for the whole raster except
a wrapped copy of the unwrapped phase when the wrapped one is missing; unit changes are small GDAL VRT files
(``ScaleRatio``/``ScaleOffset`` of the original file) written to a cache folder, never next to the inputs.

LiCSAR / COMET (``YYYYMMDD_YYYYMMDD/YYYYMMDD_YYYYMMDD.geo.{diff_pha,unw,cc}.tif`` and the frame's
``<frame>.geo.{E,N,U,hgt}.tif``, in the same folder, its parent (LiCSBAS ``GEOC/``) or a ``metadata/`` folder
(the portal's ``<frame>/interferograms/<pair>`` + ``<frame>/metadata``)):

* ``geo.E/N/U.tif``: LOS unit vector, ground -> satellite, ENU (= :func:`backend.conventions.los_unit_vector`):
  LiCSBAS_decomposeLOS.py reads ``E > 0`` as "observed from East" and rebuilds ``U = +sqrt(1 - E^2 - N^2)``;
  LiCSBAS02_ml_prep.py sets 0 to no data.
* ``geo.cc.tif``: uint8 0..255 since October 2019 (LiCSBAS02_ml_prep.py v1.2 "Deal with format of uint8 of
  cc.tif", ``cc/255``); older products are float 0..1. uint8 is scaled by 1/255 (200 -> 0.784), 0 = no data.
* phase sign +1: LiCSBAS converts with ``coef_r2m = -wavelength/4/pi*1000  # rad -> mm, positive is -LOS``, i.e.
  phase = +4*pi/wavelength * range increase; wavelength c / 5.405 GHz (Sentinel-1).

ASF HyP3 InSAR (GAMMA) (``<name>_{wrapped_phase,unw_phase,corr,lv_theta,lv_phi,inc_map_ell,dem}.tif``, ``<name>.txt``):

* ``lv_theta``: "the SAR look vector elevation angle at each pixel, ranging from -pi/2 (down) to pi/2 (up) ...
  the angle between the horizontal surface and the look vector with positive angles indicating sensor positions
  above the surface"; ``lv_phi``: "the SAR look vector orientation angle ... ranging from 0 (east) to pi/2
  (north) ... the angle between the East direction and the projection of the look vector on the horizontal
  surface plane ... increases towards north"; both in radians (HyP3 InSAR product README / hyp3-docs InSAR
  product guide). MintPy (objects/stackDict.py) reads them the same way: "angle of the line-of-sight vector (from
  ground to SAR platform)", theta "measured from horizontal", phi "measured from the east with anti-clockwise as
  positive", 0 = no data, incidence = 90 - theta. So the ground-to-satellite unit vector is
  ``(cos(theta) cos(phi), cos(theta) sin(phi), sin(theta))`` (:func:`hyp3_los_vector`), which is exactly
  :func:`~backend.conventions.los_unit_vector` of incidence ``90 - degrees(theta)`` and heading
  ``180 - degrees(phi)``: both are linear in the angles, so the pipeline reads them as incidence/heading rasters
  (VRTs), resampled like any angle raster.
* ``inc_map_ell`` (ellipsoid incidence, radians) + ``Heading`` of ``<name>.txt`` (degrees clockwise from north):
  fallback geometry when the look vectors were not ordered. ``inc_map`` is the LOCAL (terrain) incidence and is
  never used for the line of sight.
* phase sign +1: "positive values in the resulting unwrapped interferogram represent movement away from the SAR
  platform" (HyP3 InSAR product guide); ``los_disp`` has the opposite sign. Wavelength: Sentinel-1.
* ``corr`` is float 0..1; ``water_mask`` (1 land, 0 water) is listed in ``files`` but not applied.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.windows import Window

from .config import InputRaster
from .conventions import SENTINEL1_WAVELENGTH_M, wrap
from .errors import PipelineError

LICSAR_PAIR = re.compile(r"^(\d{8}_\d{8})\.geo\.(diff_pha|unw|cc|diff_unfiltered_pha)\.tif$", re.IGNORECASE)
LICSAR_FRAME = re.compile(r"\d{3}[AD]_\d{5}_\d{6}")
PAIR_DIR = re.compile(r"^\d{8}_\d{8}$")
HYP3_ROLES = ("wrapped_phase", "unw_phase", "corr", "lv_theta", "lv_phi", "inc_map_ell", "inc_map", "dem",
              "water_mask", "amp", "los_disp", "vert_disp")
HYP3_FILE = re.compile(r"^(.+?)_(" + "|".join(sorted(HYP3_ROLES, key=len, reverse=True)) + r")\.tif$",
                       re.IGNORECASE)
FLAG = "--insar-product"


def cache_dir() -> Path:
    """Where the VRTs and wrapped copies go: ``$QUAKEFUSION_CACHE`` or ``<tmp>/quakefusion_products``."""
    return Path(os.environ.get("QUAKEFUSION_CACHE") or Path(tempfile.gettempdir()) / "quakefusion_products")


@dataclass
class ProductInputs:
    """One interferogram from a product: what the pipeline reads, and where it came from."""

    kind: str  # "LiCSAR" or "HyP3"
    name: str  # the pair (LiCSAR) or the product name (HyP3)
    phase: InputRaster
    coherence: InputRaster | None = None
    los_vector: tuple[InputRaster, InputRaster, InputRaster] | None = None
    incidence_deg: InputRaster | None = None
    heading_deg: float | InputRaster | None = None
    dem: InputRaster | None = None
    wavelength_m: float = SENTINEL1_WAVELENGTH_M
    phase_sign: int = 1
    files: dict[str, Path] = field(default_factory=dict)  # role -> the product file it came from
    notes: list[str] = field(default_factory=list)

    def geometry(self) -> dict[str, object]:
        """The geometry as :class:`~backend.config.Interferogram` keyword arguments."""
        if self.los_vector is not None:
            return {"los_vector": self.los_vector}
        return {"incidence_deg": self.incidence_deg, "heading_deg": self.heading_deg}


class ProductError(PipelineError):
    """A product that cannot be read as an interferogram: ``problem`` and ``fix`` also apart (for a Problem)."""

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        self.problem = f"insar_product ({FLAG} {path}): {problem}"
        self.fix = fix
        super().__init__(f"{self.problem}. Fix: {fix}", "insar_product")


def _err(path: Path | str, problem: str, fix: str) -> ProductError:
    return ProductError(path, problem, fix)


# ------------------------------------------------------------------------------------------ conversions
def hyp3_los_vector(theta_rad, phi_rad) -> np.ndarray:
    """Ground-to-satellite ENU unit vector of HyP3 look-vector angles (theta: elevation above the horizontal,
    phi: counter-clockwise from east, both radians); shape ``(3, *broadcast_shape)``."""
    t, p = np.broadcast_arrays(np.asarray(theta_rad, np.float64), np.asarray(phi_rad, np.float64))
    return np.stack([np.cos(t) * np.cos(p), np.cos(t) * np.sin(p), np.sin(t)])


def hyp3_angles_to_deg(theta_rad, phi_rad) -> tuple[np.ndarray, np.ndarray]:
    """(incidence, heading) in degrees for :func:`~backend.conventions.los_unit_vector` of HyP3 angles."""
    return 90.0 - np.degrees(theta_rad), 180.0 - np.degrees(phi_rad)


def _key(src: Path, tag: str) -> str:
    st = src.stat()
    h = hashlib.sha1(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{tag}".encode()).hexdigest()[:10]
    return f"{src.stem}.{tag}.{h}"


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def scaled_vrt(src: Path, work: Path, tag: str, ratio: float, offset: float = 0.0) -> Path:
    """A float32 VRT of band 1 of ``src`` as ``value * ratio + offset``; the source's nodata (0 when it has none,
    the products' fill value) and NaN become NaN."""
    src = Path(src)
    out = work / f"{_key(src, tag)}.vrt"
    if out.is_file():
        return out
    with rasterio.open(src) as ds:
        w, h, crs, t, nd = ds.width, ds.height, ds.crs, ds.transform, ds.nodata
    nodata = 0.0 if nd is None or not np.isfinite(nd) else float(nd)
    gt = ", ".join(repr(float(v)) for v in t.to_gdal())
    srs = f"  <SRS>{escape(crs.to_wkt())}</SRS>\n" if crs is not None else ""
    xml = (f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}">\n{srs}  <GeoTransform>{gt}</GeoTransform>\n'
           '  <VRTRasterBand dataType="Float32" band="1">\n    <NoDataValue>nan</NoDataValue>\n'
           '    <ComplexSource>\n'
           f'      <SourceFilename relativeToVRT="0">{escape(str(src.resolve()))}</SourceFilename>\n'
           '      <SourceBand>1</SourceBand>\n'
           f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
           f'      <DstRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
           f'      <ScaleOffset>{offset!r}</ScaleOffset>\n      <ScaleRatio>{ratio!r}</ScaleRatio>\n'
           f'      <NODATA>{nodata!r}</NODATA>\n'
           '    </ComplexSource>\n  </VRTRasterBand>\n</VRTDataset>\n')
    _atomic_write_text(out, xml)
    return out


def wrapped_copy(src: Path, work: Path) -> Path:
    """A float32 GeoTIFF of ``wrap(unwrapped phase)`` (0, nodata and NaN -> NaN), written by row blocks."""
    src = Path(src)
    out = work / f"{_key(src, 'wrapped')}.tif"
    if out.is_file():
        return out
    work.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.tif")
    with rasterio.open(src) as ds:
        prof = {"driver": "GTiff", "width": ds.width, "height": ds.height, "count": 1, "dtype": "float32",
                "crs": ds.crs, "transform": ds.transform, "nodata": float("nan"), "tiled": True,
                "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
        if ds.width < 256 or ds.height < 256:
            prof.update(tiled=False, blockxsize=None, blockysize=None)
            prof = {k: v for k, v in prof.items() if v is not None}
        nd = ds.nodata
        with rasterio.open(tmp, "w", **prof) as dst:
            for r0 in range(0, ds.height, 256):
                win = Window(0, r0, ds.width, min(256, ds.height - r0))
                a = ds.read(1, window=win).astype(np.float64)
                bad = ~np.isfinite(a) | (a == 0) | ((a == nd) if nd is not None else False)
                wv = wrap(a).astype(np.float32)
                wv[bad] = np.nan
                dst.write(wv, 1, window=win)
    os.replace(tmp, out)
    return out


# ------------------------------------------------------------------------------------------ LiCSAR
def _find_frame_files(pair_dir: Path) -> tuple[dict[str, Path], list[Path]]:
    """``{E, N, U, hgt: path}`` of the frame next to an interferogram folder, and the folders looked in."""
    cands = [pair_dir, pair_dir.parent, pair_dir / "metadata", pair_dir.parent / "metadata",
             pair_dir.parent.parent / "metadata"]
    looked = []
    frame_hint = LICSAR_FRAME.search(str(pair_dir.resolve()))
    for d in cands:
        if not d.is_dir() or d in looked:
            continue
        looked.append(d)
        found: dict[str, list[Path]] = {}
        for comp in ("E", "N", "U", "hgt"):
            found[comp] = sorted(d.glob(f"*.geo.{comp}.tif"))
        if not any(found[c] for c in ("E", "N", "U")):
            continue
        out = {}
        for comp, files in found.items():
            if frame_hint and len(files) > 1:
                files = [f for f in files if f.name.startswith(frame_hint.group(0))] or files
            if files:
                out[comp] = files[0]
        return out, looked
    return {}, looked


def _pair_dir_of(folder: Path) -> Path:
    """The single interferogram folder in/under ``folder`` (the pair folder itself, a LiCSBAS GEOC folder or a
    portal frame folder with ``interferograms/``)."""
    if any(LICSAR_PAIR.match(p.name) for p in folder.glob("*.geo.*.tif")):
        return folder
    pairs = sorted(p for d in (folder, folder / "interferograms") if d.is_dir()
                   for p in d.iterdir() if p.is_dir() and PAIR_DIR.match(p.name))
    if len(pairs) == 1:
        return pairs[0]
    if len(pairs) > 1:
        shown = ", ".join(p.name for p in pairs[:4]) + (" ..." if len(pairs) > 4 else "")
        raise _err(folder, f"holds {len(pairs)} LiCSAR interferograms ({shown})",
                   f"give one interferogram folder, e.g. {FLAG} {pairs[0]}, and repeat {FLAG} for more")
    raise _err(folder, "no LiCSAR interferogram (YYYYMMDD_YYYYMMDD.geo.diff_pha.tif / .geo.unw.tif) or HyP3 "
               "product (*_wrapped_phase.tif / *_unw_phase.tif) found",
               "give a LiCSAR interferogram folder (YYYYMMDD_YYYYMMDD/) or an unzipped HyP3 product folder")


def _pick_phase(res: ProductInputs, wrapped: Path, unwrapped: Path, work: Path, folder: Path, why_nan: str,
                fix: str) -> None:
    """The product's wrapped phase, else a wrapped copy of its unwrapped phase (with a note), else an error."""
    if wrapped.is_file():
        res.phase, res.files["phase"] = InputRaster(wrapped), wrapped
    elif unwrapped.is_file():
        res.phase, res.files["phase"] = InputRaster(wrapped_copy(unwrapped, work)), unwrapped
        res.notes.append(f"{res.kind} {res.name}: no {wrapped.name}; using the wrapped {unwrapped.name} "
                         f"({res.phase.path}{why_nan})")
    else:
        raise _err(folder, f"neither {wrapped.name} nor {unwrapped.name} is in the folder", fix)


def read_licsar(pair_dir: Path, work: Path) -> ProductInputs:
    pair = pair_dir.name
    files = {k: pair_dir / f"{pair}.geo.{k}.tif" for k in ("diff_pha", "unw", "cc")}
    res = ProductInputs(kind="LiCSAR", name=pair, phase=InputRaster(""))
    _pick_phase(res, files["diff_pha"], files["unw"], work, pair_dir, "",
                "download the interferogram's .geo.diff_pha.tif (wrapped phase) from the COMET-LiCS portal "
                "into this folder (LiCSBAS01_get_geotiff.py --get_pha does it)")
    if files["cc"].is_file():
        res.files["coherence"] = files["cc"]
        with rasterio.open(files["cc"]) as ds:
            dtype = ds.dtypes[0]
        if dtype == "uint8":
            res.coherence = InputRaster(scaled_vrt(files["cc"], work, "coh01", 1.0 / 255.0))
            res.notes.append(f"LiCSAR {pair}: coherence {files['cc'].name} is stored as 0..255 (uint8): scaled to "
                             "0..1 (value/255; 0 = no data)")
        else:
            res.coherence = InputRaster(files["cc"])
    else:
        res.notes.append(f"LiCSAR {pair}: no {files['cc'].name}: running without coherence")
    frame, looked = _find_frame_files(pair_dir)
    missing = [c for c in ("E", "N", "U") if c not in frame]
    if missing:
        where = ", ".join(str(d) for d in looked)
        frame_id = LICSAR_FRAME.search(str(pair_dir.resolve()))
        stem = frame_id.group(0) if frame_id else "<frame>"
        raise _err(pair_dir, "the LOS unit vector file(s) " + ", ".join(f"{stem}.geo.{c}.tif" for c in missing) +
                   f" are missing (looked in {where})",
                   f"download {stem}.geo.E.tif, .geo.N.tif and .geo.U.tif from the frame's metadata/ folder on the "
                   f"COMET-LiCS portal into {pair_dir.parent} (next to the interferogram folder), or give the "
                   "geometry yourself (--los-vector E,N,U or --incidence/--heading)")
    res.los_vector = tuple(InputRaster(frame[c]) for c in ("E", "N", "U"))
    res.files.update({f"los_{c}": frame[c] for c in ("E", "N", "U")})
    if "hgt" in frame:
        res.dem = InputRaster(frame["hgt"])
        res.files["dem"] = frame["hgt"]
    return res


# ------------------------------------------------------------------------------------------ HyP3
def _hyp3_heading(txt: Path) -> float | None:
    """``Heading: 193.29`` (degrees clockwise from north) from a HyP3 parameter file, or None."""
    if not txt.is_file():
        return None
    for line in txt.read_text(errors="replace").splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() == "heading":
            try:
                return float(v.split()[0])
            except (ValueError, IndexError):
                return None
    return None


def read_hyp3(folder: Path, name: str, work: Path) -> ProductInputs:
    f = {r: folder / f"{name}_{r}.tif" for r in HYP3_ROLES}
    res = ProductInputs(kind="HyP3", name=name, phase=InputRaster(""))
    _pick_phase(res, f["wrapped_phase"], f["unw_phase"], work, folder, "; pixels HyP3 did not unwrap are no data",
                "unzip the whole HyP3 product into one folder (order it with include_wrapped_phase=True for the "
                "wrapped phase)")
    if f["corr"].is_file():
        res.coherence = InputRaster(f["corr"])
        res.files["coherence"] = f["corr"]
    else:
        res.notes.append(f"HyP3 {name}: no {f['corr'].name}: running without coherence")
    if f["lv_theta"].is_file() and f["lv_phi"].is_file():
        deg = 180.0 / np.pi
        res.incidence_deg = InputRaster(scaled_vrt(f["lv_theta"], work, "incidence_deg", -deg, 90.0))
        res.heading_deg = InputRaster(scaled_vrt(f["lv_phi"], work, "heading_deg", -deg, 180.0))
        res.files.update(lv_theta=f["lv_theta"], lv_phi=f["lv_phi"])
        res.notes.append(f"HyP3 {name}: line of sight from {f['lv_theta'].name} and {f['lv_phi'].name} "
                         "(incidence = 90 - theta, heading = 180 - phi, degrees)")
    else:
        have = f["lv_theta"] if f["lv_theta"].is_file() else f["lv_phi"] if f["lv_phi"].is_file() else None
        heading = _hyp3_heading(folder / f"{name}.txt")
        if have is None and f["inc_map_ell"].is_file() and heading is not None:
            res.incidence_deg = InputRaster(scaled_vrt(f["inc_map_ell"], work, "incidence_deg", 180.0 / np.pi))
            res.heading_deg = heading
            res.files.update(inc_map_ell=f["inc_map_ell"], parameters=folder / f"{name}.txt")
            res.notes.append(f"HyP3 {name}: no look-vector files; incidence from {f['inc_map_ell'].name}, heading "
                             f"{heading:g} deg (constant, from {name}.txt)")
        else:
            missing = [f[r].name for r in ("lv_theta", "lv_phi") if not f[r].is_file()]
            raise _err(folder, "the look-vector file(s) " + " and ".join(missing) + " are missing",
                       "order the HyP3 product with include_look_vectors=True (Vertex: 'Include Look Vectors') and "
                       "unzip all its files into one folder, or give the geometry yourself (--incidence and "
                       "--heading, e.g. Sentinel-1 ascending 39 and -12)")
    if f["dem"].is_file():
        res.dem = InputRaster(f["dem"])
        res.files["dem"] = f["dem"]
    if f["water_mask"].is_file():
        res.files["water_mask"] = f["water_mask"]
    return res


HYP3_ZIP_ROLES = ("wrapped_phase", "unw_phase", "corr", "lv_theta", "lv_phi", "inc_map_ell", "dem")


def read_hyp3_zip(zp: Path, work: Path) -> ProductInputs:
    """A HyP3 product zip as downloaded: the files the pipeline reads (and ``<name>.txt``) are extracted once into
    the cache folder ``work`` (keyed by the zip's path, size and time; the zip itself is only read), then read as
    the unzipped folder."""
    try:
        with zipfile.ZipFile(zp) as z:
            members = {Path(m).name: m for m in z.namelist() if not m.endswith("/")}
            names = sorted({mt.group(1) for n in members if (mt := HYP3_FILE.match(n)) is not None
                            and mt.group(2).lower() in ("wrapped_phase", "unw_phase", "corr")})
            if len(names) != 1:
                raise _err(zp, f"holds {len(names)} HyP3 products" if names else "holds no HyP3 interferogram "
                           "(<name>_wrapped_phase.tif / _unw_phase.tif / _corr.tif)",
                           "give the zip of one ASF HyP3 InSAR product as downloaded, or its unzipped folder")
            name = names[0]
            folder = work / _key(zp, "unzipped")
            wanted = [f"{name}_{r}.tif" for r in HYP3_ZIP_ROLES] + [f"{name}.txt"]
            for fn in wanted:
                dst = folder / fn
                if fn in members and not dst.is_file():
                    folder.mkdir(parents=True, exist_ok=True)
                    tmp = folder / f".{fn}.{os.getpid()}.tmp"
                    with z.open(members[fn]) as src, tmp.open("wb") as out:
                        while chunk := src.read(1 << 22):
                            out.write(chunk)
                    os.replace(tmp, dst)
    except zipfile.BadZipFile:
        raise _err(zp, "is not a readable zip archive (incomplete download?)",
                   f"download it again, or unzip it and give the folder: {FLAG} {zp.with_suffix('')}") from None
    res = read_hyp3(folder, name, work)
    res.notes.append(f"HyP3 {name}: read from {zp.name} (files extracted to {folder})")
    return res


def _hyp3_names(folder: Path) -> list[str]:
    names = {m.group(1) for p in folder.glob("*.tif") if (m := HYP3_FILE.match(p.name)) is not None
             and m.group(2).lower() in ("wrapped_phase", "unw_phase", "corr")}
    return sorted(names)


# ------------------------------------------------------------------------------------------ entry point
def read_product(path: str | os.PathLike, work: str | os.PathLike | None = None) -> ProductInputs:
    """The interferogram of one LiCSAR or HyP3 product: ``path`` is any of its files or its folder.

    ``work``: where the VRTs / wrapped copies go (default :func:`cache_dir`). Raises :class:`PipelineError`
    naming the product, the missing file and the fix."""
    p = Path(path)
    work_dir = Path(work) if work is not None else cache_dir()
    if not p.exists():
        raise _err(p, "not found", "give a LiCSAR interferogram folder (YYYYMMDD_YYYYMMDD/) or one of its files, "
                   "or an unzipped HyP3 product folder or one of its *_unw_phase.tif / *_wrapped_phase.tif")
    if p.is_file() and p.suffix.lower() == ".zip":
        return read_hyp3_zip(p, work_dir)
    if p.is_file():
        if LICSAR_PAIR.match(p.name):
            return read_licsar(p.parent, work_dir)
        m = HYP3_FILE.match(p.name)
        if m:
            return read_hyp3(p.parent, m.group(1), work_dir)
        if re.search(r"\.geo\.(E|N|U|hgt)\.tif$", p.name):
            raise _err(p, "is a LiCSAR frame file, not an interferogram",
                       f"give the interferogram folder (YYYYMMDD_YYYYMMDD/) that sits next to it: {FLAG} "
                       f"{p.parent}/YYYYMMDD_YYYYMMDD")
        raise _err(p, "the file name is neither LiCSAR (YYYYMMDD_YYYYMMDD.geo.diff_pha.tif, ...) nor HyP3 "
                   "(<name>_wrapped_phase.tif, <name>_unw_phase.tif, ...)",
                   "give the product's folder or one of its files with the name it was downloaded with, or give "
                   "the rasters with --phase/--coherence/--incidence/--heading")
    names = _hyp3_names(p)
    if len(names) == 1:
        return read_hyp3(p, names[0], work_dir)
    if len(names) > 1:
        raise _err(p, f"holds {len(names)} HyP3 products ({', '.join(names[:3])}{' ...' if len(names) > 3 else ''})",
                   f"give one product: {FLAG} {p / (names[0] + '_unw_phase.tif')}, and repeat {FLAG} for more")
    return read_licsar(_pair_dir_of(p), work_dir)
