"""Fault offsets from stacked profiles (COSI-Corr style) and single profiles.

Conventions (docs/geologist_tools.md): along a trace polyline, ``t`` is the unit vector of the trace direction and
``n`` its right-hand normal (``t`` turned 90 degrees clockwise). ``d_R - d_L`` is the displacement of the side to
the right minus the side to the left, both extrapolated to the trace:

* ``parallel_m`` = (d_R - d_L) . t  -- **negative = right-lateral (dextral), positive = left-lateral (sinistral)**;
  independent of the direction in which the trace is drawn.
* ``normal_m`` = (d_R - d_L) . n  -- positive = the sides move apart (horizontal extension), negative =
  shortening; also independent of the direction.
* ``vertical_m`` = U_R - U_L  -- positive = the right side goes up; this one flips with the trace direction
  (extracted traces run eastwards: end-to-end azimuth in [0, 180)).

Stack: a profile centred on the trace at ``along_m``, ``length`` long across the fault (``length / 2`` on each
side) and ``width`` wide along it, sampled bilinearly every pixel in both directions. Each sample's abscissa is
its signed distance to the trace polyline (positive on the right), so a curved trace inside the stack is followed.
Samples with ``|distance| <= exclude`` are ignored (the zone where the displacement is smeared or missing); on each
side the samples ``exclude < |distance| <= length / 2`` are fitted with a straight line (weighted by
1 / sigma^2 when the run has ``displacement_sigma.tif``) and extrapolated to the trace. The offset is the
difference of the two intercepts; its sigma combines both intercepts' sigmas. An intercept's sigma is its standard
error, scaled by the reduced chi-square when that exceeds 1 (misfit larger than the stated pixel errors) and by
``corr_px`` (errors correlated over ``corr_px`` pixels: variance times ``corr_px^2``; 1 = independent pixels; by
default it is measured on the stack itself: variance times f_x f_y with f = 1 + 2 sum_k rho_k from the
autocorrelation rho_k of the standardised fit residuals across and along the fault, the effective-sample-size rule
for correlated noise: a network's output is smooth over its windows, so its pixels are not independent), plus
(in quadrature) the extrapolation's model error: the larger change of the intercept when a parabola is fitted
instead of the line, or when only the nearer half of the samples is fitted, less what the noise alone explains.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .geodata import (
    Layer,
    RunData,
    ToolsError,
    azimuth_deg,
    cumulative_length,
    load_run,
    point_at,
    right_normal,
    signed_distance,
    write_layers,
)
from .trace import TRACE_FILE, TraceParams, trace_for_run, write_trace

CSV_COLUMNS = ["along_m", "parallel_m", "parallel_sigma_m", "normal_m", "normal_sigma_m", "vertical_m",
               "vertical_sigma_m"]
EXTRA_COLUMNS = ["trace_id", "x", "y", "strike_deg", "n_left", "n_right"]
OFFSETS_GPKG, OFFSETS_CSV, SLIP_PNG = "fault_offsets.gpkg", "fault_offsets.csv", "slip_along_strike.png"
COMPONENTS = ("parallel", "normal", "vertical")
MAX_COND = 1e10  # a least-squares system worse conditioned than this (columns scaled to unit norm) has no solution
# GeoPackage / shapefile fields (<= 10 characters)
OFFSET_FIELDS = {"trace_id": "int", "along_m": "real", "strike": "real", "par_m": "real", "par_sig": "real",
                 "nor_m": "real", "nor_sig": "real", "vert_m": "real", "vert_sig": "real", "n_left": "int",
                 "n_right": "int", "length_m": "real", "width_m": "real", "exclude_m": "real"}
FIELD_OF = {"parallel": ("par_m", "par_sig"), "normal": ("nor_m", "nor_sig"), "vertical": ("vert_m", "vert_sig")}


def _wls(X: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted least squares: coefficients and their unscaled covariance, or None when singular."""
    a = X.T @ (X * w[:, None])
    dg = np.diag(a)
    if not (np.all(np.isfinite(a)) and np.all(dg > 0)):
        return None
    sc = 1.0 / np.sqrt(dg)  # the condition number of the column-scaled system: unit-free
    if np.linalg.cond(a * sc[:, None] * sc[None, :]) > MAX_COND:  # e.g. every sample at one distance
        return None
    try:
        cov = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return None
    return cov @ (X.T @ (w * v)), cov


def residual_corr_px(resid: np.ndarray, grid: tuple[int, int], max_lag: int = 60) -> float:
    """Error correlation of a stack as an equivalent ``corr_px`` (>= 1): the square root of the variance inflation
    of a mean of correlated samples, f_x f_y, where per direction f = 1 + 2 sum_k rho_k (the residuals' empirical
    autocorrelation at lags k = 1, 2, ..., summed while it stays above 0.05) and at most the number of samples in
    that direction (n fully correlated samples count as one). ``resid``: flat standardised residuals on the stack's
    (along, across) sample grid, NaN = not used."""
    ny, nx = grid
    if ny * nx != resid.size or resid.size == 0:
        return 1.0
    r = resid.reshape(ny, nx)
    f = 1.0
    for axis, n in ((1, nx), (0, ny)):
        total = 0.0
        for k in range(1, min(max_lag, n - 1) + 1):
            a, b = (r[:, k:], r[:, :-k]) if axis == 1 else (r[k:, :], r[:-k, :])
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() < 10:
                break
            rho = float(np.sum(a[ok] * b[ok]) / math.sqrt(np.sum(a[ok] ** 2) * np.sum(b[ok] ** 2) + 1e-300))
            if rho <= 0.05:
                break
            total += rho
        f *= min(1.0 + 2.0 * total, float(max(n, 1)))
    return float(math.sqrt(f))


def fit_side(d: np.ndarray, v: np.ndarray, s: np.ndarray | None, corr_px: float = 1.0
             ) -> tuple[float, float, float]:
    """Straight-line fit v = a + b d on one side of the fault; returns (a, sigma_a, b), NaN when fewer than 3
    samples or no spread. sigma_a: the standard error (scaled by the reduced chi-square when above 1, or by it
    alone without pixel sigmas, and by ``corr_px``), plus the extrapolation's model error: the larger of the
    intercept changes when a parabola is fitted, or when only the half of the samples nearest to the fault are,
    each minus the part that the noise alone explains (the variance difference of the nested fits)."""
    ok = np.isfinite(d) & np.isfinite(v) & (np.isfinite(s) & (s > 0) if s is not None else True)
    d, v = d[ok], v[ok]
    if len(d) < 3 or np.ptp(d) <= 1e-6 * (1.0 + float(np.abs(d).max())):  # one distance only: no line to fit
        return math.nan, math.nan, math.nan
    w = 1.0 / s[ok] ** 2 if s is not None else np.ones_like(d)
    X = np.column_stack([np.ones_like(d), d])
    fit = _wls(X, v, w)
    if fit is None:
        return math.nan, math.nan, math.nan
    (a, b), cov = fit
    r = v - a - b * d
    chi2 = float((w * r * r).sum()) / max(len(d) - 2, 1)
    scale = (max(chi2, 1.0) if s is not None else chi2) * max(corr_px, 1.0) ** 2
    model = 0.0
    if len(d) >= 6:
        alt = [(np.column_stack([X, d * d]), slice(None))]
        near = np.abs(d) <= np.median(np.abs(d))
        if near.sum() >= 3 and np.ptp(d[near]) > 0:
            alt.append((X[near], near))
        for Xa, sel in alt:
            fa = _wls(Xa, v[sel], w[sel])
            if fa is not None:
                model = max(model, (fa[0][0] - a) ** 2 - (fa[1][0, 0] - cov[0, 0]) * scale)
    return float(a), float(math.sqrt(cov[0, 0] * scale + model)), float(b)


@dataclass
class Stack:
    """Samples of one stacked profile: signed distance ``d`` to the trace (m, + right) and, per component
    (parallel, normal, vertical, east, north, up), the values and their 1-sigma (or None)."""

    d: np.ndarray
    values: dict[str, np.ndarray]
    sigmas: dict[str, np.ndarray | None]
    t: np.ndarray
    center: np.ndarray
    grid: tuple[int, int] = (1, 0)  # (samples along the fault, samples across it): the flat arrays' 2-D shape

    def step(self, comp: str, exclude: float, half_length: float, corr_px: float | None = None) -> dict:
        """Fitted offset (right minus left at the trace) of one component: value, sigma, both lines.
        ``corr_px`` None: measured on this stack's residuals (``residual_corr_px``)."""
        v, s = self.values[comp], self.sigmas[comp]
        sides = (("R", (self.d > exclude) & (self.d <= half_length)),
                 ("L", (self.d < -exclude) & (self.d >= -half_length)))
        if corr_px is None:
            resid = np.full(self.d.shape, np.nan)
            for _, sel in sides:
                a, _, b = fit_side(self.d[sel], v[sel], None if s is None else s[sel], 1.0)
                if np.isfinite(a):
                    resid[sel] = (v[sel] - a - b * self.d[sel]) / (1.0 if s is None else s[sel])
            corr_px = residual_corr_px(resid, self.grid)
        out: dict = {"corr_px": corr_px}
        for side, sel in sides:
            out[side] = fit_side(self.d[sel], v[sel], None if s is None else s[sel], corr_px)
            out["n_" + side] = int(np.isfinite(v[sel]).sum())
        aR, sR, _ = out["R"]
        aL, sL, _ = out["L"]
        return {"value": aR - aL, "sigma": math.hypot(sR, sL), "right": out["R"], "left": out["L"],
                "n_right": out["n_R"], "n_left": out["n_L"], "corr_px": corr_px}

    def binned(self, comp: str, bin_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and spread of one component in bins of ``bin_m`` along the profile (for plots and CSV)."""
        v = self.values[comp]
        k = np.round(self.d / bin_m).astype(int)
        ok = np.isfinite(v)
        centers, means, stds = [], [], []
        for b in np.unique(k):
            sel = ok & (k == b)
            centers.append(b * bin_m)
            means.append(float(v[sel].mean()) if sel.any() else math.nan)
            stds.append(float(v[sel].std()) if sel.any() else math.nan)
        return np.array(centers), np.array(means), np.array(stds)


def sample_stack(run: RunData, center: np.ndarray, t: np.ndarray, length: float, width: float,
                 trace: np.ndarray | None = None) -> Stack:
    """Sample a stack centred on ``center`` with fault direction ``t`` (unit, east/north): ``length`` across
    (along the right-hand normal n), ``width`` along t, one sample per pixel each way. The abscissa is the signed
    distance to ``trace`` (a polyline) when given, else the distance along n from ``center``."""
    pix = run.pixel_size
    n = right_normal(t)
    xs = np.arange(-length / 2, length / 2 + 1e-9, pix)
    ys = np.arange(-width / 2, width / 2 + 1e-9, pix) if width >= pix else np.zeros(1)
    ys = ys - ys.mean()
    X, Y = np.meshgrid(xs, ys)
    px = center[0] + X * n[0] + Y * t[0]
    py = center[1] + X * n[1] + Y * t[1]
    d = signed_distance(px, py, trace).ravel() if trace is not None else X.ravel()
    e, nn, u = run.sample(run.disp, px.ravel(), py.ravel())
    values = {"east": e, "north": nn, "up": u, "parallel": e * t[0] + nn * t[1], "normal": e * n[0] + nn * n[1],
              "vertical": u}
    sigmas: dict[str, np.ndarray | None] = dict.fromkeys(values)
    if run.sigma is not None:
        se, sn, su = run.sample(run.sigma, px.ravel(), py.ravel())
        sigmas = {"east": se, "north": sn, "up": su, "vertical": su,
                  "parallel": np.hypot(se * t[0], sn * t[1]), "normal": np.hypot(se * n[0], sn * n[1])}
    return Stack(d=d, values=values, sigmas=sigmas, t=t, center=np.asarray(center, float), grid=X.shape)


@dataclass
class OffsetProfile:
    """One stacked profile on a trace: position, strike (degrees clockwise from north, of t) and the offsets."""

    trace_id: int
    along_m: float
    x: float
    y: float
    strike_deg: float
    offsets: dict[str, tuple[float, float]]  # component -> (value, sigma), m
    n_left: int
    n_right: int
    line: np.ndarray  # (2, 2): left end -> right end of the stack's centre line
    stack: Stack | None = field(default=None, repr=False)

    def row(self) -> dict:
        r = {"along_m": self.along_m}
        for c in COMPONENTS:
            r[f"{c}_m"], r[f"{c}_sigma_m"] = self.offsets[c]
        return r | {"trace_id": self.trace_id, "x": self.x, "y": self.y, "strike_deg": self.strike_deg,
                    "n_left": self.n_left, "n_right": self.n_right}


def _direction(line: np.ndarray, s: float, half: float) -> np.ndarray:
    """Unit direction of a polyline at distance ``s``, as the chord over [s - half, s + half]."""
    a, b = point_at(line, s - half), point_at(line, s + half)
    v = b - a
    return v / max(float(np.hypot(*v)), 1e-12)


def default_exclude(run: RunData) -> float:
    """Default half-width of the ignored zone around the trace: 3 pixels."""
    return 3.0 * run.pixel_size


def offsets_along_trace(run: RunData, lines: list[np.ndarray], spacing: float, length: float, width: float,
                        exclude: float | None = None, corr_px: float | None = None, keep_stacks: bool = False
                        ) -> list[OffsetProfile]:
    """Stacked profiles every ``spacing`` metres along each trace polyline (the first at ``spacing / 2``).

    ``length``: total length across the fault (m), ``width``: along the fault (m), ``exclude``: half-width of the
    ignored zone (m; default 3 pixels). See the module docstring for the fit and the sign conventions."""
    pix = run.pixel_size
    exclude = default_exclude(run) if exclude is None else float(exclude)
    if spacing <= 0 or length <= 0 or width < 0:
        raise ToolsError(f"spacing, length and width must be positive (got {spacing}, {length}, {width} m).",
                         "offsets")
    if length / 2 <= exclude + 2 * pix:
        raise ToolsError(f"length {length} m leaves no samples outside the excluded zone (+-{exclude} m). Fix: "
                         f"a length above {2 * (exclude + 3 * pix):.0f} m or a smaller --exclude.", "offsets")
    out = []
    for tid, line in enumerate(lines, start=1):
        total = cumulative_length(line)[-1]
        for s in np.arange(spacing / 2, total + 1e-9, spacing):
            c = point_at(line, s)
            t = _direction(line, s, max(width / 2, 2 * pix))
            st = sample_stack(run, c, t, length, width, trace=line)
            res = {comp: st.step(comp, exclude, length / 2, corr_px) for comp in COMPONENTS}
            n = right_normal(t)
            out.append(OffsetProfile(
                trace_id=tid, along_m=float(s), x=float(c[0]), y=float(c[1]),
                strike_deg=float(azimuth_deg(t[0], t[1])),
                offsets={k: (r["value"], r["sigma"]) for k, r in res.items()},
                n_left=res["parallel"]["n_left"], n_right=res["parallel"]["n_right"],
                line=np.array([c - n * length / 2, c + n * length / 2]), stack=st if keep_stacks else None))
    return out


def offset_layers(profiles: list[OffsetProfile], length: float, width: float, exclude: float) -> list[Layer]:
    """``offsets`` (points on the trace) and ``profiles`` (stack centre lines) with the same attributes."""
    pts = Layer("offsets", "Point", OFFSET_FIELDS)
    lns = Layer("profiles", "LineString", OFFSET_FIELDS)
    for p in profiles:
        a = {"trace_id": p.trace_id, "along_m": p.along_m, "strike": p.strike_deg, "n_left": p.n_left,
             "n_right": p.n_right, "length_m": length, "width_m": width, "exclude_m": exclude}
        for c, (fv, fs) in FIELD_OF.items():
            a[fv], a[fs] = p.offsets[c]
        pts.features.append(((p.x, p.y), a))
        lns.features.append((p.line, a))
    return [pts, lns]


def write_csv(path: str | Path, profiles: list[OffsetProfile]) -> Path:
    """``fault_offsets.csv``: the columns of ``CSV_COLUMNS`` then ``EXTRA_COLUMNS``; NaN where a fit failed."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS + EXTRA_COLUMNS)
        for p in profiles:
            r = p.row()
            w.writerow([f"{r[k]:.2f}" if k in ("along_m", "x", "y", "strike_deg") else
                        (f"{r[k]:.4f}" if isinstance(r[k], float) else r[k]) for k in CSV_COLUMNS + EXTRA_COLUMNS])
    return path


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a ``fault_offsets.csv`` with numbers as floats."""
    with Path(path).open() as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


class Figures:
    """Stand-alone matplotlib figures (``matplotlib.figure.Figure``, no pyplot, no GUI backend), safe in QGIS's
    worker threads whatever backend QGIS's Python has selected; ``savefig`` renders with Agg / the PDF backend."""

    def __init__(self) -> None:
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ToolsError("matplotlib is not installed in this Python, so no plot can be drawn (the GeoPackage "
                             "and CSV are written). Fix: install it into QGIS's Python (Linux: python3-matplotlib; "
                             "the Windows and macOS QGIS installers include it).", "matplotlib") from exc
        self._figure = Figure

    def figure(self, figsize: tuple[float, float], constrained_layout: bool = False):  # noqa: ANN201
        return self._figure(figsize=figsize, constrained_layout=constrained_layout)

    def subplots(self, nrows: int, ncols: int, figsize: tuple[float, float], sharex: bool = False,
                 constrained_layout: bool = False):  # noqa: ANN201
        fig = self.figure(figsize, constrained_layout)
        return fig, fig.subplots(nrows, ncols, sharex=sharex)


def plot_slip(profiles: list[OffsetProfile], png: str | Path | None = None, ax=None):  # noqa: ANN001, ANN201
    """Slip along strike: parallel, normal and vertical offsets (+-1 sigma) against the distance along the trace.
    Draws into ``ax`` (3 axes) when given, else a new figure saved to ``png``. Returns the figure."""
    plt = Figures()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True, constrained_layout=True)
    labels = {"parallel": "fault-parallel (m)\n< 0 right-lateral", "normal": "fault-normal (m)\n> 0 opening",
              "vertical": "vertical (m)\nright side up > 0"}
    for a, comp in zip(ax, COMPONENTS):
        for tid in sorted({p.trace_id for p in profiles}):
            ps = [p for p in profiles if p.trace_id == tid]
            x = np.array([p.along_m for p in ps]) / 1000.0
            v = np.array([p.offsets[comp][0] for p in ps])
            s = np.array([p.offsets[comp][1] for p in ps])
            a.errorbar(x, v, yerr=s, fmt="o-", ms=3, lw=1, capsize=2, label=f"trace {tid}")
        a.axhline(0, color="0.6", lw=0.8)
        a.set_ylabel(labels[comp], fontsize=8)
        a.grid(alpha=0.3)
    ax[-1].set_xlabel("distance along the trace (km)")
    if len({p.trace_id for p in profiles}) > 1:
        ax[0].legend(fontsize=7)
    fig = fig or ax[0].figure
    if fig is not None and png is not None:
        fig.suptitle("Offsets along strike (stacked profiles, right minus left side)")
        fig.savefig(png, dpi=150)
    return fig


SAR_STEP_PX = 1.0  # below this fault-parallel offset (pixels) the fused SAR pair is measured to read steps short


def fusion_caveats(run_json: dict, pixel_size_m: float, parallel_m: list[float] | None = None) -> list[str]:
    """What the offsets of this run cannot be trusted for, in words (empty when nothing applies).

    The SAR amplitude pair fused with the optical pair can read small steps short next to a rupture (model 0.7.0,
    simulator v2 with a band-limited SAR pair, models/MODEL_CARD.md): on the real-texture scenes (c) (0.3-0.7-px
    steps) the step reads -31 % with it against -21 % with the optical pair alone (it halves the near-rupture
    error there); on the simulated Mw 6.9 scene (a 0.2-px step at 10 m) it does not (slope 0.97 against 0.94); on
    steps of 1-5 px it does no harm. So: when the run fused both pairs and the median |fault-parallel offset|
    (``parallel_m``, m, e.g. the profiles' ``parallel_m``) is below SAR_STEP_PX pixels of ``pixel_size_m`` (or no
    offsets are given), say so and what to do. ``run_json``: the run's ``run.json`` (its ``inputs``)."""
    inputs = run_json.get("inputs") or {}
    if not ("sar_pre" in inputs and "optical_pre" in inputs):
        return []
    if parallel_m:
        par = np.abs(np.asarray(parallel_m, float))
        par = par[np.isfinite(par)]
        if par.size and float(np.median(par)) >= SAR_STEP_PX * pixel_size_m:
            return []
    return [f"This run fused the SAR amplitude pair: next to a rupture it can read steps below {SAR_STEP_PX:g} "
            f"pixel ({SAR_STEP_PX * pixel_size_m:g} m here) short (on semi-synthetic scenes with real optical "
            "texture and 0.3-0.7-pixel steps: 31 % short with it, 21 % with the optical pair alone). Fix: run again "
            "with the optical pair and the DEM only, and compare (docs/geologist_tools.md, 'Which inputs for "
            "offsets')."]


def run_offsets(run_dir: str | Path, spacing: float, length: float, width: float, exclude: float | None = None,
                trace: str | Path | None = None, trace_params: TraceParams | None = None,
                corr_px: float | None = None,
                out_dir: str | Path | None = None, plot: bool = True, new_trace: bool = False) -> dict:
    """The ``offsets`` tool: trace (``trace`` file, else the run's ``rupture_trace.gpkg`` unless ``new_trace``,
    else extracted), stacked profiles, and ``rupture_trace.gpkg`` (unless it is the run's own, left untouched so
    that a copy open in QGIS is not rewritten), ``fault_offsets.gpkg``, ``fault_offsets.csv`` and
    ``slip_along_strike.png`` written into ``out_dir`` (default the run folder); an extracted trace keeps what
    supports it (``step_z``, ``signif``) as attributes. Returns {"profiles", "trace", "stats", "files", "source",
    "notes"}."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines, source, stats = trace_for_run(run, trace, trace_params, reuse=not new_trace)
    exclude = default_exclude(run) if exclude is None else float(exclude)
    profiles = offsets_along_trace(run, lines, spacing, length, width, exclude, corr_px)
    same = source == "run" and (out / TRACE_FILE).resolve() == (Path(run_dir) / TRACE_FILE).resolve()
    files = {"trace": out / TRACE_FILE if same else write_trace(out / TRACE_FILE, lines, run.crs_wkt, source,
                                                                        stats),
             "gpkg": write_layers(out / OFFSETS_GPKG, offset_layers(profiles, length, width, exclude),
                                  run.crs_wkt)[0],
             "csv": write_csv(out / OFFSETS_CSV, profiles)}
    notes = fusion_caveats(run.run_json, run.pixel_size, [p.offsets["parallel"][0] for p in profiles])
    if plot:
        try:
            plot_slip(profiles, out / SLIP_PNG)
            files["png"] = out / SLIP_PNG
        except ToolsError as exc:
            notes.append(str(exc))
    return {"profiles": profiles, "trace": lines, "stats": stats, "files": files, "source": source, "notes": notes}


# ------------------------------------------------------------------------------------------- single profile


@dataclass
class Profile:
    """A profile along a drawn line (for the QGIS profile tool): ``distance_m`` from the line's start, the binned
    ``values`` / ``spread`` of east, north, up, parallel, normal (m), the fault position ``fault_m`` on the line and
    the fitted ``steps`` {component: {"value", "sigma", "right": (a, sigma_a, b), "left": ...}}.

    Orientation: the line is drawn from the left side to the right side of the fault, i.e. ``n`` = the line
    direction and ``t`` = n turned 90 degrees anticlockwise; so ``parallel`` < 0 is right-lateral as above."""

    distance_m: np.ndarray
    values: dict[str, np.ndarray]
    spread: dict[str, np.ndarray]
    fault_m: float
    steps: dict[str, dict]
    strike_deg: float
    exclude_m: float
    line: np.ndarray
    stack: Stack = field(repr=False)

    def layers(self) -> list[Layer]:
        """``profile_line`` (the drawn line with the fitted steps) and ``profile_pts`` (one point per bin)."""
        a, b = self.line
        p = (b - a) / float(np.hypot(*(b - a)))
        attrs = {"strike": self.strike_deg, "fault_m": self.fault_m, "exclude_m": self.exclude_m}
        for c, (fv, fs) in FIELD_OF.items():
            attrs[fv], attrs[fs] = self.steps[c]["value"], self.steps[c]["sigma"]
        line = Layer("profile_line", "LineString", {k: "real" for k in attrs})
        line.features.append((self.line, attrs))
        names = {"east": "east_m", "north": "north_m", "up": "up_m", "parallel": "par_m", "normal": "nor_m"}
        pts = Layer("profile_pts", "Point", {"dist_m": "real"} | {v: "real" for v in names.values()})
        for i, dist in enumerate(self.distance_m):
            xy = a + dist * p
            pts.features.append((xy, {"dist_m": dist} | {v: self.values[k][i] for k, v in names.items()}))
        return [line, pts]

    def write_gpkg(self, path: str | Path, crs_wkt: str) -> Path:
        """The profile as a GeoPackage (layers of :meth:`layers`)."""
        return write_layers(path, self.layers(), crs_wkt)[0]

    def write_csv(self, path: str | Path) -> Path:
        comps = list(self.values)
        with Path(path).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["distance_m"] + [f"{c}_m" for c in comps] + [f"{c}_spread_m" for c in comps])
            for i, dist in enumerate(self.distance_m):
                w.writerow([f"{dist:.2f}"] + [f"{self.values[c][i]:.4f}" for c in comps]
                           + [f"{self.spread[c][i]:.4f}" for c in comps])
        return Path(path)

    def plot(self, png: str | Path | None = None, axes=None):  # noqa: ANN001, ANN201
        """E/N/U and parallel/normal/vertical along the profile with the fits; saved to ``png`` when given."""
        plt = Figures()
        fig = None
        if axes is None:
            fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
        x = self.distance_m / 1000.0
        for c, col in (("east", "C0"), ("north", "C1"), ("up", "C2")):
            axes[0].plot(x, self.values[c], color=col, lw=1, label=c)
        axes[0].set_ylabel("displacement (m)")
        for c, col in (("parallel", "C3"), ("normal", "C4"), ("vertical", "C2")):
            st = self.steps[c]
            axes[1].plot(x, self.values[c if c != "vertical" else "up"], color=col, lw=1,
                         label=f"{c}: step {st['value']:+.3f} ± {st['sigma']:.3f} m")
            for side, sgn in (("right", 1), ("left", -1)):
                a, _, b = st[side]
                h = float(np.max(sgn * (self.distance_m - self.fault_m)))
                dd = np.array([self.exclude_m, h]) * sgn
                axes[1].plot((self.fault_m + dd) / 1000.0, a + b * dd, color=col, lw=2, alpha=0.5, ls="--")
        for a in axes:
            a.axvspan((self.fault_m - self.exclude_m) / 1000, (self.fault_m + self.exclude_m) / 1000,
                      color="0.85", lw=0)
            a.axvline(self.fault_m / 1000.0, color="k", lw=0.8)
            a.grid(alpha=0.3)
            a.legend(fontsize=7, loc="best")
        axes[1].set_ylabel("fault-parallel / normal / vertical (m)")
        axes[1].set_xlabel("distance along the profile (km); grey: excluded zone, dashed: fits")
        fig = fig or axes[0].figure
        if png is not None:
            fig.savefig(png, dpi=150)
        return fig


def profile_along_line(run: RunData, line: np.ndarray, width: float = 0.0, exclude: float | None = None,
                       trace: list[np.ndarray] | None = None, fault_m: float | None = None,
                       corr_px: float | None = None
                       ) -> Profile:
    """Profile along a drawn line ((k >= 2, 2) map coordinates; its first and last points are used), stacked over
    ``width`` metres. The fault crossing is ``fault_m`` (metres from the line's start) when given, else where the
    line crosses a ``trace`` polyline, else where the displacement changes fastest along the line."""
    line = np.asarray(line, float)
    a, b = line[0], line[-1]
    length = float(np.hypot(*(b - a)))
    pix = run.pixel_size
    if length < 8 * pix:
        raise ToolsError(f"profile shorter than 8 pixels ({length:.0f} m). Fix: draw a longer line.", "profile")
    p = (b - a) / length  # = n, the right-hand normal of the fault direction t
    t = np.array([-p[1], p[0]])  # p turned 90 degrees anticlockwise
    exclude = default_exclude(run) if exclude is None else float(exclude)
    mid = (a + b) / 2
    st = sample_stack(run, mid, t, length, width)  # d = distance from the line's midpoint along p
    if fault_m is None and trace:
        fault_m = _crossing(a, b, trace)
    if fault_m is None:
        k = np.round(st.d / pix).astype(int)
        u = np.stack([st.values[c] for c in ("east", "north", "up")])
        bins = np.unique(k)
        mean = np.stack([[np.nanmean(u[j][k == bb]) if np.any(k == bb) else np.nan for bb in bins]
                         for j in range(3)])
        jump = np.sqrt(np.nansum(np.diff(mean, axis=1) ** 2, axis=0))
        i = int(np.nanargmax(jump)) if np.isfinite(jump).any() else len(bins) // 2 - 1
        win = slice(max(i - 1, 0), i + 2)  # centroid of the jumps around the largest: sub-pixel position
        jw = np.nan_to_num(jump[win])
        pos = (bins[:-1][win] + 0.5) * pix
        fault_m = float((jw @ pos / jw.sum() if jw.sum() > 0 else (bins[i] + 0.5) * pix) + length / 2)
    st.d = st.d - (fault_m - length / 2)  # abscissa relative to the fault
    steps = {c: st.step(c, exclude, length, corr_px) for c in COMPONENTS}
    values, spread = {}, {}
    dist = None
    for c in ("east", "north", "up", "parallel", "normal"):
        centers, m, s = st.binned(c, pix)
        dist = centers + fault_m if dist is None else dist
        values[c], spread[c] = m, s
    return Profile(distance_m=dist, values=values, spread=spread, fault_m=float(fault_m), steps=steps,
                   strike_deg=float(azimuth_deg(t[0], t[1])), exclude_m=exclude, line=np.array([a, b]), stack=st)


def _crossing(a: np.ndarray, b: np.ndarray, trace: list[np.ndarray]) -> float | None:
    """Distance from ``a`` along a->b of the first crossing with a trace polyline, or None."""
    best = None
    r = b - a
    for line in trace:
        for p0, p1 in zip(line[:-1], line[1:]):
            s = p1 - p0
            den = r[0] * s[1] - r[1] * s[0]
            if abs(den) < 1e-12:
                continue
            q = p0 - a
            u = (q[0] * s[1] - q[1] * s[0]) / den
            v = (q[0] * r[1] - q[1] * r[0]) / den
            if 0 <= u <= 1 and 0 <= v <= 1 and (best is None or u < best):
                best = u
    return None if best is None else float(best * np.hypot(*r))
