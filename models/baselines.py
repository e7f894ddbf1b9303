"""Classical optical offset baselines for the held-out evaluation (pixel units, numpy / OpenCV).

Both return ``(dx, dy)`` in pixels with the network's convention ``post(x + d) = pre(x)``
(dx along columns = east, dy along rows = south).

* :func:`phase_correlation_offsets` — COSI-Corr-style windowed frequency correlator (Leprince et al. 2007):
  for every ``step``-th pixel, a ``window``-px raised-cosine-weighted patch pair and its normalised
  cross-power spectrum; integer peak, then **iterative sub-pixel refinement**: the post window is
  re-sampled at the current estimate (cubic B-spline, no bilinear smoothing) and the residual shift is read
  from a weighted least-squares fit of the phase-difference plane on the low frequencies, until the update
  is below ``tol`` px. Re-centring on the exact estimate makes the window apodisation act on the same ground in
  both images; the 0.2.0 evaluation's version re-centred by bilinear interpolation (which locks toward whole
  pixels) and read 0.3 / 0.7 / 1.3 px shifts of a real Sentinel-2 patch as 0.322 / 0.681 / 1.320 px (single
  windows up to 0.06 px off); this one reads them within 0.003 px (``tests/test_network_baselines.py``).
  The grid is interpolated to every pixel.
* :func:`dis_offsets` — OpenCV DIS optical flow (``PRESET_MEDIUM``; ``finest_scale=0`` = full resolution,
  ``None`` = the preset's own finest scale).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage


def _normalise(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    m = np.isfinite(a)
    fill = float(np.median(a[m])) if m.any() else 0.0
    a = np.where(m, a, fill)
    return (a - a.mean()) / (a.std() + 1e-9)


def _plane_fit(Q: np.ndarray, wgt: np.ndarray, KX: np.ndarray, KY: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift (rx, ry) whose phase plane -2 pi (kx rx + ky ry) best fits the angle of ``Q`` (weighted LS)."""
    ph = np.angle(Q)
    w = wgt * (np.abs(ph) < 2.0)
    kx, ky = KX[None], KY[None]
    sxx = (w * kx * kx).sum((1, 2))
    syy = (w * ky * ky).sum((1, 2))
    sxy = (w * kx * ky).sum((1, 2))
    bx = (w * kx * ph).sum((1, 2)) / (-2 * np.pi)
    by = (w * ky * ph).sum((1, 2)) / (-2 * np.pi)
    det = sxx * syy - sxy * sxy
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    return (syy * bx - sxy * by) / det, (sxx * by - sxy * bx) / det


def phase_correlation_offsets(pre: np.ndarray, post: np.ndarray, window: int = 32, step: int = 2,
                              iterations: int = 8, freq_cut: float = 0.5, tol: float = 2e-3, chunk: int = 2048
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel sub-pixel offsets by windowed phase correlation with iterative re-centring (COSI-Corr style).

    ``freq_cut``: fraction of the Nyquist band used by the phase-plane fit; ``iterations``: maximum number of
    re-centring steps after the integer peak; ``tol``: convergence threshold (px)."""
    a, b = _normalise(pre), _normalise(post)
    H, W = a.shape
    n = window
    h = n // 2
    pad = h + n  # room for shifts up to +-h plus the window
    ap = np.pad(a, pad, mode="reflect")
    coef = ndimage.spline_filter(np.pad(b, pad, mode="reflect"), order=3, mode="mirror")
    bp = np.pad(b, pad, mode="reflect")
    ys, xs = np.mgrid[0:H:step, 0:W:step]
    centres = np.stack([ys.ravel(), xs.ravel()], 1)
    w1 = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(n) + 0.5) / n)  # raised cosine (Hann)
    win = np.outer(w1, w1)
    k = np.fft.fftfreq(n)  # cycles / pixel
    KY, KX = np.meshgrid(k, k, indexing="ij")
    lowf = (np.abs(KX) <= freq_cut * 0.5) & (np.abs(KY) <= freq_cut * 0.5)
    lowf[0, 0] = False
    out = np.zeros((len(centres), 2))
    iy, ix = np.mgrid[0:n, 0:n] - h + pad

    def spectrum(p: np.ndarray) -> np.ndarray:
        return np.fft.fft2((p - p.mean((1, 2), keepdims=True)) * win)

    for s in range(0, len(centres), chunk):
        c = centres[s:s + chunk]
        rows = c[:, 0, None, None] + iy[None]
        cols = c[:, 1, None, None] + ix[None]
        Fa = np.conj(spectrum(ap[rows, cols]))
        # integer peak of the phase correlation surface
        cross = spectrum(bp[rows, cols]) * Fa
        corr = np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-12)))
        flat = corr.reshape(len(c), -1).argmax(1)
        dy = (flat // n).astype(np.float64)
        dx = (flat % n).astype(np.float64)
        dy = np.where(dy >= n // 2, dy - n, dy)
        dx = np.where(dx >= n // 2, dx - n, dx)
        active = np.arange(len(c))
        for _ in range(iterations):
            if active.size == 0:
                break
            r, q = rows[active], cols[active]
            pb = ndimage.map_coordinates(coef, [r + dy[active, None, None], q + dx[active, None, None]], order=3,
                                         mode="mirror", prefilter=False)
            cross = spectrum(pb) * Fa[active]
            mag = np.abs(cross)
            wgt = mag * lowf[None]
            wgt = wgt / (wgt.reshape(len(active), -1).max(1)[:, None, None] + 1e-12)
            rx, ry = _plane_fit(cross / (mag + 1e-12), wgt, KX, KY)
            rx, ry = np.clip(rx, -1.0, 1.0), np.clip(ry, -1.0, 1.0)  # a wild fit moves at most 1 px a step
            dx[active] = np.clip(dx[active] + rx, -h, h)
            dy[active] = np.clip(dy[active] + ry, -h, h)
            active = active[np.maximum(np.abs(rx), np.abs(ry)) > tol]
        out[s:s + chunk, 0] = dx
        out[s:s + chunk, 1] = dy
    gx = out[:, 0].reshape(ys.shape)
    gy = out[:, 1].reshape(ys.shape)
    if step > 1:  # grid sample (i, j) sits at pixel (i * step, j * step)
        yy, xx = np.mgrid[0:H, 0:W] / float(step)
        gx = ndimage.map_coordinates(gx, [yy, xx], order=1, mode="nearest")
        gy = ndimage.map_coordinates(gy, [yy, xx], order=1, mode="nearest")
    return gx.astype(np.float32), gy.astype(np.float32)


def dis_offsets(pre: np.ndarray, post: np.ndarray, finest_scale: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV DIS optical flow (``PRESET_MEDIUM``) on 8-bit versions of the robustly normalised images.
    ``finest_scale``: 0 = flow computed at full resolution; None = the preset's own (medium: 1, half res)."""
    a, b = _normalise(pre), _normalise(post)
    lo = min(np.percentile(a, 0.5), np.percentile(b, 0.5))
    hi = max(np.percentile(a, 99.5), np.percentile(b, 99.5))
    to8 = lambda x: np.clip((x - lo) / (hi - lo + 1e-9) * 255.0 + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if finest_scale is not None:
        dis.setFinestScale(int(finest_scale))
    flow = dis.calc(to8(a), to8(b), None)
    return flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32)
