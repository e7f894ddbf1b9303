"""Rupture trace by line search (backend/trace_search.py): finds a long consistent step in correlated noise,
refuses correlated noise alone, and follows the simulated Mw 6.9 trace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from backend.geodata import ToolsError, load_run
from backend.trace import TraceParams, extract_trace_stats
from backend.trace_search import LineSearchParams, search_lines

from .test_trace import share_within


def correlated_noise(seed: int, n: int = 384, corr_px: float = 12.0) -> np.ndarray:
    """(3, n, n) Gaussian noise smoothed over ``corr_px`` pixels (blobs like a correlator's), unit std."""
    rng = np.random.default_rng(seed)
    d = np.stack([ndimage.gaussian_filter(rng.normal(size=(n, n)), corr_px) for _ in range(3)])
    return d / d.std(axis=(1, 2), keepdims=True)


def line_distance(rc: np.ndarray, r0: float, slope: float) -> np.ndarray:
    """Distance (px) of polyline points (row, col) from the line row = r0 + slope * col."""
    return np.abs(rc[:, 0] - r0 - slope * rc[:, 1]) / np.hypot(1.0, slope)


@pytest.mark.parametrize("n", [384, 256])
@pytest.mark.parametrize("seed", [0, 1, 9])
def test_correlated_noise_alone_gives_no_trace(seed, n):
    # the most significant line of pure noise is no more significant than those of shuffled copies of it; on a
    # small raster too, where the band and the shuffled blocks shrink (LineSearchParams.scaled)
    assert search_lines(correlated_noise(seed, n), None, LineSearchParams(max_traces=1)) == []


@pytest.mark.parametrize("seed", [5, 8])
def test_a_step_near_the_data_edge_of_a_small_raster_is_found(seed):
    # a 256-px raster (192 px searched inside the rims), the rupture ~35 px inside the searched area: with 0.8.1's
    # fixed 30-px band and 64-px blocks neither seed gave a trace (the band did not fit beside it, and 3 x 3
    # shuffled squares holding pieces of it made the null)
    d = correlated_noise(seed, n=256)
    rr, cc = np.mgrid[0:256, 0:256]
    d[0] += 6.0 * (rr > 64 + 0.15 * cc)
    p = LineSearchParams(max_traces=2)
    assert p.scaled((256, 256)).band_px == pytest.approx(18.0) and p.scaled((384, 384)) == p
    found = search_lines(d, None, p)
    assert len(found) == 1
    assert found[0].signif >= 1.3
    # every vertex within 1 px (measured: 0.5 at most; before each piece's strip was turned to the trace's own
    # direction, 2.2 and 6.6)
    assert np.max(line_distance(found[0].rc, 64.0, 0.15)) <= 1.0


@pytest.mark.parametrize("seed", [5, 8])
def test_a_step_in_correlated_noise_is_found_where_it_is(seed):
    d = correlated_noise(seed)
    rr, cc = np.mgrid[0:384, 0:384]
    d[0] += 6.0 * (rr > 150 + 0.4 * cc)  # an east step (6 x the pixel noise) along row = 150 + 0.4 col
    found = search_lines(d, None, LineSearchParams(max_traces=2))
    assert len(found) == 1  # and no second trace
    tr = found[0]
    assert tr.signif >= 1.15
    # every vertex within 1.5 px (measured: 1.1 at most; 8.0 and 1.4 before each piece's strip was turned to the
    # trace's own direction and its step read on the step vector)
    assert np.max(line_distance(tr.rc, 150.0, 0.4)) <= 1.5
    assert abs(abs(tr.step[0]) - 6.0) < 1.0 and abs(tr.step[1]) < 1.2  # the step vector: east
    # runs across the raster: on from the searched area across the 32-px rim to both edges, where the step goes on
    assert tr.rc[:, 1].min() <= 1.0 and tr.rc[:, 1].max() >= 382.0
    # along the end pieces' direction: the new ends are no further off the true line than the pieces they continue
    dist = line_distance(tr.rc, 150.0, 0.4)
    assert dist[0] <= dist[1] + 3.0 and dist[-1] <= dist[-2] + 3.0


@pytest.mark.parametrize("seed", [5, 8])
def test_a_trace_that_ends_before_the_raster_edge_is_not_carried_to_it(seed):
    d = correlated_noise(seed)
    rr, cc = np.mgrid[0:384, 0:384]
    d[0] += 6.0 * (rr > 150 + 0.4 * cc) * (cc < 345)  # the rupture ends 39 px before the right edge
    (tr,) = search_lines(d, None, LineSearchParams(max_traces=1))
    assert tr.rc[:, 1].min() <= 1.0  # carried on at the left, where the step goes on
    assert 330.0 <= tr.rc[:, 1].max() <= 352.0  # and not across the right rim, where it has stopped


def test_line_method_follows_the_true_mw69_trace(mw69_run, mw69_scene):
    run = load_run(mw69_run)
    lines, source, stats = extract_trace_stats(run, TraceParams(method="line"))
    assert source == "line" and len(lines) == 1
    assert share_within(run, mw69_scene, lines) >= 0.9
    de, dn = lines[0][-1] - lines[0][0]
    assert abs(np.degrees(np.arctan2(de, dn)) - mw69_scene.params["event_params"]["strike_deg"]) < 1.0
    assert stats[0]["signif"] >= 2


def test_auto_falls_back_to_the_line_search_and_says_why(mw69_run):
    run = load_run(mw69_run)
    run.prob = np.zeros_like(run.prob)  # a model whose rupture probability never reaches the threshold
    lines, source, stats = extract_trace_stats(run)
    assert source.startswith("line (rupture probability never forms a trace")
    assert stats[0]["signif"] >= 2
    run.disp = correlated_noise(1, n=run.disp.shape[1])[:, :, :run.disp.shape[2]].astype(np.float32)
    run.sigma = None
    with pytest.raises(ToolsError, match="no rupture trace found .line search"):
        extract_trace_stats(run)


@pytest.mark.parametrize("shape", [(96, 96), (80, 131)])
def test_the_line_sums_operator_equals_summing_the_resampled_frame(shape):
    # the searches read each line's sums from one sparse operator per angle (fast); they must be the sums of the
    # bilinear frame samples that the pieces and the band lines still resample, at every angle, for several arrays
    # at once, and with a zero rim (as the searches' grids have) also at the angles whose samples fall on the edge
    from backend.trace_search import _Frame

    rng = np.random.default_rng(3)
    arrs = rng.normal(size=(3, *shape))
    arrs[:, :2], arrs[:, -2:], arrs[:, :, :2], arrs[:, :, -2:] = 0, 0, 0, 0
    frame = _Frame(shape)
    for phi in np.radians([0.0, 17.0, 45.0, 90.0, 133.0, 178.0]):
        (sums,) = frame.line_sums(arrs, [phi])
        assert sums.shape == (3, 2 * frame.r + 1)
        samples = frame.sample(arrs, phi)
        np.testing.assert_allclose(sums, samples.sum(axis=2), rtol=0, atol=1e-10)
        assert np.abs(sums).max() > 1.0  # real sums, not zeros
        # and the samples are map_coordinates' bilinear ones at the frame's points (the definition)
        s = np.arange(-frame.r, frame.r + 1, dtype=float)
        v, u = np.meshgrid(s, s, indexing="ij")
        yx = [frame.cy + u * np.sin(phi) + v * np.cos(phi), frame.cx + u * np.cos(phi) - v * np.sin(phi)]
        ref = np.stack([ndimage.map_coordinates(a, yx, order=1, mode="constant", cval=0.0) for a in arrs])
        np.testing.assert_allclose(samples, ref, rtol=0, atol=1e-10)


def test_the_angles_on_threads_give_the_serial_result(monkeypatch):
    import backend.trace_search as ts

    d = correlated_noise(5)
    rr, cc = np.mgrid[0:384, 0:384]
    d[0] += 6.0 * (rr > 150 + 0.4 * cc)
    (threaded,) = search_lines(d, None, LineSearchParams(max_traces=1))
    monkeypatch.setattr(ts.os, "cpu_count", lambda: 1)
    (serial,) = search_lines(d, None, LineSearchParams(max_traces=1))
    np.testing.assert_array_equal(threaded.rc, serial.rc)
    assert threaded.z == serial.z and threaded.signif == serial.signif
