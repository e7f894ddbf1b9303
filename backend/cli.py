"""Command line: ``python -m backend estimate ...`` (the demo is development code: ``python -m models.demo``)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from . import config as C
from . import outputs as out
from .errors import Cancelled, PipelineError

ESTIMATE_HELP = """\
Estimate co-seismic ground displacement from any subset of optical, SAR amplitude, InSAR and DEM rasters, and
unwrap the interferogram with the fused estimate.

Inputs: any raster GDAL reads (GeoTIFF, VRT, ...), each with a CRS; different CRS and resolutions are aligned to one
output grid (the grid of the first given of --phase, --optical-post, --sar-post; --grid-like overrides; geographic
grids go to the local UTM zone at the input's resolution). Wrapped phase is resampled through exp(i*phase).

Units and conventions (docs/conventions.md):
  phase       wrapped, radians in [-pi, pi); phase = SIGN * 4*pi/wavelength * range_increase (--phase-sign SIGN,
              +1 = LiCSAR/COMET). Exact zeros covering >0.5%% of the raster are read as no data.
  coherence   0..1
  SAR         linear amplitude (not dB)
  DEM         metres
  wavelength  metres (Sentinel-1 0.05546576, ALOS-2 0.22904)
  incidence   degrees from the vertical at the ground; a number or a raster
  heading     flight-direction azimuth, degrees clockwise from north (S1 ascending ~ -12, descending ~ -168);
              right-looking SAR; a number or a raster

Products (--insar-product PATH, repeatable; docs/user_guide.md): a LiCSAR/COMET interferogram folder
(YYYYMMDD_YYYYMMDD/ with .geo.diff_pha.tif, .geo.cc.tif; the frame's .geo.E/N/U.tif next to it or in metadata/) or
an ASF HyP3 InSAR product (its zip as downloaded, or the unzipped folder: *_wrapped_phase.tif or *_unw_phase.tif,
*_corr.tif, *_lv_theta.tif, *_lv_phi.tif) gives one interferogram: phase, coherence (LiCSAR 0..255 scaled to
0..1), line of sight, Sentinel-1 wavelength, phase sign +1, and the product's DEM unless --dem is given. Options
given explicitly win: once = all interferograms, once per interferogram = in order (first the --phase ones, then
the products); any geometry option given for an interferogram replaces the product's geometry.

Outputs in --out (float32 GeoTIFF, NaN = no data), moved in only when the run succeeds (Ctrl+C, SIGTERM: nothing
left). One run per folder at a time (locked); a new run replaces the previous run's output files, other files stay;
inputs are never written (docs/robustness.md):
  displacement.tif        east, north, up (m)
  displacement_sigma.tif  1-sigma of each (m)
  los_displacement.tif    band 1: fused LOS estimate (m, positive towards the satellite; not in InSAR-only runs);
                          last band (with --phase): LOS from the unwrapped phase
  unwrapped_phase.tif     input phase + 2*pi*k, integer k (rad, same sign convention as the input): whirlwind's
                          minimum-cost-flow solution on the residual against the fused estimate
  unwrap_regions.tif      int32: 0 = not unwrapped / not trusted; pixels with the same id have consistent cycles,
                          different ids an unknown relative cycle count (a note says when regions stay separate)
  with several --phase:   unwrapped_phase_K.tif, los_displacement_K.tif, rewrapped_phase_K.tif,
                          unwrap_regions_K.tif (K = 1, 2, ... in --phase order)
  displacement.tif:       with interferograms, E/N/U from a per-pixel weighted least squares of the optical/SAR
                          horizontal and every unwrapped LOS; NaN where the data do not constrain a component (one
                          interferogram alone: LOS only, E/N/U NaN). Without optical/SAR the network is not run
  rupture_probability.tif probability that a pixel lies on a surface rupture (0..1; models that predict it)
  displacement_{east,north,up}.vrt, horizontal_magnitude.tif (m), uncertainty.tif (3-D 1-sigma, m),
  rewrapped_phase.tif (rad), displacement_arrows.gpkg (block means, azimuth clockwise from north)
  run.json                inputs, parameters, model version, device, timings
"""


def _add_estimate_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("inputs (any subset; a file path, optionally PATH:BAND)")
    for name, h in (("optical-pre", "optical image before the event (any DN/reflectance)"),
                    ("optical-post", "optical image after the event"),
                    ("sar-pre", "SAR amplitude before (linear)"), ("sar-post", "SAR amplitude after (linear)"),
                    ("dem", "elevation (m)")):
        g.add_argument(f"--{name}", metavar="RASTER", help=h)
    g.add_argument("--phase", metavar="RASTER", action="append",
                   help="wrapped interferometric phase (rad); repeat for several interferograms (ascending, "
                        "descending, C/L band): the network sees the first, all are unwrapped and inverted")
    g.add_argument("--coherence", metavar="RASTER", action="append",
                   help="interferometric coherence (0..1); once for all, or once per --phase in that order")
    g.add_argument("--insar-product", metavar="PATH", action="append",
                   help="a LiCSAR interferogram folder (YYYYMMDD_YYYYMMDD/) or an ASF HyP3 InSAR product "
                        "(its zip, folder or one of its files): phase, coherence and line of sight from the "
                        "product's files; "
                        "repeat for several (they follow the --phase ones)")
    s = ap.add_argument_group("InSAR geometry (each: once for all interferograms, or once per --phase in that order)")
    s.add_argument("--wavelength", type=float, metavar="M", action="append",
                   help="radar wavelength in metres (needed with --phase)")
    s.add_argument("--incidence", metavar="DEG|RASTER", action="append",
                   help="incidence angle (degrees) or a raster of it")
    s.add_argument("--heading", metavar="DEG|RASTER", action="append",
                   help="heading (degrees clockwise from north) or a raster")
    s.add_argument("--los-vector", metavar="RASTER|E,N,U", action="append",
                   help="ground-to-satellite LOS unit vector instead of --incidence/--heading: a 3-band E/N/U raster "
                        "or three rasters E,N,U separated by commas (LiCSAR's *.geo.E.tif,*.geo.N.tif,*.geo.U.tif)")
    s.add_argument("--phase-sign", type=int, choices=[1, -1], action="append",
                   help="phase = SIGN*4pi/lambda*range_increase; +1 (default) = LiCSAR/COMET")
    o = ap.add_argument_group("grid, output and run")
    o.add_argument("--trace", metavar="LINES", default=None,
                   help="a known rupture trace (line file: GeoPackage, shapefile, GeoJSON; e.g. a first run's "
                        "rupture_trace.gpkg): the network's windows stop at it, so each side is measured from its own "
                        "pixels (sharper, less biased offsets across it; docs/geologist_tools.md); 'auto': find it "
                        "(a blind first pass, its trace extracted as `python -m backend trace` does, then the run "
                        "with that trace, written as rupture_trace.gpkg; no trace found: the blind run, and "
                        "run.json says why)")
    o.add_argument("--illumination", choices=C.ILLUMINATION_MODES, default="auto",
                   help="auto (default): with a DEM, relight the pre optical image to the post image's sun (each "
                        "image's sun fitted to the DEM's shading; only when that makes the pair more alike): a sun "
                        "that differs between the dates otherwise reads as motion on relief; off: leave the images "
                        "as they are")
    o.add_argument("--grid-like", metavar="RASTER", help="use this raster's grid for all outputs")
    o.add_argument("--extent", type=float, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
                   help="crop the output grid to this area (in --extent-crs; snapped outwards to whole pixels)")
    o.add_argument("--extent-crs", metavar="CRS", default=None,
                   help="CRS of --extent: EPSG:n, an EPSG code or WKT (default: the output grid's CRS)")
    o.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    o.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="ONNX Runtime device: auto = CUDA if it really initialises, else CPU (default)")
    o.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all cores)")
    o.add_argument("--tile", type=int, default=C.DEFAULT_TILE,
                   help=f"tile size in pixels ({C.MIN_TILE}..{C.MAX_TILE}, default {C.DEFAULT_TILE})")
    o.add_argument("--overlap", type=int, default=None,
                   help="tile overlap in pixels (default: the model's receptive field rounded up to "
                        f"{C.OVERLAP_STEP} px, {C.overlap_for(C.DEFAULT_TILE)[0]} for the shipped model; at most "
                        "tile/2 - 16)")
    o.add_argument("--batch", type=int, default=C.DEFAULT_BATCH, help="tiles per inference call (default 1)")
    o.add_argument("--model", default=None, help="ONNX model (default: models/quakefusion.onnx)")
    o.add_argument("--coh-min", type=float, default=C.DEFAULT_COH_MIN,
                   help=f"coherence below which phase is masked (default {C.DEFAULT_COH_MIN})")
    o.add_argument("--no-unwrap", action="store_true", help="skip the joint unwrapping")
    o.add_argument("--quiet", action="store_true", help="no progress lines")


def _raster(spec: str | None) -> C.InputRaster | None:
    if spec is None:
        return None
    p, _, band = spec.rpartition(":")
    if p and band.isdigit() and not Path(spec).exists():
        return C.InputRaster(p, int(band))
    return C.InputRaster(spec)


def _angle(spec: str | None):  # noqa: ANN202
    if spec is None:
        return None
    try:
        return float(spec)
    except ValueError:
        return _raster(spec)


def _los_vector(spec: str):  # noqa: ANN202
    parts = spec.split(",")
    return tuple(_raster(x.strip()) for x in parts) if len(parts) > 1 else _raster(spec)


def _read_products(paths: list[str] | None) -> tuple[list, list[C.Problem], list[str]]:
    """(products read, problems of those that cannot be read, notes) of the --insar-product paths."""
    from .sarproducts import ProductError, read_product

    products, problems, notes = [], [], []
    for path in paths or []:
        try:
            prod = read_product(path)
        except ProductError as err:
            problems.append(C.Problem("insar_product", err.problem, err.fix))
            continue
        products.append(prod)
        notes += prod.notes
    return products, problems, notes


def _fill_from_products(ifgs: list[C.Interferogram], products: list, a: argparse.Namespace) -> None:
    """The products' values where the options did not set them (in place): explicit options win; any geometry
    option set for an interferogram replaces the product's geometry."""
    for ifg, prod in zip(ifgs, products):
        if ifg.coherence is None:
            ifg.coherence = prod.coherence
        if ifg.wavelength_m is None:
            ifg.wavelength_m = prod.wavelength_m
        if not a.phase_sign:
            ifg.phase_sign = prod.phase_sign
        if ifg.incidence_deg is None and ifg.heading_deg is None and ifg.los_vector is None:
            for k, v in prod.geometry().items():
                setattr(ifg, k, v)


def config_from_args(a: argparse.Namespace) -> tuple[C.EstimateConfig, list[C.Problem]]:
    """EstimateConfig from parsed arguments, and the problems of per-interferogram options given a wrong number of
    times (once = all interferograms, once per --phase = in that order)."""
    cfg, problems, _ = config_and_notes(a)
    return cfg, problems


def config_and_notes(a: argparse.Namespace) -> tuple[C.EstimateConfig, list[C.Problem], list[str]]:
    """:func:`config_from_args` and the notes of the --insar-product products (what was found and converted)."""
    products, problems, notes = _read_products(getattr(a, "insar_product", None))
    phases = [_raster(x) for x in (a.phase or [])]
    n_explicit = len(phases)
    phases += [p.phase for p in products]
    ifgs, more = C.interferograms_from_lists(
        phases, coherence=[_raster(x) for x in a.coherence or []], wavelength=a.wavelength,
        incidence=[_angle(x) for x in a.incidence or []], heading=[_angle(x) for x in a.heading or []],
        phase_sign=a.phase_sign, los_vector=[_los_vector(x) for x in a.los_vector or []])
    problems += more
    _fill_from_products(ifgs[n_explicit:], products, a)
    dem = _raster(a.dem)
    if dem is None and products and products[0].dem is not None:
        dem = products[0].dem
        notes.append(f"DEM from the {products[0].kind} product: {dem.path} (give --dem to use another)")
    single = {} if phases else dict(  # no phase: the options still reach check() (e.g. coherence without phase)
        coherence=_raster((a.coherence or [None])[0]), wavelength_m=(a.wavelength or [None])[0],
        incidence_deg=_angle((a.incidence or [None])[0]), heading_deg=_angle((a.heading or [None])[0]),
        phase_sign=(a.phase_sign or [1])[0])
    cfg = C.EstimateConfig(
        out_dir=Path(a.out), optical_pre=_raster(a.optical_pre), optical_post=_raster(a.optical_post),
        sar_pre=_raster(a.sar_pre), sar_post=_raster(a.sar_post), interferograms=ifgs, dem=dem,
        **single, grid_like=_raster(a.grid_like), extent=None if a.extent is None else (*a.extent, a.extent_crs),
        device=a.device, tile=a.tile, overlap=a.overlap, batch=a.batch,
        threads=a.threads, model_path=Path(a.model) if a.model else None, unwrap=not a.no_unwrap,
        coh_min=a.coh_min, trace=None if a.trace == "auto" else a.trace, trace_auto=a.trace == "auto",
        illumination=a.illumination)
    return cfg, problems, notes


def _progress_printer(quiet: bool):  # noqa: ANN202
    last = [-1.0]

    def progress(fraction: float, message: str) -> None:
        if quiet:
            return
        if fraction - last[0] >= 0.05 or fraction >= 1.0:
            last[0] = fraction
            print(f"[{fraction * 100:5.1f} %] {message}", file=sys.stderr, flush=True)

    return progress


class Interrupted(KeyboardInterrupt):
    """SIGTERM/SIGHUP turned into an exception, so a terminated run cleans up like Ctrl+C (nothing left)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def _signals_as_interrupt():  # noqa: ANN202
    """In the main thread: SIGINT, SIGTERM (and SIGHUP) raise :class:`Interrupted` (exit 128 + signal) while the run
    lasts; the run's staging folder and lock are removed on the way out. Repeated signals during the clean-up, and
    signals while the finished files are moved in, are ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [n for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]
    old = {n: signal.getsignal(getattr(signal, n)) for n in names}
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired or out.COMMITTING.is_set():  # moving the finished files in: let it complete
            return
        fired.append(signum)
        raise Interrupted(signum)

    for n in names:
        signal.signal(getattr(signal, n), handler)
    try:
        yield
    finally:
        for n in names:
            signal.signal(getattr(signal, n), old[n])


def cmd_estimate(a: argparse.Namespace) -> int:
    cfg, problems, notes = config_and_notes(a)
    problems += C.check(cfg)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if problems:
        for p in problems:
            print(f"error: {p.text}", file=sys.stderr)
        return 2
    from .pipeline import run_estimate

    token = C.CancelToken()
    t0 = time.perf_counter()
    try:
        with _signals_as_interrupt():
            res = run_estimate(cfg, progress=_progress_printer(a.quiet), cancel=token)
    except PipelineError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    except Interrupted as sig:
        print(f"cancelled ({sig.name}): nothing was written", file=sys.stderr)
        return 128 + sig.signum
    except (KeyboardInterrupt, Cancelled):
        print("cancelled: nothing was written", file=sys.stderr)
        return 130
    print(f"device: {res.device}; {time.perf_counter() - t0:.1f} s; grid {res.grid.width}x{res.grid.height} "
          f"@ {res.grid.pixel_size_m:.3g} m ({res.grid.crs.to_string()})")
    for key, p in res.outputs.items():
        print(f"{key}: {p}")
    for note in res.run.get("notes", []):
        print(f"note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backend", description="QuakeFusion backend (no QGIS needed).")
    sub = ap.add_subparsers(dest="command", required=True)
    est = sub.add_parser("estimate", help="estimate displacement and unwrap the phase", description=ESTIMATE_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_estimate_args(est)
    est.set_defaults(func=cmd_estimate)
    from . import tools_cli

    tools_cli.register(sub)  # trace, offsets, arrows, components, report (the geologist's tools)
    return tools_cli.dispatch(ap.parse_args(argv))
