"""Fusion network: shapes, metre outputs scale with the pixel-size channel, any modality subset works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.dataset import COMBOS, features_and_target, standin_scene
from models.network import build_model, correlation, warp


def test_correlation_peaks_at_the_true_shift() -> None:
    torch.manual_seed(0)
    f1 = torch.randn(1, 8, 24, 24)
    f2 = torch.roll(f1, shifts=(2, -1), dims=(2, 3))  # content moved by dy=+2, dx=-1
    c = correlation(f1, f2, 3)[0, :, 8:16, 8:16].mean((1, 2))
    k = int(c.argmax())
    assert (k // 7 - 3, k % 7 - 3) == (2, -1)


def test_warp_integer_shift_is_exact_inside() -> None:
    f = torch.arange(64.0).reshape(1, 1, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 1.0  # sample at x + 1
    out = warp(f, flow)
    assert torch.allclose(out[0, 0, :, :7], f[0, 0, :, 1:])


@pytest.mark.slow
def test_outputs_in_metres_scale_with_pixel_size_and_every_subset_runs() -> None:
    torch.manual_seed(0)
    model = build_model({}).eval()
    rec = standin_scene(3, (64, 64), pixel_size_m=10.0)
    for combo, present in COMBOS.items():
        x, _, _ = features_and_target(rec, present)
        xt = torch.from_numpy(x[None])
        with torch.no_grad():
            d, s = model(xt)
            x2 = xt.clone()
            x2[:, model.ix["pixel_size_m"]] *= 2.0
            d2, s2 = model(x2)
        assert d.shape == (1, 3, 64, 64) and s.shape == (1, 3, 64, 64), combo
        assert torch.isfinite(d).all() and (s > 0).all(), combo
        assert torch.allclose(d2, 2 * d, rtol=1e-5, atol=1e-6) and torch.allclose(s2, 2 * s, rtol=1e-5), combo


@pytest.mark.slow
def test_one_training_step_reduces_loss_on_a_fixed_batch() -> None:
    from models.train import laplace_nll

    torch.manual_seed(0)
    model = build_model({})
    items = [features_and_target(standin_scene(s, (64, 64)), COMBOS["all"]) for s in range(2)]
    x = torch.from_numpy(np.stack([i[0] for i in items]))
    t = torch.from_numpy(np.stack([i[1] for i in items]))
    v = torch.from_numpy(np.stack([i[2] for i in items]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    losses = []
    for _ in range(6):
        d, lb, _ = model.forward_px(x)
        loss, _ = laplace_nll(d, lb, t, v)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
