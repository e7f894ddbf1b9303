"""QuakeFusion model 0.3 ("warp fusion"): unbiased, sharp offsets by iterative warping + one-sided windows.

    features (B, C, H, W) -> displacement_enu_m (B, 3, H, W), sigma_enu_m (B, 3, H, W), rupture_probability (B, 1, H, W)

Why (issue #11): model 0.2.0 mixed fixed-window Lucas-Kanade measurements *and "zero"*: every uncertain pixel
was pulled towards no motion, and its 21-41 px windows straddled the fault, so the step across a rupture came out
40-60 % too small and smeared over a kilometre. This design has no path towards zero and no window that must
straddle the fault:

1. **Per image pair** (optical; SAR in dB), fixed layers (``models/frontend.py``): masked high-pass +
   contrast normalisation (normalised convolution: no artefacts at nodata edges), then a coarse-to-fine
   estimate (1/4 and 1/2 resolution) and ``iters`` full-resolution iterations. Each iteration warps *both*
   images half-way (pre by -d/2, post by +d/2: both are interpolated alike, so bilinear interpolation does not
   lock the estimate to whole pixels) and solves Lucas-Kanade for the increment in six windows: the full
   (2r+1)^2 window, its left / right / upper / lower halves and a small (2r_s+1)^2 window. Near a rupture one of
   the half windows lies on the pixel's own side: its fit residual is low, the straddling windows' is high.
   Intermediate iterations pick the increment by a soft minimum of the residual (parameter-free).
2. **Learned fusion** (U-Net at 1/4 resolution + a small full-resolution head): per-pixel softmax weights over
   the 12 candidates (6 windows x optical / SAR), added to the residual score at full resolution, so the choice
   can switch sides within one pixel. The horizontal estimate is a convex mix of candidates that each satisfy
   the image data: **no zero option and no learned shrinkage**; uncertainty goes into sigma. The network also
   predicts the vertical component (px), the Laplace scale of each component and the rupture probability.
3. Pixels -> metres in the graph (``pixel_size_m`` channel). Unavailable pairs get weight 0 (their candidates
   are masked out); with neither optical nor SAR the horizontal is 0 with a large sigma (not observable).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models import frontend as fe
from models.network import LOGB_MAX, LOGB_MIN, SQRT2, FusionBase, conv, enu_px_from_d

N_WINDOWS = 11  # (full, left, right, up, down) at r_full, small, (full, left, right, up, down) at r_large
QUARTER = 0.25
GAIN = 4.0  # residual score per unit of log residual; 2 left a 6-px transition at a 4-px step, 4 about 4 px


def _pool(x: torch.Tensor, s: int) -> torch.Tensor:
    return F.avg_pool2d(x, s) if s > 1 else x


def _up(x: torch.Tensor, s: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=float(s), mode="bilinear", align_corners=False) if s > 1 else x


def masked_highpass(x: torch.Tensor, m: torch.Tensor, k_fine: torch.Tensor, k_coarse: torch.Tensor) -> torch.Tensor:
    """Band-pass by normalised convolution (only valid pixels enter), / local RMS, x mask.

    Fine Gaussian at full resolution; the coarse Gaussian (sigma 3 px) and the RMS window (~32 px) are computed at
    1/4 resolution and upsampled (low frequencies: 10x cheaper than full-resolution filters, same result to ~1 %)."""
    eps = 1e-3
    fine = fe.separable(x * m, k_fine) / (fe.separable(m, k_fine) + eps)
    xm4, m4 = F.avg_pool2d(x * m, 4), F.avg_pool2d(m, 4)
    coarse = _up(fe.separable(xm4, k_coarse) / (fe.separable(m4, k_coarse) + eps), 4)
    d = (fine - coarse) * m
    e4 = fe.box(F.avg_pool2d(d * d, 4), 7) / (fe.box(m4, 7) + eps)
    return d * torch.rsqrt(_up(e4, 4) + 1e-4) * m


def half_warps(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor,
               mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Pre sampled at x - d/2 + q, post at x + d/2 + q, with q = (1/4, 1/4) px.

    Interpolating at a fractional position t shifts each frequency by a phase error e(t) ~ sin(2 pi t); with the
    two fractions symmetric about 1/4 (not about 0) the errors of the two images are equal and cancel in the
    comparison. Measured on a real Sentinel-2 patch with exact (Fourier) shifts: the bias at convergence falls from
    +0.046 px (0.3 px shift, q = 0) to -0.002 px; the estimate refers to x + q (a quarter pixel, negligible)."""
    return fe.warp(a, -0.5 * d + QUARTER, mode), fe.warp(b, 0.5 * d + QUARTER, mode)


def lk_windows(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, d: torch.Tensor, rects: tuple,
               eps: float, valid: torch.Tensor | None = None,
               side: torch.Tensor | None = None) -> tuple[list, list, list]:
    """Absolute offset candidates (B,2,H,W) px, log det and log residual in each rectangle.

    ``a`` / ``b`` are the images warped by the current estimate ``d``. The LK increment of a window measures the
    window mean of the remaining misfit, so each candidate is the window mean of ``d`` plus that increment: exact
    in the linear regime even where ``d`` varies from pixel to pixel (``d(x) + increment`` would keep that noise).

    ``valid`` (see ``warp_pair``): the pixels whose warped pre and post both hold data; only they enter the fit,
    and the mean of ``d`` is taken over the pixels of ``m`` only. Without it (0.5.0 and before) the zero fill of
    nodata gaps enters both: gap edges, fixed in image coordinates, pull the fit towards no motion, and the gap
    pixels' zero ``d`` dilutes the mean (measured: the step on real texture with gaps -10 %, without them -3 %).

    ``side`` (B,1,H,W), 0..1: a known rupture trace (``fault_side``): the share of each pixel on its right-hand
    side. A window then sums only the pixels on its centre's side (``> 0.5``): it stops at the trace, whatever its
    shape (``frontend.rect_sums_sided``: one extra pass over the terms)."""
    counted = valid is not None or side is not None  # with a trace: the mean of d over the window's own side
    if counted:
        terms = torch.cat([fe.structure_terms(a, b) * (m if valid is None else valid), d * m, m], 1)
    else:
        terms = torch.cat([fe.structure_terms(a, b) * m, d], 1)
    # window sums and in-image counts: the LK solve takes sums (no division of the nine channels by the count)
    sums = fe.rect_sums(terms, rects) if side is None else fe.rect_sums_sided(terms, side, rects)
    cands, ldets, lress = [], [], []
    for s, n in sums:
        inc, ldet, lres = fe.lk_from_sums(s, eps, clip=3.0, count=n)  # reads channels 0-5 only
        mean_d = s[:, 6:8] / (s[:, 8:9] + 1e-6 * n) if counted else s[:, 6:8] / n
        cands.append(mean_d + inc)
        ldets.append(ldet)
        lress.append(lres)
    return cands, ldets, lress


def _valid_from(ma: torch.Tensor, mb: torch.Tensor, hard: bool) -> torch.Tensor:
    """Weight 0..1 of each pixel in the LK fit from the pair's data mask warped with each date (``ma``, ``mb``):
    where both hold data, eroded by one pixel (the gradient stencil must not reach the zero fill). At full
    resolution the mask is 0/1 (``hard``: the warped product must be ~1); at coarse levels it is the share of data
    pixels in a cell and the product is the weight (a threshold would close most cells around narrow stripes of
    nodata, and the coarse estimate with them)."""
    v = ma * mb
    if hard:
        v = (v > 0.99).float()
    return -F.max_pool2d(-v, 3, 1, 1)


def warp_pair(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, d: torch.Tensor, mode: str = "bilinear",
              hard: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``half_warps`` of the images, and the fit weights (``_valid_from``) from their data mask ``m`` warped the
    same way, in one pass (the mask as a second channel: one grid, one GridSample per date)."""
    wa, wb = half_warps(torch.cat([a, m], 1), torch.cat([b, m], 1), d, mode)
    return wa[:, 0:1], wb[:, 0:1], _valid_from(wa[:, 1:2], wb[:, 1:2], hard)


def _side_up(d: torch.Tensor, side_s: torch.Tensor, side: torch.Tensor, s: int) -> torch.Tensor:
    """``_up`` that does not interpolate across a known trace: each full-resolution pixel interpolates only the
    coarse cells of its own side (normalised interpolation; plain ``_up`` where no cell of its side is near)."""
    if s == 1:
        return d
    w_s = (side_s > 0.5).float()
    up_all, num, den = _up(d, s), _up(d * w_s, s), _up(w_s, s)  # the left side's: up_all - num, 1 - den
    right = (num + 1e-3 * up_all) / (den + 1e-3)
    left = (up_all - num + 1e-3 * up_all) / (1.0 - den + 1e-3)
    return left + side * (right - left)


def _abs_max2(v: torch.Tensor) -> torch.Tensor:
    """max(|dx|, |dy|) of (B, 2, H, W) (ORT's ReduceMax over 2 channels is ~3x slower than this)."""
    a = v.abs()
    return torch.maximum(a[:, 0:1], a[:, 1:2])


def soft_select(cands: list[torch.Tensor], ldets: list[torch.Tensor], lress: list[torch.Tensor]) -> torch.Tensor:
    """Candidates mixed by a softmax of the residual score (elementwise over the list: ORT's channel softmax is
    slow)."""
    sc = window_scores(ldets, lress)
    top = sc[0]
    for t in sc[1:]:
        top = torch.maximum(top, t)
    e = [torch.exp(t - top) for t in sc]
    tot = sum(e)
    return sum(ei * c for ei, c in zip(e, cands)) / tot


def hard_select(cands: list[torch.Tensor], ldets: list[torch.Tensor], lress: list[torch.Tensor]) -> torch.Tensor:
    """Per pixel, the candidate with the best residual score (``window_scores``)."""
    idx = residual_score(ldets, lress).argmax(1, keepdim=True)
    return torch.gather(torch.stack(cands, 1), 1, idx.unsqueeze(2).expand(-1, -1, 2, -1, -1))[:, 0]


def window_scores(ldets: list[torch.Tensor], lress: list[torch.Tensor]) -> list[torch.Tensor]:
    """Parameter-free preference per window: low fit residual first, then more texture."""
    return [score_stack(d, r) for r, d in zip(lress, ldets)]


def residual_score(ldets: list[torch.Tensor], lress: list[torch.Tensor]) -> torch.Tensor:
    """``window_scores`` stacked (B, K, H, W)."""
    return torch.cat(window_scores(ldets, lress), 1)


def score_stack(ldet: torch.Tensor, lres: torch.Tensor) -> torch.Tensor:
    """The window score (``window_scores``) element-wise: of one window's (B, 1, H, W) or of stacked (B, K, H, W)
    log dets / log residuals (at full resolution one pass per operation instead of K slices, K small operations
    and a concatenation: memory-bound)."""
    return GAIN * (-lres + 0.125 * ldet.clamp(-8.0, 4.0))


def soft_mix(cand: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """``soft_select`` of stacked candidates (B, K, 2, H, W) by their ``score_stack`` (B, K, H, W)."""
    e = torch.exp(score - score.max(1, keepdim=True)[0])
    return (e.unsqueeze(2) * cand).sum(1) / e.sum(1, keepdim=True)


class WarpFusionNet(FusionBase):
    def __init__(self, channels: list[str] | None = None, r_full: int = 7, r_small: int = 3, r_coarse: int = 4,
                 levels: tuple[int, ...] = (4, 4, 2, 2), iters: int = 1, sar_iters: int = 1, sar_r_full: int = 5,
                 widths: tuple[int, int, int, int] = (32, 48, 64, 96), c_stem: int = 32, c_full: int = 16,
                 eps: float = 1e-3, mode: str = "bilinear", sigma_fine: float = 0.5,
                 offset_invariant_inputs: bool = False, drop_wide: bool = False,
                 between: str = "soft", wide_gate_px: float = 0.0, wide_gate_k: float = 0.0,
                 wide_gate_set: bool = True, exact_mask: bool = False, sigma_scale: float = 1.0,
                 mask_warp: bool = False, half_gate: bool = False) -> None:
        super().__init__(channels)
        # True (0.6): the LK fits use only pixels whose *warped* pre and post both hold data (``warp_pair``) and
        # the mean offset of a window is taken over its data pixels; False (0.5.0 and before): nodata gaps biased
        # the offsets towards zero (see ``lk_windows``)
        self.mask_warp = bool(mask_warp)
        # False: the fault_side channel is ignored (the export's branch for inputs without a trace, models/export.py)
        self.use_side = True
        # True (experiment): with the wide gate, the 15-px up/down halves are closed where its left/right halves
        # disagree (a discontinuity across the columns: up/down straddle it) and vice versa; see _wide_gate
        self.half_gate = bool(half_gate)
        # True (experiment, not shipped): the optical 31-px candidates are replaced by the 15-px ones before the
        # fusion (read with the learned mix of 0.4.0 they cost 6 points of the fault step: tools/diagnose_step.py)
        self.drop_wide = bool(drop_wide)
        self.between = between  # see _between
        self.exact_mask = bool(exact_mask)  # see fuse (False in 0.4.0, whose weights on absent pairs are ~0 anyway)
        # sigma x this in the outputs: a setting changed after training (the wide gate) changes the error the sigma
        # head learnt; tools/sigma_scale.py measures the factor on the validation scenes
        self.sigma_scale = float(sigma_scale)
        # > 0 (experiment): the wide (31-px) candidates of a pair lose their weight where their own halves disagree
        # by more than this many px (a discontinuity within 15 px: the full 31-px window straddles it); see _wide_gate
        self.wide_gate_px, self.wide_gate_k, self.wide_gate_set = float(wide_gate_px), float(wide_gate_k), \
            bool(wide_gate_set)
        # True (0.4): the U-Net sees each pair's full-window candidate *minus* the residual-weighted estimate, never
        # the displacement itself, so its choice among candidates cannot depend on how large the motion is (0.3.0
        # saw the value and learnt to prefer the smaller candidates: selection-induced shrinkage, issue #11)
        self.offset_invariant_inputs = bool(offset_invariant_inputs)
        self.r_full, self.r_small, self.r_coarse, self.sar_r_full = int(r_full), int(r_small), int(r_coarse), \
            int(sar_r_full)
        self.levels, self.iters, self.sar_iters = tuple(int(v) for v in levels), int(iters), int(sar_iters)
        self.eps = float(eps)
        self.mode = mode
        self.register_buffer("k_fine", fe.gaussian_kernel(sigma_fine), persistent=False)
        self.register_buffer("k_coarse", fe.gaussian_kernel(0.75), persistent=False)  # 3 px at 1/4 resolution
        k = 2 * N_WINDOWS
        self.n_cand = k
        n_in = 4 + 2 * k + 2 + 15  # pair estimates, per-window residual + log det, optical image + change, context
        self.stem = nn.Sequential(nn.Conv2d(n_in, c_stem, 1), nn.LeakyReLU(0.1))
        self.build_unet(c_stem, widths, 1)
        # coarse head: candidate logits, log b (3), up (1), rupture logit (1), features for the full-res head
        self.n_feat = 8
        self.head = nn.Conv2d(widths[0], k + 3 + 1 + 1 + self.n_feat, 3, 1, 1)
        # full-resolution head on [coarse features, per-window residual scores, masks]: logit / log b / rupture
        self.fine = nn.Sequential(nn.Conv2d(self.n_feat + k + 2, c_full, 1), nn.LeakyReLU(0.1),
                                  conv(c_full, c_full), nn.Conv2d(c_full, k + 3 + 1, 1))
        self.score_gain = nn.Parameter(torch.ones(()))
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[k:k + 3] = math.log(0.1)
            self.head.bias[k + 4] = -3.0
            self.fine[-1].weight.mul_(0.1)
            self.fine[-1].bias.zero_()

    # ------------------------------------------------------------------ fixed measurement layers
    def pair_flow(self, pre: torch.Tensor, post: torch.Tensor, m: torch.Tensor, r_full: int, iters: int,
                  levels: tuple[int, ...] | None = None, side: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Coarse-to-fine + warped full-resolution LK for one pair; ``side`` (0/1 per pixel, the right-hand side
        of a known trace, see ``lk_windows``): no window and no upsampling mixes the two sides.

        Returns (offset candidates (B,K,2,H,W) px, their log dets (B,K,H,W) and log residuals (B,K,H,W),
        the high-passed pre image)."""
        a = masked_highpass(pre, m, self.k_fine, self.k_coarse)
        b = masked_highpass(post, m, self.k_fine, self.k_coarse)
        d = torch.zeros_like(torch.cat([a, a], 1))
        for s in (self.levels if levels is None else levels):
            a_s, b_s, m_s = _pool(a, s), _pool(b, s), _pool(m, s)
            if self.mask_warp:  # means over the cell's data pixels (the zero fill would dim / shrink them)
                inv = (m_s > 0).float() / (m_s + 1e-6)
                a_s, b_s, d_s = (a_s * inv, b_s * inv, _pool(d, s) * inv / s) if s > 1 else (a_s, b_s, d)
                wa, wb, v_s = warp_pair(a_s, b_s, m_s, d_s, hard=s == 1)
            else:
                d_s, v_s = _pool(d, s) / s, None
                wa, wb = half_warps(a_s, b_s, d_s)
            side_s = None if side is None else _pool(side, s)
            cands, ldets, lress = lk_windows(wa, wb, m_s, d_s, fe.one_sided_rects(self.r_coarse), self.eps, v_s,
                                             side_s)
            d = soft_select(cands, ldets, lress) * s
            d = (_up(d, s) if side is None else _side_up(d, side_s, side, s)) * m
        rs = self.r_small
        rects = fe.one_sided_rects(r_full) + ((-rs, rs, -rs, rs),) + fe.one_sided_rects(2 * r_full + 1)
        for it in range(iters):
            if self.mask_warp:
                wa, wb, v = warp_pair(a, b, m, d, self.mode)
            else:
                (wa, wb), v = half_warps(a, b, d, self.mode), None
            cands, ldets, lress = lk_windows(wa, wb, m, d, rects, self.eps, v, side)
            if it < iters - 1:
                d = self._between(cands, ldets, lress) * m
        return torch.stack(cands, 1) * m.unsqueeze(1), torch.cat(ldets, 1) * m, torch.cat(lress, 1) * m, a

    def _between(self, cands: list, ldets: list, lress: list) -> torch.Tensor:
        """The estimate carried from one full-resolution iteration to the next (``between``): ``soft`` (the
        residual-weighted mix of all windows, 0.4.0), ``hard`` (the best-residual window per pixel) or ``sharp``
        (the residual-weighted mix of the 7-px window, its halves and the small window: never a 31-px window)."""
        if self.between == "hard":
            return hard_select(cands, ldets, lress)
        if self.between == "sharp":
            return soft_select(cands[:6], ldets[:6], lress[:6])
        return soft_select(cands, ldets, lress)

    def _wide_gate(self, cand: torch.Tensor, lres: torch.Tensor) -> torch.Tensor:
        """Log-weights (B, N_WINDOWS, H, W) that close a window where its own halves disagree by more than their
        noise allows (the window then holds a discontinuity: its mean mixes both sides). The allowance is
        ``wide_gate_px`` + ``wide_gate_k`` x the predicted std of the halves' difference (each half's variance
        ~ its normalised fit residual / (area / 4)). ``wide_gate_set`` False: only the full 31-px window; True: the
        whole 31-px set, and the full 15-px window by its halves. Parameter-free; the 7-px window is never gated."""
        def excess(i: int, r: int) -> tuple[torch.Tensor, torch.Tensor]:  # windows i+1..i+4 (l, r, u, d), radius r
            n_eff = (2 * r + 1) * (r + 1) / 4.0
            v = torch.exp(lres[:, i + 1:i + 5]) / n_eff
            t_lr = self.wide_gate_px + self.wide_gate_k * torch.sqrt(v[:, 0:1] + v[:, 1:2])
            t_ud = self.wide_gate_px + self.wide_gate_k * torch.sqrt(v[:, 2:3] + v[:, 3:4])
            return (_abs_max2(cand[:, i + 1] - cand[:, i + 2]) / t_lr,
                    _abs_max2(cand[:, i + 3] - cand[:, i + 4]) / t_ud)

        def pen(ex: torch.Tensor) -> torch.Tensor:
            return -8.0 * torch.clamp(ex - 1.0, 0.0, 1.0)  # 0 within the allowance, -8 (weight x 3e-4) from twice it
        p31 = pen(torch.maximum(*excess(6, 2 * self.r_full + 1)))
        zero = p31.new_zeros(p31.shape)
        if not self.wide_gate_set:
            return torch.cat([zero.expand(-1, 6, -1, -1), p31, zero.expand(-1, 4, -1, -1)], 1)
        ex_lr, ex_ud = excess(0, self.r_full)
        if self.half_gate:  # left/right disagree: a discontinuity across the columns; the up/down halves straddle it
            p_lr, p_ud = pen(ex_ud), pen(ex_lr)
            return torch.cat([pen(torch.maximum(ex_lr, ex_ud)), p_lr, p_lr, p_ud, p_ud, zero,
                              p31.expand(-1, 5, -1, -1)], 1)
        return torch.cat([pen(torch.maximum(ex_lr, ex_ud)), zero.expand(-1, 5, -1, -1), p31.expand(-1, 5, -1, -1)], 1)

    # ------------------------------------------------------------------ network
    def measure(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fixed (parameter-free) measurement layers: per pair, offset candidates (B,K,2,H,W), log dets and
        log residuals (B,K,H,W); the high-passed optical pre image. Training caches these per scene."""
        c = self.c
        mo, ms = c(x, "mask_optical"), c(x, "mask_sar")
        # a known rupture trace (optional channel): 1 on its right-hand side, 0 on its left (see lk_windows)
        side = (c(x, "fault_side") > 0).float() if self.use_side and "fault_side" in self.ix else None
        cand_o, ldet_o, lres_o, a_o = self.pair_flow(c(x, "optical_pre"), c(x, "optical_post"), mo, self.r_full,
                                                     self.iters, side=side)
        # SAR (speckled, coarser): measured at 1/2 resolution, candidates upsampled (4x cheaper)
        cand_s, ldet_s, lres_s, _ = self.pair_flow(_pool(c(x, "sar_pre_db"), 2), _pool(c(x, "sar_post_db"), 2),
                                                   _pool(ms, 2), self.sar_r_full, self.sar_iters, levels=(2, 2),
                                                   side=None if side is None else _pool(side, 2))
        # (plain upsampling also with a trace: it blurs the SAR candidates by 1 px across it; side-aware it cost
        # +50 % of the whole network's time for these 22 channels)
        cand_s = _up(cand_s.flatten(1, 2) * 2.0, 2).unflatten(1, (N_WINDOWS, 2)) * ms.unsqueeze(1)
        return {"cand_o": cand_o, "ldet_o": ldet_o, "lres_o": lres_o, "a_o": a_o,
                "cand_s": cand_s, "ldet_s": _up(ldet_s, 2) * ms, "lres_s": _up(lres_s, 2) * ms}

    def fuse(self, x: torch.Tensor, m: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The learned part: (d = (dx, dy, up) px, log b (3) px, rupture logit (1)), (B, ., H, W)."""
        return self.fuse_all(x, m)[:3]

    def fuse_all(self, x: torch.Tensor, m: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``fuse`` and the SAR share of the horizontal (B, 1, H, W), 0..1: the part of the convex mix's weight on
        the SAR amplitude candidates. A geocoded amplitude image moves by the *apparent* shift d_h - u cot(theta) g
        (g: ground range, away from the satellite), so the fused horizontal carries share x that leak; the
        backend's 3-D inversion removes it with the vertical from the unwrapped LOS (``backend.inversion``)."""
        c = self.c
        if self.drop_wide:
            m = {**m, **{k: torch.cat([m[k][:, :6], m[k][:, :5]], 1) for k in ("cand_o", "ldet_o", "lres_o")}}
        mo, ms = c(x, "mask_optical"), c(x, "mask_sar")
        sc = {p: score_stack(m[f"ldet_{p}"], m[f"lres_{p}"]) for p in "os"}  # per pair (B, N_WINDOWS, H, W)
        score = torch.cat([sc["o"] * mo, sc["s"] * ms], 1)
        change = c(x, "optical_post") - c(x, "optical_pre")
        if self.offset_invariant_inputs:
            disp = [m[f"cand_{p}"][:, 0] - soft_mix(m[f"cand_{p}"], sc[p]) for p in "os"]
        else:
            disp = [m["cand_o"][:, 0], m["cand_s"][:, 0]]
        k, s = self.n_cand, 4
        # each input pooled to the U-Net's 1/4 resolution before the concatenation (the same values: pooling is
        # per channel and linear), not a 65-channel full-resolution tensor pooled after (14 % of the run time)
        inp = torch.cat([_pool(disp[0], s), _pool(disp[1], s), 0.3 * _pool(m["ldet_o"], s), 0.3 * _pool(m["ldet_s"], s),
                         0.5 * _pool(m["lres_o"], s), 0.5 * _pool(m["lres_s"], s), _pool(m["a_o"], s),
                         _pool(change * mo, s), self.context(x, s)], 1)
        out = _up(self.head(self.unet(self.stem(inp))), s)
        fine = self.fine(torch.cat([out[:, k + 5:], 0.1 * score, mo, ms], 1))
        avail = torch.cat([mo.expand(-1, N_WINDOWS, -1, -1), ms.expand(-1, N_WINDOWS, -1, -1)], 1)
        logits = out[:, :k] + fine[:, :k] + self.score_gain * score
        if not self.exact_mask:  # (with it an unavailable candidate's weight is set to 0 below, whatever its logit)
            logits = logits - 30.0 * (1.0 - avail)
        if self.wide_gate_px > 0:
            logits = logits + torch.cat([self._wide_gate(m["cand_o"], m["lres_o"]),
                                         self._wide_gate(m["cand_s"], m["lres_s"])], 1)
        # softmax over the K candidates by hand (ORT's softmax over a non-last axis transposes: slow). With
        # ``exact_mask`` an unavailable pair's candidates (zeros) get exactly no weight, whatever the logits: a
        # soft -30 alone can be outbid, and a fine-tune did learn to (0.97 of the weight on the zeros of the absent
        # SAR pair in an optical-only scene: a path to zero, issue #11)
        if self.exact_mask:  # the max over available candidates only (nothing can underflow them)
            e = torch.exp((logits - (logits - 1e4 * (1.0 - avail)).max(1, keepdim=True)[0]).clamp(max=0.0)) * avail
            e = e + 1e-12
        else:
            e = torch.exp(logits - logits.max(1, keepdim=True)[0])
        cand = torch.cat([m["cand_o"], m["cand_s"]], 1)  # (B, K, 2, H, W)
        dxy = (e.unsqueeze(2) * cand).sum(1) / e.sum(1, keepdim=True) * torch.clamp(mo + ms, max=1.0)
        logb = (out[:, k:k + 3] + fine[:, k:k + 3]).clamp(LOGB_MIN, LOGB_MAX)
        d = torch.cat([dxy, out[:, k + 3:k + 4]], 1)
        share = e[:, N_WINDOWS:].sum(1, keepdim=True) / e.sum(1, keepdim=True) * ms
        return d, logb, out[:, k + 4:k + 5] + fine[:, k + 3:k + 4], share

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(d = (dx, dy, up) px, log b (3) px, rupture logit (1)), all (B, ., H, W) at full resolution."""
        return self.fuse(x, self.measure(x))

    def forward_px(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        d, logb, _ = self.forward_all(x)
        return d, logb, [(d, logb)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """features -> displacement_enu_m, sigma_enu_m (B,3,H,W), rupture_probability, sar_share (B,1,H,W)."""
        d, logb, rupt, share = self.fuse_all(x, self.measure(x))
        ps = self.c(x, "pixel_size_m")
        return (enu_px_from_d(d) * ps, SQRT2 * torch.exp(logb) * ps * self.sigma_scale, torch.sigmoid(rupt),
                share)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(cfg: dict | None = None) -> nn.Module:
    """The fusion network from a config's ``model`` section (``arch`` must be ``warp_fusion``)."""
    cfg = dict(cfg or {})
    arch = cfg.pop("arch", "warp_fusion")
    if arch != "warp_fusion":
        raise ValueError(f"model arch {arch!r} is not built any more (git history has it); use 'warp_fusion'")
    for key in ("widths", "levels"):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    return WarpFusionNet(**cfg)
