"""A fault step under control: how the front end's candidates read a known step on real texture, with and without
noise (diagnosis for issue #11; numbers in models/MODEL_CARD.md).

    .venv/bin/python tools/controlled_step.py [--steps 0.4 1 3] [--noise 0 0.1 0.3] [--ckpt CHECKPOINT]

One real Sentinel-2 image (bundled ``data/sentinel2_berlin_2016``, 640^2 read, centre 384^2 used). The post image is
the same image shifted exactly (Fourier shift of the larger read, then cropped: no wrap-around at the crop) by
+S/2 px left and -S/2 px right of a vertical fault through the centre: a pure step S in the fault-parallel (y)
component, no smear. Both dates get independent white noise of ``noise`` x the image's standard deviation.

Prints the step error (mean over ``--seeds`` noise draws) of three candidates (15-px, 7-px, 31-px full windows)
as the model reads it (1 full-resolution iteration, the residual-weighted mix carried between levels) and with
4 iterations carrying the mix of the sharp windows (``between='sharp'``). Error = (mean over 3..33 px right -
mean over 3..33 px left) / true step - 1, along the 304 inner rows. A uniform shift of the same size is printed
alongside (mean estimate / true): the front end's gain away from any discontinuity.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import rasterio
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.export import load_checkpoint  # noqa: E402

IMAGE = ROOT / "data" / "sentinel2_berlin_2016" / "ref_S2A_20160608_B03_crop.tif"
N, PAD, EDGE, BAND = 384, 128, 40, (3, 33)


def fourier_shift_rows(a: np.ndarray, dy: float) -> np.ndarray:
    """``a`` moved by ``dy`` px down the rows (exact for a band-limited periodic image)."""
    ky = np.fft.fftfreq(a.shape[0])[:, None]
    return np.real(np.fft.ifft2(np.fft.fft2(a) * np.exp(-2j * np.pi * ky * dy)))


def read_dy(model: torch.nn.Module, pre: np.ndarray, post: np.ndarray, iters: int, between: str) -> np.ndarray:
    """Candidates' y offsets (K, H, W) px."""
    t = lambda a: torch.from_numpy(a[None, None]).float()  # noqa: E731
    model.iters, model.between = iters, between
    with torch.no_grad():
        cands = model.pair_flow(t(pre), t(post), torch.ones(1, 1, *pre.shape), model.r_full, iters)[0]
    return cands[0, :, 1].numpy()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=float, nargs="+", default=[0.4, 1.0, 3.0])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    ap.add_argument("--seeds", type=int, default=4, help="noise draws averaged (the mean error is printed)")
    ap.add_argument("--ckpt", type=Path, default=ROOT / "runs" / "warp_fusion_blind" / "best.pt")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = load_checkpoint(a.ckpt)[0].eval()
    with rasterio.open(IMAGE) as ds:
        big = ds.read(1, window=((192, 192 + N + 2 * PAD), (192, 192 + N + 2 * PAD))).astype(np.float64)
    crop = (slice(PAD, PAD + N), slice(PAD, PAD + N))
    img, c0 = big[crop], N // 2
    left = np.arange(N)[None, :] < c0
    inner = slice(EDGE, N - EDGE)
    for noise in a.noise:
        for s in a.steps:
            errs, gains = {}, []
            for seed in range(a.seeds if noise > 0 else 1):
                rng = np.random.default_rng(seed)
                post = np.where(left, fourier_shift_rows(big, s / 2)[crop], fourier_shift_rows(big, -s / 2)[crop])
                pre_n = img + noise * img.std() * rng.standard_normal(img.shape)
                post_n = post + noise * img.std() * rng.standard_normal(img.shape)
                uni_n = fourier_shift_rows(big, s)[crop] + noise * img.std() * rng.standard_normal(img.shape)
                for label, iters, between in (("1 it", 1, "soft"), ("4 it sharp", 4, "sharp")):
                    dy = read_dy(model, pre_n, post_n, iters, between)
                    for k, win in ((0, "15"), (5, "7"), (6, "31")):
                        p = dy[k][inner].mean(0)
                        step = p[c0 + BAND[0]:c0 + BAND[1]].mean() - p[c0 - BAND[1]:c0 - BAND[0]].mean()
                        errs.setdefault((label, win), []).append(step / -s - 1)
                gains.append(read_dy(model, pre_n, uni_n, 1, "soft")[5][inner, inner].mean() / s)
            cells = []
            for label in ("1 it", "4 it sharp"):
                cells.append(f"{label}: " + " ".join(f"{w}px {np.mean(errs[(label, w)]):+6.1%}"
                                                     for w in ("15", "7", "31")))
            print(f"noise {noise:.1f} step {s:.1f} px | " + " | ".join(cells)
                  + f" | uniform shift, 7px gain {np.mean(gains):.3f}", flush=True)

if __name__ == "__main__":
    main()
