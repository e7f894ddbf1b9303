"""Per-pixel 3-D displacement (east, north, up) from horizontal estimates and any number of unwrapped LOS.

``invert_enu(shape, horizontal=Horizontal(...), los=[LosObservation(...), ...]) -> Inversion``

Model, per pixel: observations ``y = A u + e`` with ``u = (E, N, U)`` (m):

* optical / SAR offset-tracking horizontal estimate: ``E_h = E``, ``N_h = N`` with 1-sigma ``sigma_e``, ``sigma_n``
  (metres; from the network's heteroscedastic head or the matcher; independent), optionally a vertical estimate
  ``U_h`` with ``sigma_up`` (the network's, usually much poorer). With ``up_coupling`` (c_e, c_n) the estimate
  reads ``E_h = E + c_e U``, ``N_h = N + c_n U``: SAR amplitude offsets in a geocoded image see the apparent
  shift ``d_h - U cot(theta) g`` (g the ground-range direction), so a horizontal that takes a share w of its
  weight from them has ``c = -w cot(theta) g`` (``sar_up_coupling``); with one LOS of that geometry the system
  stays solvable for w < 1 (its determinant is ``l_u (1 - w)``: SAR range offsets and the LOS then measure the
  same combination);
* each unwrapped interferogram ``k``: ``d_k = l_k . u + c_k`` where ``l_k`` is the ground-to-satellite unit vector
  (constants or (3, H, W) rasters), ``d_k`` the LOS displacement (m, towards the satellite; see
  backend/conventions.py), ``c_k`` the interferogram's unknown constant (its reference), and variance
  ``sigma_k^2 = (lambda / 4 pi)^2 sigma_phi^2 + sigma_atm^2`` with the Cramer-Rao phase variance
  ``sigma_phi^2 = (1 - g^2) / (2 L g^2)`` (coherence g, L looks; g clipped to [0.05, 0.999]) plus an atmosphere
  term ``sigma_atm`` (m, default 1 cm: tropospheric turbulence at km scales for C and L band alike), floored at
  1 mm;
* a weak zero-mean prior ``prior_sigma_m`` (default 10 m) on every component, so that the 3 x 3 normal matrix is
  always invertible; a component the data do not constrain keeps a prior-sized sigma;
* at pixels with LOS but *no* horizontal estimate, the north component gets the prior ``0 +- north_prior_sigma_m``
  (default None = off): ascending and descending Sentinel-1 LOS have nearly the same north component (-0.13 for
  both), so N and U are confounded without it. With it, U is "up assuming |N| ~ north_prior_sigma_m" and its sigma
  includes that assumption.

Solution: weighted least squares per pixel (3 x 3 normal equations, equilibrated batched inverse), vectorised
over rows of ``block_rows`` (memory ~ 60 floats per pixel of the block). Output ``enu`` (3, H, W), ``sigma``
(3, H, W) and the covariance ``cov`` (6, H, W: EE, NN, UU, EN, EU, NU). A component whose sigma exceeds
``max_sigma_m`` (default 0.5 m), or that is set by a prior (data reduce its variance by less than a factor 4),
is **NaN** in ``enu``; ``reasons`` explains per component (dominant reason over the raster).

``calibrate_los`` (default): where the data are redundant (e.g. optical + several LOS), each LOS's residuals
``d_k - l_k . u`` against their expected variance give an a-posteriori variance factor (median of the ratio /
0.455, the median of chi2(1)); factors above 1 inflate that interferogram's variance (atmosphere or noise larger
than assumed) and the solution is recomputed. Factors are reported (``summary["los_variance_factor"]``).

LOS offsets ``c_k`` (the InSAR reference, one per unwrapping *region* when ``regions`` from backend.mcf is given,
since regions have unknown relative cycle counts; region 0 is not used): ``los_offset="far_field"`` (default)
estimates each as the median of ``d_k - l_k . u_h`` over the region's *far-field* pixels, ``u_h`` = the
horizontal estimate (U from ``up`` if given, else 0): pixels in ``far_field`` (a boolean raster), else those whose
horizontal estimate *averaged over 9 x 9 pixels* is insignificant (``|mean u_h| < 2 sigma / 9`` and below 5 cm).
The average matters: choosing pixels on their own noisy ``u_h`` and then subtracting that same ``u_h`` keeps the
true motion of moving pixels whose noise happens to cancel it, a bias of the order of the estimate's sigma times the
LOS's east component, opposite for ascending and descending, that the offset's sigma does not contain (on the 20
simulated ruptures of bench_mcf it left east with only 0.56 of its errors within 1 sigma, 0.16-0.48 on some
scenes, median error 1-2 sigma). A region with fewer than 20 such pixels
uses all its pixels (then the offset leans on the horizontal/vertical estimate's accuracy, averaged over the
region). Its uncertainty (1.25 x 1.4826 MAD / sqrt(n)) is added to ``sigma_k`` (common to the region's pixels,
so the per-pixel sigma stays honest). Without a horizontal estimate and without ``far_field`` the offsets are 0
(LOS referenced as given) and the summary says so. ``los_offset="none"`` keeps the LOS as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .conventions import phase_to_los

MAX_SIGMA_M = 0.5
PRIOR_SIGMA_M = 10.0
ATMOSPHERE_SIGMA_M = 0.01
LOS_SIGMA_FLOOR_M = 1e-3  # no LOS is trusted below 1 mm (and the 3x3 system stays well conditioned)
PRIOR_DOMINATED = 0.5  # posterior sigma / prior sigma above which a component is set by the prior
FAR_WINDOW = 9  # px: far-field pixels are chosen on the horizontal estimate averaged over 9 x 9 (noise / 9)


def cramer_rao_phase_sigma(coherence: np.ndarray, nlooks: float) -> np.ndarray:
    """1-sigma phase noise (rad) of an L-look interferogram: sqrt(1 - g^2) / (g sqrt(2 L))."""
    g = np.clip(np.asarray(coherence, np.float64), 0.05, 0.999)
    return np.sqrt(1.0 - g * g) / (g * np.sqrt(2.0 * max(float(nlooks), 1.0)))


@dataclass
class LosObservation:
    """One unwrapped interferogram. Give ``los_m`` (m, towards the satellite) or ``unwrapped_phase`` (rad) with
    ``wavelength_m`` and ``phase_sign``. ``los_unit_vector``: (3,) or (3, H, W), ground to satellite."""

    los_unit_vector: np.ndarray
    los_m: np.ndarray | None = None
    unwrapped_phase: np.ndarray | None = None
    wavelength_m: float = 0.05546576
    phase_sign: int = 1
    coherence: np.ndarray | float | None = None
    nlooks: float = 5.0
    sigma_m: np.ndarray | float | None = None  # overrides the coherence-derived sigma (atmosphere still added)
    regions: np.ndarray | None = None  # backend.mcf regions: one offset per region id > 0; id 0 not used
    atmosphere_sigma_m: float = ATMOSPHERE_SIGMA_M
    name: str = ""

    def displacement(self) -> np.ndarray:
        if self.los_m is not None:
            return np.asarray(self.los_m, np.float64)
        if self.unwrapped_phase is None:
            raise ValueError("LosObservation needs los_m or unwrapped_phase")
        return phase_to_los(np.asarray(self.unwrapped_phase, np.float64), self.wavelength_m, self.phase_sign)

    def sigma(self, shape: tuple[int, int]) -> np.ndarray:
        if self.sigma_m is not None:
            s = np.broadcast_to(np.asarray(self.sigma_m, np.float64), shape)
        else:
            coh = 0.5 if self.coherence is None else self.coherence
            s = cramer_rao_phase_sigma(np.broadcast_to(np.asarray(coh, np.float64), shape), self.nlooks)
            s = s * self.wavelength_m / (4.0 * np.pi)
        return np.maximum(np.sqrt(s * s + self.atmosphere_sigma_m**2), LOS_SIGMA_FLOOR_M)


@dataclass
class Horizontal:
    """Horizontal displacement estimate (m) with 1-sigma (m); NaN = none at that pixel."""

    east: np.ndarray
    north: np.ndarray
    sigma_east: np.ndarray | float
    sigma_north: np.ndarray | float
    up: np.ndarray | None = None  # optional vertical estimate (e.g. the network's), with its sigma
    sigma_up: np.ndarray | float | None = None
    # (2, H, W) or None: the estimate reads (E + c_e U, N + c_n U), not (E, N). A geocoded SAR amplitude image moves by
    # the apparent shift d_h - U cot(theta) g (g: ground range, away from the satellite), so a horizontal that takes
    # a share w of its weight from SAR offsets has c = w l_u l_h / |l_h|^2 (sar_up_coupling); NaN/None: 0
    up_coupling: np.ndarray | None = None


def sar_up_coupling(sar_share: np.ndarray, los_unit_vector: np.ndarray) -> np.ndarray:
    """(2, H, W) ``Horizontal.up_coupling`` of a horizontal estimate that takes ``sar_share`` (0..1, (H, W)) of its
    weight from SAR amplitude offsets in the geometry ``los_unit_vector`` ((3,) or (3, H, W), ground to satellite):
    w l_u (l_e, l_n) / (l_e^2 + l_n^2), i.e. -w cot(theta) g. 0 where the share or the geometry is missing, and for
    a LOS closer than ~6 degrees to vertical (no ground-range direction to speak of)."""
    w = np.nan_to_num(np.clip(np.asarray(sar_share, np.float64), 0.0, 1.0))
    lv = np.asarray(los_unit_vector, np.float64)
    if lv.ndim == 1:
        lv = lv[:, None, None]
    lh2 = lv[0] ** 2 + lv[1] ** 2
    f = np.where(np.isfinite(lh2) & (lh2 > 1e-2), w * lv[2] / np.where(lh2 > 1e-2, lh2, 1.0), 0.0)
    return np.nan_to_num(np.stack([f * lv[0], f * lv[1]])).astype(np.float32)


@dataclass
class Inversion:
    enu: np.ndarray  # (3, H, W) float32, NaN where unconstrained
    sigma: np.ndarray  # (3, H, W) float32 (always filled where any data)
    cov: np.ndarray  # (6, H, W) float32: EE, NN, UU, EN, EU, NU
    constrained: np.ndarray  # (3, H, W) bool
    los_offsets_m: list[np.ndarray]  # per-pixel offset (m) removed from each LOS
    reasons: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


def _sym3_inverse(M: np.ndarray) -> np.ndarray:
    """Inverse of symmetric 3 x 3 matrices stacked as (3, 3, ...): adjugate / determinant."""
    a, b, c, d, e, f = M[0, 0], M[0, 1], M[0, 2], M[1, 1], M[1, 2], M[2, 2]
    A, B, C = d * f - e * e, c * e - b * f, b * e - c * d
    D, E, F = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * A + b * B + c * C
    return np.stack([np.stack([A, B, C]), np.stack([B, D, E]), np.stack([C, E, F])]) / det


def _vec(v: np.ndarray, sl: slice, shape: tuple[int, int]) -> np.ndarray:
    v = np.asarray(v, np.float64)
    if v.ndim == 1:
        return np.broadcast_to(v[:, None, None], (3, *shape))
    return v[:, sl]


def _nan_mean_filter(a: np.ndarray, size: int) -> np.ndarray:
    """Mean of the finite values over ``size`` x ``size`` (NaN where none)."""
    ok = np.isfinite(a)
    num = ndimage.uniform_filter(np.where(ok, a, 0.0), size)
    den = ndimage.uniform_filter(ok.astype(np.float64), size)
    return np.where(den > 1e-6, num / np.where(den > 1e-6, den, 1.0), np.nan)


def _offsets(d: np.ndarray, l: np.ndarray, horiz: Horizontal | None, far: np.ndarray | None,
             regions: np.ndarray | None, min_px: int = 20) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Per-pixel offset and its 1-sigma (m) of one LOS: one value per region (whole raster without regions).

    Offset = median of ``d - l . u_ref`` (``u_ref`` = the horizontal estimate, U from ``horiz.up`` or 0) over the
    region's far-field pixels (``far``, else pixels whose horizontal estimate is insignificant), or over all its
    pixels when it has fewer than ``min_px`` far-field ones. Without ``horiz`` and ``far``: 0.
    """
    shape = d.shape
    off = np.zeros(shape)
    osig = np.zeros(shape)
    used: dict[int, int] = {}
    if far is None and horiz is None:
        return off, osig, used
    if horiz is not None:
        e = np.asarray(horiz.east, np.float64)
        n = np.asarray(horiz.north, np.float64)
        se = np.broadcast_to(np.asarray(horiz.sigma_east, np.float64), shape)
        sn = np.broadcast_to(np.asarray(horiz.sigma_north, np.float64), shape)
        up = np.zeros(shape) if horiz.up is None else np.nan_to_num(np.asarray(horiz.up, np.float64))
        pred = l[0] * e + l[1] * n + l[2] * up
        if far is None:
            # select on the estimate averaged over FAR_WINDOW x FAR_WINDOW, not on the pixel's own value: selecting
            # pixels whose *noisy* estimate is small and then subtracting that same estimate leaves the true
            # horizontal motion of the selected pixels in the offset (noise ~ -truth there), a bias of the order of
            # the estimate's sigma, of opposite sign for ascending and descending (-> east)
            mag = np.hypot(_nan_mean_filter(e, FAR_WINDOW), _nan_mean_filter(n, FAR_WINDOW))
            far = (mag < 2 * np.hypot(se, sn) / FAR_WINDOW) & (mag < 0.05)
    else:
        pred = np.zeros(shape)
    r = d - pred
    reg = np.ones(shape, np.int32) if regions is None else np.asarray(regions)
    fin = np.isfinite(r) & (reg > 0)
    for rid in np.unique(reg[fin]):
        inr = fin & (reg == rid)
        m = inr & far
        if m.sum() < min_px:
            m = inr
        if m.sum() < min_px:
            continue
        v = r[m]
        med = float(np.median(v))
        off[inr] = med
        osig[inr] = 1.25 * 1.4826 * float(np.median(np.abs(v - med))) / np.sqrt(v.size)
        used[int(rid)] = int(v.size)
    return off, osig, used


def invert_enu(  # noqa: C901 (one vectorised solver; split would copy its closures)
    shape: tuple[int, int],
    horizontal: Horizontal | None = None,
    los: list[LosObservation] | None = None,
    *,
    max_sigma_m: float = MAX_SIGMA_M,
    prior_sigma_m: float = PRIOR_SIGMA_M,
    north_prior_sigma_m: float | None = None,
    los_offset: str = "far_field",
    far_field: np.ndarray | None = None,
    calibrate_los: bool = True,
    block_rows: int = 512,
) -> Inversion:
    """Weighted least squares of (E, N, U) per pixel; see the module docstring."""
    H, W = shape
    los = list(los or [])
    # LOS data, offsets
    offsets, off_sig, off_n = [], [], []
    for ob in los:
        d = ob.displacement()
        if los_offset == "far_field":
            l_full = np.asarray(ob.los_unit_vector, np.float64)
            l_full = np.broadcast_to(l_full[:, None, None], (3, H, W)) if l_full.ndim == 1 else l_full
            c, cs, nn = _offsets(d, l_full, horizontal, far_field, ob.regions)
        else:
            c, cs, nn = np.zeros((H, W)), np.zeros((H, W)), {}
        offsets.append(c)
        off_sig.append(cs)
        off_n.append(nn)

    enu = np.full((3, H, W), np.nan, np.float32)
    sig = np.full((3, H, W), np.nan, np.float32)
    cov = np.full((6, H, W), np.nan, np.float32)
    cons = np.zeros((3, H, W), bool)
    why_counts = [dict() for _ in range(3)]
    prior_var = prior_sigma_m**2
    def solve(sl: slice, scale: list[float], want_ratios: bool):
        """WLS on rows ``sl`` with each LOS variance x scale[k]: u, cov (6), n_data, prior weights, LOS ratios."""
        bs = (sl.stop - sl.start, W)
        N = np.zeros((3, 3, *bs))
        b = np.zeros((3, *bs))
        n_data = np.zeros(bs, np.int32)
        has_h = np.zeros(bs, bool)
        if horizontal is not None:
            comps = [(0, horizontal.east, horizontal.sigma_east), (1, horizontal.north, horizontal.sigma_north)]
            if horizontal.up is not None and horizontal.sigma_up is not None:
                comps.append((2, horizontal.up, horizontal.sigma_up))
            coup = horizontal.up_coupling
            for i, val, sg in comps:
                v = np.asarray(val, np.float64)[sl]
                w = 1.0 / np.broadcast_to(np.asarray(sg, np.float64), (H, W))[sl] ** 2
                ok = np.isfinite(v) & np.isfinite(w)
                w = np.where(ok, w, 0.0)
                if i < 2 and coup is not None:  # this row reads E + c_e U (N + c_n U): a = (1, 0, c_e)
                    a = np.zeros((3, *bs))
                    a[i] = 1.0
                    a[2] = np.nan_to_num(np.asarray(coup[i], np.float64)[sl])
                    N += a[:, None] * a[None, :] * w
                    b += a * (w * np.where(ok, v, 0.0))
                else:
                    N[i, i] += w
                    b[i] += w * np.where(ok, v, 0.0)
                n_data += ok
                if i == 1:
                    has_h |= ok
        los_terms = []
        for k, ob in enumerate(los):
            d = ob.displacement()[sl] - offsets[k][sl]
            l = _vec(ob.los_unit_vector, sl, bs)
            s2 = (ob.sigma((H, W))[sl] ** 2 + off_sig[k][sl] ** 2) * scale[k]
            ok = np.isfinite(d) & np.isfinite(s2) & np.all(np.isfinite(l), axis=0)
            if ob.regions is not None:
                ok &= np.asarray(ob.regions)[sl] > 0
            w = np.where(ok, 1.0 / s2, 0.0)
            dz = np.where(ok, d, 0.0)
            lz = np.where(ok, l, 0.0)
            N += lz[:, None] * lz[None, :] * w
            b += lz * (w * dz)
            n_data += ok
            if want_ratios:
                los_terms.append((ok, dz, lz, s2))
        pri = np.full((3, *bs), 1.0 / prior_var)
        if north_prior_sigma_m is not None:
            pri[1] = np.where(~has_h & (n_data > 0), 1.0 / north_prior_sigma_m**2, pri[1])
        for i in range(3):
            N[i, i] += pri[i]
        # inverse of the symmetric 3x3, equilibrated (a 10 m prior next to mm data spans 1e8 in variance)
        dsq = 1.0 / np.sqrt(np.stack([N[0, 0], N[1, 1], N[2, 2]]))
        Ni = _sym3_inverse(N * dsq[:, None] * dsq[None, :]) * dsq[:, None] * dsq[None, :]
        u = np.einsum("ij...,j...->i...", Ni, b)
        ratios = []
        for ok, dz, lz, s2 in los_terms:
            # residual of this LOS and its expected variance (s2 - l C l^T) where the others make it redundant
            res = dz - np.einsum("i...,i...->...", lz, u)
            ev = s2 - np.einsum("i...,ij...,j...->...", lz, Ni, lz)
            use = ok & (ev > 0.2 * s2)
            ratios.append((res[use] ** 2 / ev[use])[::7])
        inv = np.stack([Ni[0, 0], Ni[1, 1], Ni[2, 2], Ni[0, 1], Ni[0, 2], Ni[1, 2]])  # EE, NN, UU, EN, EU, NU
        return u, inv, n_data, pri, ratios

    # a-posteriori variance factor per LOS (median of chi2_1 = 0.4549): the atmosphere/noise of an interferogram
    # is often larger than assumed; only inflated, never shrunk
    scale = [1.0] * len(los)
    if calibrate_los and los:
        acc: list[list[np.ndarray]] = [[] for _ in los]
        for r0 in range(0, H, block_rows):
            for k, rr in enumerate(solve(slice(r0, min(H, r0 + block_rows)), scale, True)[4]):
                acc[k].append(rr)
        for k in range(len(los)):
            v = np.concatenate(acc[k]) if acc[k] else np.zeros(0)
            if v.size >= 100:
                scale[k] = float(max(1.0, np.median(v) / 0.4549))
    for r0 in range(0, H, block_rows):
        sl = slice(r0, min(H, r0 + block_rows))
        u, inv, n_data, pri, _ = solve(sl, scale, False)
        s = np.sqrt(np.maximum(inv[:3], 0.0))
        s[~(inv[:3] > 0)] = np.inf  # numerically singular: unconstrained
        anyd = n_data > 0
        # set by a prior: posterior variance > PRIOR_DOMINATED^2 x the prior's variance
        prior_dom = s > PRIOR_DOMINATED / np.sqrt(pri)
        too_big = s > max_sigma_m
        ok3 = anyd[None] & ~prior_dom & ~too_big
        for i in range(3):
            for mask, why in ((~anyd, "no data"),
                              (anyd & prior_dom[i], "not constrained by the data (set by the prior)"),
                              (anyd & ~prior_dom[i] & too_big[i], f"sigma above the {max_sigma_m:g} m limit")):
                cnt = int(mask.sum())
                if cnt:
                    why_counts[i][why] = why_counts[i].get(why, 0) + cnt
        enu[:, sl] = np.where(ok3, u, np.nan)
        sig[:, sl] = np.where(anyd[None], s, np.nan)
        cov[:, sl] = np.where(anyd[None], inv, np.nan)
        cons[:, sl] = ok3
        del inv, u
    names = ("east", "north", "up")
    reasons = []
    for i in range(3):
        if why_counts[i]:
            top = max(why_counts[i], key=why_counts[i].get)
            share = why_counts[i][top] / (H * W)
            reasons.append(f"{names[i]}: NaN on {share * 100:.1f} % of pixels ({top})")
        else:
            reasons.append(f"{names[i]}: constrained everywhere")
    summary = {
        "n_los": len(los), "horizontal": horizontal is not None, "max_sigma_m": max_sigma_m,
        "prior_sigma_m": prior_sigma_m, "north_prior_sigma_m": north_prior_sigma_m,
        "constrained_share": {names[i]: float(cons[i].mean()) for i in range(3)},
        "median_sigma_m": {names[i]: (float(np.nanmedian(sig[i][cons[i]])) if cons[i].any() else None)
                           for i in range(3)},
        "los_offset_method": los_offset if (horizontal is not None or far_field is not None) else "none (as given)",
        "los_offsets_m": [sorted({round(float(v), 6) for v in np.unique(o)})[:20] for o in offsets],
        "los_offset_sigma_m": [float(np.max(o)) for o in off_sig],
        "los_offset_px_per_region": off_n,
        "los_variance_factor": scale,
        "reasons": reasons,
    }
    return Inversion(enu=enu, sigma=sig, cov=cov, constrained=cons, los_offsets_m=offsets, reasons=reasons,
                     summary=summary)
