"""Network input channels, built by name (numpy only; no torch, no Qt).

Single source of truth for channel computation: the backend calls it at inference and the
training pipeline (``models/dataset.py``) calls it on simulated scenes, so both see the
same numbers.

* ``compute_stats(arrays)`` -> global, per-raster normalisation statistics (robust median /
  MAD). Compute them once on the whole raster (a decimated copy is fine) and pass them to
  every tile, so tiled inference has no seams.
* ``build_features(channel_specs, arrays, stats=..., pixel_size_m=..., wavelength_m=...,
  phase_sign=...)`` -> ``(C, H, W) float32`` in the order of ``channel_specs`` (the
  ``channels`` list of the model metadata; entries are dicts with a ``name`` or plain names).

A modality that is not given (``None``) gives zeros and availability mask 0; NaN pixels give 0
and mask 0 at that pixel. Grid: north-up (row 0 = north, column 0 = west), see
``docs/architecture.md``. Phase is converted to the internal convention
``phase_int = phase_sign * phase`` (= 4*pi/lambda * range increase, i.e. -4*pi/lambda * LOS).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

MAD_TO_SIGMA = 1.4826
CLIP = 8.0  # normalised optical / SAR values are clipped to +-CLIP robust sigmas
SLOPE_CLIP = 5.0
EPS = 1e-6

# name -> (units, normalisation) ; the default list of models/channels.py uses these strings.
CHANNEL_DOC: dict[str, tuple[str, str]] = {
    "optical_pre": ("-", "(x - median_pre) / (1.4826 MAD_pre), clipped to +-8, NaN -> 0"),
    "optical_post": ("-", "(x - median_post) / (1.4826 MAD_post), clipped to +-8, NaN -> 0"),
    "sar_pre_db": ("-", "(10 log10 amp - median) / (1.4826 MAD) of the pre dB image, clipped to +-8"),
    "sar_post_db": ("-", "(10 log10 amp - median) / (1.4826 MAD) of the post dB image, clipped to +-8"),
    "phase_cos": ("-", "cos(phase_sign * wrapped_phase); 0 where missing"),
    "phase_sin": ("-", "sin(phase_sign * wrapped_phase); internal phase = 4 pi / lambda * range increase"),
    "coherence": ("-", "coherence in 0..1, NaN -> 0"),
    "dem_slope_east": ("m/m", "dz/d(east), clipped to +-5"),
    "dem_slope_north": ("m/m", "dz/d(north), clipped to +-5"),
    "los_east": ("-", "LOS unit vector (ground -> satellite), east component"),
    "los_north": ("-", "LOS unit vector (ground -> satellite), north component"),
    "los_up": ("-", "LOS unit vector (ground -> satellite), up component"),
    "fringe_px": ("px", "wavelength / (2 * pixel_size): LOS metres per fringe, in pixels (constant); 0 without InSAR"),
    "pixel_size_m": ("m", "pixel size in metres (constant); the network multiplies its pixel-unit outputs by it"),
    "mask_optical": ("0/1", "1 where both optical images are finite"),
    "mask_sar": ("0/1", "1 where both SAR amplitudes are finite and > 0"),
    "mask_insar": ("0/1", "1 where wrapped phase, coherence and the LOS vector are finite"),
    "mask_dem": ("0/1", "1 where the DEM is finite"),
    "fault_side": ("-", "+1 right / -1 left of a given rupture trace (strike direction), 0 without one"),
}


# ----------------------------------------------------------------------------- statistics
def _robust(x: np.ndarray | None) -> dict[str, float] | None:
    if x is None:
        return None
    v = np.asarray(x, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med)))
    scale = MAD_TO_SIGMA * mad
    if not np.isfinite(scale) or scale <= EPS:
        scale = float(np.std(v)) if v.size > 1 else 1.0
        scale = max(scale, EPS)
    return {"median": med, "scale": scale}


def _sar_db(amp: np.ndarray) -> np.ndarray:
    a = np.asarray(amp, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(a)
    db[~np.isfinite(db)] = np.nan  # amp <= 0 or NaN
    return db


def compute_stats(arrays: Mapping[str, Any]) -> dict[str, dict[str, float] | None]:
    """Global robust statistics (median and 1.4826*MAD) per raster; JSON-serialisable.

    Compute on the whole raster (or a decimated copy, e.g. ``arr[::4, ::4]``), never per tile.
    Keys: ``optical_pre``, ``optical_post``, ``sar_pre_db``, ``sar_post_db`` (None if missing).
    """
    stats: dict[str, dict[str, float] | None] = {}
    for key in ("optical_pre", "optical_post"):
        stats[key] = _robust(arrays.get(key))
    for key in ("sar_pre", "sar_post"):
        a = arrays.get(key)
        stats[key + "_db"] = _robust(_sar_db(a)) if a is not None else None
    return stats


# ----------------------------------------------------------------------------- texture
TEXTURE_WINDOW = 7  # px: local standard deviation window
TEXTURE_MIN = 0.01  # local std / global robust scale below this = no texture (saturated, cloud, fill, water)


def local_texture(img: np.ndarray, scale: float, window: int = TEXTURE_WINDOW) -> np.ndarray:
    """Local standard deviation in ``window`` x ``window`` px divided by the image's global robust ``scale``
    (1.4826 MAD); NaN where the image is NaN. Matching needs texture: below :data:`TEXTURE_MIN` an optical image
    carries no displacement information."""
    from scipy.ndimage import uniform_filter

    a = np.asarray(img, dtype=np.float64)
    fin = np.isfinite(a)
    a0 = np.where(fin, a, 0.0)
    n = uniform_filter(fin.astype(np.float64), window, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        m = uniform_filter(a0, window, mode="nearest") / n
        m2 = uniform_filter(a0 * a0, window, mode="nearest") / n
        t = np.sqrt(np.maximum(m2 - m * m, 0.0)) / max(float(scale), EPS)
    return np.where(fin, t, np.nan)


def textureless(pre: np.ndarray, post: np.ndarray, stats: Mapping[str, Any]) -> np.ndarray:
    """Pixels where the optical pair cannot be matched: either image without texture (boolean, False at NaN)."""
    out = np.zeros(np.shape(pre), bool)
    for key, img in (("optical_pre", pre), ("optical_post", post)):
        st = stats.get(key)
        scale = st["scale"] if st else EPS
        with np.errstate(invalid="ignore"):
            out |= local_texture(img, scale) < TEXTURE_MIN
    return out


# ----------------------------------------------------------------------------- context
class _Ctx:
    """Lazily computed intermediate quantities shared by several channel builders."""

    def __init__(self, arrays: Mapping[str, Any], stats: Mapping[str, Any], pixel_size_m: float,
                 wavelength_m: float | None, phase_sign: int, shape: tuple[int, int]) -> None:
        self.arrays = arrays
        self.stats = stats
        self.pixel_size_m = float(pixel_size_m)
        self.wavelength_m = wavelength_m
        self.phase_sign = int(phase_sign)
        self.shape = shape
        self._cache: dict[str, Any] = {}

    def zeros(self) -> np.ndarray:
        return np.zeros(self.shape, np.float32)

    def get(self, key: str) -> np.ndarray | None:
        a = self.arrays.get(key)
        return None if a is None else np.asarray(a, dtype=np.float32)

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # masks ------------------------------------------------------------------------
    def mask_optical(self) -> np.ndarray:
        def f() -> np.ndarray:
            a, b = self.get("optical_pre"), self.get("optical_post")
            if a is None or b is None:
                return self.zeros()
            return (np.isfinite(a) & np.isfinite(b)).astype(np.float32)

        return self.cached("mask_optical", f)

    def mask_sar(self) -> np.ndarray:
        def f() -> np.ndarray:
            a, b = self.get("sar_pre"), self.get("sar_post")
            if a is None or b is None:
                return self.zeros()
            with np.errstate(invalid="ignore"):
                return (np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)).astype(np.float32)

        return self.cached("mask_sar", f)

    def los(self) -> np.ndarray | None:
        a = self.arrays.get("los_unit_vector")
        return None if a is None else np.asarray(a, dtype=np.float32)

    def mask_insar(self) -> np.ndarray:
        def f() -> np.ndarray:
            p, c, los = self.get("wrapped_phase"), self.get("coherence"), self.los()
            if p is None or c is None or los is None or self.wavelength_m is None:
                return self.zeros()
            ok = np.isfinite(p) & np.isfinite(c) & np.all(np.isfinite(los), axis=0)
            return ok.astype(np.float32)

        return self.cached("mask_insar", f)

    def mask_dem(self) -> np.ndarray:
        def f() -> np.ndarray:
            d = self.get("dem")
            return self.zeros() if d is None else np.isfinite(d).astype(np.float32)

        return self.cached("mask_dem", f)

    # normalised images -----------------------------------------------------------------
    def normalised(self, key: str, stat_key: str, mask: np.ndarray, db: bool = False) -> np.ndarray:
        a = self.get(key)
        st = self.stats.get(stat_key) if self.stats else None
        if a is None or st is None or not mask.any():
            return self.zeros()
        if db:
            a = _sar_db(a)
        out = (a - st["median"]) / st["scale"]
        out = np.clip(out, -CLIP, CLIP)
        out = np.where(mask > 0, out, 0.0)
        return np.nan_to_num(out).astype(np.float32)

    def phase_int(self) -> np.ndarray | None:
        def f() -> np.ndarray | None:
            p = self.get("wrapped_phase")
            if p is None:
                return None
            return (self.phase_sign * p).astype(np.float32)

        return self.cached("phase_int", f)

    def slopes(self) -> tuple[np.ndarray, np.ndarray]:
        def f() -> tuple[np.ndarray, np.ndarray]:
            d = self.get("dem")
            m = self.mask_dem()
            if d is None or not m.any():
                return self.zeros(), self.zeros()
            fill = float(np.nanmedian(d))
            dd = np.where(m > 0, d, fill).astype(np.float64)
            if min(dd.shape) < 2:
                return self.zeros(), self.zeros()
            d_row, d_col = np.gradient(dd, self.pixel_size_m)
            se = np.clip(d_col, -SLOPE_CLIP, SLOPE_CLIP) * m
            sn = np.clip(-d_row, -SLOPE_CLIP, SLOPE_CLIP) * m  # north = -row direction
            return se.astype(np.float32), sn.astype(np.float32)

        return self.cached("slopes", f)


# ----------------------------------------------------------------------------- builders
def _phase_trig(ctx: _Ctx, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    p, m = ctx.phase_int(), ctx.mask_insar()
    if p is None or not m.any():
        return ctx.zeros()
    return np.where(m > 0, fn(np.nan_to_num(p)), 0.0).astype(np.float32)


def _los(ctx: _Ctx, i: int) -> np.ndarray:
    los, m = ctx.los(), ctx.mask_insar()
    if los is None or not m.any():
        return ctx.zeros()
    return np.where(m > 0, np.nan_to_num(los[i]), 0.0).astype(np.float32)


def _coherence(ctx: _Ctx) -> np.ndarray:
    c, m = ctx.get("coherence"), ctx.mask_insar()
    if c is None or not m.any():
        return ctx.zeros()
    return np.where(m > 0, np.clip(np.nan_to_num(c), 0.0, 1.0), 0.0).astype(np.float32)


def _fringe(ctx: _Ctx) -> np.ndarray:
    m = ctx.mask_insar()
    if ctx.wavelength_m is None or not m.any():
        return ctx.zeros()
    return np.full(ctx.shape, ctx.wavelength_m / (2.0 * ctx.pixel_size_m), np.float32)


BUILDERS: dict[str, Callable[[_Ctx], np.ndarray]] = {
    "optical_pre": lambda c: c.normalised("optical_pre", "optical_pre", c.mask_optical()),
    "optical_post": lambda c: c.normalised("optical_post", "optical_post", c.mask_optical()),
    "sar_pre_db": lambda c: c.normalised("sar_pre", "sar_pre_db", c.mask_sar(), db=True),
    "sar_post_db": lambda c: c.normalised("sar_post", "sar_post_db", c.mask_sar(), db=True),
    "phase_cos": lambda c: _phase_trig(c, np.cos),
    "phase_sin": lambda c: _phase_trig(c, np.sin),
    "coherence": _coherence,
    "dem_slope_east": lambda c: c.slopes()[0],
    "dem_slope_north": lambda c: c.slopes()[1],
    "los_east": lambda c: _los(c, 0),
    "los_north": lambda c: _los(c, 1),
    "los_up": lambda c: _los(c, 2),
    "fringe_px": _fringe,
    "pixel_size_m": lambda c: np.full(c.shape, c.pixel_size_m, np.float32),
    "mask_optical": lambda c: c.mask_optical(),
    "mask_sar": lambda c: c.mask_sar(),
    "mask_insar": lambda c: c.mask_insar(),
    "mask_dem": lambda c: c.mask_dem(),
    "fault_side": lambda c: _fault_side(c),
}


def _fault_side(ctx: _Ctx) -> np.ndarray:
    """+1 / -1 on the right / left of a rupture trace given with the inputs (``fault_side``), else 0."""
    side = ctx.get("fault_side")
    if side is None:
        return ctx.zeros()
    return np.sign(np.nan_to_num(np.asarray(side, np.float32))).astype(np.float32)


def channel_name(spec: Any) -> str:
    """Name of a channel spec (a metadata dict with ``name`` or a plain string)."""
    return spec["name"] if isinstance(spec, Mapping) else str(spec)


def _shape(arrays: Mapping[str, Any]) -> tuple[int, int]:
    for key in ("optical_pre", "optical_post", "sar_pre", "sar_post", "wrapped_phase", "coherence", "dem"):
        a = arrays.get(key)
        if a is not None:
            return tuple(np.shape(a)[-2:])  # type: ignore[return-value]
    los = arrays.get("los_unit_vector")
    if los is not None:
        return tuple(np.shape(los)[-2:])  # type: ignore[return-value]
    raise ValueError("build_features: no input raster given (all modalities are None)")


def build_features(channel_specs: Sequence[Any], arrays: Mapping[str, Any], *, stats: Mapping[str, Any] | None,
                   pixel_size_m: float, wavelength_m: float | None = None, phase_sign: int = 1) -> np.ndarray:
    """Stack the named channels into a ``(C, H, W) float32`` array (order of ``channel_specs``).

    ``stats``: from :func:`compute_stats` on the whole raster (None -> computed on ``arrays``,
    fine for a whole scene, not for tiles). ``wavelength_m`` may be None when there is no InSAR.
    """
    if pixel_size_m is None or not np.isfinite(pixel_size_m) or pixel_size_m <= 0:
        raise ValueError(f"build_features: pixel_size_m must be > 0, got {pixel_size_m!r}")
    if phase_sign not in (1, -1):
        raise ValueError(f"build_features: phase_sign must be +1 or -1, got {phase_sign!r}")
    if stats is None:
        stats = compute_stats(arrays)
    shape = _shape(arrays)
    ctx = _Ctx(arrays, stats, pixel_size_m, wavelength_m, phase_sign, shape)
    out = np.empty((len(channel_specs), *shape), np.float32)
    for i, spec in enumerate(channel_specs):
        name = channel_name(spec)
        if name not in BUILDERS:
            raise KeyError(f"build_features: unknown channel {name!r}; known: {sorted(BUILDERS)}")
        out[i] = BUILDERS[name](ctx)
    return out
