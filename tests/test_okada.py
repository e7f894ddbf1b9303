"""Okada (1985) against the paper's check list (Table 2) and physical properties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.okada import Patch, okada85, patch_displacement, patches_displacement
from models.slip_models import load_darfield, load_fsp, moment_magnitude

# Okada (1985), BSSA 75(4), Table 2: (x, y, d, dip, L, W) and (ux, uy, uz) per unit strike / dip / tensile slip.
# nu = 0.25 (mu/(lambda+mu) = 0.5). Case 4 is the case-3 fault with dip = -90.
TABLE2 = {
    "case2": ((2.0, 3.0, 4.0, 70.0, 3.0, 2.0), {
        "strike": (-8.689e-3, -4.298e-3, -2.747e-3),
        "dip": (-4.682e-3, -3.527e-2, -3.564e-2),
        "tensile": (-2.660e-4, +1.056e-2, +3.214e-3),
    }),
    "case3": ((0.0, 0.0, 4.0, 90.0, 3.0, 2.0), {
        "strike": (0.0, +5.253e-3, 0.0),
        "dip": (0.0, 0.0, 0.0),
        "tensile": (+1.223e-2, 0.0, -1.606e-2),
    }),
    "case4": ((0.0, 0.0, 4.0, -90.0, 3.0, 2.0), {
        "strike": (0.0, -1.303e-3, 0.0),
        "dip": (0.0, 0.0, 0.0),
        "tensile": (+3.507e-3, 0.0, -7.740e-3),
    }),
}
SLIP = {"strike": (1.0, 0.0, 0.0), "dip": (0.0, 1.0, 0.0), "tensile": (0.0, 0.0, 1.0)}


def _half_ulp_4sig(v: float) -> float:
    """Half a unit of the 4th significant digit of a printed table value (exact zero: round-off only)."""
    if v == 0.0:
        return 1e-12
    return 0.5 * 10 ** (math.floor(math.log10(abs(v))) - 3) + 1e-12


@pytest.mark.parametrize("case", sorted(TABLE2))
@pytest.mark.parametrize("mode", ["strike", "dip", "tensile"])
def test_okada_table2(case: str, mode: str) -> None:
    (x, y, d, dip, L, W), ref = TABLE2[case]
    u = okada85(x, y, d, dip, L, W, *SLIP[mode])
    for got, want in zip(u, ref[mode]):
        assert abs(float(got) - want) <= _half_ulp_4sig(want), (case, mode, float(got), want)


def test_broadcast_and_linearity() -> None:
    x = np.linspace(-5, 8, 7)[:, None]
    y = np.linspace(-6, 6, 5)[None, :]
    u1 = okada85(x, y, 4, 55, 3, 2, 1.0, 0.0, 0.0)
    u2 = okada85(x, y, 4, 55, 3, 2, 0.0, 1.0, 0.0)
    u12 = okada85(x, y, 4, 55, 3, 2, 2.0, -3.0, 0.0)
    assert u12[0].shape == (7, 5)
    for a, b, c in zip(u1, u2, u12):
        np.testing.assert_allclose(c, 2 * a - 3 * b, rtol=1e-12, atol=1e-15)


def test_vertical_strike_slip_symmetry() -> None:
    """Vertical strike-slip: u_x odd and u_y even across the fault plane; u_z odd across it."""
    x = np.linspace(-4, 7, 23)[:, None]
    y = np.linspace(0.3, 6, 9)[None, :]
    ux_p, uy_p, uz_p = okada85(x, y, 5, 90, 3, 4, 1.0)
    ux_m, uy_m, uz_m = okada85(x, -y, 5, 90, 3, 4, 1.0)
    np.testing.assert_allclose(ux_p, -ux_m, atol=1e-13)
    np.testing.assert_allclose(uy_p, uy_m, atol=1e-13)
    np.testing.assert_allclose(uz_p, -uz_m, atol=1e-13)


def test_surface_rupture_offset_equals_slip_and_finite_on_trace() -> None:
    """A surface-rupturing vertical strike-slip fault: the jump of u_x across the trace is the slip, and
    points exactly on the trace, its extension and its ends give finite values."""
    L, W = 10.0, 5.0
    eps = 1e-7
    ux_l, _, _ = okada85(5.0, eps, W, 90, L, W, 2.0)
    ux_r, _, _ = okada85(5.0, -eps, W, 90, L, W, 2.0)
    # U1 > 0 is left-lateral: the +y block (left of strike) moves towards -x relative to the -y block
    assert abs(float(ux_l - ux_r) + 2.0) < 1e-5
    # dipping, surface-rupturing thrust: points on the trace (q = 0), at its ends, and on its extension
    dip = 30.0
    ytrace = W * math.cos(math.radians(dip))
    d = W * math.sin(math.radians(dip))
    xs = np.array([-3.0, 0.0, 2.5, L, 13.0])
    for s in ((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)):
        u = okada85(xs, np.full_like(xs, ytrace), d, dip, L, W, *s)
        assert all(np.isfinite(c).all() for c in u)
    # dip-slip jump across the trace of a thrust: vertical offset = slip * sin(dip), horizontal = slip*cos(dip)
    up = okada85(5.0, ytrace + eps, d, dip, L, W, 0.0, 1.0)
    dn = okada85(5.0, ytrace - eps, d, dip, L, W, 0.0, 1.0)
    # hanging wall (-y side, below the fault's up-dip extension) goes up by slip*sin(dip)
    assert abs(float(dn[2] - up[2]) - math.sin(math.radians(dip))) < 1e-5
    assert abs(abs(float(up[1] - dn[1])) - math.cos(math.radians(dip))) < 1e-5


def test_far_field_decay() -> None:
    r = np.array([50.0, 100.0, 200.0])
    ux, uy, uz = okada85(r + 1.5, r, 6, 60, 3, 2, 0.0, 1.0)
    mag = np.sqrt(ux**2 + uy**2 + uz**2)
    assert (np.diff(mag) < 0).all()
    ratio = mag[1:] / mag[:-1]  # point-source limit: 1/r^2
    np.testing.assert_allclose(ratio, 0.25, rtol=0.05)


def test_patch_superposition_and_map_rotation() -> None:
    """One patch == its two halves along strike and down dip; map frame == Okada frame for strike 90."""
    p = Patch(east=1000.0, north=-500.0, top_depth=800.0, strike=33.0, dip=50.0, rake=120.0, slip=2.0,
              length=6000.0, width=3000.0)
    e, n = np.meshgrid(np.linspace(-9e3, 9e3, 13), np.linspace(-8e3, 8e3, 11))
    whole = patch_displacement(p, e, n)
    s = math.radians(p.strike)
    dip = math.radians(p.dip)
    halves = [Patch(**{**p.to_dict(), "east": p.east + k * 1500.0 * math.sin(s),
                       "north": p.north + k * 1500.0 * math.cos(s), "length": 3000.0}) for k in (-1, 1)]
    rows = [Patch(**{**p.to_dict(), "east": p.east + k * 1500.0 * math.cos(dip) * math.cos(s),
                     "north": p.north - k * 1500.0 * math.cos(dip) * math.sin(s),
                     "top_depth": p.top_depth + k * 1500.0 * math.sin(dip), "width": 1500.0}) for k in (0, 1)]
    for parts in (halves, rows):
        summed = patches_displacement(parts, e, n)
        for a, b in zip(whole, summed):
            np.testing.assert_allclose(a, b, atol=1e-10)
    # strike 90: Okada x = east, y = north; the lower edge starts at (-L/2, -W cos(dip)) from the top centre
    q = Patch(east=0.0, north=0.0, top_depth=1000.0, strike=90.0, dip=60.0, rake=0.0, slip=1.0,
              length=4000.0, width=2000.0)
    ue, un, uu = patch_displacement(q, e, n)
    ox, oy = -2000.0, -2000.0 * math.cos(math.radians(60))
    ux, uy, uz = okada85(e - ox, n - oy, 1000.0 + 2000.0 * math.sin(math.radians(60)), 60.0, 4000.0, 2000.0, 1.0)
    np.testing.assert_allclose(ue, ux, atol=1e-12)
    np.testing.assert_allclose(un, uy, atol=1e-12)
    np.testing.assert_allclose(uu, uz, atol=1e-12)


def test_rake_sign_conventions() -> None:
    """Right-lateral (rake 180) on an E-W fault (strike 90): seen from the south, the north side moves right
    (east). A thrust (rake 90) lifts the hanging wall."""
    rl = Patch(0.0, 0.0, 0.0, 90.0, 89.9, 180.0, 1.0, 20e3, 10e3)
    ue, _, _ = patch_displacement(rl, np.array([0.0, 0.0]), np.array([2e3, -2e3]))
    assert ue[0] > 0.1 and ue[1] < -0.1
    thrust = Patch(0.0, 0.0, 0.0, 0.0, 30.0, 90.0, 1.0, 20e3, 10e3)  # strike N, dips east (hanging wall east)
    _, _, uu = patch_displacement(thrust, np.array([3e3, -3e3]), np.array([0.0, 0.0]))
    assert uu[0] > 0.1 and uu[0] > uu[1]


def test_darfield_loader_and_forward_model() -> None:
    patches, epsg = load_darfield()
    assert epsg == 32759 and len(patches) == 887
    assert abs(moment_magnitude(patches) - 7.2) < 0.15
    assert len(load_fsp()) == 887
    # forward model on a coarse grid around the Greendale fault: metre-scale horizontal motion, right-lateral
    e = np.linspace(575e3, 615e3, 21)
    n = np.linspace(5160e3, 5185e3, 13)
    E, N = np.meshgrid(e, n)
    ue, un, uu = patches_displacement(patches, E, N)
    assert all(np.isfinite(c).all() for c in (ue, un, uu))
    h = np.hypot(ue, un)
    assert 1.0 < h.max() < 6.0
    assert np.abs(uu).max() < 2.0
