"""Command line of the geologist's tools: ``trace``, ``offsets``, ``arrows``, ``components``, ``report``.

``backend/cli.py`` calls :func:`register` on its sub-parsers; each sub-command sets ``func`` (args -> exit status).
:func:`main` runs them stand-alone (``python -m backend.tools_cli offsets RUN_DIR ...``). Exit status: 0 ok,
2 input error (the message names the input and the fix).
"""

from __future__ import annotations

import argparse
import sys

from .errors import PipelineError

OFFSETS_HELP = """\
Fault offsets along strike from stacked profiles (COSI-Corr style), written into RUN_DIR:
  rupture_trace.gpkg      the trace used (layers rupture_trace, trace_seg; editable)
  fault_offsets.gpkg      layers offsets (points on the trace) and profiles (stack centre lines)
  fault_offsets.csv       along_m, parallel_m, parallel_sigma_m, normal_m, normal_sigma_m, vertical_m,
                          vertical_sigma_m (+ trace_id, x, y, strike_deg, n_left, n_right)
  slip_along_strike.png   (needs matplotlib)
Trace: --trace FILE (any line layer, any CRS), else RUN_DIR/rupture_trace.gpkg (e.g. edited in QGIS; --new-trace
ignores it), else extracted from rupture_probability.tif (when present) or the displacement step.
Signs: t = trace direction, n = its right-hand normal, R/L = right/left side:
  parallel_m = (d_R - d_L).t   negative = right-lateral, positive = left-lateral
  normal_m   = (d_R - d_L).n   positive = opening/extension, negative = shortening
  vertical_m = U_R - U_L       positive = right side up (extracted traces run eastwards)
"""


def _add_trace_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("trace extraction (when no trace is given)")
    g.add_argument("--method", choices=["auto", "probability", "step", "both", "line", "band"], default="auto",
                   help="auto = rupture_probability.tif when it forms a trace, else the line search (the long "
                        "line with the most significant, consistent displacement step), else (runs with an "
                        "interferogram) band = the long lines where the wrapped phase decorrelates; step = "
                        "pixel-wise step map")
    g.add_argument("--prob-threshold", type=float, default=0.5, help="rupture probability threshold (0..1)")
    g.add_argument("--step-threshold", type=float, default=None, metavar="M",
                   help="displacement step threshold (m; default automatic)")
    g.add_argument("--min-length", type=float, default=None, metavar="M", help="shortest trace kept (m)")
    g.add_argument("--min-signif", type=float, default=1.15, metavar="R",
                   help="line search: a trace's step must be R times the largest of shuffled copies of the data "
                        "(default 1.15; lower it to see weaker candidates, with their 'signif' attribute)")
    g.add_argument("--no-band", action="store_true",
                   help="do not use the interferogram: keep the extracted trace where the displacement puts it "
                        "(default: when the run has an interferogram, move it onto the band where the wrapped phase "
                        "decorrelates across the rupture, its 'on_band' attribute says where it did; and auto falls "
                        "back to the band's long lines when the displacement shows no trace)")


def _trace_params(a: argparse.Namespace):  # noqa: ANN202
    from .trace import TraceParams
    from .trace_band import BandParams
    from .trace_search import LineSearchParams

    return TraceParams(method=a.method, prob_threshold=a.prob_threshold, step_threshold_m=a.step_threshold,
                       min_length_m=a.min_length, line=LineSearchParams(min_ratio=a.min_signif),
                       band=None if a.no_band else BandParams())


def _cmd_trace(a: argparse.Namespace) -> int:
    from .trace import write_run_trace

    out, lines, source, stats = write_run_trace(a.run_dir, _trace_params(a), a.out)
    print(f"{len(lines)} trace(s) from {source}: {out}")
    _print_support(stats)
    return 0


def _print_support(stats: list[dict]) -> None:
    """What supports each extracted trace (nothing for drawn traces)."""
    for i, st in enumerate(stats, start=1):
        if "step_z" in st:
            print(f"trace {i}: step significance z {st['step_z']:.1f}, {st['signif']:.2f} times the largest of "
                  "shuffled copies of the data (accepted from 1.15; below 1.3 the data support it only weakly: "
                  "check it against the maps)")
        elif "signif" in st:
            print(f"trace {i}: a decorrelated line of the interferogram, {st['signif']:.2f} times the largest of "
                  "shuffled copies of the phase (accepted from 1.3)")
        if st.get("on_band"):
            print(f"trace {i}: {100 * st['on_band']:.0f} % of its stations moved onto the band where the "
                  "interferogram decorrelates across the rupture (the rest: where the displacement puts them)")


def _cmd_offsets(a: argparse.Namespace) -> int:
    from .offsets import run_offsets

    res = run_offsets(a.run_dir, a.spacing, a.length, a.width, a.exclude, trace=a.trace,
                      trace_params=_trace_params(a), corr_px=a.corr_px, out_dir=a.out_dir, plot=not a.no_plot,
                      new_trace=a.new_trace)
    print(f"{len(res['profiles'])} profiles on {len(res['trace'])} trace(s) ({res['source']})")
    _print_support(res["stats"])
    for k, p in res["files"].items():
        print(f"{k}: {p}")
    for n in res["notes"]:
        print(f"note: {n}", file=sys.stderr)
    return 0


def _cmd_arrows(a: argparse.Namespace) -> int:
    from .geodata import load_run, write_layers
    from .trace import read_trace
    from .vectors import arrow_layers, make_arrows

    run = load_run(a.run_dir)
    trace = read_trace(a.trace, run.crs_wkt) if a.trace else None
    res = make_arrows(run, a.step, a.scale, trace, a.mode)
    for p in write_layers(a.out, arrow_layers(res, run.bounds, a.ellipses), run.crs_wkt):
        print(p)
    print(f"scale: 1 m = {res['scale']:g} map units; reference arrow {res['ref_m']:g} m")
    return 0


def _cmd_components(a: argparse.Namespace) -> int:
    from .components import write_component_rasters
    from .geodata import load_run
    from .trace import trace_for_run

    lines, source, _stats = trace_for_run(load_run(a.run_dir), a.trace)
    for k, p in write_component_rasters(a.run_dir, lines, a.out_dir, local=not a.mean_strike).items():
        print(f"{k}: {p}")
    print(f"trace: {source}")
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from .report import make_report

    r = make_report(a.run_dir, a.out, trace=a.trace, spacing=a.spacing, length=a.length, width=a.width,
                    exclude=a.exclude)
    print(f"report: {r['pdf']} ({r['pages']} pages), page 1: {r['png']}")
    for n in r["notes"]:
        print(f"note: {n}", file=sys.stderr)
    return 0


def register(subparsers) -> None:  # noqa: ANN001 - argparse's _SubParsersAction
    """Add the ``trace``, ``offsets``, ``arrows``, ``components`` and ``report`` sub-commands (each sets
    ``func``)."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("trace", help="extract the rupture trace -> rupture_trace.gpkg", formatter_class=fmt,
                              description="Extract the surface rupture trace of a run as an editable line layer.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", default=None, help="GeoPackage to write (default RUN_DIR/rupture_trace.gpkg)")
    _add_trace_args(p)
    p.set_defaults(func=_cmd_trace)

    p = subparsers.add_parser("offsets", help="fault offsets along strike (stacked profiles)", formatter_class=fmt,
                              description=OFFSETS_HELP)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--trace", default=None, metavar="FILE", help="trace line layer (GPKG, shapefile, GeoJSON)")
    p.add_argument("--spacing", type=float, required=True, metavar="M", help="distance between profiles (m)")
    p.add_argument("--length", type=float, required=True, metavar="M", help="profile length across the fault (m)")
    p.add_argument("--width", type=float, required=True, metavar="M", help="stack width along the fault (m)")
    p.add_argument("--exclude", type=float, default=None, metavar="M",
                   help="ignore samples within this distance of the trace (m; default 3 pixels)")
    p.add_argument("--corr-px", type=float, default=None,
                   help="error correlation length in pixels for the sigmas (1 = independent pixels; default: "
                        "measured on each stack's residuals)")
    p.add_argument("--no-plot", action="store_true", help="skip slip_along_strike.png")
    p.add_argument("--out-dir", default=None, metavar="DIR", help="write the files here instead of RUN_DIR")
    p.add_argument("--new-trace", action="store_true",
                   help="extract the trace again even if RUN_DIR/rupture_trace.gpkg exists (it is replaced)")
    _add_trace_args(p)
    p.set_defaults(func=_cmd_offsets)

    p = subparsers.add_parser("arrows", help="displacement arrows (lengths in map units) -> GPKG or shapefiles",
                              formatter_class=fmt, description="Displacement arrows as vector layers.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="*.gpkg, *.shp or a folder (shapefiles)")
    p.add_argument("--step", type=int, default=16, help="one arrow every STEP pixels (default 16)")
    p.add_argument("--scale", type=float, default=None, help="map units per metre of displacement (default auto)")
    p.add_argument("--mode", choices=["sample", "mean"], default="sample",
                   help="sample the pixel (default) or average the block on the arrow's side of the trace")
    p.add_argument("--trace", default=None, metavar="FILE", help="trace for --mode mean")
    p.add_argument("--ellipses", action="store_true", help="also 1-sigma ellipses at the arrow tips")
    p.set_defaults(func=_cmd_arrows)

    p = subparsers.add_parser("components", help="fault-parallel/normal and significance rasters",
                              formatter_class=fmt, description="fault_components.tif (fault-parallel d.t, fault-normal "
                              "d.n and their sigmas, m) and significance.tif (|d|/sigma) for the trace's strike.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--trace", default=None, metavar="FILE", help="trace line layer (default: the run's or extracted)")
    p.add_argument("--out-dir", default=None, metavar="DIR", help="write here instead of RUN_DIR")
    p.add_argument("--mean-strike", action="store_true",
                   help="one direction for the whole raster (default: the nearest trace segment's)")
    p.set_defaults(func=_cmd_components)

    p = subparsers.add_parser("report", help="PDF/PNG report of a run (matplotlib)", formatter_class=fmt,
                              description="Report: map, slip along strike, a profile, run summary.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="PDF to write (a PNG of page 1 is written beside it)")
    p.add_argument("--trace", default=None, metavar="FILE")
    for k in ("spacing", "length", "width", "exclude"):
        p.add_argument(f"--{k}", type=float, default=None, metavar="M", help=f"offset stacks' {k} (m; default auto)")
    p.set_defaults(func=_cmd_report)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backend.tools_cli", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    register(ap.add_subparsers(dest="command", required=True))
    return dispatch(ap.parse_args(argv))


def dispatch(a: argparse.Namespace) -> int:
    """Run a parsed sub-command (``func``); a PipelineError is a message on stderr and exit status 2."""
    try:
        return a.func(a)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
