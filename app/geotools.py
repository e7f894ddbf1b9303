"""The geologist's tools as the dialog and Processing run them (no Qt here: this runs in worker threads).

Each function takes a finished run folder and plain values, calls the backend (the same code as ``python -m
backend trace|offsets|arrows|components``) and returns ``{key: Path}`` of the files it wrote; the layers are made
afterwards on the main thread (``app/tool_layers.py``).

* ``trace``: ``rupture_trace.gpkg`` (layers ``rupture_trace``, ``trace_seg``);
* ``offsets``: ``fault_offsets.gpkg`` (``offsets``, ``profiles``), ``fault_offsets.csv``, ``slip_along_strike.png``;
* ``arrows``: ``fault_arrows.gpkg`` (``arrows``, ``arrow_line``, ``arrow_ref``, optional ``ellipses``);
* ``components``: ``fault_components.tif`` (fault-parallel, fault-normal, their sigmas), ``significance.tif``.

A trace is a file (any OGR line layer, any CRS) or None: then the run's ``rupture_trace.gpkg`` when it exists, else
an extracted one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ARROWS_FILE = "fault_arrows.gpkg"
TOOLS = ("trace", "offsets", "arrows", "components")
ProgressFn = Callable[[float, str], None]


@dataclass
class ToolParams:
    """What the user chose in the tools dialog (metres are map units of the run's grid)."""

    trace: str | None = None  # a line layer file, or None (run's trace, else extracted)
    new_trace: bool = False  # extract afresh even when rupture_trace.gpkg exists
    method: str = "auto"  # trace extraction: auto | probability | step | both | line
    band: bool = True  # move an extracted trace onto the interferogram's decorrelation band (backend/trace_band.py)
    spacing: float = 500.0
    length: float = 2000.0
    width: float = 200.0
    exclude: float | None = None  # default 3 pixels
    arrow_step: int = 16  # one arrow every N pixels
    arrow_scale: float | None = None  # map units per metre (None: automatic)
    arrow_mode: str = "sample"  # sample | mean (never across the trace)
    ellipses: bool = False
    mean_strike: bool = False


def _trace_params(p: ToolParams):  # noqa: ANN202
    from backend.trace import TraceParams
    from backend.trace_band import BandParams

    return TraceParams(method=p.method, band=BandParams() if p.band else None)


def run_trace(run_dir: Path, p: ToolParams) -> dict[str, Path]:
    from backend.geodata import load_run
    from backend.trace import TRACE_FILE, read_trace, write_run_trace, write_trace

    if not p.trace:
        return {"trace": write_run_trace(run_dir, _trace_params(p))[0]}
    run = load_run(run_dir)
    return {"trace": write_trace(Path(run_dir) / TRACE_FILE, read_trace(p.trace, run.crs_wkt), run.crs_wkt, "user")}


def run_offsets(run_dir: Path, p: ToolParams) -> dict[str, Path]:
    from backend.offsets import run_offsets as backend_offsets

    res = backend_offsets(run_dir, p.spacing, p.length, p.width, p.exclude, trace=p.trace,
                          trace_params=_trace_params(p), new_trace=p.new_trace)
    return dict(res["files"])


def run_arrows(run_dir: Path, p: ToolParams) -> dict[str, Path]:
    from backend.geodata import load_run, write_layers
    from backend.trace import trace_for_run
    from backend.vectors import arrow_layers, make_arrows

    run = load_run(run_dir)
    trace = trace_for_run(run, p.trace, _trace_params(p))[0] if p.arrow_mode == "mean" else None
    res = make_arrows(run, int(p.arrow_step), p.arrow_scale, trace, p.arrow_mode)
    return {"arrows": write_layers(Path(run_dir) / ARROWS_FILE, arrow_layers(res, run.bounds, p.ellipses),
                                   run.crs_wkt)[0]}


def run_components(run_dir: Path, p: ToolParams) -> dict[str, Path]:
    from backend.components import write_component_rasters
    from backend.geodata import load_run
    from backend.trace import trace_for_run

    lines, _source, _stats = trace_for_run(load_run(run_dir), p.trace, _trace_params(p), reuse=not p.new_trace)
    return write_component_rasters(run_dir, lines, local=not p.mean_strike)


def offset_caveats(run_dir: Path, files: dict[str, Path]) -> list[str]:
    """What the offsets just written (``files["csv"]``) cannot be trusted for, in words
    (``backend.offsets.fusion_caveats``: e.g. small steps read short with a fused SAR pair); [] without offsets."""
    if "csv" not in files:
        return []
    from backend.geodata import read_run_json, run_pixel_size
    from backend.offsets import fusion_caveats, read_csv

    # run.json and the raster's header only: this runs on the main thread after a tool (no raster is read)
    return fusion_caveats(read_run_json(run_dir), run_pixel_size(run_dir),
                          [r["parallel_m"] for r in read_csv(files["csv"])])


RUNNERS: dict[str, Callable[[Path, ToolParams], dict[str, Path]]] = {
    "trace": run_trace, "offsets": run_offsets, "arrows": run_arrows, "components": run_components}


def run_tools(run_dir: Path, names: list[str], p: ToolParams, progress: ProgressFn | None = None,
              cancel: Callable[[], bool] | None = None) -> dict[str, Path]:
    """Run the tools ``names`` in order (e.g. ["trace", "offsets"]); returns every file written, by key."""
    files: dict[str, Path] = {}
    for i, name in enumerate(names):
        if cancel is not None and cancel():
            break
        if progress is not None:
            progress(i / len(names), f"{name}…")
        files.update(RUNNERS[name](Path(run_dir), p))
    if progress is not None:
        progress(1.0, "done")
    return files
