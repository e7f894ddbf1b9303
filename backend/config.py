"""Every setting of a run in one place: :class:`EstimateConfig`, its defaults and limits, the presets, the tile
overlap rule and :func:`check`, the one validation the CLI, the dialog and the Processing algorithm all call.

Plain Python (no numpy, no rasterio, no Qt): the dialog imports it while QGIS starts.

Overlap rule (:func:`overlap_for`): tiles must overlap by at least the context the network draws on at each side
(``receptive_field_px`` in the model's metadata; :data:`DEFAULT_RECEPTIVE_FIELD_PX` for models that do not record
it), rounded up to :data:`OVERLAP_STEP` px: 200 px -> 256 px, the 1024/256 setting measured seam-free
(BENCHMARKS.md). The tile blender needs ``overlap < tile/2``: smaller tiles get the largest overlap that fits
(``tile/2 - 16``; 240 px for 512-px tiles), with a note when that is less than the receptive field itself (faint
seams possible).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .conventions import ALOS2_WAVELENGTH_M, NISAR_L_WAVELENGTH_M, SENTINEL1_WAVELENGTH_M
from .errors import PipelineError


# ------------------------------------------------------------------------------------------ inputs
@dataclass
class InputRaster:
    """One input raster: ``path`` (anything GDAL reads) and the 1-based ``band``."""

    path: str | Path
    band: int = 1


IFG_INPUTS = ("phase", "coherence")  # per interferogram; the first one's names have no suffix (``phase_2`` ...)
MODALITY_INPUTS = ("optical_pre", "optical_post", "sar_pre", "sar_post", "phase", "coherence", "dem")
ANGLE_INPUTS = ("incidence", "heading")
PAIRS = (("optical_pre", "optical_post"), ("sar_pre", "sar_post"))
# the output grid is the grid of the first given of these (unless grid_like is given)
GRID_ORDER = ("phase", "optical_post", "sar_post", "optical_pre", "sar_pre", "coherence", "dem")

# ------------------------------------------------------------------------------------------ limits, defaults
WAVELENGTH_RANGE_M = (0.005, 0.5)
INCIDENCE_RANGE_DEG = (2.0, 89.0)  # 0 (nadir) and >= 90 are impossible; at most pi/2 looks like radians
RADIAN_MAX_INCIDENCE = 1.5708  # an incidence <= pi/2 is taken for radians (no SAR looks within 1.6 deg of nadir)
HEADING_RANGE_DEG = (-360.0, 360.0)
DEFAULT_INCIDENCE_DEG = 39.0  # Sentinel-1 ascending, mid swath (dialog and Processing start values)
DEFAULT_HEADING_DEG = -12.0
DEFAULT_TILE = 1024
MIN_TILE = 64
MAX_TILE = 4096
TILE_STEP = 64  # the dialog's spin-box step
DEFAULT_BATCH = 1
DEFAULT_COH_MIN = 0.3
DEFAULT_UNWRAP_BLOCK = 1024
MIN_UNWRAP_BLOCK = 64
MAX_THREADS = 1024
ILLUMINATION_MODES = ("auto", "off")  # topographic correction of the optical pair from the DEM (backend.illumination)
MAX_BATCH = 64
MIN_GRID_PX = 8  # a cropped output grid must be at least this many pixels a side
DEVICES = ("auto", "cpu", "cuda")

# ------------------------------------------------------------------------------------------ overlap rule
DEFAULT_RECEPTIVE_FIELD_PX = 200  # 0.2.0 network: U-Net down to 1/16 plus 41-px windows, ~200 px of context
OVERLAP_STEP = 64


def _round_up(n: int, m: int) -> int:
    return ((int(n) + m - 1) // m) * m


def max_overlap(tile: int) -> int:
    """The largest overlap the blender accepts for ``tile`` (``< tile/2``, a multiple of 16)."""
    return max(0, (int(tile) // 2 - 16) // 16 * 16)


def overlap_for(tile: int, receptive_field_px: int | None = None) -> tuple[int, str | None]:
    """(default overlap for ``tile``, a note when the tile is too small for the model's receptive field)."""
    rf = int(receptive_field_px) if receptive_field_px else DEFAULT_RECEPTIVE_FIELD_PX
    want = _round_up(rf, OVERLAP_STEP)
    cap = max_overlap(tile)
    if want <= cap:
        return want, None
    if rf <= cap:
        return cap, None
    return cap, (f"tile {tile} px is small for the model's receptive field ({rf} px each side): tiles overlap by "
                 f"{cap} px instead of {want}, faint seams are possible. Fix: tile >= {min_tile_for(rf)} px")


def min_tile_for(receptive_field_px: int | None = None) -> int:
    """The smallest tile whose overlap covers the receptive field."""
    return _round_up(2 * ((receptive_field_px or DEFAULT_RECEPTIVE_FIELD_PX) + 16), TILE_STEP)


# ------------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class Preset:
    label: str
    value: Any
    explanation: str = ""


WAVELENGTH_PRESETS = (
    Preset("Sentinel-1 (C-band, 5.55 cm)", SENTINEL1_WAVELENGTH_M),
    Preset("ALOS-2 PALSAR-2 (L-band, 22.9 cm)", ALOS2_WAVELENGTH_M),
    Preset("NISAR (L-band, 23.8 cm)", NISAR_L_WAVELENGTH_M),
)
SIGN_PRESETS = (
    Preset("LiCSAR / COMET", 1, "LiCSAR/COMET: phase grows with range increase (motion away from the satellite); "
                                "sign +1."),
    Preset("ASF HyP3", 1, "ASF HyP3 (GAMMA): unwrapped/wrapped phase grows with range increase (its displacement "
                          "maps use the opposite sign); sign +1."),
    Preset("ISCE", 1, "ISCE2 interferograms: phase grows with range increase (as read by MintPy); sign +1."),
)
CUSTOM_SIGN_EXPLANATION = ("Custom: +1 if the phase grows when the ground moves away from the satellite, -1 "
                           "otherwise. A wrong sign shows as a sign-flipped deformation pattern.")


# ------------------------------------------------------------------------------------------ cancel
class CancelToken:
    """Thread-safe cancellation flag: ``cancel()`` from the UI thread, checked by the pipeline per tile."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()


# ------------------------------------------------------------------------------------------ interferograms
LosVector = InputRaster | tuple  # a 3-band E/N/U raster, or three rasters (E, N, U; LiCSAR style)


def _los_vector(v: Any) -> Any:
    """A LOS unit-vector spec as an InputRaster (3-band file) or a tuple of three InputRasters (E, N, U files);
    a string with commas is split into three paths."""
    if v is None or isinstance(v, InputRaster):
        return v
    if isinstance(v, str) and "," in v:
        v = [x.strip() for x in v.split(",")]
    if isinstance(v, (list, tuple)):
        return tuple(x if isinstance(x, InputRaster) else InputRaster(x) for x in v)
    return InputRaster(v)


def _angle_spec(v: Any) -> Any:
    if isinstance(v, os.PathLike) or (isinstance(v, str) and not _is_number(v)):
        return InputRaster(v)
    if isinstance(v, str):
        return float(v)
    return v



def _coerce_inputs(obj: Any, names: tuple[str, ...]) -> None:
    """Paths given as str/PathLike -> InputRaster; incidence/heading and the LOS vector to their specs (in place)."""
    for name in names:
        v = getattr(obj, name)
        if isinstance(v, (str, os.PathLike)):
            setattr(obj, name, InputRaster(v))
    obj.incidence_deg = _angle_spec(obj.incidence_deg)
    obj.heading_deg = _angle_spec(obj.heading_deg)
    obj.los_vector = _los_vector(obj.los_vector)


@dataclass
class Interferogram:
    """One wrapped interferogram with its coherence, wavelength, phase sign and geometry: ``incidence_deg`` /
    ``heading_deg`` (numbers or rasters of degrees) or ``los_vector`` (ground-to-satellite unit vector: a 3-band
    E/N/U raster, or a tuple of three one-band rasters E, N, U as LiCSAR ships them; it wins over the angles)."""

    phase: InputRaster
    coherence: InputRaster | None = None
    wavelength_m: float | None = None
    phase_sign: int = 1
    incidence_deg: float | InputRaster | None = None
    heading_deg: float | InputRaster | None = None
    los_vector: LosVector | None = None

    def __post_init__(self) -> None:
        _coerce_inputs(self, ("phase", "coherence"))

    def input_names(self, k: int) -> dict[str, str]:
        """role -> input name of interferogram ``k`` (1-based): ``phase``, ``coherence``, ``incidence``, ``heading``,
        ``los_vector`` or ``los_east``/``los_north``/``los_up`` (suffix ``_k`` for k >= 2)."""
        sfx = "" if k == 1 else f"_{k}"
        return {r: r + sfx for r in ("phase", "coherence", "incidence", "heading", "los_vector", "los_east",
                                     "los_north", "los_up")}

    def rasters(self, k: int) -> dict[str, InputRaster]:
        """input name -> raster of everything this interferogram reads."""
        nm = self.input_names(k)
        out = {nm["phase"]: self.phase}
        if self.coherence is not None:
            out[nm["coherence"]] = self.coherence
        if isinstance(self.los_vector, InputRaster):  # one 3-band file: its bands 1, 2, 3 are E, N, U
            out.update({nm[r]: InputRaster(self.los_vector.path, b)
                        for b, r in enumerate(("los_east", "los_north", "los_up"), start=1)})
        elif isinstance(self.los_vector, tuple):
            out.update({nm[r]: v for r, v in zip(("los_east", "los_north", "los_up"), self.los_vector)})
        else:
            for a in ANGLE_INPUTS:
                v = getattr(self, f"{a}_deg")
                if isinstance(v, InputRaster):
                    out[nm[a]] = v
        return out

    def geometry_json(self) -> dict[str, Any]:
        lv = self.los_vector
        return {"incidence_deg": str(self.incidence_deg.path) if isinstance(self.incidence_deg, InputRaster)
                else self.incidence_deg,
                "heading_deg": str(self.heading_deg.path) if isinstance(self.heading_deg, InputRaster)
                else self.heading_deg,
                "los_vector": None if lv is None else str(lv.path) if isinstance(lv, InputRaster)
                else [str(x.path) for x in lv]}


PER_IFG_OPTIONS = ("coherence", "wavelength", "incidence", "heading", "phase_sign", "los_vector")


def interferograms_from_lists(phases: list[Any], **options: list[Any] | None) -> tuple[list[Interferogram],
                                                                                      list[Problem]]:
    """Interferograms from per-option lists (the CLI's repeated flags, Processing's comma-separated lists): an
    option given once applies to every phase, given once per phase applies in that order; any other count is a
    :class:`Problem`. ``options`` keys: :data:`PER_IFG_OPTIONS` (values already parsed)."""
    n = len(phases)
    problems: list[Problem] = []
    per: dict[str, list[Any]] = {}
    for key in PER_IFG_OPTIONS:
        vals = list(options.get(key) or [])
        if len(vals) in (0, 1, n):
            per[key] = (vals * n if len(vals) == 1 else vals) or [None] * n
        else:
            problems.append(Problem(key, f"{cli_label(key)} is given {len(vals)} times for {n} interferograms "
                                    f"({cli_label('phase')} given {n} times)",
                                    f"give {cli_label(key)} once (applies to all) or once per {cli_label('phase')}, "
                                    "in the same order"))
            per[key] = [None] * n
    ifgs = [Interferogram(phase=p, coherence=per["coherence"][i], wavelength_m=per["wavelength"][i],
                          phase_sign=1 if per["phase_sign"][i] is None else int(per["phase_sign"][i]),
                          incidence_deg=per["incidence"][i], heading_deg=per["heading"][i],
                          los_vector=per["los_vector"][i]) for i, p in enumerate(phases)]
    return ifgs, problems


# ------------------------------------------------------------------------------------------ the settings
@dataclass
class EstimateConfig:
    """Everything a run needs. Rasters are :class:`InputRaster` (or a path); a modality not given is None.

    Angles: ``incidence_deg`` / ``heading_deg`` are numbers (degrees) or rasters of degrees. ``phase_sign``:
    phase = phase_sign * 4*pi/wavelength * range increase (+1 = LiCSAR/COMET). ``tile``/``overlap`` in pixels;
    ``overlap=None`` = :func:`overlap_for` the tile and the model. ``extent``: ``(xmin, ymin, xmax, ymax, crs)``
    (crs: WKT, EPSG code or "EPSG:n"; may be left out = the output grid's CRS) crops the output grid (default grid
    or ``grid_like``) to that area, snapped to its pixels. ``intersection``: also crop it to the area every input
    covers (the dialog's and Processing's default).

    Interferograms: ``interferograms`` (a list of :class:`Interferogram`, any number) or, for one, the single
    fields ``phase``, ``coherence``, ``wavelength_m``, ``phase_sign``, ``incidence_deg``, ``heading_deg``,
    ``los_vector``. With a list, the single fields mirror its FIRST interferogram: that is the one the network sees
    (its feature channels take one interferogram); :meth:`ifgs` gives the list either way.

    ``trace``: a line file (GeoPackage, shapefile, GeoJSON; layer ``rupture_trace`` or the first line layer) with a
    known surface rupture trace, e.g. ``rupture_trace.gpkg`` of a first run, edited, or a mapped trace. The
    network's windows then stop at it: each side is measured from its own pixels only (docs/geologist_tools.md).
    ``trace_auto``: no trace at hand: find it (the geologist's two-step workflow in one job). A first, blind run
    (in a hidden folder inside ``out_dir``, removed afterwards), its trace extracted as ``python -m backend trace``
    does (line search, placed on the interferogram's decorrelation band when there is one), then the run proper
    with that trace, which is written to ``out_dir/rupture_trace.gpkg``; where the search finds no trace, the blind
    run is the result and run.json says why (``backend.pipeline``). Not with ``trace``.

    ``illumination``: "auto" (default) relights the pre optical image to the post image's sun where a DEM is given,
    both images show its shading and the relit pair is more alike (``backend.illumination``); "off" leaves the
    images as they are.

    ``sar_vertical_coupling`` (experimental, off; ``benchmarks/sar_vertical.py``): the 3-D inversion models the
    vertical's apparent ground-range shift in the SAR part of the horizontal (``backend.inversion.sar_up_coupling``,
    the SAR pair taken to be from the first interferogram's track). Off because it amplifies the SAR offsets' other
    errors by 1 / (1 - SAR share): measured worse than leaving the leak (docs/insar_fusion.md).
    """

    out_dir: Path
    optical_pre: InputRaster | None = None
    optical_post: InputRaster | None = None
    sar_pre: InputRaster | None = None
    sar_post: InputRaster | None = None
    phase: InputRaster | None = None
    coherence: InputRaster | None = None
    dem: InputRaster | None = None
    wavelength_m: float | None = None
    incidence_deg: float | InputRaster | None = None
    heading_deg: float | InputRaster | None = None
    phase_sign: int = 1
    grid_like: InputRaster | None = None
    extent: tuple | None = None
    intersection: bool = False
    device: str = "auto"
    tile: int = DEFAULT_TILE
    overlap: int | None = None
    batch: int = DEFAULT_BATCH
    threads: int | None = None
    model_path: Path | None = None
    unwrap: bool = True
    coh_min: float = DEFAULT_COH_MIN
    unwrap_block: int = DEFAULT_UNWRAP_BLOCK
    los_vector: LosVector | None = None
    interferograms: list[Interferogram] = field(default_factory=list)
    trace: Path | None = None
    trace_auto: bool = False
    illumination: str = "auto"
    sar_vertical_coupling: bool = False

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.illumination not in ILLUMINATION_MODES:
            raise ValueError(f"illumination must be one of {ILLUMINATION_MODES}, got {self.illumination!r}")
        self.trace = None if self.trace in (None, "") else Path(self.trace)
        _coerce_inputs(self, (*MODALITY_INPUTS, "grid_like"))
        self.interferograms = [i if isinstance(i, Interferogram) else Interferogram(**i)
                               for i in (self.interferograms or [])]
        if self.interferograms:  # the single fields mirror the first interferogram (the network's)
            f = self.interferograms[0]
            self.phase, self.coherence, self.wavelength_m, self.phase_sign = (f.phase, f.coherence, f.wavelength_m,
                                                                              f.phase_sign)
            self.incidence_deg, self.heading_deg, self.los_vector = f.incidence_deg, f.heading_deg, f.los_vector

    def ifgs(self) -> list[Interferogram]:
        """Every interferogram, in input order (the first is the one the network sees)."""
        if self.interferograms:
            return list(self.interferograms)
        if self.phase is None:
            return []
        return [Interferogram(self.phase, self.coherence, self.wavelength_m, self.phase_sign, self.incidence_deg,
                              self.heading_deg, self.los_vector)]

    def rasters(self) -> dict[str, InputRaster]:
        """name -> raster of every given input raster (modalities, then each interferogram's rasters: phase,
        coherence, angle or LOS-vector rasters; names of the k-th interferogram end in ``_k`` for k >= 2)."""
        out: dict[str, InputRaster] = {}
        ifgs = self.ifgs()
        for n in MODALITY_INPUTS:  # the first interferogram's phase and coherence where they always were
            if n == "phase" and ifgs:
                out.update({k: v for k, v in ifgs[0].rasters(1).items() if k in IFG_INPUTS})
            elif getattr(self, n) is not None and n not in IFG_INPUTS:
                out[n] = getattr(self, n)
        for k, ifg in enumerate(ifgs, start=1):
            out.update(ifg.rasters(k))
        return out

    def angle_value(self, name: str) -> float | str | None:
        """A constant angle, or the raster's path (for run.json)."""
        v = getattr(self, f"{name}_deg")
        return str(v.path) if isinstance(v, InputRaster) else v


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------ the check
class Problem(NamedTuple):
    """One thing to fix: the input to highlight (a field name), what is wrong, how to fix it."""

    input: str
    message: str
    fix: str

    @property
    def text(self) -> str:
        return f"{self.message}. Fix: {self.fix}"


def cli_label(name: str) -> str:
    """How the CLI names an input or setting (``optical_pre`` -> ``--optical-pre``)."""
    return "--" + name.removesuffix("_deg").removesuffix("_m").replace("_", "-")


def _pair_problems(cfg: EstimateConfig, label: Any) -> list[Problem]:
    out = []
    for a, b in PAIRS:
        if (getattr(cfg, a) is None) != (getattr(cfg, b) is None):
            given, missing = (a, b) if getattr(cfg, a) is not None else (b, a)
            out.append(Problem(missing, f"{label(given)} is given without {label(missing)}",
                               f"give both images of the pair ({label(a)} and {label(b)}) or neither"))
    if cfg.phase is None and cfg.optical_pre is None and cfg.sar_pre is None:
        out.append(Problem("phase", "no displacement-sensitive input",
                           f"give a wrapped phase ({label('phase')}), an optical pair ({label('optical_pre')}/"
                           f"{label('optical_post')}) or a SAR amplitude pair ({label('sar_pre')}/"
                           f"{label('sar_post')})"))
    if cfg.coherence is not None and cfg.phase is None:
        out.append(Problem("coherence", f"{label('coherence')} is given without a phase",
                           f"give {label('phase')} too, or drop {label('coherence')}"))
    return out


def _insar_problems(cfg: EstimateConfig, label: Any) -> list[Problem]:
    out = []
    ifgs = cfg.ifgs()
    for k, ifg in enumerate(ifgs, start=1):
        nm = ifg.input_names(k)
        which = f" (interferogram {k})" if len(ifgs) > 1 else ""
        for p in _ifg_problems(ifg, label):
            out.append(Problem(nm.get(p.input, p.input), p.message + which, p.fix))
    if not ifgs:
        out += _angle_problems(cfg.incidence_deg, cfg.heading_deg, label)
        if cfg.phase_sign not in (1, -1):
            out.append(Problem("phase_sign", f"phase_sign {cfg.phase_sign} invalid", "+1 (LiCSAR/COMET) or -1"))
    return out


def _ifg_problems(ifg: Interferogram, label: Any) -> list[Problem]:
    out = []
    lo, hi = WAVELENGTH_RANGE_M
    if ifg.wavelength_m is None:
        out.append(Problem("wavelength", "phase given without the radar wavelength",
                           f"give {label('wavelength')} in metres (Sentinel-1: {SENTINEL1_WAVELENGTH_M})"))
    elif not (lo <= float(ifg.wavelength_m) <= hi):
        out.append(Problem("wavelength", f"wavelength {ifg.wavelength_m} m is not a radar wavelength",
                           f"give it in metres ({lo:g}-{hi:g}; Sentinel-1 0.0555, ALOS-2 0.229), not "
                           "centimetres or GHz"))
    if ifg.los_vector is not None:
        if isinstance(ifg.los_vector, tuple) and len(ifg.los_vector) != 3:
            out.append(Problem("los_vector", f"{label('los_vector')} has {len(ifg.los_vector)} files",
                               "give one 3-band E/N/U raster or three rasters E,N,U separated by commas"))
    elif ifg.incidence_deg is None or ifg.heading_deg is None:
        out.append(Problem("incidence", "phase given without the viewing geometry",
                           f"give {label('incidence')} and {label('heading')} in degrees (Sentinel-1 ascending "
                           f"about {DEFAULT_INCIDENCE_DEG:g} and {DEFAULT_HEADING_DEG:g}) or rasters of them, or "
                           f"{label('los_vector')} (ground-to-satellite E/N/U unit vector raster)"))
    out += _angle_problems(ifg.incidence_deg, ifg.heading_deg, label)
    if ifg.phase_sign not in (1, -1):
        out.append(Problem("phase_sign", f"phase_sign {ifg.phase_sign} invalid", "+1 (LiCSAR/COMET) or -1"))
    return out


def _angle_problems(inc: Any, hdg: Any, label: Any) -> list[Problem]:
    """Constant incidence/heading: impossible geometry or radians given for degrees."""
    out = []
    a, b = INCIDENCE_RANGE_DEG
    if isinstance(inc, (int, float)) and not (a <= float(inc) <= b):
        v = float(inc)
        if 0 < v <= RADIAN_MAX_INCIDENCE:
            msg = f"incidence {v:g} looks like RADIANS ({math.degrees(v):.4g} deg)"
            fix = f"give degrees: {label('incidence')} {math.degrees(v):.4g}"
        else:
            why = ("0 = looking straight down" if v <= 0 else "90 = looking horizontally" if v >= 90 else
                   f"SAR looks between {a:g} and {b:g} deg")
            msg = f"incidence {v:g} deg is outside 0..90 or implausible for SAR ({why})"
            fix = (f"give the incidence angle in degrees from the vertical, between {a:g} and {b:g} (Sentinel-1 "
                   f"29..46, about {DEFAULT_INCIDENCE_DEG:g} mid swath)")
        out.append(Problem("incidence", msg, fix))
    a, b = HEADING_RANGE_DEG
    if isinstance(hdg, (int, float)):
        v = float(hdg)
        if not (a <= v <= b):
            out.append(Problem("heading", f"heading {v:g} deg is outside {a:g}..{b:g}",
                               "give the flight direction in degrees clockwise from north (Sentinel-1 ascending "
                               f"about {DEFAULT_HEADING_DEG:g}, descending about -168)"))
        elif 0 < abs(v) <= 2 * math.pi and isinstance(inc, (int, float)) and 0 < float(inc) <= RADIAN_MAX_INCIDENCE:
            out.append(Problem("heading", f"heading {v:g} looks like RADIANS ({math.degrees(v):.4g} deg), like the "
                               "incidence", f"give degrees: {label('heading')} {math.degrees(v):.4g}"))
    return out


def angle_notes(cfg: EstimateConfig) -> list[str]:
    """Warnings (not errors): a constant heading within +-2pi deg of north is unusual for a satellite and may be
    radians; the same band of the same file given as both images of a pair measures no motion."""
    out = []
    v = cfg.heading_deg
    if isinstance(v, (int, float)) and 0 < abs(float(v)) <= 2 * math.pi:
        out.append(f"heading {float(v):g} deg is unusual for a satellite (ascending about -10..-20, descending about "
                   f"-160..-170); if it is radians ({math.degrees(float(v)):.4g} deg), give degrees")
    for a, b in PAIRS:
        ra, rb = getattr(cfg, a), getattr(cfg, b)
        if ra is not None and rb is not None and ra.band == rb.band and \
                os.path.realpath(ra.path) == os.path.realpath(rb.path):
            out.append(f"{a} and {b} are the same image ({ra.path} band {ra.band}): they show no motion, so the "
                       "estimate from this pair is 0 by construction. Fix: give the image after the event as "
                       f"{cli_label(b)}")
    return out


def _run_problems(cfg: EstimateConfig, label: Any) -> list[Problem]:
    out = []
    if not (MIN_TILE <= int(cfg.tile) <= MAX_TILE):
        out.append(Problem("tile", f"tile {cfg.tile} px is outside {MIN_TILE}..{MAX_TILE}",
                           f"give {label('tile')} between {MIN_TILE} and {MAX_TILE} (default {DEFAULT_TILE})"))
    elif cfg.overlap is not None and not (0 <= int(cfg.overlap) and 2 * int(cfg.overlap) < int(cfg.tile)):
        out.append(Problem("tile", f"tile {cfg.tile} / overlap {cfg.overlap} invalid",
                           f"0 <= overlap < tile/2, or leave {label('overlap')} out: the default "
                           f"({overlap_for(cfg.tile)[0]} px here) follows the model's receptive field"))
    if not (1 <= int(cfg.batch) <= MAX_BATCH):
        out.append(Problem("batch", f"batch {cfg.batch} is outside 1..{MAX_BATCH}",
                           f"give {label('batch')} between 1 and {MAX_BATCH} (default {DEFAULT_BATCH}: tiles per "
                           "inference call)"))
    if cfg.threads is not None and not (1 <= int(cfg.threads) <= MAX_THREADS):
        out.append(Problem("threads", f"threads {cfg.threads} is outside 1..{MAX_THREADS}",
                           f"give {label('threads')} between 1 and the number of CPU cores ({os.cpu_count()} here), "
                           "or leave it out (all cores)"))
    if cfg.device not in DEVICES:
        out.append(Problem("device", f"device {cfg.device!r} unknown", "use auto, cpu or cuda"))
    if not (0.0 <= float(cfg.coh_min) <= 1.0):
        out.append(Problem("coh_min", f"coherence threshold {cfg.coh_min} is outside 0..1",
                           f"give {label('coh_min')} between 0 and 1 (default {DEFAULT_COH_MIN})"))
    if cfg.trace is not None and not Path(cfg.trace).exists():
        out.append(Problem("trace", f"rupture trace ({cfg.trace}): file not found",
                           f"give an existing line file ({label('trace')}), e.g. a run's rupture_trace.gpkg, or "
                           "leave it out"))
    if cfg.trace_auto and cfg.trace is not None:
        out.append(Problem("trace", f"a rupture trace is given ({cfg.trace}) and is also to be found",
                           f"give the trace ({label('trace')}) or ask for it to be found, not both"))
    if cfg.trace_auto and cfg.optical_pre is None and cfg.sar_pre is None:
        out.append(Problem("trace", "the rupture trace is to be found, but no optical or SAR amplitude pair is "
                           "given: the trace is found on the network's displacement",
                           "give an optical or SAR amplitude pair, or leave the trace search off (an interferogram "
                           "alone: draw the trace, or run `python -m backend trace --method band` on the run)"))
    if cfg.model_path is not None and not Path(cfg.model_path).is_file():
        out.append(Problem("model", f"model ({cfg.model_path}): file not found",
                           f"run `make export` or give an existing .onnx ({label('model')})"))
    return out


def check(cfg: EstimateConfig, label: Any = cli_label) -> list[Problem]:
    """Every problem of ``cfg`` that can be seen without reading the rasters (empty list: ready to run).

    ``label(name)`` says how the caller's interface names an input (default: the CLI's ``--flag``)."""
    return [*_pair_problems(cfg, label), *_insar_problems(cfg, label), *_run_problems(cfg, label)]


def raise_first(problems: list[Problem]) -> None:
    """Raise the first problem as a :class:`PipelineError` (the pipeline stops at the first one)."""
    if problems:
        p = problems[0]
        raise PipelineError(p.text, p.input)
