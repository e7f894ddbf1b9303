"""QuakeFusion fusion network v2: classical in-graph measurements + learned, confidence-weighted fusion.

    features (B, C, H, W) -> displacement_enu_m (B, 3, H, W), sigma_enu_m (B, 3, H, W)

1. **Measurements** (fixed layers, ``models/frontend.py``): for the optical pair and the SAR (dB)
   pair, high-pass + contrast-normalised images, then Lucas-Kanade offsets at full resolution with
   ``windows`` (e.g. 17 and 41 px) and at 1/2 resolution (``coarse_window``, for offsets of a few
   pixels), each with its confidence (log det of the structure tensor, fit residual). InSAR:
   wrapped-phase gradients converted to LOS gradients in pixels per pixel. DEM slopes, LOS vector,
   fringe size and the availability masks come straight from the feature stack.
2. **U-Net** (1/2 .. 1/16 resolution) on all of it, predicting at 1/2 resolution:
   * ``K + 1`` fusion weights (softmax) over the K full-resolution offset measurements and "zero",
     so the horizontal estimate is a convex, per-pixel confidence-weighted mix of measurements
     (it can shrink noisy ones towards 0 but never amplify them);
   * a learned correction of (dx, dy) and the vertical component (from InSAR, DEM and context);
   * the log Laplace scale of each component.
   The weights and corrections are upsampled to full resolution and applied to the full-resolution
   measurements, so sharp offsets across the rupture are kept.
3. Pixels -> metres: multiplied by the ``pixel_size_m`` channel in the graph.

Conventions as in ``models/network.py``: ``d = (dx, dy, up)`` in pixels, east = dx, north = -dy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models import frontend as fe
from models.network import LOGB_MAX, LOGB_MIN, FusionBase, up2


class LKFusionNet(FusionBase):
    def __init__(self, channels: list[str] | None = None, windows: tuple[int, ...] = (9, 21, 41),
                 coarse_window: int = 17,
                 widths: tuple[int, int, int, int] = (32, 48, 64, 96), c_stem: int = 32, eps: float = 1e-2) -> None:
        super().__init__(channels)
        self.windows, self.coarse_window, self.eps = tuple(windows), int(coarse_window), float(eps)
        self.register_buffer("k_fine", fe.gaussian_kernel(0.5), persistent=False)
        self.register_buffer("k_coarse", fe.gaussian_kernel(3.0), persistent=False)
        self.n_est = 2 * (len(self.windows) + 1)  # optical + SAR, each: windows + coarse
        n_in = self.n_est * 2 + self.n_est * 2 + 2 + 15  # offsets, confidences, optical images, context
        w1 = widths[0]
        self.stem = nn.Sequential(nn.Conv2d(n_in, c_stem, 1), nn.LeakyReLU(0.1))
        self.build_unet(c_stem, widths, 2)
        n_w = self.n_est + 1
        self.head = nn.Conv2d(w1, n_w + 3 + 3, 3, 1, 1)  # fusion logits, (dx, dy, up) correction, log b
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[self.n_est] = 2.0  # start mostly at "zero displacement"
            self.head.bias[n_w + 3:] = math.log(0.1)

    def _pair(self, pre: torch.Tensor, post: torch.Tensor,
              m: torch.Tensor) -> tuple[list, list, torch.Tensor, torch.Tensor]:
        a, b, terms = fe.pair_terms(pre, post, m, self.k_fine, self.k_coarse)
        ests, confs = [], []
        for s in fe.boxes(terms, self.windows):  # one shared running sum for all windows
            d, ldet, lres = fe.lk_from_sums(s, self.eps)
            ests.append(d * m)
            confs += [0.2 * ldet * m, 0.3 * lres * m]
        terms2 = fe.structure_terms(F.avg_pool2d(a, 2), F.avg_pool2d(b, 2))
        d2, ldet2, lres2 = fe.lucas_kanade(terms2, self.coarse_window, self.eps)
        ests.append(up2(d2 * 2.0) * m)
        confs += [0.2 * up2(ldet2) * m, 0.3 * up2(lres2) * m]
        return ests, confs, a, b

    def measurements(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K classical offset estimates stacked (B, 2K, H, W) px, network input (B, n_in, H, W))."""
        c = self.c
        mo, ms = c(x, "mask_optical"), c(x, "mask_sar")
        eo, co, a, b = self._pair(c(x, "optical_pre"), c(x, "optical_post"), mo)
        es, cs, _, _ = self._pair(c(x, "sar_pre_db"), c(x, "sar_post_db"), ms)
        ests = torch.cat(eo + es, 1)
        inp = torch.cat([ests, *co, *cs, a, b - a, self.context(x)], 1)
        return ests, inp

    def forward_px(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        ests, inp = self.measurements(x)
        out = up2(self.head(self.unet(self.stem(inp))))
        k = self.n_est
        wts = torch.softmax(out[:, :k + 1], 1)
        dx = (wts[:, :k] * ests[:, 0::2]).sum(1, keepdim=True)
        dy = (wts[:, :k] * ests[:, 1::2]).sum(1, keepdim=True)
        d = torch.cat([dx, dy, torch.zeros_like(dx)], 1) + out[:, k + 1:k + 4]
        logb = out[:, k + 4:k + 7].clamp(LOGB_MIN, LOGB_MAX)
        return d, logb, [(d, logb)]
