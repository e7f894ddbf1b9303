"""Okada (1985) surface displacement of rectangular dislocations in an elastic half-space.

Plain numpy (no torch). Two layers:

* :func:`okada85` — Okada's own frame and conventions (Okada 1985, BSSA 75(4), eqs. 25–30):
  ``x`` along strike, ``y`` perpendicular (to the left of the strike direction, i.e. the fault
  dips towards ``-y``), ``z`` up; origin at the start (``x = 0``) of the fault's **lower** edge,
  ``depth`` = depth of that lower edge (> 0); the fault spans ``0..length`` along strike and
  ``0..width`` up-dip. ``strike_slip`` (U1, left-lateral positive), ``dip_slip`` (U2, hanging wall
  up-dip = reverse positive), ``opening`` (U3). Angles in degrees; arrays broadcast; units of the
  displacement are those of the slips, lengths in any consistent unit.
* :class:`Patch`, :func:`patches_displacement` — many patches in map coordinates (east, north, metres;
  Aki–Richards strike/dip/rake; the patch is placed by the centre of its top edge).

Singular cases follow Okada (1992, sec. 4): ``atan(ξη/qR) = 0`` when ``q = 0``, ``I5 = 0`` when ``ξ = 0``,
``ln(R+η) → -ln(R-η)`` and ``1/(R+η) → 0`` when ``R + η = 0``; terms carrying ``q`` in the numerator are 0
when ``q = 0``. Points on a surface trace therefore get a finite value (the mean of both sides for the
arctangent term), never NaN/inf.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_EPS = 1e-12


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den with 0 where den == 0 (Okada 1992 singular-case rule for terms that vanish)."""
    bad = np.abs(den) < _EPS
    return np.where(bad, 0.0, num / np.where(bad, 1.0, den))


def _corner(xi, eta, q, sd, cd, mu_ratio, ss, ds, op):
    """Okada 1985 displacement terms at one Chinnery corner (before the -U/2π factors)."""
    R = np.sqrt(xi * xi + eta * eta + q * q)
    yt = eta * cd + q * sd  # ỹ
    dt = eta * sd - q * cd  # d̃
    Reta = R + eta
    # ln(R+eta), with R+eta -> 0 singularity handled
    sing_eta = Reta < _EPS
    ln_Reta = np.where(sing_eta, -np.log(np.maximum(R - eta, _EPS)), np.log(np.where(sing_eta, 1.0, Reta)))
    inv_Reta = np.where(sing_eta, 0.0, 1.0 / np.where(sing_eta, 1.0, Reta))
    Rxi = R + xi
    inv_R_Rxi = _safe_div(np.ones_like(R), R * Rxi)
    inv_R_Reta = np.where(sing_eta, 0.0, _safe_div(np.ones_like(R), R * np.where(sing_eta, 1.0, Reta)))
    qR = q * R
    theta = np.where(np.abs(q) < _EPS, 0.0, np.arctan(_safe_div(xi * eta, qR)))
    Rdt = R + dt
    if abs(cd) > 1e-6:
        X = np.sqrt(xi * xi + q * q)
        den5 = xi * (R + X) * cd
        num5 = eta * (X + q * cd) + X * (R + X) * sd
        I5 = np.where(np.abs(xi) < _EPS, 0.0, mu_ratio * 2.0 / cd * np.arctan(_safe_div(num5, den5)))
        I4 = mu_ratio / cd * (np.log(np.maximum(Rdt, _EPS)) - sd * ln_Reta)
        I3 = mu_ratio * (1.0 / cd * _safe_div(yt, Rdt) - ln_Reta) + sd / cd * I4
        I2 = mu_ratio * (-ln_Reta) - I3
        I1 = mu_ratio * (-1.0 / cd * _safe_div(xi, Rdt)) - sd / cd * I5
    else:
        Rdt2 = Rdt * Rdt
        I1 = -mu_ratio / 2.0 * _safe_div(xi * q, Rdt2)
        I3 = mu_ratio / 2.0 * (_safe_div(eta, Rdt) + _safe_div(yt * q, Rdt2) - ln_Reta)
        I2 = mu_ratio * (-ln_Reta) - I3
        I4 = -mu_ratio * _safe_div(q, Rdt)
        I5 = -mu_ratio * _safe_div(xi * sd, Rdt)

    ux = np.zeros_like(R)
    uy = np.zeros_like(R)
    uz = np.zeros_like(R)
    q_R_Reta = q * inv_R_Reta
    q_R_Rxi = q * inv_R_Rxi
    if ss is not None:
        f = -ss / (2.0 * np.pi)
        ux = ux + f * (xi * q_R_Reta + theta + I1 * sd)
        uy = uy + f * (yt * q_R_Reta + q * cd * inv_Reta + I2 * sd)
        uz = uz + f * (dt * q_R_Reta + q * sd * inv_Reta + I4 * sd)
    if ds is not None:
        f = -ds / (2.0 * np.pi)
        ux = ux + f * (_safe_div(q, R) - I3 * sd * cd)
        uy = uy + f * (yt * q_R_Rxi + cd * theta - I1 * sd * cd)
        uz = uz + f * (dt * q_R_Rxi + sd * theta - I5 * sd * cd)
    if op is not None:
        f = op / (2.0 * np.pi)
        ux = ux + f * (q * q_R_Reta - I3 * sd * sd)
        uy = uy + f * (-dt * q_R_Rxi - sd * (xi * q_R_Reta - theta) - I1 * sd * sd)
        uz = uz + f * (yt * q_R_Rxi + cd * (xi * q_R_Reta - theta) - I5 * sd * sd)
    return ux, uy, uz


def okada85(
    x: np.ndarray | float,
    y: np.ndarray | float,
    depth: float,
    dip: float,
    length: float,
    width: float,
    strike_slip: float = 0.0,
    dip_slip: float = 0.0,
    opening: float = 0.0,
    nu: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface displacement (ux, uy, uz) in Okada's frame (see module docstring). Broadcasts x, y."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    d = np.deg2rad(float(dip))
    sd, cd = np.sin(d), np.cos(d)
    if abs(cd) < 1e-6:  # exact vertical (or overturned vertical): remove round-off of cos(90°)
        cd = 0.0
        sd = float(np.sign(sd))
    mu_ratio = 1.0 - 2.0 * nu  # μ/(λ+μ)
    p = y * cd + depth * sd
    q = y * sd - depth * cd
    ss = strike_slip if strike_slip != 0 else None
    ds = dip_slip if dip_slip != 0 else None
    op = opening if opening != 0 else None
    ux = np.zeros(x.shape)
    uy = np.zeros(x.shape)
    uz = np.zeros(x.shape)
    if ss is None and ds is None and op is None:
        return ux, uy, uz
    for xi, eta, sign in ((x, p, 1.0), (x, p - width, -1.0), (x - length, p, -1.0), (x - length, p - width, 1.0)):
        cx, cy, cz = _corner(xi, eta, q, sd, cd, mu_ratio, ss, ds, op)
        ux += sign * cx
        uy += sign * cy
        uz += sign * cz
    return ux, uy, uz


@dataclass
class Patch:
    """A rectangular dislocation in map coordinates (metres, degrees, Aki–Richards conventions).

    ``east``, ``north``: map position of the centre of the top edge; ``top_depth`` ≥ 0: depth of the top
    edge; ``strike`` clockwise from north with the fault dipping to the right; ``rake`` 0 = left-lateral,
    90 = reverse, ±180 = right-lateral, -90 = normal; ``slip`` in metres; ``opening`` (tensile) in metres.
    """

    east: float
    north: float
    top_depth: float
    strike: float
    dip: float
    rake: float
    slip: float
    length: float
    width: float
    opening: float = 0.0

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}

    def top_edge(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((e0, n0), (e1, n1)) map coordinates of the two ends of the top edge."""
        s = np.deg2rad(self.strike)
        se, sn = np.sin(s) * self.length / 2, np.cos(s) * self.length / 2
        return (self.east - se, self.north - sn), (self.east + se, self.north + sn)


def patch_displacement(
    patch: Patch, east: np.ndarray, north: np.ndarray, nu: float = 0.25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uE, uN, uU) in metres at map points (east, north) from one patch."""
    phi = np.deg2rad(patch.strike)
    dip = np.deg2rad(patch.dip)
    sphi, cphi = np.sin(phi), np.cos(phi)
    # origin: start of the lower edge
    e0 = patch.east - patch.length / 2 * sphi + patch.width * np.cos(dip) * cphi
    n0 = patch.north - patch.length / 2 * cphi - patch.width * np.cos(dip) * sphi
    depth = patch.top_depth + patch.width * np.sin(dip)
    de = np.asarray(east, dtype=np.float64) - e0
    dn = np.asarray(north, dtype=np.float64) - n0
    x = de * sphi + dn * cphi
    y = -de * cphi + dn * sphi
    rake = np.deg2rad(patch.rake)
    ux, uy, uz = okada85(
        x, y, depth, patch.dip, patch.length, patch.width,
        strike_slip=patch.slip * np.cos(rake), dip_slip=patch.slip * np.sin(rake), opening=patch.opening, nu=nu,
    )
    return ux * sphi - uy * cphi, ux * cphi + uy * sphi, uz


def patches_displacement(
    patches: list[Patch], east: np.ndarray, north: np.ndarray, nu: float = 0.25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum of :func:`patch_displacement` over patches; (uE, uN, uU) with the broadcast shape of east/north."""
    east, north = np.broadcast_arrays(np.asarray(east, dtype=np.float64), np.asarray(north, dtype=np.float64))
    ue = np.zeros(east.shape)
    un = np.zeros(east.shape)
    uu = np.zeros(east.shape)
    for p in patches:
        a, b, c = patch_displacement(p, east, north, nu=nu)
        ue += a
        un += b
        uu += c
    return ue, un, uu
