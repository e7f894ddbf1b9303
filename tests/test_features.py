"""backend/features.py: channel builders, masks, conventions, tile independence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.conventions import SENTINEL1_WAVELENGTH_M, los_to_phase, los_unit_vector, wrap
from backend.features import BUILDERS, build_features, compute_stats
from models.channels import CHANNELS, channel_specs


def _arrays(h: int = 48, w: int = 40, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    los = los_unit_vector(np.full((h, w), 39.0), np.full((h, w), -12.0)).astype(np.float32)
    los_m = 0.01 * xx  # 1 cm per pixel towards the satellite
    return {
        "optical_pre": (100 + 20 * rng.standard_normal((h, w))).astype(np.float32),
        "optical_post": (300 + 60 * rng.standard_normal((h, w))).astype(np.float32),
        "sar_pre": rng.rayleigh(1.0, (h, w)).astype(np.float32),
        "sar_post": rng.rayleigh(2.0, (h, w)).astype(np.float32),
        "wrapped_phase": wrap(los_to_phase(los_m, SENTINEL1_WAVELENGTH_M, -1)).astype(np.float32),
        "coherence": np.full((h, w), 0.7, np.float32),
        "dem": (2.0 * xx * 10.0 - 1.0 * yy * 10.0).astype(np.float32),  # slope 2 east, +1 north (rows go south)
        "los_unit_vector": los,
    }


def test_all_default_channels_have_builders_and_docs() -> None:
    assert set(CHANNELS) <= set(BUILDERS)
    specs = channel_specs()
    json.dumps(specs)
    assert [s["name"] for s in specs] == CHANNELS


def test_shapes_normalisation_slopes_and_constants() -> None:
    a = _arrays()
    x = build_features(channel_specs(), a, stats=compute_stats(a), pixel_size_m=10.0,
                       wavelength_m=SENTINEL1_WAVELENGTH_M, phase_sign=-1)
    assert x.shape == (len(CHANNELS), 48, 40) and x.dtype == np.float32
    c = {n: x[i] for i, n in enumerate(CHANNELS)}
    # per-image robust normalisation removes the radiometric change between pre and post
    for n in ("optical_pre", "optical_post", "sar_pre_db", "sar_post_db"):
        assert abs(np.median(c[n])) < 0.05 and 0.8 < np.median(np.abs(c[n])) * 1.4826 < 1.2
    assert np.allclose(c["dem_slope_east"], 2.0, atol=1e-5)
    assert np.allclose(c["dem_slope_north"], 1.0, atol=1e-5)
    assert np.allclose(c["fringe_px"], SENTINEL1_WAVELENGTH_M / 20.0)
    assert np.allclose(c["pixel_size_m"], 10.0)
    assert np.allclose(c["los_up"], np.cos(np.deg2rad(39.0)), atol=1e-6)
    for m in ("mask_optical", "mask_sar", "mask_insar", "mask_dem"):
        assert np.all(c[m] == 1.0)


def test_phase_internal_convention_is_sign_independent() -> None:
    """Same LOS field processed with phase_sign +1 and -1 gives the same internal phase channels."""
    los_m = np.linspace(0, 0.05, 40, dtype=np.float32)[None].repeat(8, 0)
    base = _arrays(8, 40)
    outs = []
    for sign in (1, -1):
        a = dict(base, wrapped_phase=wrap(los_to_phase(los_m, SENTINEL1_WAVELENGTH_M, sign)).astype(np.float32))
        outs.append(build_features(["phase_cos", "phase_sin"], a, stats=None, pixel_size_m=10.0,
                                   wavelength_m=SENTINEL1_WAVELENGTH_M, phase_sign=sign))
    assert np.allclose(outs[0], outs[1], atol=1e-5)
    # internal phase = -4 pi / lambda * LOS
    expected = -4 * np.pi / SENTINEL1_WAVELENGTH_M * los_m
    assert np.allclose(outs[0][0], np.cos(expected), atol=1e-4)
    assert np.allclose(outs[0][1], np.sin(expected), atol=1e-4)


def test_missing_modalities_and_nan_pixels_give_zero_and_mask_zero() -> None:
    a = _arrays()
    a["sar_pre"] = None
    a["sar_post"] = None
    a["wrapped_phase"] = None
    a["optical_post"][5, 7] = np.nan
    a["dem"][3, 3] = np.nan
    x = build_features(channel_specs(), a, stats=compute_stats(a), pixel_size_m=10.0,
                       wavelength_m=None, phase_sign=1)
    c = {n: x[i] for i, n in enumerate(CHANNELS)}
    assert np.all(np.isfinite(x))
    for n in ("sar_pre_db", "sar_post_db", "phase_cos", "phase_sin", "coherence", "los_east", "fringe_px",
              "mask_sar", "mask_insar"):
        assert np.all(c[n] == 0.0), n
    assert c["mask_optical"][5, 7] == 0 and c["optical_pre"][5, 7] == 0 and c["optical_post"][5, 7] == 0
    assert c["mask_optical"].sum() == 48 * 40 - 1
    assert c["mask_dem"][3, 3] == 0 and c["dem_slope_east"][3, 3] == 0


def test_global_stats_make_tiles_seamless_and_accept_decimated_input() -> None:
    a = _arrays(64, 64, seed=3)
    stats = compute_stats(a)
    full = build_features(CHANNELS, a, stats=stats, pixel_size_m=20.0, wavelength_m=0.2384, phase_sign=1)
    tile = {k: (v[..., 16:48, 8:40] if v is not None else None) for k, v in a.items()}
    part = build_features(CHANNELS, tile, stats=stats, pixel_size_m=20.0, wavelength_m=0.2384, phase_sign=1)
    # all channels but the DEM slope (one-sided differences at tile edges) match exactly inside
    sl = [i for i, n in enumerate(CHANNELS) if not n.startswith("dem_slope")]
    assert np.array_equal(full[sl][:, 16:48, 8:40], part[sl])
    dec = compute_stats({k: (v[..., ::4, ::4] if v is not None else None) for k, v in a.items()})
    assert abs(dec["optical_pre"]["median"] - stats["optical_pre"]["median"]) < 0.1 * stats["optical_pre"]["scale"]


def test_bad_arguments_raise() -> None:
    a = _arrays(8, 8)
    with pytest.raises(ValueError):
        build_features(CHANNELS, a, stats=None, pixel_size_m=0.0, wavelength_m=0.05, phase_sign=1)
    with pytest.raises(KeyError):
        build_features(["nope"], a, stats=None, pixel_size_m=10.0, wavelength_m=0.05, phase_sign=1)
