"""One QuakeFusion run as the dialog's task and the Processing algorithm do it (no Qt here).

``RunSpec`` (plain values: paths, bands, numbers, an optional extent) -> ``execute(spec, progress, cancel)``:

1. a fresh sub-folder ``<output folder>/<run name>`` (never reuses an existing one);
2. ``backend.pipeline.run_estimate`` with the output grid cropped to the area every input covers (and to the
   requested extent): the backend writes every product, the same files as the CLI.

Styles and layers are made afterwards on the main thread (``app/layers.py``). A cancelled or failed run leaves no
files. Heavy modules are imported inside functions so that importing this module is cheap (the plugin starts even
when onnxruntime is missing).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.config import ANGLE_INPUTS as ANGLES
from backend.config import (
    DEFAULT_TILE,
    MODALITY_INPUTS,
    EstimateConfig,
    InputRaster,
    Interferogram,
    Problem,
    check,
    interferograms_from_lists,
)
from backend.errors import PipelineError

MODALITIES = MODALITY_INPUTS
LOG_TAG = "QuakeFusion"

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


@dataclass
class RunSpec:
    """What the user asked for. ``inputs``: name -> (path, 1-based band) for modalities and angle rasters.

    ``extent``: ``(xmin, ymin, xmax, ymax, crs_wkt)`` of a requested area, or None. ``intersection``: crop the
    output grid to the area covered by every given input (the default of the dialog).

    ``inputs["phase"]`` & co. are the first interferogram (the one the network sees; ``inputs["los_vector"]``: its
    3-band E/N/U LOS raster instead of the angles). ``more_ifgs``: the 2nd, 3rd... interferograms as
    :class:`MoreIfgs` (per-option lists, an option given once applies to all of them, empty = as the first).
    ``products``: LiCSAR interferogram folders / HyP3 product folders or files (``backend.sarproducts``): one
    interferogram each, with the product's phase, coherence, geometry, wavelength and sign, after the others (the
    first when no phase layer is given); the product's DEM when no DEM layer is given.
    """

    out_root: Path
    run_name: str
    inputs: dict[str, tuple[str, int]] = field(default_factory=dict)
    incidence_deg: float | None = None
    heading_deg: float | None = None
    wavelength_m: float | None = None
    phase_sign: int = 1
    device: str = "auto"
    tile: int = DEFAULT_TILE
    model_path: Path | None = None
    extent: tuple[float, float, float, float, str] | None = None
    intersection: bool = True
    more_ifgs: MoreIfgs | None = None
    products: list[str] = field(default_factory=list)
    trace: str | None = None  # a line file: a known rupture trace (backend EstimateConfig.trace)
    find_trace: bool = False  # no trace at hand: find it on a blind first pass (backend EstimateConfig.trace_auto)
    illumination: str = "auto"  # relight the pre optical image from the DEM (backend EstimateConfig.illumination)


@dataclass
class MoreIfgs:
    """Interferograms 2, 3, ...: phases (path or (path, band)) and per-option lists (once = all, else one each;
    empty = the first interferogram's value). ``los_vector``: 3-band E/N/U rasters (else incidence/heading)."""

    phases: list = field(default_factory=list)
    coherences: list = field(default_factory=list)
    wavelengths: list = field(default_factory=list)
    phase_signs: list = field(default_factory=list)
    incidences: list = field(default_factory=list)
    headings: list = field(default_factory=list)
    los_vectors: list = field(default_factory=list)


@dataclass
class RunOutcome:
    """Files of a finished run: backend outputs + derived products (key -> path), the device used, notes."""

    out_dir: Path
    files: dict[str, Path]
    device: str
    run: dict[str, Any]
    styles: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    valid_fraction: float = 1.0


def slug(name: str) -> str:
    """A file-system-safe folder name for a run name."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return s or "quakefusion_run"


def default_run_name() -> str:
    return time.strftime("QuakeFusion %Y-%m-%d %H%M%S")


def unique_run_dir(out_root: Path, run_name: str) -> Path:
    base = Path(out_root) / slug(run_name)
    cand, i = base, 2
    while cand.exists():
        cand = base.with_name(f"{base.name}_{i}")
        i += 1
    return cand


def build_config(spec: RunSpec, out_dir: Path, found: list[Problem] | None = None) -> EstimateConfig:
    """The backend's settings for a run (overlap: the backend's default for the tile and the model). A product that
    cannot be read raises :class:`PipelineError`, or is added to ``found`` when a list is given."""
    kw: dict[str, Any] = {}
    for name in MODALITIES:
        if name in spec.inputs:
            p, b = spec.inputs[name]
            kw[name] = InputRaster(p, int(b))
    for name in ANGLES:
        if name in spec.inputs:
            p, b = spec.inputs[name]
            kw[f"{name}_deg"] = InputRaster(p, int(b))
        else:
            kw[f"{name}_deg"] = getattr(spec, f"{name}_deg")
    if "los_vector" in spec.inputs:
        kw["los_vector"] = InputRaster(spec.inputs["los_vector"][0])
    cfg = EstimateConfig(out_dir=out_dir, wavelength_m=spec.wavelength_m, phase_sign=int(spec.phase_sign),
                         extent=spec.extent, intersection=spec.intersection, device=spec.device,
                         tile=int(spec.tile), model_path=spec.model_path, trace=spec.trace,
                         trace_auto=bool(spec.find_trace),
                         illumination=spec.illumination, **kw)
    more, _ = _more_ifgs(spec, cfg)
    prod_ifgs, prod_dem, prod_problems, _ = _product_ifgs(spec)
    if prod_problems and found is None:
        p = prod_problems[0]
        raise PipelineError(p.text, p.input)
    if found is not None:
        found += prod_problems
    if more or prod_ifgs:
        cfg = EstimateConfig(**{**cfg.__dict__, "interferograms": cfg.ifgs() + more + prod_ifgs})
    if cfg.dem is None and prod_dem is not None:
        cfg.dem = prod_dem
    return cfg


def _product_ifgs(spec: RunSpec) -> tuple[list[Interferogram], InputRaster | None, list[Problem], list[str]]:
    """(interferograms, the first product's DEM, problems, notes) of ``spec.products``."""
    if not spec.products:
        return [], None, [], []
    from backend.sarproducts import ProductError, read_product

    ifgs, dem, found, notes = [], None, [], []
    for path in spec.products:
        try:
            prod = read_product(path)
        except ProductError as err:
            found.append(Problem("insar_product", err.problem, err.fix))
            continue
        ifgs.append(Interferogram(phase=prod.phase, coherence=prod.coherence, wavelength_m=prod.wavelength_m,
                                  phase_sign=prod.phase_sign, **prod.geometry()))
        dem = prod.dem if dem is None else dem
        notes += prod.notes
    return ifgs, dem, found, notes


def _raster(v: Any) -> InputRaster | None:
    if v is None or v == "":
        return None
    return InputRaster(v[0], int(v[1])) if isinstance(v, (tuple, list)) else InputRaster(v)


def _more_ifgs(spec: RunSpec, cfg: EstimateConfig) -> tuple[list[Interferogram], list[Problem]]:
    """Interferograms 2, 3, ... of ``spec.more_ifgs``; an empty option list takes the first interferogram's value."""
    m = spec.more_ifgs
    if m is None or not m.phases:
        return [], []
    if cfg.phase is None:
        return [], [Problem("phase", "more interferograms are given without a first one",
                            "give the first interferogram (its phase) too")]
    first = cfg.ifgs()[0]
    return interferograms_from_lists(
        [_raster(x) for x in m.phases], coherence=[_raster(x) for x in m.coherences],
        wavelength=[None if x is None else float(x) for x in m.wavelengths] or [first.wavelength_m],
        phase_sign=[int(x) for x in m.phase_signs] or [first.phase_sign],
        incidence=list(m.incidences) or [first.incidence_deg], heading=list(m.headings) or [first.heading_deg],
        los_vector=[_raster(x) for x in m.los_vectors] or ([first.los_vector] if first.los_vector is not None
                                                            and not (m.incidences or m.headings) else []))


def problems(spec: RunSpec, label: Callable[[str], str]) -> list[Problem]:
    """The backend's :func:`backend.config.check` of what the user chose (``label`` names the widgets), and the
    per-interferogram option counts of the 2nd, 3rd... interferograms."""
    found: list[Problem] = []
    cfg = build_config(spec, Path(spec.out_root) / "_", found)
    return found + _more_ifgs(spec, cfg)[1] + check(cfg, label)


def execute(spec: RunSpec, progress: ProgressFn | None = None, cancel: CancelFn | None = None,
            log: Callable[[str], None] | None = None) -> RunOutcome:
    """Run the pipeline into a fresh run folder; raises PipelineError (user-fixable) or Cancelled."""
    from backend.pipeline import run_estimate

    t0 = time.perf_counter()
    out_dir = unique_run_dir(spec.out_root, spec.run_name)
    if progress is not None:
        progress(0.0, "preparing the output grid")
    if log is not None:
        for note in _product_ifgs(spec)[3]:
            log(f"note: {note}")
    res = run_estimate(build_config(spec, out_dir), progress=progress, cancel=cancel)
    secs = time.perf_counter() - t0
    valid = float(res.run["valid_fraction"])
    if log is not None:
        log(f"valid displacement pixels: {100 * valid:.1f} %")
        log(f"run '{spec.run_name}' finished in {secs:.1f} s on {res.device}: {out_dir}")
        for note in res.run.get("notes", []):
            log(f"note: {note}")
    return RunOutcome(out_dir=out_dir, files=dict(res.outputs), device=res.device, run=res.run, seconds=secs,
                      valid_fraction=valid)
