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
from models.channels import CHANNELS
from models.network import LOGB_MAX, LOGB_MIN, SQRT2, conv, up2

NEED = ["optical_pre", "optical_post", "sar_pre_db", "sar_post_db", "phase_cos", "phase_sin", "coherence",
        "dem_slope_east", "dem_slope_north", "los_east", "los_north", "los_up", "fringe_px", "pixel_size_m",
        "mask_optical", "mask_sar", "mask_insar", "mask_dem"]


class LKFusionNet(nn.Module):
    def __init__(self, channels: list[str] | None = None, windows: tuple[int, ...] = (9, 21, 41),
                 coarse_window: int = 17,
                 widths: tuple[int, int, int, int] = (32, 48, 64, 96), c_stem: int = 32, eps: float = 1e-2) -> None:
        super().__init__()
        self.channels = list(channels or CHANNELS)
        self.ix = {n: i for i, n in enumerate(self.channels)}
        missing = [n for n in NEED if n not in self.ix]
        if missing:
            raise ValueError(f"LKFusionNet: channels missing {missing}")
        self.windows, self.coarse_window, self.eps = tuple(windows), int(coarse_window), float(eps)
        self.register_buffer("k_fine", fe.gaussian_kernel(0.5), persistent=False)
        self.register_buffer("k_coarse", fe.gaussian_kernel(3.0), persistent=False)
        self.n_est = 2 * (len(self.windows) + 1)  # optical + SAR, each: windows + coarse
        n_in = self.n_est * 2 + self.n_est * 2 + 2 + 15  # offsets, confidences, optical images, aux
        w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(nn.Conv2d(n_in, c_stem, 1), nn.LeakyReLU(0.1))
        self.e1 = nn.Sequential(conv(c_stem, w1, 2), conv(w1, w1))
        self.e2 = nn.Sequential(conv(w1, w2, 2), conv(w2, w2))
        self.e3 = nn.Sequential(conv(w2, w3, 2), conv(w3, w3))
        self.e4 = nn.Sequential(conv(w3, w4, 2), conv(w4, w4))
        self.d3 = conv(w4 + w3, w3)
        self.d2 = conv(w3 + w2, w2)
        self.d1 = conv(w2 + w1, w1)
        n_w = self.n_est + 1
        self.head = nn.Conv2d(w1, n_w + 3 + 3, 3, 1, 1)  # fusion logits, (dx, dy, up) correction, log b
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[self.n_est] = 2.0  # start mostly at "zero displacement"
            self.head.bias[n_w + 3:] = math.log(0.1)

    def c(self, x: torch.Tensor, name: str) -> torch.Tensor:
        i = self.ix[name]
        return x[:, i:i + 1]

    def _pair(self, pre: torch.Tensor, post: torch.Tensor,
              m: torch.Tensor) -> tuple[list, list, torch.Tensor, torch.Tensor]:
        a = fe.highpass_normalise(pre, self.k_fine, self.k_coarse) * m
        b = fe.highpass_normalise(post, self.k_fine, self.k_coarse) * m
        terms = fe.structure_terms(a, b)
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

    def _aux(self, x: torch.Tensor) -> torch.Tensor:
        c = self.c
        mi, fr = c(x, "mask_insar"), c(x, "fringe_px")
        pc, ps = c(x, "phase_cos"), c(x, "phase_sin")
        gx, gy = fe.phase_gradient(pc, ps, mi)
        # LOS change towards the satellite, in pixels per pixel (scaled x300 to order 1)
        g = [-dphi / (2.0 * math.pi) * fr * 300.0 for dphi in (gx, gy)]
        logfr = (torch.log10(fr.clamp(min=1e-6)) + 2.5) * mi
        return torch.cat([pc, ps, c(x, "coherence"), g[0], g[1], logfr, c(x, "dem_slope_east"),
                          c(x, "dem_slope_north"), c(x, "los_east"), c(x, "los_north"), c(x, "los_up"),
                          c(x, "mask_optical"), c(x, "mask_sar"), mi, c(x, "mask_dem")], 1)

    def measurements(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K classical offset estimates stacked (B, 2K, H, W) px, network input (B, n_in, H, W))."""
        c = self.c
        mo, ms = c(x, "mask_optical"), c(x, "mask_sar")
        eo, co, a, b = self._pair(c(x, "optical_pre"), c(x, "optical_post"), mo)
        es, cs, _, _ = self._pair(c(x, "sar_pre_db"), c(x, "sar_post_db"), ms)
        ests = torch.cat(eo + es, 1)
        inp = torch.cat([ests, *co, *cs, a, b - a, self._aux(x)], 1)
        return ests, inp

    def forward_px(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        ests, inp = self.measurements(x)
        e1 = self.e1(self.stem(inp))
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        e4 = self.e4(e3)
        d3 = self.d3(torch.cat([up2(e4), e3], 1))
        d2 = self.d2(torch.cat([up2(d3), e2], 1))
        d1 = self.d1(torch.cat([up2(d2), e1], 1))
        out = up2(self.head(d1))
        k = self.n_est
        wts = torch.softmax(out[:, :k + 1], 1)
        dx = (wts[:, :k] * ests[:, 0::2]).sum(1, keepdim=True)
        dy = (wts[:, :k] * ests[:, 1::2]).sum(1, keepdim=True)
        d = torch.cat([dx, dy, torch.zeros_like(dx)], 1) + out[:, k + 1:k + 4]
        logb = out[:, k + 4:k + 7].clamp(LOGB_MIN, LOGB_MAX)
        return d, logb, [(d, logb)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, logb, _ = self.forward_px(x)
        ps = self.c(x, "pixel_size_m")
        enu_px = torch.cat([d[:, 0:1], -d[:, 1:2], d[:, 2:3]], 1)
        return enu_px * ps, SQRT2 * torch.exp(logb) * ps
