"""Make the co-registered real two-date Sentinel-2 pair shipped in data/sentinel2_berlin_2016/ (run once).

    python tools/make_s2_pair.py /path/to/shared/data/sentinel2_berlin_2016

Reads the two arosics test scenes (ref 2016-06-08, tgt 2016-05-29, band B03, 10 m, EPSG:32633), cuts their common
map window (1792 x 2560 px), removes the tgt's deliberate global misregistration (phase correlation, sub-pixel by
iterative refinement; applied with a cubic spline shift) and writes ``pair_ref.tif`` / ``pair_tgt.tif`` (uint16 DN,
deflate). The remaining date-to-date differences (season, clouds, fields, sensor noise, local misregistration of
the L1C product) are real and are what the simulator's ``s2_pair`` texture uses. Its training and held-out
evaluation windows are ``models.scene.PAIR_SPLIT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import from_bounds
from scipy import ndimage

ROWS, COLS = 2560, 1792
OUT = Path(__file__).resolve().parents[1] / "data" / "sentinel2_berlin_2016"


def global_shift(a: np.ndarray, b: np.ndarray, iters: int = 4) -> tuple[float, float]:
    """(dy, dx) with b(x + d) ~ a(x): phase correlation, then Lucas-Kanade refinement on the whole image."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    r = fa.conj() * fb
    c = np.fft.ifft2(r / (np.abs(r) + 1e-9)).real
    iy, ix = np.unravel_index(np.argmax(c), c.shape)
    d = np.array([iy if iy < c.shape[0] // 2 else iy - c.shape[0], ix if ix < c.shape[1] // 2 else ix - c.shape[1]],
                 float)
    for _ in range(iters):
        bw = ndimage.shift(b, -d, order=3, mode="nearest")
        gy, gx = np.gradient(0.5 * (a + bw))
        gt = bw - a
        m = slice(20, -20)
        s = np.array([[np.sum(gy[m, m] ** 2), np.sum(gy[m, m] * gx[m, m])],
                      [np.sum(gy[m, m] * gx[m, m]), np.sum(gx[m, m] ** 2)]])
        d -= np.linalg.solve(s, [np.sum(gy[m, m] * gt[m, m]), np.sum(gx[m, m] * gt[m, m])])
    return float(d[0]), float(d[1])


def main(src: str) -> None:
    src_dir = Path(src)
    ref = rasterio.open(src_dir / "ref_S2A_20160608T153121_T33UUU_sub.jp2")
    tgt = rasterio.open(src_dir / "tgt_S2A_20160529T153631_T33UUU_sub.jp2")
    left = max(ref.bounds.left, tgt.bounds.left) + 20
    top = min(ref.bounds.top, tgt.bounds.top) - 20
    bounds = (left, top - ROWS * 10.0, left + COLS * 10.0, top)
    a = ref.read(1, window=from_bounds(*bounds, ref.transform)).astype(np.float64)
    b = tgt.read(1, window=from_bounds(*bounds, tgt.transform)).astype(np.float64)
    assert a.shape == b.shape == (ROWS, COLS), (a.shape, b.shape)
    hp = [x - ndimage.gaussian_filter(x, 4) for x in (a, b)]
    dy, dx = global_shift(*hp)
    b_reg = ndimage.shift(b, (-dy, -dx), order=3, mode="nearest")
    print(f"tgt misregistration removed: dx = {dx:+.3f} px, dy = {dy:+.3f} px (rows down)")
    hp2 = hp[0], b_reg - ndimage.gaussian_filter(b_reg, 4)
    rdy, rdx = global_shift(*hp2, iters=2)
    print(f"residual after co-registration: dy, dx = {rdy:+.4f} {rdx:+.4f} px")
    transform = rasterio.transform.from_origin(bounds[0], bounds[3], 10.0, 10.0)
    prof = dict(driver="GTiff", width=COLS, height=ROWS, count=1, dtype="uint16", crs=ref.crs, transform=transform,
                compress="deflate", predictor=2, tiled=True, blockxsize=256, blockysize=256)
    for name, arr in (("pair_ref.tif", a), ("pair_tgt.tif", b_reg)):
        with rasterio.open(OUT / name, "w", **prof) as dst:
            dst.write(np.clip(np.round(arr), 0, 65535).astype(np.uint16), 1)
            dst.update_tags(source=name, coregistration_shift_px=f"dx={dx:.3f} dy={dy:.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sentinel2_berlin_2016")
