"""backend.inversion: E/N/U from optical + ascending + descending LOS on a simulated event; NaN when unconstrained;
models.sim_tracks files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from backend import conventions as cv
from backend.inversion import Horizontal, LosObservation, cramer_rao_phase_sigma, invert_enu


@pytest.fixture(scope="module")
def event():
    from models.scene import simulate_scene
    from models.sim_tracks import render_tracks

    s = simulate_scene(6, size=(128, 128), overrides={"surface_rupture": True})
    tracks = render_tracks(s, tracks=(("ascending", "C"), ("descending", "C")), seed=6)
    return s, tracks


def _los_obs(s, tracks, rng, offset_m: float = 0.0) -> list[LosObservation]:
    """LOS 'measurements': truth + Cramer-Rao noise from each track's coherence (+ a constant reference offset)."""
    out = []
    for t in tracks:
        sig = cramer_rao_phase_sigma(t.coherence, t.nlooks) * t.wavelength_m / (4 * np.pi)
        sig = np.minimum(sig, 0.02)
        d = t.truth_los + offset_m + sig * rng.standard_normal(sig.shape)
        out.append(LosObservation(t.los_unit_vector, los_m=d, sigma_m=sig, atmosphere_sigma_m=0.0, name=t.name))
    return out


def test_cramer_rao():
    assert cramer_rao_phase_sigma(np.array(0.5), 4) == pytest.approx(np.sqrt(0.75) / (0.5 * np.sqrt(8)))


def test_asc_desc_optical_recovers_enu_within_sigma(event):
    s, tracks = event
    u = s.truth_enu.astype(np.float64)
    rng = np.random.default_rng(0)
    sh, su = 0.1, 0.3
    hz = Horizontal(u[0] + sh * rng.standard_normal(u[0].shape), u[1] + sh * rng.standard_normal(u[0].shape), sh, sh,
                    up=u[2] + su * rng.standard_normal(u[0].shape), sigma_up=su)
    r = invert_enu(u.shape[1:], horizontal=hz, los=_los_obs(s, tracks, rng, offset_m=0.05))
    assert r.constrained.all()
    err = r.enu - u
    for i in range(3):
        within = np.mean(np.abs(err[i]) < r.sigma[i])
        assert 0.6 < within < 0.9, (i, within)
        assert np.mean(np.abs(err[i]) < 4 * r.sigma[i]) > 0.995
    # InSAR makes east and up far better than the optical stand-in; north stays optical-grade
    rmse = np.sqrt(np.mean(err**2, axis=(1, 2)))
    assert rmse[0] < 0.3 * sh and rmse[2] < 0.3 * su and rmse[1] < 1.1 * sh
    # the 5 cm reference offset of each interferogram is estimated on the far field
    assert all(abs(np.median(o) - 0.05) < 0.01 for o in r.los_offsets_m)
    assert r.cov.shape == (6, *u.shape[1:])
    assert np.allclose(r.cov[:3], r.sigma.astype(np.float64) ** 2, rtol=1e-4)


def test_unconstrained_components_are_nan(event):
    s, tracks = event
    shape = s.truth_enu.shape[1:]
    rng = np.random.default_rng(1)
    los = _los_obs(s, tracks, rng)
    one = invert_enu(shape, los=los[:1])
    assert np.isnan(one.enu).all() and not one.constrained.any()
    assert all("not constrained" in why for why in one.reasons)
    assert np.isfinite(one.sigma).all()  # sigma still reported

    two = invert_enu(shape, los=los)
    assert np.isnan(two.enu[1]).all()  # north: asc and desc see it alike
    assert np.isnan(two.enu[2]).all()  # ... and so up is confounded with it

    two_n = invert_enu(shape, los=los, north_prior_sigma_m=0.1)
    assert np.isnan(two_n.enu[1]).all() and "prior" in two_n.reasons[1]
    assert np.isfinite(two_n.enu[0]).all() and np.isfinite(two_n.enu[2]).all()
    u = s.truth_enu
    assert np.sqrt(np.mean((two_n.enu[0] - u[0]) ** 2)) < 0.02
    assert np.all(np.abs(two_n.enu[2] - u[2]) < 4 * two_n.sigma[2] + 0.2 * np.abs(u[1]))

    none = invert_enu(shape)
    assert np.isnan(none.enu).all() and np.isnan(none.sigma).all() and "no data" in none.reasons[0]


def test_write_tracks_files(event, tmp_path):
    from models.sim_tracks import write_tracks

    s, tracks = event
    files = write_tracks(tmp_path, s, tracks)
    meta = json.loads(files["tracks.json"].read_text())
    assert [t["pass"] for t in meta["tracks"]] == ["ascending", "descending"]
    with rasterio.open(files["los_vector_2.tif"]) as ds:
        assert ds.count == 3 and ds.crs.to_epsg() == s.crs
        assert ds.transform.a == pytest.approx(s.pixel_size_m)
        v = ds.read()
    assert np.allclose(np.sqrt((v**2).sum(0)), 1.0, atol=1e-5)
    assert v[0].mean() > 0.5 and v[2].mean() > 0.6  # descending: satellite east of the target
    with rasterio.open(files["phase_1.tif"]) as ds:
        p = ds.read(1)
    assert np.array_equal(p, tracks[0].wrapped_phase)
    assert np.all((p >= -np.pi) & (p < np.pi))
    # phase = wrap(4 pi / lambda * range increase) of the truth where coherent
    t = tracks[0]
    good = t.coherence > 0.9
    d = cv.wrap(p - t.truth_unwrapped_phase)
    assert np.mean(np.abs(d[good]) < 1.0) > 0.9


def test_far_field_offset_is_not_biased_by_selecting_on_the_noise():
    # E = 0.15 m on the left half, 0 on the right (the true far field); optical noise 0.1 m. Choosing "far" pixels
    # by their own noisy estimate also picks left pixels whose noise cancels the motion, and subtracting that same
    # estimate leaves part of their motion in the offset (measured: -9.0 mm with a stated sigma of 0.6 mm when
    # selecting on the pixel itself, as before; +0.6 mm with sigma 0.6 mm selecting on the 9 x 9 mean)
    from backend.inversion import _offsets

    rng = np.random.default_rng(4)
    h, w = 200, 200
    u = np.zeros((3, h, w))
    u[0, :, : w // 2] = 0.15
    l = np.array([-0.62, -0.11, 0.78])
    d = np.einsum("i,ihw->hw", l, u) + 0.05 + 0.005 * rng.standard_normal((h, w))
    hz = Horizontal(u[0] + 0.1 * rng.standard_normal((h, w)), u[1] + 0.1 * rng.standard_normal((h, w)), 0.1, 0.1)
    off, osig, used = _offsets(d, np.broadcast_to(l[:, None, None], (3, h, w)), hz, None, None)
    assert abs(off[0, 0] - 0.05) < 0.004 and abs(off[0, 0] - 0.05) < 4 * osig[0, 0] + 1e-3
    assert used[1] > 0.3 * h * w


def test_sar_up_coupling_removes_the_vertical_leak_of_sar_offsets(event):
    """A horizontal that takes a share w of its weight from geocoded SAR amplitude offsets reads the apparent shift
    d_h - w U cot(theta) g (the simulator draws the SAR pair so, models/scene.py). With one interferogram of the same
    track and the coupling (``sar_up_coupling``) the inversion recovers E, N and U; without it E/N keep the leak and
    U reads (1 - w) of the truth. At w = 1 (SAR alone) SAR range offsets and the LOS measure the same combination:
    U is not constrained (NaN), not silently wrong."""
    from backend.inversion import sar_up_coupling

    s, tracks = event
    u = s.truth_enu.astype(np.float64)
    shape = u.shape[1:]
    t = tracks[0]
    l = np.asarray(t.los_unit_vector, np.float64)
    l = np.broadcast_to(l[:, None, None], (3, *shape)) if l.ndim == 1 else l
    lh = np.hypot(l[0], l[1])
    g = -l[:2] / lh  # ground range, away from the satellite
    cot = l[2] / lh
    assert np.all(np.abs(u[2]) < 5) and np.percentile(np.abs(u[2]), 90) > 0.05  # the event moves the ground vertically
    w = np.full(shape, 0.6)
    apparent = u[:2] - w * u[2] * cot * g
    coup = sar_up_coupling(w, t.los_unit_vector)
    np.testing.assert_allclose(apparent, u[:2] + coup * u[2], atol=1e-5)
    los = [LosObservation(t.los_unit_vector, los_m=t.truth_los, sigma_m=np.full(shape, 0.002), atmosphere_sigma_m=0.0)]
    sh = 0.02
    plain = invert_enu(shape, horizontal=Horizontal(apparent[0], apparent[1], sh, sh), los=los, los_offset="none")
    fixed = invert_enu(shape, horizontal=Horizontal(apparent[0], apparent[1], sh, sh, up_coupling=coup), los=los,
                       los_offset="none")
    assert fixed.constrained.all()
    for i in range(3):
        assert np.max(np.abs(fixed.enu[i] - u[i])) < 0.01, i
    leak = np.abs(w * u[2] * cot)  # the E/N leak's size
    big = leak > 0.1
    assert big.any()
    assert np.median(np.hypot(*(plain.enu[:2, big] - u[:2, big]))) > 0.5 * np.median(leak[big])
    np.testing.assert_allclose(plain.enu[2, big], (1 - w[big]) * u[2, big], atol=0.02, rtol=0.05)
    alone = invert_enu(shape, horizontal=Horizontal(*(u[:2] + sar_up_coupling(np.ones(shape), t.los_unit_vector)
                                                        * u[2]), 0.02, 0.02,
                                                    up_coupling=sar_up_coupling(np.ones(shape), t.los_unit_vector)),
                       los=los, los_offset="none")
    assert np.isnan(alone.enu[2]).all()
