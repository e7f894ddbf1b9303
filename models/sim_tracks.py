"""One simulated event seen by several interferograms: ascending / descending tracks, C and L band.

``render_tracks(scene, tracks=DEFAULT_TRACKS, seed=0) -> list[Track]`` re-renders the scene's true displacement
(``models.scene.simulate_scene(...).truth_enu``) from each (pass, band) geometry, each with its own LOS unit-vector
raster (incidence varying across range), atmosphere, coherence and L-look wrapped phase.
``write_tracks(out_dir, scene, tracks)`` writes ``phase_<k>.tif``, ``coherence_<k>.tif``, ``los_vector_<k>.tif``
(3 bands E, N, U; ground to satellite), ``truth_los_<k>.tif`` and ``tracks.json`` (k = 1, 2, ...).

Coherence per track (product of, clipped to 0..1):

* base coherence (C: U(0.6, 0.95), L: U(0.75, 0.97)) x vegetation loss (bright optical fields, stronger in C band);
* strain decorrelation ``exp(-strain / s0)`` (same law as models/scene.py);
* fringe-rate decorrelation ``|sinc(dphi_px / 2 pi)|`` (a phase ramp of dphi_px rad per pixel inside the
  resolution cell): dense C-band fringes near the fault decorrelate, L band much less;
* a surface-rupture damage zone (``distance_to_rupture < damage_zone_m``, 1.5-4 px and >= 60 m): coherence x 0.05-0.2.

Phase: ``los_to_phase(truth_los) + phase_sign * 4 pi / lambda * delay`` (turbulence + stratified + ramp, L band
with a larger long-wavelength (ionospheric) ramp), then an exact L-look circular-Gaussian interferogram drawn look
by look; the coherence raster is the 3 x 3-averaged sample coherence, like models/scene.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from backend import conventions as cv
from models.scene import Scene, _fractal, _grad

DEFAULT_TRACKS: tuple[tuple[str, str], ...] = (("ascending", "C"), ("descending", "C"),
                                               ("ascending", "L"), ("descending", "L"))
WAVELENGTH = {"C": 0.0555, "L": 0.2384}


@dataclass
class Track:
    name: str
    pass_direction: str
    band: str
    wavelength_m: float
    phase_sign: int
    heading_deg: float
    incidence_deg: np.ndarray
    los_unit_vector: np.ndarray  # (3, H, W) ground to satellite
    coherence: np.ndarray
    wrapped_phase: np.ndarray
    truth_los: np.ndarray  # deformation only (m, towards the satellite)
    truth_unwrapped_phase: np.ndarray  # deformation + atmosphere (rad)
    nlooks: int
    params: dict[str, Any] = field(default_factory=dict)


def _lookwise_interferogram(rng: np.random.Generator, gamma: np.ndarray, phase: np.ndarray,
                            nlooks: int) -> tuple[np.ndarray, np.ndarray]:
    """Wrapped phase and 3x3-averaged sample coherence of an L-look interferogram (looks drawn one by one)."""
    shape = gamma.shape
    g = np.clip(gamma, 0.0, 1.0)
    gc = np.sqrt(1.0 - g * g)
    cross = np.zeros(shape, np.complex128)
    p1 = np.zeros(shape)
    p2 = np.zeros(shape)
    for _ in range(nlooks):
        a = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)
        b = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)
        s2 = g * a + gc * b
        cross += a * np.conj(s2)
        p1 += np.abs(a) ** 2
        p2 += np.abs(s2) ** 2
    cross *= np.exp(1j * phase)
    coh = np.clip(ndimage.uniform_filter(np.abs(cross) / np.sqrt(p1 * p2), 3), 0.0, 1.0)
    wrapped = cv.wrap(np.angle(cross)).astype(np.float32)
    wrapped[wrapped >= np.float32(np.pi)] = -np.float32(np.pi)
    return wrapped, coh.astype(np.float32)


def render_tracks(scene: Scene, tracks: tuple[tuple[str, str], ...] = DEFAULT_TRACKS, seed: int = 0,
                  damage_zone: bool = True) -> list[Track]:
    """Render ``scene.truth_enu`` from each (pass, band) in ``tracks``; see the module docstring."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(scene.params.get("seed", 0)), 8]))
    u = np.asarray(scene.truth_enu, np.float64)
    H, W = u.shape[1:]
    pixel = float(scene.pixel_size_m)
    extent = max(H, W) * pixel
    le = ((np.arange(W) + 0.5) - W / 2.0) * pixel
    ln = (H / 2.0 - (np.arange(H) + 0.5)) * pixel
    LE, LN = np.meshgrid(le, ln)
    ge, gn = _grad(u[0], pixel)
    ge2, gn2 = _grad(u[1], pixel)
    strain = np.sqrt(ge**2 + gn2**2 + 0.5 * (gn + ge2) ** 2)
    opt = ndimage.gaussian_filter(np.asarray(scene.optical_pre, np.float64), 2.0)
    veg = np.clip((opt - np.percentile(opt, 30)) / (np.ptp(opt) + 1e-6), 0, 1)
    dem = np.asarray(scene.dem, np.float64)
    dist = np.asarray(scene.distance_to_rupture_m, np.float64)
    has_rupture = bool(np.any(scene.rupture_mask))
    dz_m = max(float(rng.uniform(1.5, 4.0)) * pixel, 60.0)
    out: list[Track] = []
    for k, (pass_dir, band) in enumerate(tracks, start=1):
        lam = WAVELENGTH[band]
        sign = 1
        asc = pass_dir.startswith("asc")
        heading = float((-12.0 if asc else -168.0) + rng.normal(0, 2.0))
        inc_c = float(rng.uniform(29.0, 46.0) if band == "C" else rng.uniform(25.0, 48.0))
        los_c = cv.los_unit_vector(inc_c, heading)
        hnorm = math.hypot(los_c[0], los_c[1])
        g_e, g_n = -los_c[0] / hnorm, -los_c[1] / hnorm  # ground-range direction (away from the satellite)
        inc = inc_c + float(rng.uniform(0.055e-3, 0.07e-3)) * (LE * g_e + LN * g_n)
        los = cv.los_unit_vector(inc, np.full_like(inc, heading))
        truth_los = cv.enu_to_los(u[0], u[1], u[2], los)
        phi_def = cv.los_to_phase(truth_los, lam, sign)
        # atmosphere (m of range increase)
        turb = _fractal(rng, (H, W), beta=8 / 3 + 2) * float(rng.uniform(0.003, 0.02)) * (extent / 20e3) ** (1 / 3)
        strat = float(rng.normal(0, 1.5e-5)) * (dem - dem.mean())
        ramp_a, ramp_b = rng.normal(0, 1e-7, 2) * (3 if band == "L" else 1)
        delay = turb + strat + ramp_a * LE + ramp_b * LN
        truth_unw = phi_def + sign * 4 * math.pi / lam * delay
        # coherence
        base = float(rng.uniform(0.6, 0.95) if band == "C" else rng.uniform(0.75, 0.97))
        coh = base * (1 - (0.6 if band == "C" else 0.25) * veg * float(rng.uniform(0.3, 1.0)))
        coh = coh * np.clip(1 + 0.1 * _fractal(rng, (H, W), beta=2.5), 0.3, 1.2)
        coh = coh * np.exp(-strain / float(rng.uniform(2e-3, 1e-2)))
        gy, gx = np.gradient(phi_def)
        coh = coh * np.abs(np.sinc(np.hypot(gx, gy) / (2 * math.pi)))
        if damage_zone and has_rupture:
            coh = np.where(dist <= dz_m, coh * float(rng.uniform(0.05, 0.2)), coh)
        coh = np.clip(coh, 0.0, 1.0)
        nlooks = int(np.clip(round(pixel * pixel / 100.0 * rng.uniform(0.5, 1.0)), 2, 64))
        wrapped, coh_est = _lookwise_interferogram(rng, coh, truth_unw, nlooks)
        out.append(Track(
            name=f"{k}_{pass_dir[:3]}_{band}", pass_direction=pass_dir, band=band, wavelength_m=lam,
            phase_sign=sign, heading_deg=heading, incidence_deg=inc.astype(np.float32),
            los_unit_vector=los.astype(np.float32), coherence=coh_est, wrapped_phase=wrapped,
            truth_los=truth_los.astype(np.float32), truth_unwrapped_phase=truth_unw.astype(np.float32),
            nlooks=nlooks,
            params={"base_coherence": base, "damage_zone_m": dz_m if damage_zone and has_rupture else 0.0,
                    "incidence_center_deg": inc_c, "ramp_m_per_m": [float(ramp_a), float(ramp_b)]}))
    return out


def write_tracks(out_dir: str | Path, scene: Scene, tracks: list[Track]) -> dict[str, Path]:
    """GeoTIFFs per track (k = 1, 2, ... in order) + ``tracks.json``; returns name -> path."""
    import rasterio
    from affine import Affine

    from models.simulate import _block, _json_default

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    H, W = scene.dem.shape
    prof = dict(driver="GTiff", height=H, width=W, dtype="float32", crs=f"EPSG:{scene.crs}",
                transform=Affine(*scene.transform), nodata=float("nan"), compress="deflate", tiled=True,
                blockxsize=_block(W), blockysize=_block(H))
    written: dict[str, Path] = {}
    meta: dict[str, Any] = {"crs": f"EPSG:{scene.crs}", "transform": list(scene.transform), "size": [H, W],
                            "scene_seed": scene.params.get("seed"), "tracks": []}
    for k, t in enumerate(tracks, start=1):
        files = {
            f"phase_{k}.tif": ([t.wrapped_phase], ["wrapped_phase"], "rad"),
            f"coherence_{k}.tif": ([t.coherence], ["coherence"], "1"),
            f"los_vector_{k}.tif": (list(t.los_unit_vector), ["los_east", "los_north", "los_up"],
                                    "1 (ground to satellite, ENU)"),
            f"truth_los_{k}.tif": ([t.truth_los], ["los_displacement_towards_satellite"], "m"),
        }
        for name, (bands, descs, units) in files.items():
            with rasterio.open(out / name, "w", count=len(bands), **prof) as ds:
                ds.write(np.stack([np.asarray(b, np.float32) for b in bands]))
                ds.update_tags(units=units, wavelength_m=f"{t.wavelength_m:.8f}", phase_sign=str(t.phase_sign),
                               pass_direction=t.pass_direction, band=t.band)
                for bi, d in enumerate(descs, start=1):
                    ds.set_band_description(bi, d)
            written[name] = out / name
        meta["tracks"].append({"k": k, "name": t.name, "pass": t.pass_direction, "band": t.band,
                               "wavelength_m": t.wavelength_m, "phase_sign": t.phase_sign,
                               "heading_deg": t.heading_deg, "nlooks": t.nlooks,
                               "files": [n for n in files], "params": t.params,
                               "cli": f"--phase phase_{k}.tif --coherence coherence_{k}.tif "
                                      f"--wavelength {t.wavelength_m} --phase-sign {t.phase_sign} "
                                      f"--los-vector los_vector_{k}.tif"})
    pj = out / "tracks.json"
    pj.write_text(json.dumps(meta, indent=1, default=_json_default) + "\n")
    written["tracks.json"] = pj
    return written
