"""End to end: the whole pipeline (shipped model) unwraps simulated surface-rupturing scenes.

Model-quality tolerant on purpose (the network is retrained now and then). Since Step 8 the pipeline unwraps with
whirlwind's MCF on the residual against the fused estimate (backend/mcf.py): the cross-rupture cycle count is
never silently wrong - it is exact, or the two sides are different unwrap regions (relative count unknown, the
user is told) - and the output is congruent with the input. The block-wise quality-guided unwrapper
(backend/unwrap.py) remains for grids above pipeline.MCF_MAX_PX; exact counts with a known-good estimate:
tests/test_unwrap.py, tests/test_mcf.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from backend.conventions import TWO_PI, wrap
from backend.pipeline import EstimateConfig, run_estimate
from models.metrics import cross_rupture_cycle_error, exact_cycle_share, rupture_sides, true_cross_rupture_cycles
from models.testing import scene_estimate_inputs


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 9])
def test_pipeline_cycle_count_across_simulated_rupture(tmp_path: Path, qf_model: Path, seed: int) -> None:
    from skimage.restoration import unwrap_phase

    from backend.unwrap import joint_unwrap
    from models.scene import simulate_scene

    s = simulate_scene(seed, size=(192, 192))
    trace = s.rupture_mask > 0
    truth = s.truth_unwrapped_phase.astype(np.float64)
    assert trace.any() and abs(true_cross_rupture_cycles(truth, trace)) > 5  # a real rupture, many cycles
    res = run_estimate(EstimateConfig(out_dir=tmp_path / "out", **scene_estimate_inputs(s, tmp_path / "in"),
                                      model_path=qf_model, device="cpu"))
    with rasterio.open(res.outputs["unwrapped_phase"]) as ds:
        unw = ds.read(1).astype(np.float64)
        assert ds.transform == Affine(*s.transform) and ds.crs.to_epsg() == s.crs
    phase = s.wrapped_phase.astype(np.float64)
    ok = np.isfinite(unw)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(wrap(unw[ok] - phase[ok]), 0.0, atol=1e-4)  # input + 2 pi k (float32 output)
    k = (unw[ok] - phase[ok]) / TWO_PI
    assert np.abs(k - np.rint(k)).max() < 1e-4
    # the old joint unwrapper without any model information (phase_model = 0): path following on the phase
    base, _, _ = joint_unwrap(phase, np.zeros_like(phase), s.coherence.astype(np.float64))
    ours_err = cross_rupture_cycle_error(unw, truth, trace)
    base_err = cross_rupture_cycle_error(base, truth, trace)
    classical_err = cross_rupture_cycle_error(unwrap_phase(phase), truth, trace)
    assert np.isfinite(ours_err)
    # never silently wrong across the rupture: exact, or the two sides are different regions (and a note says so)
    with rasterio.open(res.outputs["unwrap_regions"]) as ds:
        regions = ds.read(1)
    a, b = rupture_sides(trace)
    ra, rb = (int(np.bincount(regions[m][regions[m] > 0]).argmax()) if (regions[m] > 0).any() else 0
              for m in (a, b))
    assert ours_err == 0 or ra != rb or ra == 0, (ours_err, base_err, classical_err, ra, rb)
    if ours_err != 0:
        assert any("unknown relative cycle count" in n for n in res.run["notes"])
    assert exact_cycle_share(unw, truth)[0] >= exact_cycle_share(base, truth)[0] - 0.05
    # a model that is right and confident (the true phase, sigma 0.1 rad) gets the rupture step exactly (the old
    # joint unwrapper's rule; MCF's: tests/test_mcf.py)
    share = res.run["parameters"]["unwrap"]["interferograms"][0]["model_used_share"]
    assert 0.0 <= share <= 1.0
    sure, _, info = joint_unwrap(phase, truth, s.coherence.astype(np.float64), model_sigma=np.full_like(phase, 0.1))
    assert info["model_trusted_share"] > 0.95
    assert cross_rupture_cycle_error(sure, truth, trace) == 0, (ours_err, base_err, classical_err)
    with rasterio.open(res.outputs["los_displacement"]) as ds:  # band 2: LOS of the unwrapped phase
        los_unw = ds.read(2).astype(np.float64)
    lam, sign = s.wavelength_m, s.phase_sign
    np.testing.assert_allclose(los_unw[ok], -sign * unw[ok] * lam / (4 * np.pi), atol=1e-5)


def test_absolute_offset_only_from_a_confident_model() -> None:
    from backend.unwrap import joint_unwrap

    rng = np.random.default_rng(0)
    r, c = np.mgrid[0:80, 0:90].astype(np.float64)
    truth = 0.3 * c + 0.1 * r + 40 * TWO_PI  # 40 cycles above zero
    phase = wrap(truth + 0.1 * rng.standard_normal(truth.shape))
    coh = np.full(truth.shape, 0.9)
    model = truth + 0.5 * rng.standard_normal(truth.shape)
    # confident model (sigma 0.5 rad): the absolute cycle count comes from it
    unw, _, info = joint_unwrap(phase, model, coh, model_sigma=np.full(truth.shape, 0.5))
    assert np.nanmedian(np.rint((unw - truth) / TWO_PI)) == 0 and info["model_offset_pixels"] > 0.99 * truth.size
    # the same model claiming sigma = 100 rad (an untrained network) sets no absolute offset: median k = 0
    biased = model + 300 * TWO_PI
    unw2, k2, info2 = joint_unwrap(phase, biased, coh, model_sigma=np.full(truth.shape, 100.0))
    assert info2["model_offset_pixels"] == 0 and np.median(k2) == 0
    np.testing.assert_allclose(np.diff(unw2, axis=1), np.diff(truth, axis=1), atol=0.6)  # still unwrapped


def test_unwrapping_blocks_are_stitched_without_cycle_jumps(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    """Unwrapping in 64 px blocks gives the single-block answer (up to one constant) even with a model that sets no
    absolute offset (the tiny test network's sigma is far above lambda/2). The block path is the one of grids above
    pipeline.MCF_MAX_PX (lowered here)."""
    from backend import pipeline

    monkeypatch.setattr(pipeline, "MCF_MAX_PX", 100)
    rng = np.random.default_rng(2)
    n = 150
    r, c = np.mgrid[0:n, 0:n].astype(np.float64)
    truth = 60.0 * np.exp(-((r - 70) ** 2 + (c - 80) ** 2) / (2 * 35.0 ** 2)) + 0.02 * c  # ~10 cycles
    t = Affine(30.0, 0, 500000.0, 0, -30.0, 4400000.0)
    prof = dict(driver="GTiff", width=n, height=n, count=1, dtype="float32", crs="EPSG:32634", transform=t,
                nodata=float("nan"))
    with rasterio.open(tmp_path / "phase.tif", "w", **prof) as ds:
        ds.write(wrap(truth + 0.2 * rng.standard_normal((n, n))).astype(np.float32), 1)
    model = tiny_model
    outs = {}
    for block in (64, 4096):
        res = run_estimate(EstimateConfig(out_dir=tmp_path / f"o{block}", phase=tmp_path / "phase.tif",
                                          wavelength_m=0.05546576, incidence_deg=39, heading_deg=-12,
                                          model_path=model, device="cpu", unwrap_block=block))
        with rasterio.open(res.outputs["unwrapped_phase"]) as ds:
            outs[block] = ds.read(1).astype(np.float64)
        if block == 64:
            assert res.run["parameters"]["unwrap"]["interferograms"][0]["model_offset_pixels"] == 0
            assert any("block by block" in n for n in res.run["notes"])
    a, b = outs[64], outs[4096]
    ok = np.isfinite(a) & np.isfinite(b)
    assert ok.mean() > 0.95
    dk = np.rint((a[ok] - b[ok]) / TWO_PI)
    assert np.mean(dk == np.median(dk)) > 0.999
    kt = np.rint((b[ok] - truth[ok]) / TWO_PI)
    assert np.mean(kt == np.median(kt)) > 0.99  # and that answer is the truth up to a constant
