"""Fixed (parameter-free) classical layers inside the fusion network, all ONNX-exportable.

These give the learned part explicit, sub-pixel measurements instead of asking it to discover
matching from scratch (the first, pure cost-volume model collapsed to zero displacement):

* ``highpass_normalise``: difference of Gaussians (sigma 0.5 / 3 px) divided by the local RMS
  (31-px box). Removes the low-frequency part of illumination / shading / gain changes between the
  pre and post images (different suns on relief), which otherwise biases any matcher by 0.3-0.5 px
  on the simulator (measured with Lucas-Kanade on validation scenes: 0.46 -> 0.16 px EPE, 17-px window).
* ``lucas_kanade``: windowed least-squares optical flow ``d = -(S + eps I)^-1 [Sxt, Syt]`` with the
  structure tensor ``S`` summed over a ``w x w`` box (separable average pooling). ``d`` is the
  displacement of the image content in pixels (``post(x + d) = pre(x)``), ``(dx, dy)`` = (columns, rows).
  The Tikhonov ``eps`` shrinks the estimate towards 0 where there is no texture. Also returns a
  confidence: ``log(det S)`` and the normalised residual.
* ``phase_gradient``: wrapped-phase differences to the next pixel (NaN-safe atan2).

Pixel-size free: everything is in pixels; the network multiplies by ``pixel_size_m`` at the end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(x ** 2) / (2.0 * sigma * sigma))
    return k / k.sum()


def separable(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable filter with edge replication; ``x`` (B,1,H,W), ``k`` 1-D odd length."""
    r = (k.numel() - 1) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def cumsum_cols(x: torch.Tensor) -> torch.Tensor:
    """Running sum along the columns (last axis) of (B, C, H, W), as a running sum along the rows of the transpose:
    the same additions in the same order, but ONNX Runtime's CumSum along the last axis is ~3x slower than
    transpose + CumSum along rows + transpose (9 x 1055^2: 35 ms against 10 ms on 2 cores)."""
    return torch.cumsum(x.transpose(2, 3), 2).transpose(2, 3)


def _box_sum_1d(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum over [i - r, i + r] along ``dim`` (zeros outside) by a running sum: O(1) per pixel for any r."""
    n = 2 * r + 1
    if dim == 3:
        c = cumsum_cols(F.pad(x, (r + 1, r, 0, 0)))
        return c[:, :, :, n:] - c[:, :, :, :-n]
    c = torch.cumsum(F.pad(x, (0, 0, r + 1, r)), 2)
    return c[:, :, n:, :] - c[:, :, :-n, :]


def box(x: torch.Tensor, w: int) -> torch.Tensor:
    """Mean over a w x w window (w odd), borders averaged over the valid part only.

    Running sums (ONNX CumSum) instead of average pooling: the cost does not grow with ``w``
    (a 41-px average pool was 90 % of the network's run time). Float32 running sums over a
    few thousand pixels of order-1 values stay accurate to ~1e-5 relative.
    """
    r = w // 2
    ones = torch.ones_like(x[:1, :1])
    cnt = _box_sum_1d(_box_sum_1d(ones, r, 3), r, 2)
    return _box_sum_1d(_box_sum_1d(x, r, 3), r, 2) / cnt


def boxes(x: torch.Tensor, windows: tuple[int, ...]) -> list[torch.Tensor]:
    """``[box(x, w) for w in windows]`` with one shared running sum along the rows (identical values: the extra
    zero padding adds exact zeros to the running sums), so several windows cost little more than one."""
    rmax = max(windows) // 2
    c = cumsum_cols(F.pad(x, (rmax + 1, rmax, 0, 0)))  # width W + 2 rmax + 1
    ones = torch.ones_like(x[:1, :1])
    out = []
    for w in windows:
        r = w // 2
        hi_end = -(rmax - r) if rmax > r else None
        rows = c[:, :, :, rmax + r + 1:hi_end] - c[:, :, :, rmax - r:-(rmax + r + 1)]
        cnt = _box_sum_1d(_box_sum_1d(ones, r, 3), r, 2)
        out.append(_box_sum_1d(rows, r, 2) / cnt)
    return out


def highpass_normalise(x: torch.Tensor, k_fine: torch.Tensor, k_coarse: torch.Tensor, w_rms: int = 31) -> torch.Tensor:
    d = separable(x, k_fine) - separable(x, k_coarse)
    return d * torch.rsqrt(box(d * d, w_rms) + 1e-4)


def pair_terms(pre: torch.Tensor, post: torch.Tensor, m: torch.Tensor, k_fine: torch.Tensor,
               k_coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """High-passed, masked pre / post images and their ``structure_terms``: (a, b, terms)."""
    a = highpass_normalise(pre, k_fine, k_coarse) * m
    b = highpass_normalise(post, k_fine, k_coarse) * m
    return a, b, structure_terms(a, b)


def _dx(m: torch.Tensor) -> torch.Tensor:
    p = F.pad(m, (1, 1, 0, 0), mode="replicate")
    return 0.5 * (p[:, :, :, 2:] - p[:, :, :, :-2])


def _dy(m: torch.Tensor) -> torch.Tensor:
    p = F.pad(m, (0, 0, 1, 1), mode="replicate")
    return 0.5 * (p[:, :, 2:, :] - p[:, :, :-2, :])


def structure_terms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel products (gx gx, gx gy, gy gy, gx gt, gy gt, gt gt), symmetric gradient of (a+b)/2."""
    m = 0.5 * (a + b)
    gx, gy, gt = _dx(m), _dy(m), b - a
    return torch.cat([gx * gx, gx * gy, gy * gy, gx * gt, gy * gt, gt * gt], 1)


def lucas_kanade(terms: torch.Tensor, w: int, eps: float = 1e-2, clip: float = 8.0) -> tuple[torch.Tensor, ...]:
    """Windowed LK from ``structure_terms`` -> (d (B,2,H,W) px, log det S, normalised residual)."""
    return lk_from_sums(box(terms, w), eps, clip)


def lk_from_sums(s: torch.Tensor, eps: float = 1e-2, clip: float = 8.0,
                 count: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """LK solve from window means of ``structure_terms`` (channels 0-5 of ``s``; see ``lucas_kanade``), or from
    window *sums* over ``count`` pixels (B,1,H,W): the same solution (eps scaled by the count; the increment and the
    normalised residual are ratios) without dividing the six sums by the count, and log det S of the means."""
    e = eps if count is None else eps * count
    sxx, sxy, syy = s[:, 0:1] + e, s[:, 1:2], s[:, 2:3] + e
    sxt, syt, stt = s[:, 3:4], s[:, 4:5], s[:, 5:6]
    det = sxx * syy - sxy * sxy
    dx = -(syy * sxt - sxy * syt) / det
    dy = -(sxx * syt - sxy * sxt) / det
    # residual of the fit: stt - d^T S d (>= 0), relative to the texture energy
    resid = (stt + dx * sxt + dy * syt).clamp(min=0.0) / (sxx + syy)
    d = torch.cat([dx, dy], 1).clamp(-clip, clip)
    ldet = torch.log(det) if count is None else torch.log(det / (count * count))
    return d, ldet, torch.log(resid + 1e-3)


def phase_gradient(pc: torch.Tensor, ps: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Wrapped phase difference to the next column / row (radians), 0 where either pixel is invalid."""
    out = []
    for dim in (3, 2):
        pc2, ps2, v2 = _next(pc, dim), _next(ps, dim), _next(valid, dim)
        v = valid * v2
        # atan2(0, 0) is 0 in torch but NaN in ONNX Runtime: keep the x argument > 0 where masked
        out.append(torch.atan2((ps2 * pc - pc2 * ps) * v, (pc2 * pc + ps2 * ps) * v + (1.0 - v)) * v)
    return out[0], out[1]


def _next(t: torch.Tensor, dim: int) -> torch.Tensor:
    if dim == 3:
        return torch.cat([t[:, :, :, 1:], t[:, :, :, -1:]], 3)
    return torch.cat([t[:, :, 1:, :], t[:, :, -1:, :]], 2)


# ----------------------------------------------------------------------------- model 0.3: warping, one-sided windows
def warp(f: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``f`` at ``x + flow`` (flow = (dx, dy) in pixels), ``mode`` bilinear / bicubic, borders replicated
    (ONNX GridSample)."""
    ones = torch.ones_like(flow[:, :1])
    xs = cumsum_cols(ones) - 1.0
    ys = ones.cumsum(2) - 1.0
    w1 = xs[:, :, :, -1:].clamp(min=1.0)  # W - 1 (dynamic, no Python ints)
    h1 = ys[:, :, -1:, :].clamp(min=1.0)
    gx = (xs + flow[:, 0:1]) / w1 * 2.0 - 1.0
    gy = (ys + flow[:, 1:2]) / h1 * 2.0 - 1.0
    grid = torch.cat([gx, gy], 1).permute(0, 2, 3, 1)
    return F.grid_sample(f, grid, mode=mode, padding_mode="border", align_corners=True)


def _run_slices(c: torch.Tensor, lo: int, hi: int, rmax: int, dim: int) -> torch.Tensor:
    """Sum over [i + lo, i + hi] along ``dim`` from a running sum ``c`` of the input padded by rmax + 1 / rmax
    (negative slice ends: the lengths stay dynamic in the exported graph)."""
    a, a_end = rmax + hi + 1, (-(rmax - hi) if rmax > hi else None)
    b, b_end = rmax + lo, -(rmax - lo + 1)
    if dim == 3:
        return c[:, :, :, a:a_end] - c[:, :, :, b:b_end]
    return c[:, :, a:a_end, :] - c[:, :, b:b_end, :]


def rect_sums(x: torch.Tensor, rects: tuple[tuple[int, int, int, int], ...]
              ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Sums of ``x`` over rectangles ``(top, bottom, left, right)`` (inclusive offsets from the pixel, rows down)
    by separable running sums (float32-accurate: 1-D sums only), zeros outside, with the in-image pixel count
    (B,1,H,W) of each: (sum, count) per rectangle (the LK solve, ``lk_from_sums``, takes sums and the count).

    One-sided rectangles (e.g. the left or right half of a window) never straddle a discontinuity on the other
    side of the pixel: the model 0.3 front end measures offsets in them to stay sharp at surface ruptures."""
    rmax = max(max(abs(v) for v in r) for r in rects)
    ones = torch.ones_like(x[:1, :1])
    cx, co = (cumsum_cols(_pad_both(t, rmax)) for t in (x, ones))
    cols: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    out = []
    for top, bottom, left, right in rects:
        if (left, right) not in cols:
            cols[(left, right)] = tuple(_column_range_rows(c, left, right, rmax) for c in (cx, co))
        rx, ro = cols[(left, right)]
        out.append((_run_slices(rx, top, bottom, rmax, 2), _run_slices(ro, top, bottom, rmax, 2)))
    return out


def _pad_both(x: torch.Tensor, rmax: int) -> torch.Tensor:
    """Zeros on every side for running sums of window radius up to ``rmax`` (rmax + 1 before, rmax after), once
    for both directions: the rows padded here are zero in every column sum, as a padding after the column pass was."""
    return F.pad(x, (rmax + 1, rmax, rmax + 1, rmax))


def _column_range_rows(c: torch.Tensor, left: int, right: int, rmax: int) -> torch.Tensor:
    """From a running sum along the columns ``c`` (``_pad_both`` input): the sums over columns [left, right] of
    each pixel, as a running sum along the rows (ready for ``_run_slices`` along dim 2)."""
    return torch.cumsum(_run_slices(c, left, right, rmax, 3), 2)


def rect_sums_sided(x: torch.Tensor, side: torch.Tensor, rects: tuple[tuple[int, int, int, int], ...]
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``rect_sums`` over only the pixels on the centre pixel's side of a trace: ``side`` (B,1,H,W) is 1 on its
    right-hand side, 0 on its left. Sums over the right side, and all minus those for the left; the count is the
    rectangle's in-image count (as ``rect_sums``: the other side's pixels count as zeros)."""
    rmax = max(max(abs(v) for v in r) for r in rects)
    ones = torch.ones_like(x[:1, :1])
    right = side > 0.5
    cx, cr, co = (cumsum_cols(_pad_both(t, rmax)) for t in (x, x * side, ones))
    cols: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}
    out = []
    for top, bottom, left, rgt in rects:
        if (left, rgt) not in cols:
            cols[(left, rgt)] = tuple(_column_range_rows(c, left, rgt, rmax) for c in (cx, cr, co))
        ra, rr, ro = (_run_slices(c, top, bottom, rmax, 2) for c in cols[(left, rgt)])
        out.append((torch.where(right, rr, ra - rr), ro))
    return out


def one_sided_rects(r: int) -> tuple[tuple[int, int, int, int], ...]:
    """The full (2r+1)^2 window and its four halves (left, right, up, down), each including the centre line."""
    return ((-r, r, -r, r), (-r, r, -r, 0), (-r, r, 0, r), (-r, 0, -r, r), (0, r, -r, r))
