"""Where the unwrapper must not connect: a band along the surface rupture.

Across a surface rupture the line-of-sight displacement jumps by many fringes within a pixel or two. Where the
interferogram stays coherent up to the rupture, the wrapped phase shows the jump only as a fraction of a cycle, and
a minimum-cost-flow unwrapper integrates straight across it: the two sides end up in one region whose relative cycle
count is wrong by the jump's whole cycles, and nothing says so. Measured on the simulated Mw 6.9 rupture of issue
#14 (768 x 768 px at 10 m, the fused estimate's sigma ~1 m too large to guide the unwrapper): one region on both
sides, 9 cycles wrong; on 2 of 4 simulated Mw 6.8-7.6 ruptures at 10 m likewise (12 and 12 cycles).

So the pipeline cuts the interferogram's trusted area along the rupture before it draws its regions
(backend.mcf.unwrap_residual ``cut``): no region spans the rupture, and the cycle count across it is then a
*link*'s decision, made only when the fused estimate knows the step to a third of a cycle; otherwise the sides are
separate regions and the run says so. The rupture is

* the trace given to the run (``--trace``), or else
* the trace the line search finds in the fused displacement (backend/trace_search.py, on a grid of at most
  ``MAX_GRID_PX`` a side, its sizes scaled down on rasters smaller than ``FULL_SIZE_PX``: :func:`search_params`;
  its significance test against shuffled copies of the data keeps noise from cutting);

each moved onto the interferogram's decorrelation band (backend/trace_band.py) when the band follows it. The cut is
``CUT_PX`` either side of a trace the band moved (and of the given trace itself), ``WIDE_CUT_PX`` either side of a
found trace the band did not confirm (the line search places it within a few pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .trace_band import move_onto_band
from .trace_search import LineSearchParams, search_lines

CUT_PX = 3
WIDE_CUT_PX = 8
MAX_GRID_PX = 256
FULL_SIZE_PX = 768  # rasters at least this large (smaller side) search with the tools' line-search sizes
SMALL_MIN_RATIO = 1.35  # significance needed on smaller rasters, where the sizes are scaled down


def search_params(shape: tuple[int, int]) -> LineSearchParams:
    """The line search's sizes for a raster of ``shape``: the tools' (backend/trace_search.py) from
    ``FULL_SIZE_PX`` up; below, bands, border, pieces and surrogate blocks scaled with the raster's smaller side
    (floors 10 / 8 / 48 / 24 px) and the significance threshold raised to ``SMALL_MIN_RATIO``: scaled sizes find
    more ruptures on small rasters and more lines in noise too (2026-12-01 measurements: noise up to 1.32)."""
    f = min(shape) / FULL_SIZE_PX
    if f >= 1.0:
        return LineSearchParams(max_grid_px=MAX_GRID_PX)
    d = LineSearchParams()
    return LineSearchParams(max_grid_px=MAX_GRID_PX, band_px=max(10.0, d.band_px * f),
                            border_px=max(8, round(d.border_px * f)), chunk_px=max(48.0, d.chunk_px * f),
                            surrogate_block_px=max(24.0, d.surrogate_block_px * f), min_ratio=SMALL_MIN_RATIO)


@dataclass
class RuptureCut:
    """The traces (row, col polylines of the grid) that the cut follows, where they come from, and what supports
    them (``signif`` of the line search; ``on_band`` the share moved onto the decorrelation band)."""

    traces: list[np.ndarray] = field(default_factory=list)
    source: str = "none"  # "given" | "found" | "none"
    signif: list[float] = field(default_factory=list)

    def mask(self, band: np.ndarray | None, shape: tuple[int, int]) -> tuple[np.ndarray | None, list[float]]:
        """Boolean cut raster for one interferogram (``band``: its ``1 - pseudo-coherence``, or None) and, per trace,
        the share of it that band moved; None when there is no trace."""
        if not self.traces:
            return None, []
        near = np.zeros(shape, bool)
        wide = np.zeros(shape, bool)
        shares = []
        for rc in self.traces:
            moved, share = move_onto_band(rc, band) if band is not None else (rc, 0.0)
            shares.append(share)
            if share > 0:
                _draw(near, moved)
            if self.source == "given":
                _draw(near, rc)
            elif share == 0:
                _draw(wide, rc)
        cut = np.zeros(shape, bool)
        if near.any():
            cut |= ndimage.distance_transform_edt(~near) <= CUT_PX
        if wide.any():
            cut |= ndimage.distance_transform_edt(~wide) <= WIDE_CUT_PX
        return cut, shares


def _draw(mask: np.ndarray, rc: np.ndarray) -> None:
    """Set the pixels along the polyline ``rc`` (row, col) in ``mask``."""
    h, w = mask.shape
    for (r0, c0), (r1, c1) in zip(rc[:-1], rc[1:]):
        n = int(np.ceil(np.hypot(r1 - r0, c1 - c0))) * 2 + 2
        rr = np.round(np.linspace(r0, r1, n)).astype(int)
        cc = np.round(np.linspace(c0, c1, n)).astype(int)
        keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        mask[rr[keep], cc[keep]] = True


def find_rupture(disp: np.ndarray | None, sigma: np.ndarray | None, given: list[np.ndarray] | None) -> RuptureCut:
    """The rupture to cut along: the ``given`` traces ((k, 2) row/col polylines of the grid), else the traces the
    line search finds in the fused displacement ``disp`` (3, H, W; m) with ``sigma``; none without either."""
    if given:
        return RuptureCut(traces=[np.asarray(x, float) for x in given], source="given")
    if disp is None or not np.isfinite(disp).any():
        return RuptureCut()
    found = search_lines(disp, sigma, search_params(disp.shape[1:]))
    if not found:
        return RuptureCut()
    return RuptureCut(traces=[t.rc for t in found], source="found", signif=[round(t.signif, 2) for t in found])


def describe_cut(cut: RuptureCut, shares: list[float], n_px: int) -> str:
    """One sentence for the run's notes."""
    if cut.source == "given":
        what = "the rupture trace given to the run"
    else:
        what = ("the rupture trace the line search found in the fused displacement (significance "
                + ", ".join(f"{s:.2f}" for s in cut.signif) + ")")
    on = [f"{100 * s:.0f} %" for s in shares if s > 0]
    band = (f"; {', '.join(on)} of it lies on the phase's decorrelation band" if on else
            "; the phase shows no decorrelation band along it")
    wide = cut.source != "given" and any(s == 0 for s in shares)
    width = f"{CUT_PX}-{WIDE_CUT_PX}" if wide and on else str(WIDE_CUT_PX if wide else CUT_PX)
    return (f"not trusted within {width} px of {what}{band} ({n_px} px): no unwrap region spans the rupture, so "
            "the cycle count across it is linked only where the fused estimate knows the step to a third of a cycle")
