"""Where the unwrapper must not connect: a band along the surface rupture.

Across a surface rupture the line-of-sight displacement jumps by many fringes within a pixel or two. Where the
interferogram stays coherent up to the rupture, the wrapped phase shows the jump only as a fraction of a cycle, and
a minimum-cost-flow unwrapper integrates straight across it: the two sides end up in one region whose relative cycle
count is wrong by the jump's whole cycles, and nothing says so. Measured (docs/insar_fusion.md): the simulated Mw 6.9
rupture of issue #14 (768 x 768 px at 10 m; the fused estimate's sigma, ~1 m, too large to guide the unwrapper) one
region on both sides, 9 cycles wrong; 8 of 12 simulated Mw 6.6-7.2 ruptures at 256 x 256 px, 10 m, likewise.

So the pipeline cuts each interferogram's trusted area along the rupture before the regions are drawn
(backend.mcf.unwrap_residual ``cut``): no region spans the rupture, and the cycle count across it is then a
*link*'s decision, made only when the fused estimate knows the step to a third of a cycle; otherwise the sides are
separate regions and the run says so. The rupture is

* the trace given to the run (``--trace``), and its position on the interferogram's decorrelation band
  (backend/trace_band.py, :func:`move_onto_band`) when the band follows it; and
* every long straight ridge of the decorrelation band itself (:func:`backend.trace_band.search_band`, tested
  against block-shuffled copies of the band: ruptures in 12 of 12 of the scenes above, no line in 6 scenes without
  motion nor on the real Thessaly 2021 interferogram).

The cut is ``CUT_PX`` either side of each of these lines, ``WIDE_CUT_PX`` of a ridge line the band's stations do not
confirm piece by piece (its straight line may miss a bend).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .trace_band import move_onto_band, search_band
from .trace_search import line_band

CUT_PX = 3
WIDE_CUT_PX = 8


@dataclass
class RuptureCut:
    """One interferogram's cut: ``mask`` (H, W) bool, the given traces' shares on the band, the ridges found
    (significance, share moved onto the band)."""

    mask: np.ndarray
    given_on_band: list[float] = field(default_factory=list)
    found: list[tuple[float, float]] = field(default_factory=list)

    def summary(self) -> dict:
        return {"px": int(self.mask.sum()), "given_on_band": [round(s, 2) for s in self.given_on_band],
                "found_signif": [round(s, 2) for s, _ in self.found],
                "found_on_band": [round(b, 2) for _, b in self.found]}

    def describe(self) -> str:
        """One sentence for the run's notes."""
        what = []
        if self.given_on_band:
            on = [f"{100 * s:.0f} %" for s in self.given_on_band]
            what.append(f"the rupture trace given to the run ({', '.join(on)} of it on the phase's decorrelation "
                        "band)")
        if self.found:
            what.append(f"{len(self.found)} rupture(s) found as long decorrelated lines of the phase (significance "
                        + ", ".join(f"{s:.2f}" for s, _ in self.found) + " against shuffled copies)")
        return (f"not trusted within {CUT_PX} px of {' and '.join(what)} ({int(self.mask.sum())} px): no unwrap "
                "region spans a rupture, so the cycle count across it is linked only where the fused estimate knows "
                "the step to a third of a cycle")


def rupture_cut(band: np.ndarray, given: list[np.ndarray] | None = None) -> RuptureCut | None:
    """The cut of one interferogram (``band``: its ``1 - pseudo-coherence``, NaN = no phase) along the ``given``
    traces ((k, 2) row/col polylines of the grid) and the ruptures its band shows; None when there is neither."""
    shape = band.shape
    mask = np.zeros(shape, bool)
    shares = []
    for rc in given or []:
        rc = np.asarray(rc, float)
        moved, share = move_onto_band(rc, band)
        shares.append(share)
        mask |= line_band(rc, shape, CUT_PX)
        if share > 0:
            mask |= line_band(moved, shape, CUT_PX)
    found = search_band(band)
    for rc, _, share in found:
        mask |= line_band(rc, shape, CUT_PX if share > 0 else WIDE_CUT_PX)
    if not mask.any():
        return None
    return RuptureCut(mask=mask, given_on_band=shares, found=[(s, b) for _, s, b in found])
