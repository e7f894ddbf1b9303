"""In-graph classical layers of the fusion network (models/frontend.py): exact box sums, sub-pixel
Lucas-Kanade on a real Sentinel-2 texture, robustness to an illumination gain, NaN-safe phase gradient."""

from __future__ import annotations

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from scipy import ndimage

from models import frontend as fe
from tests.conftest import ROOT

S2 = ROOT / "data" / "sentinel2_berlin_2016" / "ref_S2A_20160608_B03_crop.tif"


def _texture(size: int = 160) -> np.ndarray:
    with rasterio.open(S2) as ds:
        a = ds.read(1, window=((100, 100 + size), (100, 100 + size))).astype(np.float64)
    return (a - np.median(a)) / (a.std() + 1e-9)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]


def test_running_sum_box_equals_average_pooling() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 37, 53)
    for w in (3, 17, 41):
        ref = F.avg_pool2d(F.avg_pool2d(x, (1, w), 1, (0, w // 2), count_include_pad=False),
                           (w, 1), 1, (w // 2, 0), count_include_pad=False)
        assert torch.allclose(fe.box(x, w), ref, atol=2e-5), w


def test_lucas_kanade_measures_subpixel_shifts_of_real_texture_with_a_known_gain() -> None:
    """Central-difference gradients attenuate fine texture, so LK over-reads a shift by ~10-30 %
    (measured 0.119 px for 0.1 px, 1.27 for 1.0 on this Sentinel-2 crop); the learned fusion weights
    (convex, can only shrink) calibrate it. Sign, linearity and the both-axes solve are checked here."""
    tex = _texture()
    kf, kc = fe.gaussian_kernel(0.5), fe.gaussian_kernel(3.0)
    for dx, dy in [(0.1, 0.0), (0.3, -0.2), (-0.7, 0.45), (0.0, 1.0)]:
        post = ndimage.shift(tex, (dy, dx), order=3, mode="mirror")  # content moves by +dx columns, +dy rows
        a, b = fe.highpass_normalise(_t(tex), kf, kc), fe.highpass_normalise(_t(post), kf, kc)
        d, _, _ = fe.lucas_kanade(fe.structure_terms(a, b), 41)
        med = d[0, :, 30:-30, 30:-30].flatten(1).median(1).values.numpy()
        for got, true in zip(med, (dx, dy)):
            if true == 0.0:
                assert abs(got) < 0.05, (med, dx, dy)
            else:
                assert 1.0 <= got / true <= 1.35, (med, dx, dy)
    # a few pixels: the 1/2-resolution estimate, as the network uses it, still has the right size and sign
    post = ndimage.shift(tex, (0.0, 1.5), order=3, mode="mirror")
    a, b = fe.highpass_normalise(_t(tex), kf, kc), fe.highpass_normalise(_t(post), kf, kc)
    d2, _, _ = fe.lucas_kanade(fe.structure_terms(F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)), 17)
    med = (2.0 * d2[0, :, 15:-15, 15:-15]).flatten(1).median(1).values.numpy()
    assert 1.2 < med[0] < 2.6 and abs(med[1]) < 0.1, med


def test_highpass_makes_the_estimate_insensitive_to_a_smooth_gain() -> None:
    tex = _texture()
    yy, xx = np.mgrid[0:160, 0:160]
    gain = 1.0 + 0.4 * np.sin(xx / 40.0) * np.cos(yy / 55.0)  # smooth illumination change, no motion
    kf, kc = fe.gaussian_kernel(0.5), fe.gaussian_kernel(3.0)
    raw, _, _ = fe.lucas_kanade(fe.structure_terms(_t(tex), _t(tex * gain + 0.5 * (gain - 1))), 41)
    a, b = fe.highpass_normalise(_t(tex), kf, kc), fe.highpass_normalise(_t(tex * gain + 0.5 * (gain - 1)), kf, kc)
    hp, _, _ = fe.lucas_kanade(fe.structure_terms(a, b), 41)
    err_raw = raw[0, :, 30:-30, 30:-30].abs().mean().item()
    err_hp = hp[0, :, 30:-30, 30:-30].abs().mean().item()
    assert err_hp < 0.02 and err_hp < 0.5 * err_raw, (err_hp, err_raw)


def test_phase_gradient_is_wrapped_and_zero_where_masked() -> None:
    phi = np.tile(np.arange(10) * 2.5, (4, 1))  # 2.5 rad per column: wraps every ~2.5 px
    pc, ps = _t(np.cos(phi)), _t(np.sin(phi))
    valid = torch.ones_like(pc)
    valid[..., 2, :] = 0
    gx, gy = fe.phase_gradient(pc, ps, valid)
    assert np.allclose(gx[0, 0, 0, :-1].numpy(), 2.5, atol=1e-5)
    assert (gx[0, 0, 2] == 0).all() and (gy[0, 0, 1] == 0).all()
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


def test_shared_running_sum_equals_separate_boxes() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 6, 45, 70)
    for w, b in zip((9, 21, 41), fe.boxes(x, (9, 21, 41))):
        assert torch.allclose(b, fe.box(x, w), atol=1e-5), w
