"""Classical baselines used in the evaluation recover a known sub-pixel shift."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from models.baselines import dis_offsets, phase_correlation_offsets


def _pair(dx: float, dy: float, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    tex = ndimage.gaussian_filter(rng.standard_normal((n + 60, n + 60)), 1.5)
    yy, xx = np.mgrid[0:n, 0:n].astype(float) + 30
    pre = ndimage.map_coordinates(tex, [yy, xx], order=3)
    post = ndimage.map_coordinates(tex, [yy - dy, xx - dx], order=3)  # post(x + d) = pre(x)
    return pre, post


def test_phase_correlator_and_dis_recover_subpixel_shift() -> None:
    pre, post = _pair(0.37, -1.26)
    gx, gy = phase_correlation_offsets(pre, post, window=32, step=4)
    inner = (slice(16, -16), slice(16, -16))
    assert abs(np.median(gx[inner]) - 0.37) < 0.03 and abs(np.median(gy[inner]) + 1.26) < 0.03
    fx, fy = dis_offsets(pre, post)
    assert abs(np.median(fx[inner]) - 0.37) < 0.05 and abs(np.median(fy[inner]) + 1.26) < 0.05
