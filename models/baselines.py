"""Classical optical offset baselines for the held-out evaluation (pixel units, numpy / OpenCV).

Both return ``(dx, dy)`` in pixels with the network's convention ``post(x + d) = pre(x)``
(dx along columns = east, dy along rows = south).

* :func:`phase_correlation_offsets` — COSI-Corr-style windowed frequency correlator: for every
  pixel (``step``), a ``window``-px raised-cosine-weighted patch pair, normalised cross-power
  spectrum, integer peak, then a sub-pixel phase-plane fit (weighted least squares on the low
  frequencies, iterated) like Leprince et al. (2007).
* :func:`dis_offsets` — OpenCV DIS optical flow (``PRESET_MEDIUM``, finest scale 0).
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


def phase_correlation_offsets(pre: np.ndarray, post: np.ndarray, window: int = 32, step: int = 2,
                              iterations: int = 2, freq_cut: float = 0.5, chunk: int = 4096
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel sub-pixel offsets by windowed phase correlation (COSI-Corr style)."""
    a, b = _normalise(pre), _normalise(post)
    H, W = a.shape
    h = window // 2
    ap = np.pad(a, h, mode="reflect")
    bp = np.pad(b, h, mode="reflect")
    ys, xs = np.mgrid[0:H:step, 0:W:step]
    centres = np.stack([ys.ravel(), xs.ravel()], 1)
    n = window
    w1 = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(n) + 0.5) / n)  # raised cosine (Hann)
    win = np.outer(w1, w1)
    k = np.fft.fftfreq(n)  # cycles / pixel
    KY, KX = np.meshgrid(k, k, indexing="ij")
    lowf = (np.abs(KX) <= freq_cut * 0.5) & (np.abs(KY) <= freq_cut * 0.5)
    lowf[0, 0] = False
    out = np.zeros((len(centres), 2))
    iy, ix = np.mgrid[0:n, 0:n]
    for s in range(0, len(centres), chunk):
        c = centres[s:s + chunk]
        rows = c[:, 0, None, None] + iy[None]
        cols = c[:, 1, None, None] + ix[None]
        pa = ap[rows, cols]
        pa = (pa - pa.mean((1, 2), keepdims=True)) * win
        Fa = np.fft.fft2(pa)
        dx = np.zeros(len(c))
        dy = np.zeros(len(c))
        for it in range(iterations + 1):
            # re-centre the post window on the current estimate (bilinear), estimate the residual
            if it == 0:
                pb = bp[rows, cols]
            else:
                pb = ndimage.map_coordinates(bp, [rows + dy[:, None, None], cols + dx[:, None, None]], order=1,
                                             mode="reflect")
            pb = (pb - pb.mean((1, 2), keepdims=True)) * win
            cross = np.fft.fft2(pb) * np.conj(Fa)
            mag = np.abs(cross)
            Q = cross / (mag + 1e-12)
            if it == 0:  # integer peak
                corr = np.real(np.fft.ifft2(Q))
                flat = corr.reshape(len(c), -1).argmax(1)
                ry, rx = flat // n, flat % n
                ry = np.where(ry >= n // 2, ry - n, ry).astype(np.float64)
                rx = np.where(rx >= n // 2, rx - n, rx).astype(np.float64)
            else:
                rx, ry = np.zeros(len(c)), np.zeros(len(c))
            # sub-pixel: phase of Q = -2 pi (kx dx + ky dy), weighted LS on the low frequencies
            wgt = mag * lowf[None]
            wgt = wgt / (wgt.reshape(len(c), -1).max(1)[:, None, None] + 1e-12)
            kx, ky = KX[None], KY[None]
            ph = np.angle(Q * np.exp(2j * np.pi * (kx * rx[:, None, None] + ky * ry[:, None, None])))
            w = wgt * (np.abs(ph) < 2.0)
            sxx = (w * kx * kx).sum((1, 2))
            syy = (w * ky * ky).sum((1, 2))
            sxy = (w * kx * ky).sum((1, 2))
            bx = (w * kx * ph).sum((1, 2)) / (-2 * np.pi)
            by = (w * ky * ph).sum((1, 2)) / (-2 * np.pi)
            det = sxx * syy - sxy * sxy
            det = np.where(np.abs(det) < 1e-12, 1e-12, det)
            step_x = rx + (syy * bx - sxy * by) / det
            step_y = ry + (sxx * by - sxy * bx) / det
            dx = np.clip(dx + step_x, -h, h)
            dy = np.clip(dy + step_y, -h, h)
        out[s:s + chunk, 0] = dx
        out[s:s + chunk, 1] = dy
    gx = out[:, 0].reshape(ys.shape)
    gy = out[:, 1].reshape(ys.shape)
    if step > 1:
        gx = cv2.resize(gx, (W, H), interpolation=cv2.INTER_LINEAR)
        gy = cv2.resize(gy, (W, H), interpolation=cv2.INTER_LINEAR)
    return gx.astype(np.float32), gy.astype(np.float32)


def dis_offsets(pre: np.ndarray, post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV DIS optical flow on 8-bit versions of the robustly normalised images."""
    a, b = _normalise(pre), _normalise(post)
    lo = min(np.percentile(a, 0.5), np.percentile(b, 0.5))
    hi = max(np.percentile(a, 99.5), np.percentile(b, 99.5))
    to8 = lambda x: np.clip((x - lo) / (hi - lo + 1e-9) * 255.0 + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    flow = dis.calc(to8(a), to8(b), None)
    return flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32)
