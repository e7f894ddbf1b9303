"""QuakeFusion fusion network (PyTorch): multi-modal features -> east/north/up displacement + 1-sigma.

Design (pixel units inside, metres at the output):

1. **Pair encoders** (optical, SAR: separate weights, each shared between pre and post) give
   full-resolution (``c_full``) and half-resolution (``c_half``) features.
2. **Local cost volume** at 1/2 resolution, ``(2r+1)^2`` shifts by padding + constant slices
   (ONNX-exportable, no custom op): ``corr[dy,dx](x) = <f_pre(x), f_post(x + d)>``. Shift ``r`` at
   1/2 resolution covers +-2r full-resolution pixels.
3. **U-Net** at 1/2 .. 1/16 resolution on [optical cost, SAR cost, optical context, auxiliary
   channels (InSAR cos/sin, coherence, wrapped-phase LOS gradients, DEM slopes, LOS vector,
   log fringe size, masks)] -> initial (dx, dy, up) in full-resolution pixels + log-scale.
4. **RAFT-style refinement** at full resolution (``iters`` times, shared weights): warp the post
   optical features by the current estimate (``grid_sample``), local correlation +-1, residual
   update of the displacement and of the log-scale (GeoFlowNet-like full-resolution head).
5. Pixel -> metre conversion in the graph: multiply by the ``pixel_size_m`` channel.

Displacement of the image content: ``post(x + d) = pre(x)`` with ``d = (dx, dy)`` in pixels
(columns, rows); east = dx, north = -dy (rows grow southwards). The uncertainty head predicts a
Laplace scale ``b``; the output ``sigma`` is its standard deviation ``sqrt(2) b``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models import frontend as fe
from models.channels import CHANNELS

LOGB_MIN, LOGB_MAX = -7.0, 3.0  # Laplace scale in pixels: 9e-4 .. 20 px
SQRT2 = math.sqrt(2.0)


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1))


def correlation(f1: torch.Tensor, f2: torch.Tensor, r: int) -> torch.Tensor:
    """Local correlation, (2r+1)^2 channels: mean_c f1(x) * f2(x + (dx, dy)), zero outside."""
    f2p = F.pad(f2, (r, r, r, r))
    out = []
    for dy in range(-r, r + 1):
        ye = dy - r if dy < r else None
        for dx in range(-r, r + 1):
            xe = dx - r if dx < r else None
            out.append((f1 * f2p[:, :, r + dy:ye, r + dx:xe]).mean(1, keepdim=True))
    return torch.cat(out, 1)


def warp(f: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``f`` at ``x + flow`` (flow = (dx, dy) in pixels), bilinear, zeros outside."""
    ones = torch.ones_like(flow[:, :1])
    xs = ones.cumsum(3) - 1.0
    ys = ones.cumsum(2) - 1.0
    w1 = xs[:, :, :, -1:].clamp(min=1.0)  # W - 1 (dynamic, no Python ints)
    h1 = ys[:, :, -1:, :].clamp(min=1.0)
    gx = (xs + flow[:, 0:1]) / w1 * 2.0 - 1.0
    gy = (ys + flow[:, 1:2]) / h1 * 2.0 - 1.0
    grid = torch.cat([gx, gy], 1).permute(0, 2, 3, 1)
    return F.grid_sample(f, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class PairEncoder(nn.Module):
    def __init__(self, c_full: int, c_half: int) -> None:
        super().__init__()
        self.enc_full = nn.Sequential(conv(1, c_full), conv(c_full, c_full))
        self.enc_half = nn.Sequential(conv(c_full, c_half, 2), conv(c_half, c_half), nn.Conv2d(c_half, c_half, 3, 1, 1))

    def forward(self, pre: torch.Tensor, post: torch.Tensor):
        n = pre.shape[0]
        full = self.enc_full(torch.cat([pre, post], 0))
        half = self.enc_half(full)
        return full[:n], full[n:], half[:n], half[n:]


NEED = ["optical_pre", "optical_post", "sar_pre_db", "sar_post_db", "phase_cos", "phase_sin", "coherence",
        "dem_slope_east", "dem_slope_north", "los_east", "los_north", "los_up", "fringe_px", "pixel_size_m",
        "mask_optical", "mask_sar", "mask_insar", "mask_dem"]


class FusionBase(nn.Module):
    """What both designs share: channels by name, the 15 context channels, a 4-level U-Net, pixels -> metres.

    Subclasses define ``forward_px(x) -> (d, logb, predictions)`` with ``d = (dx, dy, up)`` in pixels."""

    def __init__(self, channels: list[str] | None = None) -> None:
        super().__init__()
        self.channels = list(channels or CHANNELS)
        self.ix = {n: i for i, n in enumerate(self.channels)}
        missing = [n for n in NEED if n not in self.ix]
        if missing:
            raise ValueError(f"{type(self).__name__}: channels missing {missing}")

    def c(self, x: torch.Tensor, name: str) -> torch.Tensor:
        i = self.ix[name]
        return x[:, i:i + 1]

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """15 channels: InSAR cos/sin, coherence, wrapped-phase LOS gradients (pixels per pixel towards the
        satellite, x300 to order 1), log fringe size, DEM slopes, LOS vector, the four masks."""
        c = self.c
        mi, fr = c(x, "mask_insar"), c(x, "fringe_px")
        pc, ps = c(x, "phase_cos"), c(x, "phase_sin")
        g = [-dphi / (2.0 * math.pi) * fr * 300.0 for dphi in fe.phase_gradient(pc, ps, mi)]
        logfr = (torch.log10(fr.clamp(min=1e-6)) + 2.5) * mi
        return torch.cat([pc, ps, c(x, "coherence"), g[0], g[1], logfr, c(x, "dem_slope_east"),
                          c(x, "dem_slope_north"), c(x, "los_east"), c(x, "los_north"), c(x, "los_up"),
                          c(x, "mask_optical"), c(x, "mask_sar"), mi, c(x, "mask_dem")], 1)

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


class QuakeFusionNet(FusionBase):
    def __init__(self, channels: list[str] | None = None, c_full: int = 16, c_half: int = 32, radius: int = 4,
                 widths: tuple[int, int, int, int] = (48, 64, 80, 80), c_aux: int = 24, iters: int = 1,
                 use_sar_corr: bool = True, use_corr: bool = True) -> None:
        super().__init__(channels)
        self.radius, self.iters, self.use_sar_corr, self.use_corr = radius, iters, use_sar_corr, use_corr
        # use_corr=False: GeoFlowNet-like, the U-Net sees the stacked pre/post features instead of a cost volume
        ncorr = (2 * radius + 1) ** 2 if use_corr else 2 * c_half
        self.opt_enc = PairEncoder(c_full, c_half)
        self.sar_enc = PairEncoder(c_full, c_half) if use_sar_corr else None
        self.aux_full = conv(15, c_aux)  # the context channels
        self.aux_half = conv(c_aux, c_aux, 2)
        w1 = widths[0]
        self.build_unet(ncorr * (2 if use_sar_corr else 1) + c_half + c_aux, widths, 1)
        self.head = nn.Conv2d(w1, 6, 3, 1, 1)
        self.hid = nn.Conv2d(w1, 16, 1)
        rin = 9 + c_full + 16 + c_aux + 6
        self.refine = nn.Sequential(conv(rin, 32), conv(32, 32), nn.Conv2d(32, 6, 3, 1, 1))
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.refine[-1].weight.mul_(0.01)
            self.refine[-1].bias.zero_()

    def forward_px(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Returns (d, logb, all_predictions) with d = (dx, dy, up) in pixels at full resolution."""
        c = self.c
        mo, ms = c(x, "mask_optical"), c(x, "mask_sar")
        o1f, o2f, o1h, o2h = self.opt_enc(c(x, "optical_pre"), c(x, "optical_post"))
        mo_h = F.avg_pool2d(mo, 2)
        pair = (lambda a, b: correlation(a, b, self.radius)) if self.use_corr else (lambda a, b: torch.cat([a, b], 1))
        feats = [pair(o1h, o2h) * mo_h]
        if self.sar_enc is not None:
            _, _, s1h, s2h = self.sar_enc(c(x, "sar_pre_db"), c(x, "sar_post_db"))
            feats.append(pair(s1h, s2h) * F.avg_pool2d(ms, 2))
        aux_f = self.aux_full(self.context(x))
        feats += [o1h * mo_h, self.aux_half(aux_f)]
        d1 = self.unet(torch.cat(feats, 1))
        out = up2(self.head(d1))
        d, logb = out[:, :3], out[:, 3:]
        logb = logb.clamp(LOGB_MIN, LOGB_MAX)
        preds = [(d, logb)]
        hid = up2(self.hid(d1))
        for _ in range(self.iters):
            o2w = warp(o2f, d[:, :2])
            corr = correlation(o1f, o2w, 1) * mo
            delta = self.refine(torch.cat([corr, (o1f - o2w) * mo, hid, aux_f, d, logb], 1))
            d = d + delta[:, :3]
            logb = (logb + delta[:, 3:]).clamp(LOGB_MIN, LOGB_MAX)
            preds.append((d, logb))
        return d, logb, preds


def enu_px_from_d(d: torch.Tensor) -> torch.Tensor:
    """(dx, dy, up) pixels -> (east, north, up) pixels."""
    return torch.cat([d[:, 0:1], -d[:, 1:2], d[:, 2:3]], 1)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(cfg: dict | None = None) -> nn.Module:
    """``cfg["arch"]``: ``"lk_fusion"`` (default, ``models/fusion.py``) or ``"cost_volume"`` (the first,
    collapsed design, kept for the ablation)."""
    cfg = dict(cfg or {})
    arch = cfg.pop("arch", "lk_fusion")
    for k in ("widths", "windows"):
        if k in cfg:
            cfg[k] = tuple(cfg[k])
    if arch == "cost_volume":
        return QuakeFusionNet(**cfg)
    from models.fusion import LKFusionNet

    return LKFusionNet(**cfg)
