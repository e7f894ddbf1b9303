"""Physics-based multi-modal synthetic earthquake scenes (numpy/scipy only, no torch).

``simulate_scene(seed, size=(H, W), pixel_size_m=None, event=None) -> Scene`` — see docs/architecture.md
("Scene" contract) and docs/simulator.md. One output grid (UTM, north-up), all arrays float32.

Rendering principle (exact sub-pixel truth): every date-independent ground property (albedo, DEM, shading,
SAR backscatter, speckle) is built once on an *oversampled source grid* (factor ``OVERSAMPLE``, with a margin)
that is the continuous scene (cubic-spline interpolant for optical, linear for the speckle field). The pre
image samples it at the pixel centres x, the post image samples it at x - u(x) (u: true displacement at the
post pixel). No image is resampled twice.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from backend import conventions as cv
from backend.illumination import hillshade
from models.okada import Patch, patches_displacement
from models.slip_models import load_darfield, moment_magnitude

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
OVERSAMPLE = 2
MU = 3.0e10
# Version of what the simulator draws; records cached by an older one are simulated again (models.dataset). 2: the
# SAR amplitude is band-limited by SAR_PSF_PX (version 1 point-sampled a clutter texture that was white at half a
# pixel: aliased, unlike any SAR product, and it locked sub-pixel SAR offsets towards zero).
SIMULATOR_VERSION = 2
# 1-sigma (output pixels) of the SAR amplitude's impulse response: a geocoded pixel integrates over its footprint
# (a 1-px box, std 0.29 px) and the sensor's resolution cell. 0.5 px gives the real UAVSAR crops' single-look
# intensity statistics: lag-1 correlation 0.33-0.34 real, ~0.31 simulated (0.13 without); CV 1.66-1.79 real, ~1.56
# simulated (tests/test_simulator.py).
SAR_PSF_PX = 0.5
F32 = np.float32

ARRAY_KEYS = (
    "optical_pre", "optical_post", "sar_pre", "sar_post", "wrapped_phase", "coherence", "dem",
    "los_unit_vector", "truth_enu", "truth_los", "truth_unwrapped_phase", "rupture_mask", "distance_to_rupture_m",
)


@dataclass
class Scene:
    """One simulated scene; attribute access, ``scene["key"]`` and ``scene.arrays()``."""

    optical_pre: np.ndarray
    optical_post: np.ndarray
    sar_pre: np.ndarray
    sar_post: np.ndarray
    wrapped_phase: np.ndarray
    coherence: np.ndarray
    dem: np.ndarray
    los_unit_vector: np.ndarray
    truth_enu: np.ndarray
    truth_los: np.ndarray
    truth_unwrapped_phase: np.ndarray
    rupture_mask: np.ndarray
    distance_to_rupture_m: np.ndarray
    pixel_size_m: float
    wavelength_m: float
    phase_sign: int
    crs: int
    transform: tuple[float, float, float, float, float, float]
    params: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ARRAY_KEYS}

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)

    def keys(self) -> list[str]:
        return [*ARRAY_KEYS, "pixel_size_m", "wavelength_m", "phase_sign", "crs", "transform", "params"]

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


# ----------------------------------------------------------------------------------------------- real data


@functools.cache
def _read_raster(rel: str) -> tuple[np.ndarray, float]:
    """(array float32 with NaN for nodata, pixel size m) of a raster under data/ (cached per process)."""
    import rasterio  # local import: only needed when real data are used

    with rasterio.open(DATA_DIR / rel) as ds:
        a = ds.read(1).astype(np.float32)
        if ds.nodata is not None:
            a[a == ds.nodata] = np.nan
        res = abs(float(ds.transform.a))
    return a, res


def _fill_nan(a: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(a)
    if not bad.any():
        return a
    idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return a[tuple(idx)]


@functools.cache
def _real_dem(name: str) -> tuple[np.ndarray, float]:
    rel = {
        "aster_patagonia": "aster_dem_patagonia_2012/AST_L1A_00303182012144228_Z.tif",
        "clearlake": "isce3_dems/troposphere_clearlake_dem.tif",
    }[name]
    a, res = _read_raster(rel)
    a = _fill_nan(a)
    a = ndimage.median_filter(a, 3) if name == "aster_patagonia" else a  # ASTER blunders
    # cubic B-spline coefficients, computed once per process (sampled with prefilter=False)
    return ndimage.spline_filter(a.astype(np.float64), order=3, mode="mirror"), res


@functools.cache
def _real_texture(name: str) -> tuple[np.ndarray, float]:
    """Reflectance-like texture in ~[0, 1] (float32) and its pixel size."""
    rel = {
        "s2_berlin": "sentinel2_berlin_2016/ref_S2A_20160608_B03_crop.tif",
        "s2_berlin_tgt": "sentinel2_berlin_2016/tgt_S2A_20160529_B03_crop.tif",
        "landsat_everest": "landsat7_everest_2000/LE71400412000304SGS00_B4_crop.TIF",
    }[name]
    a, res = _read_raster(rel)
    a = _fill_nan(a)
    if name.startswith("s2"):
        a = a / 10000.0
    else:
        a = a / 255.0 * 0.6
    return a.astype(np.float32), res


# Real two-date Sentinel-2 pair (tools/make_s2_pair.py), (rows, cols) of each split; the training window avoids
# the first date's nodata wedge (columns < 541 above row 1810).
PAIR_SPLIT = {"train": ((0, 1700), (560, 1792)), "test": ((1820, 2560), (0, 1792))}
# effects_off (diagnosis); "cloud_nodata" is not an effect switched off but clouds set to nodata (a cloud mask applied)
EFFECTS = ("real_change", "sun", "psf", "coreg", "scan_band", "gain", "clouds", "noise", "quant", "gaps",
           "cloud_nodata")


@functools.cache
def _real_pair(region: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(first date, second date) reflectance ~[0, 1] of the co-registered real Sentinel-2 pair, one split region."""
    (r0, r1), (c0, c1) = PAIR_SPLIT[region]
    a, res = _read_raster("sentinel2_berlin_2016/pair_ref.tif")
    b, _ = _read_raster("sentinel2_berlin_2016/pair_tgt.tif")
    win = (slice(r0, r1), slice(c0, c1))
    return (a[win] / 10000.0).astype(np.float32), (b[win] / 10000.0).astype(np.float32), res


def _blobs(rng: np.random.Generator, shape: tuple[int, int], cover: float, beta: float = 3.2) -> np.ndarray:
    """Soft 0..1 blobs (clouds, gaps) covering about ``cover`` of the image."""
    f = _fractal(rng, shape, beta=beta)
    thr = np.quantile(f, 1.0 - cover)
    return np.clip((f - thr) / (0.3 * f.std() + 1e-9), 0.0, 1.0)


def _nuisance_coords(rng: np.random.Generator, H: int, W: int, off: set[str] = frozenset()
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Apparent shifts of the post image that are NOT ground motion (rows, cols, in output pixels): residual
    co-registration (shift + small affine) and scan-band / jitter misregistration (line-wise offsets)."""
    rr, cc = np.mgrid[0:H, 0:W].astype(np.float64)
    sh = rng.normal(0.0, 0.04, 2)
    aff = rng.normal(0.0, 3e-5, 4)
    dr = sh[0] + aff[0] * (rr - H / 2) + aff[1] * (cc - W / 2)
    dc = sh[1] + aff[2] * (rr - H / 2) + aff[3] * (cc - W / 2)
    if "coreg" in off:
        dr, dc = np.zeros_like(rr), np.zeros_like(cc)
    info: dict[str, Any] = {"coreg_shift_px": [float(sh[0]), float(sh[1])]}
    if rng.random() < 0.5:  # scan bands: blocks of rows with their own offset
        amp = float(rng.uniform(0.05, 0.3))
        hb = int(rng.integers(8, 64))
        nb = H // hb + 2
        band_off = rng.uniform(-amp, amp, (nb, 2))
        k = ((rr + rng.integers(0, hb)) // hb).astype(int)
        if "scan_band" not in off:
            dr = dr + band_off[k, 0] * 0.5
            dc = dc + band_off[k, 1]
        info["scan_band"] = {"amplitude_px": amp, "rows": hb}
    return dr, dc, info


def _sensor_effects(rng: np.random.Generator, im: np.ndarray, dn_scale: float, which: str,
                    info: dict[str, Any], off: set[str] = frozenset()) -> np.ndarray:
    """Cross-sensor radiometry of one image (reflectance in, DN out): gain/offset, clouds + shadows, noise,
    8/12/16-bit quantisation, nodata gaps (NaN)."""
    H, W = im.shape
    if which == "post":
        g, o = float(np.exp(rng.normal(0, 0.15))), float(rng.normal(0, 0.01))
        if "gain" not in off:
            im = im * g + o
    im0, cloud = im, None
    if rng.random() < 0.25:  # clouds and their shadows
        cl = _blobs(rng, (H, W), float(rng.uniform(0.02, 0.2)))
        sy, sx = rng.integers(-30, 31, 2)
        shadow = np.roll(cl, (int(sy), int(sx)), (0, 1))
        im = im * (1.0 - float(rng.uniform(0.4, 0.7)) * shadow)
        im = im * (1.0 - cl) + cl * float(rng.uniform(0.4, 0.9)) * (1 + 0.05 * _fractal(rng, (H, W), beta=2.5))
        im = im0 if "clouds" in off else im
        cloud = cl > 0.05
    bits = int(rng.choice([8, 12, 16], p=[0.3, 0.3, 0.4]))
    full = {8: 255.0, 12: 4095.0, 16: 65535.0}[bits]
    scale = {8: 255.0 / 0.6, 12: 4095.0 / 1.0, 16: dn_scale}[bits]
    sig = float(rng.uniform(0.002, 0.012))
    noise = rng.normal(0.0, 1.0, im.shape) * np.sqrt(sig ** 2 + 2e-4 * np.maximum(im, 0) * 0.02)
    im = im if "noise" in off else im + noise
    dn = np.clip(im * scale, 1, full)
    out = (dn if "quant" in off else np.round(dn)) / scale * dn_scale
    if rng.random() < 0.2:  # nodata gaps with sharp edges (SLC-off stripes, swath edges, masks)
        if rng.random() < 0.5:
            gap = _blobs(rng, (H, W), float(rng.uniform(0.02, 0.15)), beta=2.5) > 0.5
        else:
            ang = rng.uniform(0, math.pi)
            yy, xx = np.mgrid[0:H, 0:W]
            t = xx * math.cos(ang) + yy * math.sin(ang)
            period, width = rng.uniform(20, 80), rng.uniform(2, 8)
            gap = (t % period) < width
        out = out if "gaps" in off else np.where(gap, np.nan, out)
    if "cloud_nodata" in off and cloud is not None:  # the user's cloud mask applied: clouds (not shadows) nodata
        out = np.where(cloud, np.nan, out)
    info[which] = {"bits": bits, "noise": sig}
    return out


# ------------------------------------------------------------------------------------------- random fields


def _fractal(rng: np.random.Generator, shape: tuple[int, int], beta: float, lo_cut: float = 0.0) -> np.ndarray:
    """Zero-mean, unit-std power-law noise, PSD ∝ k^-beta (isotropic); lo_cut: highpass in cycles/sample."""
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    k[0, 0] = 1.0
    amp = k ** (-beta / 2.0)
    if lo_cut > 0:
        amp *= 1.0 - np.exp(-((k / lo_cut) ** 2))
    amp[0, 0] = 0.0
    spec = (rng.standard_normal(amp.shape, dtype=F32) + 1j * rng.standard_normal(amp.shape, dtype=F32)) * amp
    f = np.fft.irfft2(spec, s=shape)
    s = f.std()
    return (f / s if s > 0 else f).astype(np.float64)


def _sample_rotated(
    img: np.ndarray, out_shape: tuple[int, int], step: float, angle: float, flip: bool,
    rng: np.random.Generator, order: int = 1, prefiltered: bool = False,
) -> np.ndarray:
    """Sample ``img`` on a rotated grid of ``out_shape`` with ``step`` image pixels per output sample."""
    h, w = out_shape
    H, W = img.shape
    r = np.arange(h) - (h - 1) / 2.0
    c = np.arange(w) - (w - 1) / 2.0
    rr, cc = np.meshgrid(r * step, c * step, indexing="ij")
    if flip:
        cc = -cc
    ca, sa = math.cos(angle), math.sin(angle)
    rot_r = ca * rr - sa * cc
    rot_c = sa * rr + ca * cc
    half = 0.5 * step * math.hypot(h, w)
    mr = max(0.0, H / 2.0 - half - 1)
    mc = max(0.0, W / 2.0 - half - 1)
    r0 = H / 2.0 + rng.uniform(-mr, mr)
    c0 = W / 2.0 + rng.uniform(-mc, mc)
    return ndimage.map_coordinates(img, [rot_r + r0, rot_c + c0], order=order, mode="mirror",
                                   prefilter=not prefiltered)


# ------------------------------------------------------------------------------------------------- events


def _scaling(mw: float, mech: str) -> tuple[float, float]:
    """Rupture length and width (m) from Mw (Wells & Coppersmith 1994, all slip types)."""
    length = 10 ** (-2.44 + 0.59 * mw) * 1000.0
    width = 10 ** (-1.01 + 0.32 * mw) * 1000.0
    return length, width


MW_RANGE = (5.5, 7.9)  # magnitudes of the random event draw


def random_event(rng: np.random.Generator, extent_m: float, mw_range: tuple[float, float] = MW_RANGE,
                 surface_rupture: bool | None = None) -> tuple[list[Patch], dict]:
    """Random finite fault (a few patches with tapered heterogeneous slip) near a scene of size ``extent_m``.

    ``mw_range`` / ``surface_rupture`` (None = random, more likely for large events) narrow the draw
    (same random stream, so the default draws are unchanged). Patch positions are relative to the scene
    centre (local metres)."""
    mech = str(rng.choice(["strike-slip", "normal", "thrust"], p=[0.45, 0.25, 0.30]))
    mw = float(rng.uniform(*mw_range))
    if mech == "strike-slip":
        dip = float(rng.uniform(70, 90))
        rake = float(rng.choice([0.0, 180.0]) + rng.normal(0, 10))
        zmax = rng.uniform(12e3, 20e3)
    elif mech == "normal":
        dip = float(rng.uniform(40, 65))
        rake = float(-90 + rng.normal(0, 12))
        zmax = rng.uniform(10e3, 18e3)
    else:
        dip = float(rng.uniform(15, 45))
        rake = float(90 + rng.normal(0, 12))
        zmax = rng.uniform(12e3, 25e3)
    length, width = _scaling(mw, mech)
    length *= float(np.exp(rng.normal(0, 0.2)))
    p_surface = float(np.clip((mw - 5.5) / 1.6, 0.15, 0.85))
    surface = bool(rng.random() < p_surface)
    if surface_rupture is not None:
        surface = bool(surface_rupture)
    top = 0.0 if surface else float(rng.uniform(300.0, 8000.0) if mw > 6.2 else rng.uniform(1000.0, 8000.0))
    width = float(min(width, (zmax - top) / math.sin(math.radians(dip))))
    width = max(width, 500.0)
    m0 = 10 ** (1.5 * mw + 9.1)
    mean_slip = m0 / (MU * length * width)
    strike = float(rng.uniform(0, 360))
    nl = int(rng.integers(1, 5))
    nw = int(rng.integers(1, 3))
    # slip: elliptical taper (not at the top when surface-rupturing) × lognormal perturbation
    xs = (np.arange(nl) + 0.5) / nl
    zs = (np.arange(nw) + 0.5) / nw
    taper_l = np.sqrt(np.clip(1 - (2 * xs - 1) ** 2, 0.05, 1)) if nl > 1 else np.ones(1)
    taper_w = np.sqrt(np.clip(1 - zs**2, 0.1, 1)) if (nw > 1 and surface) else (
        np.sqrt(np.clip(1 - (2 * zs - 1) ** 2, 0.1, 1)) if nw > 1 else np.ones(1))
    slip = np.outer(taper_w, taper_l) * np.exp(rng.normal(0, 0.25, (nw, nl)))
    slip *= mean_slip / slip.mean()
    # placement: trace within/near the scene
    s = math.radians(strike)
    se, sn = math.sin(s), math.cos(s)
    de, dn = math.cos(s), -math.sin(s)  # dip direction (right of strike), horizontal
    perp = float(rng.uniform(-0.35, 0.35) * extent_m)
    along = float(rng.uniform(-0.45, 0.45) * length)
    ce, cn = -along * se + perp * de, -along * sn + perp * dn  # top-edge centre of the whole fault
    pl, pw = length / nl, width / nw
    patches = []
    cdip, sdip = math.cos(math.radians(dip)), math.sin(math.radians(dip))
    for j in range(nw):
        for i in range(nl):
            a = (i + 0.5) * pl - length / 2
            b = j * pw
            patches.append(
                Patch(
                    east=ce + a * se + b * cdip * de, north=cn + a * sn + b * cdip * dn, top_depth=top + b * sdip,
                    strike=strike, dip=dip, rake=rake, slip=float(slip[j, i]), length=pl, width=pw,
                )
            )
    info = {
        "mechanism": mech, "mw": mw, "strike_deg": strike, "dip_deg": dip, "rake_deg": rake,
        "length_m": length, "width_m": width, "top_depth_m": top, "surface_rupture": surface,
        "mean_slip_m": float(mean_slip), "max_slip_m": float(slip.max()), "n_patches": len(patches),
    }
    return patches, info


def _segment_distance(pe: np.ndarray, pn: np.ndarray, segs: list[tuple[tuple[float, float], tuple[float, float]]]
                      ) -> np.ndarray:
    d = np.full(pe.shape, np.inf)
    for (e0, n0), (e1, n1) in segs:
        ve, vn = e1 - e0, n1 - n0
        L2 = ve * ve + vn * vn
        t = np.clip(((pe - e0) * ve + (pn - n0) * vn) / max(L2, 1e-9), 0.0, 1.0)
        d = np.minimum(d, np.hypot(pe - e0 - t * ve, pn - n0 - t * vn))
    return d


def displacement_on_grid(
    patches: list[Patch], east: np.ndarray, north: np.ndarray, pixel: float, coarse: int = 4, band_px: float = 24.0
) -> np.ndarray:
    """(3, H, W) ENU displacement on a regular grid: deep patches on a coarse grid + cubic spline upsampling,
    surface-rupturing patches exact within ``band_px`` of their trace (where the field is discontinuous)."""
    H, W = east.shape
    surf = [p for p in patches if p.top_depth < 1e-6]
    deep = [p for p in patches if p.top_depth >= 1e-6]
    out = np.zeros((3, H, W))
    if H < 4 * coarse or W < 4 * coarse:
        out[:] = patches_displacement(patches, east, north)
        return out
    ci = np.arange(-2 * coarse, H + 3 * coarse, coarse, dtype=np.float64)
    cj = np.arange(-2 * coarse, W + 3 * coarse, coarse, dtype=np.float64)
    e00, n00 = east[0, 0], north[0, 0]
    ce = e00 + cj[None, :] * pixel + 0 * ci[:, None]
    cn = n00 - ci[:, None] * pixel + 0 * cj[None, :]
    rr = (np.arange(H, dtype=np.float64) + 2 * coarse) / coarse
    cc = (np.arange(W, dtype=np.float64) + 2 * coarse) / coarse
    grid = np.meshgrid(rr, cc, indexing="ij")
    for group in (deep, surf):
        if not group:
            continue
        u = patches_displacement(group, ce, cn)
        for k in range(3):
            out[k] += ndimage.map_coordinates(u[k], grid, order=3, mode="nearest")
    if surf:
        segs = [p.top_edge() for p in surf]
        near = _segment_distance(east, north, segs) < band_px * pixel
        if near.any():
            u_c = np.zeros((3, int(near.sum())))
            for k in range(3):
                u_c[k] = 0.0
            cu = patches_displacement(surf, ce, cn)
            for k in range(3):
                u_c[k] = ndimage.map_coordinates(cu[k], [grid[0][near], grid[1][near]], order=3, mode="nearest")
            ex = patches_displacement(surf, east[near], north[near])
            for k in range(3):
                out[k][near] += ex[k] - u_c[k]
    return out


@functools.lru_cache(maxsize=8)
def _darfield_cached(H: int, W: int, pixel: float, ce: float, cn: float) -> tuple[np.ndarray, tuple]:
    patches, epsg = load_darfield()
    j = np.arange(W)
    i = np.arange(H)
    east = ce + (j[None, :] + 0.5 - W / 2) * pixel + 0 * i[:, None]
    north = cn + (H / 2 - i[:, None] - 0.5) * pixel + 0 * j[None, :]
    u = displacement_on_grid(patches, east, north, pixel)
    return u, tuple(patches)


# ------------------------------------------------------------------------------------------- the scene


def _grad(a: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """(d/d east, d/d north) of a north-up array."""
    gy, gx = np.gradient(a, step)
    return gx, -gy


def _choose(rng: np.random.Generator, options: list[str], p: list[float]) -> str:
    return str(options[int(rng.choice(len(options), p=p))])


def simulate_scene(
    seed: int,
    size: tuple[int, int] = (256, 256),
    pixel_size_m: float | None = None,
    event: str | None = None,
    *,
    overrides: dict[str, Any] | None = None,
) -> Scene:
    """Simulate one multi-modal co-seismic scene (see module docstring and docs/simulator.md).

    ``event``: None (random Okada event) or ``"darfield"`` (Beavan et al. 2012 slip model, real location).
    ``overrides`` (keyword only, for tests and figures): ``uniform_displacement_enu`` (3 floats, m, replaces
    the fault), ``noise_free`` (bool: no optical/SAR noise, no date-to-date changes, same sun),
    ``coherence`` (float: constant coherence), ``wavelength_m``, ``phase_sign``, ``dem`` / ``texture`` source
    names, ``mw_range`` (2 floats) and ``surface_rupture`` (bool) for the random event; realism options:
    ``texture="s2_pair"`` with ``texture_region`` ("train" / "test": the real two-date Sentinel-2 pair),
    ``sensor_effects`` (bool: cross-sensor optical radiometry and non-ground misregistration, see
    ``_sensor_effects`` / ``_nuisance_coords``), ``offfault_px`` (Gaussian width of distributed off-fault
    deformation, px) and ``displacement_scale`` (slip multiplier); ``effects_off`` (list, diagnosis: which of the
    two-date / cross-sensor effects to switch off, one name each: ``real_change`` (the second real date replaced
    by the first), ``sun``, ``psf`` (post blurred like pre), ``coreg`` (residual shift + affine), ``scan_band``,
    ``gain``, ``clouds``, ``noise``, ``quant``, ``gaps``, or ``cloud_nodata`` (clouds set to nodata, as a user's
    cloud mask would; shadows stay); the random stream is the same, so the scene is otherwise identical).
    """
    ov = dict(overrides or {})
    off = set(ov.get("effects_off", ()))
    unknown = off - set(EFFECTS)
    if unknown:
        raise ValueError(f"effects_off: unknown {sorted(unknown)}; known: {', '.join(EFFECTS)}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20240611]))
    H, W = int(size[0]), int(size[1])
    if pixel_size_m is None:
        pixel = float(np.exp(rng.uniform(math.log(5.0), math.log(100.0))))
        pixel = round(pixel, 2)
    else:
        pixel = float(pixel_size_m)
        rng.uniform()  # keep the stream aligned
    extent = max(H, W) * pixel
    noise_free = bool(ov.get("noise_free", False))
    params: dict[str, Any] = {"seed": int(seed), "size": [H, W], "pixel_size_m": pixel, "event": event,
                              "overrides": {k: v for k, v in ov.items()}}

    # ---- grid and CRS
    j = np.arange(W)
    i = np.arange(H)
    le = ((j + 0.5) - W / 2.0) * pixel  # local east of pixel centres (scene centre = 0)
    ln = (H / 2.0 - (i + 0.5)) * pixel
    LE, LN = np.meshgrid(le, ln)

    # ---- event
    if event is None:
        patches, ev = random_event(rng, extent, tuple(ov.get("mw_range", MW_RANGE)), ov.get("surface_rupture"))
        zone = int(rng.integers(1, 61))
        north_hemi = bool(rng.random() < 0.7)
        epsg = (32600 if north_hemi else 32700) + zone
        cx = float(np.round(rng.uniform(300e3, 700e3) / pixel) * pixel)
        cy = float(np.round(rng.uniform(1e6 if north_hemi else 2e6, 6.5e6 if north_hemi else 9e6) / pixel) * pixel)
        if "uniform_displacement_enu" in ov:
            u = np.broadcast_to(np.asarray(ov["uniform_displacement_enu"], dtype=np.float64)[:, None, None],
                                (3, H, W)).copy()
            patches = []
        else:
            u = displacement_on_grid(patches, LE, LN, pixel)
        seg_patches = patches
        local_patches = patches
    elif event == "darfield":
        # grid centred on the Greendale fault (UTM 59S), shifted by a seeded offset
        cx = float(np.round((594000.0 + rng.uniform(-4000, 4000)) / pixel) * pixel)
        cy = float(np.round((5171500.0 + rng.uniform(-3000, 3000)) / pixel) * pixel)
        u, pt = _darfield_cached(H, W, pixel, cx, cy)
        u = u.copy()
        epsg = 32759
        local_patches = [Patch(**{**p.to_dict(), "east": p.east - cx, "north": p.north - cy}) for p in pt]
        seg_patches = local_patches
        ev = {"name": "darfield", "mw": moment_magnitude(list(pt)), "n_patches": len(pt),
              "source": "Beavan et al. 2012 (GeoNet)", "surface_rupture": False}
    else:
        raise ValueError(f"unknown event {event!r}; use None or 'darfield'")
    if ov.get("displacement_scale"):  # Okada is linear in slip: a bigger event with the same geometry
        u = u * float(ov["displacement_scale"])
    if ov.get("offfault_px"):  # distributed off-fault deformation: the step spread over a few pixels
        u = ndimage.gaussian_filter(u, (0, float(ov["offfault_px"]), float(ov["offfault_px"])), mode="nearest")
    params["event_params"] = ev
    params["patches"] = [p.to_dict() for p in local_patches] if len(local_patches) <= 64 else \
        f"{len(local_patches)} patches from data/geonet_darfield2010/3366146.csv"
    x0 = cx - W / 2.0 * pixel
    y0 = cy + H / 2.0 * pixel
    transform = (pixel, 0.0, x0, 0.0, -pixel, y0)

    # ---- rupture trace
    surf = [p for p in seg_patches if p.top_depth < 1e-6]
    if surf:
        dist = _segment_distance(LE, LN, [p.top_edge() for p in surf])
    elif seg_patches:
        ztop = min(p.top_depth for p in seg_patches)
        tops = [p for p in seg_patches if p.top_depth <= ztop + 1.0]
        dist = _segment_distance(LE, LN, [p.top_edge() for p in tops])
    else:
        dist = np.full((H, W), np.inf)
    rupture_mask = (dist <= max(1.5 * pixel, 30.0)) if surf else np.zeros((H, W), bool)

    # ---- source (oversampled) grid with margin
    umax_px = float(np.abs(u[:2]).max()) / pixel if u.size else 0.0
    margin = int(math.ceil(umax_px + 12))
    os_ = OVERSAMPLE
    Hs, Ws = (H + 2 * margin) * os_, (W + 2 * margin) * os_
    step_s = pixel / os_

    # ---- DEM
    dem_src = ov.get("dem") or _choose(rng, ["aster_patagonia", "clearlake", "fractal"], [0.35, 0.35, 0.30])
    relief = float(np.exp(rng.uniform(math.log(0.05), math.log(1.2))))
    if dem_src == "fractal":
        base = _fractal(rng, (Hs, Ws), beta=float(rng.uniform(3.4, 4.2)))
        dem_s = base * relief * float(rng.uniform(100, 600)) * (extent / 10e3) ** 0.5 + rng.uniform(0, 2500)
    else:
        d, res = _real_dem(dem_src)
        stepd = step_s / res
        need = stepd * math.hypot(Hs, Ws)
        if need > min(d.shape) * 0.95:
            stepd *= min(d.shape) * 0.95 / need
        dem_s = _sample_rotated(d, (Hs, Ws), stepd, rng.uniform(0, 2 * math.pi), bool(rng.random() < 0.5), rng,
                                order=3, prefiltered=True)
        if stepd < 0.5:  # strong upsampling: soften the source DEM's own 1-px terracing/noise
            dem_s = ndimage.gaussian_filter(dem_s, 0.4 / stepd)
        dem_s = (dem_s - dem_s.mean()) * relief + dem_s.mean() * rng.uniform(0.2, 1.0)
    # small-scale roughness below the DEM's resolution
    dem_s = dem_s + _fractal(rng, (Hs, Ws), beta=3.0, lo_cut=0.05) * step_s * 0.15 * relief
    dem_s = dem_s.astype(np.float64)
    s0 = margin * os_
    sl = (slice(s0, s0 + H * os_, os_), slice(s0, s0 + W * os_, os_))  # source samples at the pixel centres
    dem = dem_s[sl]

    # ---- acquisition geometry
    band = ov.get("band") or _choose(rng, ["C", "L"], [0.65, 0.35])
    wavelength = float(ov.get("wavelength_m", cv.SENTINEL1_WAVELENGTH_M if band == "C" else
                                (cv.NISAR_L_WAVELENGTH_M if rng.random() < 0.5 else cv.ALOS2_WAVELENGTH_M)))
    phase_sign = int(ov.get("phase_sign", 1 if rng.random() < 0.7 else -1))
    asc = bool(rng.random() < 0.5)
    heading = float((-12.0 if asc else -168.0) + rng.normal(0, 2.0))
    inc_c = float(rng.uniform(29.0, 46.0) if band == "C" else rng.uniform(25.0, 48.0))
    # incidence gradient, deg per metre of ground range: 5.9e-5 fitted on the real OPERA S1 LOS grid
    # (data/opera_s1_los_hawaii), 6.8e-5 for IW 29→46° over 250 km; L-band swaths are similar
    dinc_dm = float(rng.uniform(0.055e-3, 0.07e-3))
    los_c = cv.los_unit_vector(inc_c, heading)
    g_e, g_n = -los_c[0] / math.hypot(los_c[0], los_c[1]), -los_c[1] / math.hypot(los_c[0], los_c[1])
    inc = inc_c + dinc_dm * (LE * g_e + LN * g_n)
    los = cv.los_unit_vector(inc, np.full_like(inc, heading))
    # source-grid LOS (for backscatter), same law
    rs = (np.arange(Hs) / os_ - margin)
    cs = (np.arange(Ws) / os_ - margin)
    SE = ((cs + 0.5) - W / 2.0)[None, :] * pixel
    SN = (H / 2.0 - (rs + 0.5))[:, None] * pixel
    inc_s = inc_c + dinc_dm * (SE * g_e + SN * g_n)
    params["geometry"] = {"band": band, "wavelength_m": wavelength, "phase_sign": phase_sign,
                          "heading_deg": heading, "incidence_center_deg": inc_c,
                          "incidence_gradient_deg_per_m": dinc_dm, "pass": "ascending" if asc else "descending"}
    params["dem"] = {"source": dem_src, "relief_scale": relief}

    truth_los = cv.enu_to_los(u[0], u[1], u[2], los)

    # ---- sampling coordinates on the source grid (continuous pre / post positions)
    # optical: post(x) = scene(x - u_h(x))
    r_post = (i[:, None] + margin + u[1] / pixel) * os_
    c_post = (j[None, :] + margin - u[0] / pixel) * os_

    # ---- optical
    tex_src = ov.get("texture") or _choose(rng, ["s2_berlin", "landsat_everest", "procedural"], [0.45, 0.25, 0.30])
    alb_post = None
    if tex_src == "s2_pair":  # real two dates: pre = first date, post = second date (real change)
        t1, t2, res = _real_pair(str(ov.get("texture_region", "train")))
        stept = step_s / res * float(np.exp(rng.uniform(-0.3, 0.3)))
        need = stept * math.hypot(Hs, Ws)
        if need > min(t1.shape) * 0.95:
            stept *= min(t1.shape) * 0.95 / need
        ang, flip = float(rng.choice([0, 0.5, 1, 1.5]) * math.pi), bool(rng.random() < 0.5)
        st = rng.bit_generator.state
        alb = _sample_rotated(t1, (Hs, Ws), stept, ang, flip, rng, order=1)
        rng.bit_generator.state = st  # same window for the second date
        alb_post = _sample_rotated(t1 if "real_change" in off else t2, (Hs, Ws), stept, ang, flip, rng, order=1)
    elif tex_src == "procedural":
        # agricultural parcels on a rotated lattice (random sizes in metres), per-parcel albedo, + fractal
        ang = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:Hs, 0:Ws].astype(np.float64) * step_s
        u_ = xx * math.cos(ang) + yy * math.sin(ang)
        v_ = -xx * math.sin(ang) + yy * math.cos(ang)
        pa, pb = rng.uniform(80, 600, 2)
        iu = np.floor(u_ / pa).astype(np.int64)
        iv = np.floor((v_ + (iu % 7) * pb * 0.37) / pb).astype(np.int64)  # staggered parcel rows
        h = (iu * 73856093) ^ (iv * 19349663) ^ int(rng.integers(1, 2**31))
        parcel = ((h % 1000) / 1000.0)
        alb = 0.06 + 0.18 * parcel + 0.04 * _fractal(rng, (Hs, Ws), beta=2.2)
    else:
        t, res = _real_texture(tex_src)
        stept = step_s / res * float(np.exp(rng.uniform(-0.3, 0.3)))
        need = stept * math.hypot(Hs, Ws)
        if need > min(t.shape) * 0.95:
            stept *= min(t.shape) * 0.95 / need
        alb = _sample_rotated(t, (Hs, Ws), stept, float(rng.choice([0, 0.5, 1, 1.5]) * math.pi),
                              bool(rng.random() < 0.5), rng, order=1)
        alb = alb * float(rng.uniform(0.7, 1.3))
    # sub-resolution texture so 5 m pixels are not blurry
    sub = 1 + 0.08 * _fractal(rng, (Hs, Ws), beta=1.6)
    alb = np.clip(alb * sub, 0.005, 1.0)
    if alb_post is not None:
        alb_post = np.clip(alb_post * sub, 0.005, 1.0)
    sun = [(float(rng.uniform(110, 250)), float(rng.uniform(20, 70))) for _ in range(2)]
    if noise_free:
        sun[1] = sun[0]
    elif alb_post is not None:  # the real second date already carries its own illumination change: repeat-pass
        sun[1] = (sun[0][0] + float(rng.uniform(-8, 8)), sun[0][1] + float(rng.uniform(-4, 4)))  # weeks apart
        if "sun" in off:
            sun[1] = sun[0]
    ambient = float(rng.uniform(0.15, 0.35))
    rad = []
    for k in range(2):
        shade = hillshade(dem_s, step_s, *sun[k])
        a_k = alb if (k == 0 or alb_post is None) else alb_post
        if k == 1 and not noise_free and alb_post is None:
            # seasonal / vegetation (smooth gain) + anthropic changes (random rectangles)
            a_k = alb * np.exp(0.15 * rng.uniform(0.2, 1.0) * _fractal(rng, (Hs, Ws), beta=3.5))
            nrect = int(rng.integers(0, 12))
            a_k = a_k.copy()
            for _ in range(nrect):
                rh, rw = rng.integers(4, max(5, Hs // 8), 2)
                r0, c0 = rng.integers(0, Hs - rh), rng.integers(0, Ws - rw)
                a_k[r0:r0 + rh, c0:c0 + rw] *= rng.uniform(0.5, 1.8)
        rad.append(a_k * (ambient + (1 - ambient) * shade / max(math.sin(math.radians(sun[k][1])), 0.2)))
    psf = float(rng.uniform(0.5, 0.8)) * os_  # sigma in source samples
    effects = bool(ov.get("sensor_effects", False)) and not noise_free
    dn_scale = 10000.0 if tex_src != "landsat_everest" else 255.0 / 0.6
    if effects:  # cross-sensor: each image its own PSF, radiometry, quantisation; apparent non-ground shifts
        psf_post = float(rng.uniform(0.4, 1.0)) * os_
        psf_post = psf if "psf" in off else psf_post
        rad = [ndimage.gaussian_filter(rad[0], psf), ndimage.gaussian_filter(rad[1], psf_post)]
        ndr, ndc, eff = _nuisance_coords(rng, H, W, off)
        opt_post = ndimage.map_coordinates(rad[1], [r_post + ndr * os_, c_post + ndc * os_], order=3, mode="mirror")
        opt = [_sensor_effects(rng, im, dn_scale, w, eff, off).astype(F32)
               for im, w in ((rad[0][sl], "pre"), (opt_post, "post"))]
        params["optical_effects"] = eff
    else:
        rad = [ndimage.gaussian_filter(r, psf) for r in rad]
        opt_post = ndimage.map_coordinates(rad[1], [r_post, c_post], order=3, mode="mirror")
        opt = []
        for im in (rad[0][sl], opt_post):
            im = im * dn_scale
            if not noise_free:
                sig = float(rng.uniform(0.003, 0.015)) * dn_scale * 0.3
                im = im + rng.normal(0.0, 1.0, im.shape) * np.sqrt(sig**2 + 0.002 * np.maximum(im, 0) * dn_scale * 1e-3)
                im = np.round(np.clip(im, 0, 65535 if dn_scale > 300 else 255))
            opt.append(im.astype(F32))
    params["optical"] = {"texture": tex_src, "sun_pre": sun[0], "sun_post": sun[1], "psf_sigma_px": psf / os_,
                         "dn_scale": dn_scale, "ambient": ambient}

    # ---- coherence
    veg = ndimage.gaussian_filter(alb, 2 * os_)[sl]
    veg = np.clip((veg - np.percentile(veg, 30)) / (np.ptp(veg) + 1e-6), 0, 1)  # proxy: bright fields
    base_coh = float(rng.uniform(0.6, 0.95) if band == "C" else rng.uniform(0.75, 0.97))
    coh = base_coh * (1 - (0.6 if band == "C" else 0.25) * veg * rng.uniform(0.3, 1.0))
    coh *= np.clip(1 + 0.12 * _fractal(rng, (H, W), beta=2.5), 0.3, 1.2)
    ge, gn = _grad(u[0], pixel)
    ge2, gn2 = _grad(u[1], pixel)
    strain = np.sqrt(ge**2 + gn2**2 + 0.5 * (gn + ge2) ** 2)
    coh *= np.exp(-strain / float(rng.uniform(2e-3, 1e-2)))
    # geometric decorrelation in layover/shadow
    de_, dn_ = _grad(dem, pixel)
    nrm = np.sqrt(de_**2 + dn_**2 + 1)
    cos_loc = (-de_ * los[0] - dn_ * los[1] + los[2]) / nrm
    slope_range = -(de_ * g_e + dn_ * g_n) * -1.0  # height increase away from the satellite
    layover = np.arctan(np.maximum(-(de_ * (-g_e) + dn_ * (-g_n)), -1e9)) > np.deg2rad(inc)  # facing slope > inc
    shadow = cos_loc <= 0.05
    del slope_range
    coh = np.where(layover | shadow, 0.05, coh)
    coh = np.clip(coh, 0.0, 1.0)
    if "coherence" in ov:
        coh = np.full((H, W), float(ov["coherence"]))

    # ---- InSAR phase
    k = 4 * math.pi / wavelength
    phi_def = cv.los_to_phase(truth_los, wavelength, phase_sign)
    turb_std = float(rng.uniform(0.003, 0.03)) * (extent / 20e3) ** (1 / 3)  # metres of delay
    turb = _fractal(rng, (H, W), beta=8 / 3 + 2) * turb_std
    strat_k = float(rng.normal(0, 2e-5))  # m of delay per m of height
    strat = strat_k * (dem - dem.mean())
    ramp_a, ramp_b = rng.normal(0, 1e-7, 2) * (3 if band == "L" else 1)
    ramp = ramp_a * LE + ramp_b * LN
    delay = turb + strat + ramp  # range increase from the atmosphere (m)
    truth_unw = phi_def + phase_sign * k * delay
    nl_looks = int(np.clip(round(pixel * pixel / 100.0 * rng.uniform(0.5, 1.0)), 2, 64))
    if np.all(coh >= 1.0):
        wrapped = cv.wrap(truth_unw)
        coh_est = coh
    else:
        # Exact L-look complex-Gaussian interferogram without drawing the L looks: with unit-power SLCs
        # s1, s2 = γ s1 + √(1-γ²) n, P1 = Σ|s1|² ~ Gamma(L), Σ s1 n* | s1 ~ CN(0, P1) (= √P1 w), and
        # Σ|n|² = |w|² + Gamma(L-1) (component of n along s1 + the L-1 orthogonal ones).
        g = coh
        gc = np.sqrt(np.maximum(1 - g * g, 0.0))
        p1 = rng.gamma(nl_looks, 1.0, (H, W))
        w = (rng.standard_normal((H, W)) + 1j * rng.standard_normal((H, W))) / math.sqrt(2)
        cross = np.sqrt(p1) * w
        ifg = g * p1 + gc * cross  # Σ s1 s2* with zero signal phase
        pn = np.abs(w) ** 2 + (rng.gamma(nl_looks - 1, 1.0, (H, W)) if nl_looks > 1 else 0.0)
        p2 = g * g * p1 + gc * gc * pn + 2 * g * gc * np.sqrt(p1) * w.real
        ifg = ifg * np.exp(1j * truth_unw)
        wrapped = np.angle(ifg)
        coh_est = np.abs(ifg) / np.sqrt(p1 * p2)
        coh_est = np.clip(ndimage.uniform_filter(coh_est, 3), 0, 1)
    wrapped = cv.wrap(wrapped).astype(F32)
    wrapped[wrapped >= F32(np.pi)] = -F32(np.pi)
    params["insar"] = {"looks": nl_looks, "turbulence_std_m": turb_std, "stratified_m_per_m": strat_k,
                       "ramp_m_per_m": [float(ramp_a), float(ramp_b)], "base_coherence": base_coh}

    # ---- SAR amplitude
    # equivalent number of looks of a geocoded amplitude of this pixel size (SLC cell ~5 m × 20 m, efficiency
    # 0.4–1); simulated with up to 4 complex looks then flattened to L (mean 1, variance 1/L)
    L_auto = int(np.clip(round(pixel * pixel / 100.0 * rng.uniform(0.4, 1.0)), 1, 64))
    L_looks = int(ov.get("sar_looks", L_auto))
    L_c = min(L_looks, 4)
    # backscatter on the source grid
    gse, gsn = _grad(dem_s, step_s)
    los_s = cv.los_unit_vector(inc_s, np.full_like(inc_s, heading))
    nrm_s = np.sqrt(gse**2 + gsn**2 + 1)
    cl = np.clip((-gse * los_s[0] - gsn * los_s[1] + los_s[2]) / nrm_s, 0.02, 1.0)
    sin_loc = np.sqrt(1 - cl**2)
    cover = np.exp(0.35 * _fractal(rng, (Hs, Ws), beta=2.0)) * (alb / alb.mean()) ** float(rng.uniform(0.8, 2.0))
    # K-distribution-like sub-pixel texture (Gamma, shape nu): heterogeneous clutter, checked against the real
    # UAVSAR single-look intensity statistics (tests/test_simulator.py)
    nu_tex = float(np.exp(rng.uniform(math.log(0.8), math.log(5.0))))
    # (sub-resolution clutter averages out over the L looks of a geocoded pixel: variance / L)
    clutter = rng.gamma(nu_tex, 1.0 / nu_tex, (Hs, Ws))
    sar_psf = float(ov.get("sar_psf_px", SAR_PSF_PX))
    if sar_psf > 0:  # band-limited by the impulse response, its contrast kept (the real clutter's CV)
        cf = ndimage.gaussian_filter(clutter, sar_psf * os_)
        clutter = np.clip(1.0 + (cf - cf.mean()) * (clutter.std() / max(cf.std(), 1e-9)), 0.02, None)
    cover = cover * (1.0 + (clutter - 1.0) / math.sqrt(L_looks))
    sigma0 = cover * cl**1.5 * np.sin(np.deg2rad(inc_s)) / np.maximum(sin_loc, 0.15)
    face = -(gse * (-g_e) + gsn * (-g_n))
    lay_s = np.arctan(face) > np.deg2rad(inc_s)
    sigma0 = np.where(lay_s, sigma0 * 3.0, sigma0)
    sigma0 = np.where(cl <= 0.05, 0.01, sigma0)
    # apparent shift in the geocoded image: azimuth component + range increase / sin(inc) along ground range
    a_e, a_n = math.sin(math.radians(heading)), math.cos(math.radians(heading))
    u_az = u[0] * a_e + u[1] * a_n
    rng_inc = -truth_los
    sh_e = u_az * a_e + rng_inc / np.sin(np.deg2rad(inc)) * g_e
    sh_n = u_az * a_n + rng_inc / np.sin(np.deg2rad(inc)) * g_n
    rs_post = (i[:, None] + margin + sh_n / pixel) * os_
    cs_post = (j[None, :] + margin - sh_e / pixel) * os_
    sig_pre = sigma0[sl]
    sig_post = ndimage.map_coordinates(sigma0, [rs_post, cs_post], order=1, mode="mirror")
    if noise_free:
        sar_pre, sar_post = np.sqrt(sig_pre), np.sqrt(sig_post)
    else:
        i_pre = np.zeros((H, W))
        i_post = np.zeros((H, W))
        gamma_sar = np.clip(coh, 0, 1)
        zs = math.hypot(0.5, sar_psf) * os_  # the speckle's own 0.5-px correlation through the response
        for _ in range(L_c):
            zr = ndimage.gaussian_filter(rng.standard_normal((Hs, Ws), dtype=F32), zs)
            zi = ndimage.gaussian_filter(rng.standard_normal((Hs, Ws), dtype=F32), zs)
            sd = math.sqrt(0.5 * (zr.var() + zi.var()) * 2)
            zr /= sd
            zi /= sd
            a_pre = zr[sl] + 1j * zi[sl]
            a_post = (ndimage.map_coordinates(zr, [rs_post, cs_post], order=1, mode="mirror")
                      + 1j * ndimage.map_coordinates(zi, [rs_post, cs_post], order=1, mode="mirror"))
            nz = (rng.standard_normal((H, W), dtype=F32) + 1j * rng.standard_normal((H, W), dtype=F32)) / math.sqrt(2)
            a_post = gamma_sar * a_post + np.sqrt(1 - gamma_sar**2) * nz
            i_pre += np.abs(a_pre) ** 2
            i_post += np.abs(a_post) ** 2
        # renormalise the interpolated speckle to unit mean (interpolation lowers the variance of the field)
        i_pre /= i_pre.mean()
        i_post /= i_post.mean()
        flat = math.sqrt(L_c / L_looks)
        i_pre = 1.0 + (i_pre - 1.0) * flat
        i_post = 1.0 + (i_post - 1.0) * flat
        gain = float(np.exp(rng.normal(0, 0.05)))
        sar_pre = np.sqrt(sig_pre * i_pre)
        sar_post = np.sqrt(gain * sig_post * i_post)
    params["sar"] = {"looks": L_looks, "texture_gamma_shape": nu_tex, "psf_sigma_px": sar_psf}
    params["simulator_version"] = SIMULATOR_VERSION

    scene = Scene(
        optical_pre=opt[0], optical_post=opt[1],
        sar_pre=np.asarray(sar_pre, F32), sar_post=np.asarray(sar_post, F32),
        wrapped_phase=wrapped, coherence=np.asarray(coh_est, F32), dem=np.asarray(dem, F32),
        los_unit_vector=np.asarray(los, F32), truth_enu=np.asarray(u, F32), truth_los=np.asarray(truth_los, F32),
        truth_unwrapped_phase=np.asarray(truth_unw, F32), rupture_mask=rupture_mask.astype(F32),
        distance_to_rupture_m=np.asarray(dist, F32), pixel_size_m=pixel, wavelength_m=wavelength,
        phase_sign=phase_sign, crs=int(epsg), transform=transform, params=params,
    )
    return scene
