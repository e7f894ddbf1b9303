"""PDF/PNG report of a run drawn with matplotlib (Agg; no Qt), for ``python -m backend report``.

Pages: 1. map of the fault-parallel component (for the trace's mean strike; the horizontal magnitude when there
is no trace) with colour bar (title, units, 1-2-5 ticks), scale bar, north arrow, displacement arrows in map units
with a reference arrow, and the trace; 2. slip along strike (stacked profiles); 3. one stacked profile with its
fits; 4. the run summary from ``run.json`` (inputs, model version, parameters) and the offset parameters.
Page 1 is also written as a PNG beside the PDF.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np

from .components import mean_direction
from .geodata import RunData, ToolsError, azimuth_deg, cumulative_length, load_run
from .offsets import Figures, default_exclude, fusion_caveats, offsets_along_trace, plot_slip, profile_along_line
from .trace import trace_for_run
from .vectors import make_arrows, nice_value

PAGE = (11.69, 8.27)  # A4 landscape, inches


def nice_ceil(x: float) -> float:
    """The round value (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k) at or above ``x`` (colour-bar limits)."""
    if not (x > 0 and math.isfinite(x)):
        return 1.0
    e = math.floor(math.log10(x))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * 10**e >= x * (1 - 1e-9):
            return float(m * 10**e)
    return float(10 ** (e + 1))


def default_offset_params(run: RunData, lines: list[np.ndarray]) -> dict:
    """Stack parameters for the report when none are given: length a quarter of the scene (1-2-5 rounded),
    width a tenth of it, about 15 profiles along the longest trace."""
    xmin, ymin, xmax, ymax = run.bounds
    length = nice_value(0.25 * min(xmax - xmin, ymax - ymin))
    total = max(cumulative_length(x)[-1] for x in lines)
    width = max(nice_value(length / 10), run.pixel_size)
    return {"spacing": max(nice_value(total / 15), width), "length": length, "width": width,
            "exclude": default_exclude(run)}


def _map_page(plt, run: RunData, lines: list[np.ndarray] | None, title: str):  # noqa: ANN001, ANN202
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    fig = plt.figure(figsize=PAGE)
    ax = fig.add_axes([0.06, 0.08, 0.68, 0.82])
    cax = fig.add_axes([0.76, 0.15, 0.018, 0.68])
    e, n = run.disp[0].astype(float), run.disp[1].astype(float)
    xmin, ymin, xmax, ymax = run.bounds
    if lines:
        t = mean_direction(lines)
        field = e * t[0] + n * t[1]
        strike = float(azimuth_deg(t[0], t[1]))
        lim = nice_ceil(float(np.nanpercentile(np.abs(field), 99.5)))
        im = ax.imshow(field, extent=(xmin, xmax, ymin, ymax), cmap="RdBu_r", vmin=-lim, vmax=lim,
                       interpolation="nearest")
        label = f"Fault-parallel displacement (m), along strike {strike:.0f}°"
    else:
        field = np.hypot(e, n)
        lim = nice_ceil(float(np.nanpercentile(field, 99.5)))
        im = ax.imshow(field, extent=(xmin, xmax, ymin, ymax), cmap="viridis", vmin=0, vmax=lim,
                       interpolation="nearest")
        label = "Horizontal displacement (m)"
    cb = fig.colorbar(im, cax=cax)
    cb.locator = MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10])
    cb.formatter = FuncFormatter(lambda v, _: f"{v:g}")
    cb.update_ticks()
    cb.set_label(label)
    step = max(int(round(max(run.shape) / 28)), 2)
    arr = make_arrows(run, step_px=step, trace=lines or None)
    a = arr["arrows"]
    if a:
        q = ax.quiver([r["x"] for r in a], [r["y"] for r in a], [r["de_m"] for r in a], [r["dn_m"] for r in a],
                      angles="xy", scale_units="xy", scale=1.0 / arr["scale"], width=0.0022, color="k")
        ax.quiverkey(q, 0.86, 1.03, arr["ref_m"], f"{arr['ref_m']:g} m (horizontal)", labelpos="E",
                     coordinates="axes", fontproperties={"size": 9})
    for i, line in enumerate(lines or []):
        ax.plot(line[:, 0], line[:, 1], color="gold", lw=2.2, solid_capstyle="round",
                label="rupture trace" if i == 0 else None)
        ax.plot(line[:, 0], line[:, 1], color="k", lw=0.8)
    if lines:
        ax.legend(loc="upper left", fontsize=8, framealpha=0.8)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    km = FuncFormatter(lambda v, _: f"{v / 1000:g}")
    ax.xaxis.set_major_formatter(km)
    ax.yaxis.set_major_formatter(km)
    ax.set_xlabel("easting (km)")
    ax.set_ylabel("northing (km)")
    sb = nice_value(0.25 * (xmax - xmin))
    ax.add_artist(AnchoredSizeBar(ax.transData, sb, f"{sb / 1000:g} km" if sb >= 1000 else f"{sb:g} m",
                                  "lower right", pad=0.5, sep=4, frameon=True, size_vertical=(ymax - ymin) / 150))
    ax.annotate("", xy=(0.95, 0.925), xytext=(0.95, 0.82), xycoords="axes fraction",
                arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 2.5, "mutation_scale": 20})
    ax.text(0.95, 0.955, "N", transform=ax.transAxes, ha="center", va="center", fontsize=14, fontweight="bold",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
    crs = run.run_json.get("grid", {}).get("crs") or _crs_name(run.crs_wkt)
    ax.set_title(title, loc="left", fontsize=12)
    fig.text(0.76, 0.08, f"CRS: {crs} (grid north up)\narrows: 1 per {step} px, sampled (not averaged)\n"
             f"arrow scale: 1 m = {arr['scale']:g} m on the map", fontsize=8, va="bottom")
    return fig


def _crs_name(wkt: str) -> str:
    try:
        from rasterio.crs import CRS

        c = CRS.from_wkt(wkt)
        return c.to_string() if c.to_epsg() else c.to_wkt()[:40]
    except Exception:  # noqa: BLE001 - a label only
        return "unknown"


def summary_lines(run: RunData, extra: dict) -> list[str]:
    """The run summary (software, model version, device, grid, inputs, parameters, ``extra``) as text lines; the
    PDF of ``make_report`` and the QGIS layout report print the same."""
    rj = run.run_json
    lines = [f"run folder: {run.run_dir}",
             f"software: {rj.get('software', '?')}   created: {rj.get('created_utc', '?')}",
             f"model: version {rj.get('model', {}).get('version', '?')}   ({rj.get('model', {}).get('path', '?')})",
             f"device: {rj.get('device', '?')}",
             f"grid: {run.shape[1]} x {run.shape[0]} px, {run.pixel_size:g} m, "
             f"{rj.get('grid', {}).get('crs') or _crs_name(run.crs_wkt)}", "", "inputs:"]
    for k, v in (rj.get("inputs") or {}).items():
        desc = v.get("path", v) if isinstance(v, dict) else v
        band = f" band {v['band']}" if isinstance(v, dict) and v.get("band", 1) != 1 else ""
        lines.append(f"  {k}: {desc}{band}")
    lines += ["", "parameters:"]
    for k, v in (rj.get("parameters") or {}).items():
        s = json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)
        lines.append(f"  {k}: {s[:110] + ('...' if len(s) > 110 else '')}")
    return lines + ["", "offsets (this report):"] + [f"  {k}: {v}" for k, v in extra.items()]


def _summary_page(plt, run: RunData, extra: dict, caveats: list[str] | tuple = ()):  # noqa: ANN001, ANN202
    fig = plt.figure(figsize=PAGE)
    fig.text(0.05, 0.94, "Run summary", fontsize=16, fontweight="bold")
    lines = summary_lines(run, extra)
    fig.text(0.05, 0.9, "\n".join(lines[:40 if caveats else 48]), fontsize=8.5, family="monospace", va="top")
    if caveats:  # room kept at the bottom for them
        text = "\n".join(textwrap.fill(c, 150) for c in caveats)
        fig.text(0.05, 0.04, "Caution: " + text, fontsize=9, color="#b71c1c", va="bottom")
    return fig


def make_report(run_dir: str | Path, out_pdf: str | Path, trace: str | Path | None = None,
                spacing: float | None = None, length: float | None = None, width: float | None = None,
                exclude: float | None = None, png_pages: bool = False) -> dict:
    """Write the report PDF (4 pages) and a PNG of page 1 (same name, ``.png``; with ``png_pages`` every page as
    ``<name>_p<N>.png`` too). The trace is ``trace``, else the
    run's ``rupture_trace.gpkg``, else extracted; without any, pages 2 and 3 say so. Returns
    {"pdf", "png", "pages", "notes"}."""
    plt = Figures()
    from matplotlib.backends.backend_pdf import PdfPages

    run = load_run(run_dir)
    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    caveats: list[str] = []  # what the offsets cannot be trusted for (backend.offsets.fusion_caveats)
    try:
        lines, source, _stats = trace_for_run(run, trace)
    except ToolsError as exc:
        lines, source = [], "none"
        notes.append(str(exc))
    name = run.run_json.get("name") or (run.run_dir.name if run.run_dir else "run")
    figs = [_map_page(plt, run, lines, f"QuakeFusion run '{name}': displacement")]
    extra = {"trace": source}
    if lines:
        prm = default_offset_params(run, lines)
        prm.update({k: v for k, v in (("spacing", spacing), ("length", length), ("width", width),
                                      ("exclude", exclude)) if v is not None})
        extra |= {k + ("_m" if k != "spacing" else "_m"): f"{v:g}" for k, v in prm.items()}
        profiles = offsets_along_trace(run, lines, prm["spacing"], prm["length"], prm["width"], prm["exclude"])
        caveats = fusion_caveats(run.run_json, run.pixel_size, [p.offsets["parallel"][0] for p in profiles])
        notes += caveats
        fig, ax = plt.subplots(3, 1, figsize=PAGE, sharex=True)
        plot_slip(profiles, ax=ax)
        fig.suptitle(f"Offsets along strike: stacks {prm['length']:g} m long, {prm['width']:g} m wide, every "
                     f"{prm['spacing']:g} m; ±{prm['exclude']:g} m around the trace ignored; ±1σ", fontsize=11)
        figs.append(fig)
        ok = [p for p in profiles if np.isfinite(p.offsets["parallel"][0])] or profiles
        mid = ok[len(ok) // 2]
        prof = profile_along_line(run, mid.line, width=prm["width"], exclude=prm["exclude"], trace=lines)
        fig, axes = plt.subplots(2, 1, figsize=PAGE, sharex=True)
        prof.plot(axes=axes)
        fig.suptitle(f"Profile across the trace at {mid.along_m / 1000:.2f} km along trace {mid.trace_id} "
                     f"(strike {mid.strike_deg:.0f}°), stacked over {prm['width']:g} m; drawn left -> right "
                     "of the trace", fontsize=11)
        figs.append(fig)
    else:
        for what in ("Offsets along strike", "Profile"):
            fig = plt.figure(figsize=PAGE)
            fig.text(0.5, 0.5, f"{what}: no rupture trace found or given.\n" + "\n".join(notes), ha="center",
                     fontsize=12)
            figs.append(fig)
    figs.append(_summary_page(plt, run, extra, caveats))
    with PdfPages(out_pdf) as pdf:
        for f in figs:
            pdf.savefig(f)
        pdf.infodict()["Title"] = f"QuakeFusion report: {name}"
    png = out_pdf.with_suffix(".png")
    figs[0].savefig(png, dpi=110)
    if png_pages:
        for i, f in enumerate(figs, start=1):
            f.savefig(out_pdf.with_name(f"{out_pdf.stem}_p{i}.png"), dpi=80)
    return {"pdf": out_pdf, "png": png, "pages": len(figs), "notes": notes}
