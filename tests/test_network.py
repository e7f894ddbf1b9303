"""The shipped fusion network (``build_model({})``): shapes, metre outputs scale with the pixel-size channel, any
modality subset works, a training step lowers the loss. (The tests of the first, cost-volume design's helpers are
gone with it.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.dataset import COMBOS, features_and_target, standin_scene
from models.network import build_model


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
