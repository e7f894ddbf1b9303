"""Shared building blocks of the fusion network (PyTorch): channels by name, context channels, a U-Net, units.

Displacement of the image content: ``post(x + d) = pre(x)`` with ``d = (dx, dy)`` in pixels (columns, rows);
east = dx, north = -dy (rows grow southwards). The uncertainty head predicts a Laplace scale ``b``; the output
``sigma`` is its standard deviation ``sqrt(2) b``. The network itself is ``models/fusion.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models import frontend as fe
from models.channels import CHANNELS, OPTIONAL_CHANNELS

LOGB_MIN, LOGB_MAX = -7.0, 3.0  # Laplace scale in pixels: 9e-4 .. 20 px
SQRT2 = math.sqrt(2.0)


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1))


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)




class FusionBase(nn.Module):
    """What both designs share: channels by name, the 15 context channels, a 4-level U-Net, pixels -> metres.

    Subclasses define ``forward_px(x) -> (d, logb, predictions)`` with ``d = (dx, dy, up)`` in pixels."""

    def __init__(self, channels: list[str] | None = None) -> None:
        super().__init__()
        self.set_channels(list(channels or CHANNELS))

    def set_channels(self, channels: list[str]) -> None:
        """The input channel order (no weight depends on it: channels are read by name)."""
        self.channels = list(channels)
        self.ix = {n: i for i, n in enumerate(self.channels)}
        # the one channel list: models/channels.py
        missing = [n for n in CHANNELS if n not in self.ix and n not in OPTIONAL_CHANNELS]
        if missing:
            raise ValueError(f"{type(self).__name__}: channels missing {missing}")

    def c(self, x: torch.Tensor, name: str) -> torch.Tensor:
        i = self.ix[name]
        return x[:, i:i + 1]

    def context(self, x: torch.Tensor, pool: int = 1) -> torch.Tensor:
        """15 channels: InSAR cos/sin, coherence, wrapped-phase LOS gradients (pixels per pixel towards the
        satellite, x300 to order 1), log fringe size, DEM slopes, LOS vector, the four masks; ``pool`` > 1: averaged
        over pool x pool cells (the same values as pooling the full-resolution channels: the channels taken as they
        are come from one pooling of ``x``, the derived ones are pooled after they are computed)."""
        c = self.c
        mi, fr = c(x, "mask_insar"), c(x, "fringe_px")
        pc, ps = c(x, "phase_cos"), c(x, "phase_sin")
        g = [-dphi / (2.0 * math.pi) * fr * 300.0 for dphi in fe.phase_gradient(pc, ps, mi)]
        logfr = (torch.log10(fr.clamp(min=1e-6)) + 2.5) * mi
        if pool > 1:
            xp = F.avg_pool2d(x, pool)
            g, logfr = [F.avg_pool2d(t, pool) for t in g], F.avg_pool2d(logfr, pool)
        else:
            xp = x
        cp = lambda name: self.c(xp, name)  # noqa: E731
        return torch.cat([cp("phase_cos"), cp("phase_sin"), cp("coherence"), g[0], g[1], logfr, cp("dem_slope_east"),
                          cp("dem_slope_north"), cp("los_east"), cp("los_north"), cp("los_up"),
                          cp("mask_optical"), cp("mask_sar"), cp("mask_insar"), cp("mask_dem")], 1)

    def build_unet(self, cin: int, widths: tuple[int, int, int, int], first_stride: int) -> None:
        """Encoder e1..e4 (first level at input resolution / ``first_stride``, then halving) and decoder d3..d1."""
        w1, w2, w3, w4 = widths
        self.e1 = nn.Sequential(conv(cin, w1, first_stride), conv(w1, w1))
        self.e2 = nn.Sequential(conv(w1, w2, 2), conv(w2, w2))
        self.e3 = nn.Sequential(conv(w2, w3, 2), conv(w3, w3))
        self.e4 = nn.Sequential(conv(w3, w4, 2), conv(w4, w4))
        self.d3 = conv(w4 + w3, w3)
        self.d2 = conv(w3 + w2, w2)
        self.d1 = conv(w2 + w1, w1)

    def unet(self, x: torch.Tensor) -> torch.Tensor:
        """U-Net pass; returns the decoder features at the first level's resolution."""
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        e4 = self.e4(e3)
        d3 = self.d3(torch.cat([up2(e4), e3], 1))
        d2 = self.d2(torch.cat([up2(d3), e2], 1))
        return self.d1(torch.cat([up2(d2), e1], 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B,C,H,W) -> displacement_enu_m (B,3,H,W), sigma_enu_m (B,3,H,W)."""
        d, logb, _ = self.forward_px(x)
        ps = self.c(x, "pixel_size_m")
        return enu_px_from_d(d) * ps, SQRT2 * torch.exp(logb) * ps


def enu_px_from_d(d: torch.Tensor) -> torch.Tensor:
    """(dx, dy, up) pixels -> (east, north, up) pixels."""
    return torch.cat([d[:, 0:1], -d[:, 1:2], d[:, 2:3]], 1)
