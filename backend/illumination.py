"""Topographic illumination of the optical pair from the DEM: the pre image relit to the post image's sun.

An optical image over relief is albedo times illumination: ``I = albedo * (a + b * hillshade(sun))`` (ambient sky
light ``a``, direct sun ``b`` on a Lambertian slope; the simulator renders exactly this, ``models/scene.py``). When the
sun differs between the two dates, the shading moves with the sun and not with the ground, and a matcher reads part
of it as motion.

Per image, this module fits the sun (azimuth, elevation) and ``a``, ``b`` to the image itself: the sun whose DEM
hillshade correlates best with the image (no metadata needed; the "C-correction" of Teillet et al. (1982) with its
sun and constant fitted). The pre image is then multiplied by ``illumination_post / illumination_pre``: it looks lit
by the post image's sun, and the pair differs by the ground motion alone. Only the pre image changes: the DEM is
registered to it, and the post image's shading has moved with the ground (dividing the post image by a shading
computed on the pre-event grid would imprint that shading at zero motion and pull large offsets toward 0).

Whether to relight is decided on the data (:func:`fit_pair`): the DEM must explain the shading of both images, and
the relit pair must look more alike than the raw pair (the correlation of the two images' detail rises by
:data:`MIN_GAIN`). Two fits of one same sun differ a little (albedo that correlates with the relief); relighting by
that difference would only add shading that is not there, and the check refuses it. run.json keeps the fits and the
decision (``stats.illumination``).

Measured (model 0.7.0, optical + DEM): the simulated Mw 6.9 scene (sun 21 -> 67 deg elevation) reads 0.50 px
median error far from the fault without it and 0.10 px with it; simulator test scene seed 9 (sun 60 -> 29 deg) 0.42
-> 0.03 px. The fit is made once per image on the whole grid (or the lattice of blocks of the normalisation
statistics) and applied to every tile with the same parameters: tiled runs have no seams.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MIN_CORRELATION = 0.1  # a fit whose hillshade explains less of the image than this (Pearson r) is not used at all
MAX_FIT_SAMPLES = 400_000  # pixels used for the fit (a fixed random subset of larger rasters)
COARSE_SAMPLES = 40_000  # of which the coarse grid of suns is scored on
MIN_GAIN = 0.005  # relight only when the pair's detail correlation rises by at least this much
DETAIL_SIGMA_PX = 3.0  # the "detail" the similarity compares: each image minus its Gaussian blur of this sigma
FLOOR = 0.1  # illumination is floored at this fraction of its median (deep shade: no division blow-up)
_AZ_GRID = np.arange(0.0, 360.0, 10.0)
_EL_GRID = np.arange(10.0, 85.0, 5.0)


def hillshade(dem: np.ndarray, pixel_size_m: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Cosine of the sun's incidence angle on a north-up DEM (row 0 = north), clipped to 0..1 (self-shadow = 0).

    ``azimuth_deg``: clockwise from north; ``elevation_deg``: above the horizon. NaN where the DEM's gradient is
    NaN. The simulator renders its optical images with this function (``models/scene.py``).
    """
    return _shade(_facets(np.asarray(dem, np.float64), float(pixel_size_m)), azimuth_deg, elevation_deg)


def _facets(dem: np.ndarray, pixel_size_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dz/d east, dz/d north, |(dz/de, dz/dn, 1)|) of a north-up DEM."""
    if min(dem.shape) < 2:
        z = np.zeros(dem.shape)
        return z, z, z + 1.0
    g_row, g_col = np.gradient(dem, pixel_size_m)
    ge, gn = g_col, -g_row  # north = -row
    return ge, gn, np.sqrt(ge * ge + gn * gn + 1.0)


def _shade(facets: tuple[np.ndarray, np.ndarray, np.ndarray], az_deg: float, el_deg: float) -> np.ndarray:
    ge, gn, norm = facets
    az, el = math.radians(az_deg), math.radians(el_deg)
    sun = (math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el))
    return np.clip((-ge * sun[0] - gn * sun[1] + sun[2]) / norm, 0.0, 1.0)


@dataclass(frozen=True)
class IlluminationFit:
    """One image's fitted illumination ``offset + gain * hillshade(azimuth, elevation)`` (image units); ``usable``:
    a positive illumination whose hillshade correlates with the image by at least :data:`MIN_CORRELATION`."""

    usable: bool
    reason: str
    azimuth_deg: float = float("nan")
    elevation_deg: float = float("nan")
    offset: float = float("nan")
    gain: float = float("nan")
    correlation: float = float("nan")
    level: float = float("nan")  # median illumination: the relit image keeps the image's brightness

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IlluminationFit:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def fit_illumination(image: np.ndarray, dem: np.ndarray, pixel_size_m: float) -> IlluminationFit:
    """Fit the sun and ``offset``, ``gain`` of one image's shading to the DEM (same grid; NaN = no data)."""
    return _fit(image, _facets(np.asarray(dem, np.float64), float(pixel_size_m)))


def _fit(image: np.ndarray, facets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> IlluminationFit:
    img = np.asarray(image, np.float64)
    ok = np.isfinite(img) & np.isfinite(facets[0]) & np.isfinite(facets[1])
    n = int(ok.sum())
    if n < 1000:
        return IlluminationFit(False, f"too few pixels with both image and DEM ({n} < 1000)")
    idx = np.flatnonzero(ok.ravel())  # in a fixed random order: the same fit on every run of the same data
    idx = np.random.default_rng(0).permutation(idx)[:MAX_FIT_SAMPLES]
    v = img.ravel()[idx]
    facets = tuple(a.ravel()[idx] for a in facets)
    if float(np.std(facets[2])) < 1e-4:
        return IlluminationFit(False, "the DEM is flat: no shading")
    vc = (v - v.mean()) / (v.std() + 1e-12)

    def corr(az: float, el: float, n: int | None = None) -> float:
        h = _shade(tuple(f[:n] for f in facets), az, el)
        sd = h.std()
        return float(np.mean(vc[:n] * (h - h.mean())) / sd) if sd > 1e-9 else -1.0

    # the grid on the first COARSE_SAMPLES pixels of the (random) subset, the refinement on all of them
    _, az, el = max((corr(a, e, COARSE_SAMPLES), a, e) for a in _AZ_GRID for e in _EL_GRID)
    r = corr(az, el)
    step_az, step_el = 5.0, 2.5  # coordinate refinement down to 0.3 deg
    while step_az > 0.3:
        for da, de in ((step_az, 0), (-step_az, 0), (0, step_el), (0, -step_el)):
            e2 = float(np.clip(el + de, 1.0, 89.0))
            c = corr((az + da) % 360.0, e2)
            if c > r:
                r, az, el = c, (az + da) % 360.0, e2
                break
        else:
            step_az, step_el = step_az / 2, step_el / 2
    h = _shade(facets, az, el)
    gain, offset = np.polyfit(h, v, 1)
    level = float(offset + gain * np.median(h))
    fit = dict(azimuth_deg=float(az), elevation_deg=float(el), offset=float(offset), gain=float(gain),
               correlation=float(r), level=level)
    sun = f"sun at azimuth {az:.0f} deg, elevation {el:.0f} deg"
    if r < MIN_CORRELATION:
        return IlluminationFit(False, f"no shading the DEM explains (best: {sun}, r {r:.2f})", **fit)
    if gain <= 0 or level <= 0:
        return IlluminationFit(False, f"the fitted illumination is not positive ({sun})", **fit)
    return IlluminationFit(True, f"{sun} (r {r:.2f})", **fit)


def _relative(facets: tuple[np.ndarray, np.ndarray, np.ndarray], fit: IlluminationFit) -> np.ndarray:
    """``(offset + gain * hillshade) / level`` (the illumination relative to its median), floored at
    :data:`FLOOR`; NaN where the DEM (or its gradient) has no value."""
    rel = (fit.offset + fit.gain * _shade(facets, fit.azimuth_deg, fit.elevation_deg)) / fit.level
    return np.maximum(rel, FLOOR)  # NaN stays NaN


def relight_pre(pre: np.ndarray, dem: np.ndarray, pixel_size_m: float, fit_pre: IlluminationFit,
                fit_post: IlluminationFit) -> np.ndarray:
    """The pre image lit by the post image's sun: ``pre * rel_post / rel_pre`` (float32; NaN stays NaN). Where
    the DEM has no value (voids, outside its cover) the relit image has none either: an unlit patch in a relit image
    would be an edge that does not move with the ground, and the network treats missing pixels exactly (other
    modalities, else NaN there).

    Only the pre image is changed, and the DEM is registered to it: the post image keeps its own shading, which
    moved with the ground, so the relit pair differs by the ground motion alone. (Dividing both images by their
    shading would imprint the DEM's shading at zero motion on the post image and pull large offsets toward 0.)
    """
    return _relight(pre, _facets(np.asarray(dem, np.float64), float(pixel_size_m)), fit_pre, fit_post)


def _relight(pre: np.ndarray, facets: tuple[np.ndarray, np.ndarray, np.ndarray], fit_pre: IlluminationFit,
             fit_post: IlluminationFit) -> np.ndarray:
    ratio = _relative(facets, fit_post) / _relative(facets, fit_pre)
    return (np.asarray(pre, np.float32) * ratio).astype(np.float32)


def pair_similarity(pre: np.ndarray, post: np.ndarray) -> float:
    """Pearson correlation of the two images' detail (each minus its Gaussian blur of :data:`DETAIL_SIGMA_PX`),
    over the pixels both have: how alike the pair looks to a matcher (sub-pixel motion barely changes it)."""
    from scipy.ndimage import gaussian_filter

    a, b = (np.asarray(x, np.float64) for x in (pre, post))
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 100:
        return float("nan")
    w = gaussian_filter(ok.astype(np.float64), DETAIL_SIGMA_PX)
    keep = ok & (w > 0.5)
    d = []
    for x in (a, b):
        x0 = np.where(ok, x, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            d.append((x0 - gaussian_filter(x0, DETAIL_SIGMA_PX) / w)[keep])
    return float(np.corrcoef(d[0], d[1])[0, 1])


def fit_pair(arrays: Mapping[str, Any], pixel_size_m: float) -> dict[str, Any]:
    """Fit both images' illumination and decide whether to relight the pre image (``arrays``: the 2-D optical pair
    and DEM on one grid; {} without a DEM or an optical pair). JSON dict: ``optical_pre`` / ``optical_post`` (the
    fits), ``relit`` (bool), ``similarity`` ([raw, relit] :func:`pair_similarity`) and ``reason``.

    Relit when both fits are usable and the relit pair is more alike than the raw pair by :data:`MIN_GAIN`. Both
    fits, never one: relighting with one image's shading alone (the other's taken as uniform) made the matching
    worse on most simulated test scenes even where the pair looked more alike."""
    dem = arrays.get("dem")
    pre, post = arrays.get("optical_pre"), arrays.get("optical_post")
    if dem is None or pre is None or post is None:
        return {}
    facets = _facets(np.asarray(dem, np.float64), float(pixel_size_m))  # one gradient for both fits and the check
    fit_pre, fit_post = _fit(pre, facets), _fit(post, facets)
    out: dict[str, Any] = {"optical_pre": fit_pre.to_json(), "optical_post": fit_post.to_json(), "relit": False}
    if not (fit_pre.usable and fit_post.usable):
        which = "neither image" if not (fit_pre.usable or fit_post.usable) else (
            "the pre image only" if fit_pre.usable else "the post image only")
        return out | {"similarity": None, "reason": f"the DEM's shading explains {which}"}
    before = pair_similarity(pre, post)
    after = pair_similarity(_relight(pre, facets, fit_pre, fit_post), post)
    sim = [round(before, 4), round(after, 4)]
    if not after >= before + MIN_GAIN:
        return out | {"similarity": sim,
                      "reason": f"relighting would not make the pair more alike (detail correlation {before:.3f} -> "
                                f"{after:.3f}): the two dates' shading is already the same"}
    return out | {"relit": True, "similarity": sim,
                  "reason": f"the relit pair is more alike (detail correlation {before:.2f} -> {after:.2f})"}


def apply(arrays: Mapping[str, Any], fits: Mapping[str, Any] | None, pixel_size_m: float) -> dict[str, Any]:
    """A copy of ``arrays`` with the pre image relit to the post image's sun when ``fits`` (``fit_pair``'s dict)
    says so; else unchanged."""
    out = dict(arrays)
    if not fits or not fits.get("relit") or out.get("optical_pre") is None or out.get("dem") is None:
        return out
    out["optical_pre"] = relight_pre(out["optical_pre"], out["dem"], pixel_size_m,
                                     IlluminationFit.from_json(fits["optical_pre"]),
                                     IlluminationFit.from_json(fits["optical_post"]))
    return out


def describe(fits: Mapping[str, Any] | None) -> str | None:
    """One sentence for the run's notes: what was done to the optical pair and why (None without a fit)."""
    if not fits:
        return None
    suns = f"pre: {fits['optical_pre']['reason']}; post: {fits['optical_post']['reason']}"
    if not fits.get("relit"):
        return f"optical pair not relit for topographic shading: {fits['reason']} ({suns})"
    return (f"optical pre image relit to the post image's sun from the DEM ({suns}; {fits['reason']}): a sun that "
            "differs between the dates otherwise reads as motion on relief (--illumination off, or the dialog's "
            "Relight box, skips this)")
