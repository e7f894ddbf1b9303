"""Fault-offset metrics of the evaluation on synthetic fields with a known step (exact values)."""

import math

import numpy as np

from models import fault_metrics as fm
from models.evaluate import _Acc, _fault_metrics, _summary

PS = 10.0
SHAPE = (200, 200)
STRIKE = 30.0
SEG = np.array([[[-3000.0 * math.sin(math.radians(STRIKE)), -3000.0 * math.cos(math.radians(STRIKE))],
                 [3000.0 * math.sin(math.radians(STRIKE)), 3000.0 * math.cos(math.radians(STRIKE))]]])


def _field(frame, step_px: float) -> np.ndarray:
    """(2, H, W) east/north field (px): fault-parallel +step/2 right of the strike, -step/2 left."""
    fp = np.where(frame["signed"] > 0, step_px / 2, -step_px / 2)
    te, tn = frame["unit_en"]
    return np.stack([fp * te, fp * tn])


def test_fault_frame_geometry():
    fr = fm.fault_frame(SHAPE, PS, STRIKE, SEG)
    E, N = fm.pixel_coordinates(SHAPE, PS)
    assert E[0, 0] == -995.0 and N[0, 0] == 995.0 and E[0, 1] == -985.0
    # the trace passes through the scene centre: signed distance = projection on (cos s, -sin s)
    s = math.radians(STRIKE)
    np.testing.assert_allclose(fr["signed"], E * math.cos(s) - N * math.sin(s), atol=1e-9)
    assert fr["unit_en"] == (math.sin(s), math.cos(s))
    np.testing.assert_allclose(fr["a_range"], (0.0, 6000.0))


def test_profile_step_and_slope_exact():
    fr = fm.fault_frame(SHAPE, PS, STRIKE, SEG)
    valid = np.ones(SHAPE, bool)
    truth = _field(fr, 2.0)
    steps = fm.profile_steps(fm.fault_parallel(truth, fr), fr, valid, PS)
    steps = steps[np.isfinite(steps)]
    assert steps.size >= 5
    np.testing.assert_allclose(steps, 2.0, atol=1e-12)
    # an estimate that shrinks the field by half and adds an offset: step 1.0 px (-50 %), slope 0.5
    est = 0.5 * truth + 0.1
    s_est = fm.profile_steps(fm.fault_parallel(est, fr), fr, valid, PS)
    np.testing.assert_allclose(s_est[np.isfinite(s_est)], 1.0, atol=1e-12)
    x = fm.fault_parallel(truth, fr).ravel()
    y = fm.fault_parallel(est, fr).ravel()
    assert abs(fm.robust_slope(x, y) - 0.5) < 1e-12
    # Huber regression: 2 % gross outliers barely move the slope
    y2 = y.copy()
    y2[::50] += 25.0
    assert abs(fm.robust_slope(x, y2) - 0.5) < 0.02


def test_evaluation_summary_on_known_step():
    """Through the evaluation's own accumulation: a perfect estimate, a halved one, a smeared one."""
    fr = fm.fault_frame(SHAPE, PS, STRIKE, SEG)
    truth_px = _field(fr, 2.0)
    rec = {"pixel_size_m": PS, "truth_enu": np.concatenate([truth_px * PS, np.zeros((1, *SHAPE))])}
    sel = np.ones(SHAPE, bool)
    near = np.abs(fr["signed"]) <= 1000.0
    cfg = {"profile_px": 16}
    fp = fm.fault_parallel(truth_px, fr)
    smear = np.clip(fr["signed"] / (5 * PS), -1, 1) * 1.0  # linear over +-5 px (50 m), full step beyond
    te, tn = fr["unit_en"]
    cases = {"perfect": truth_px, "half": 0.5 * truth_px, "smeared": np.stack([smear * te, smear * tn])}
    out = {}
    for name, en in cases.items():
        acc = _Acc()
        _fault_metrics(acc, en, rec, sel, near, fr, cfg)
        out[name] = _summary(acc)
    s = out["perfect"]["step"]["ge0.3"]
    assert s["profiles"] >= 5 and s["error_pct_median"] == 0.0 and s["within_5pct"] == 1.0
    assert s["share_within_3px_median"] == 1.0 and abs(out["perfect"]["slope_median"] - 1.0) < 1e-12
    h = out["half"]["step"]["ge0.3"]
    assert abs(h["error_pct_median"] + 50.0) < 1e-9 and abs(h["error_m_median"] + 10.0) < 1e-9
    assert abs(h["share_within_3px_median"] - 0.5) < 1e-9 and abs(out["half"]["slope_median"] - 0.5) < 1e-9
    m = out["smeared"]["step"]["ge0.3"]
    assert abs(m["error_pct_median"]) < 1e-9  # the 50-500 m windows still see the full step ...
    assert abs(m["share_within_3px_median"] - 0.6) < 0.02  # ... but only ~60 % of it happens within +-3 px
    assert fp.shape == SHAPE


def test_binary_auc():
    y = np.array([0, 0, 1, 1, 0, 1], bool)
    assert fm.binary_auc(y.astype(float), y) == 1.0
    assert fm.binary_auc(1.0 - y, y) == 0.0
    assert fm.binary_auc(np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9]), y) == 8 / 9


def test_rupture_probability_metrics():
    """A model's rupture_probability output scored against the simulator's mask: perfect, and shifted by 3 px."""
    from models.evaluate import _rupture_metrics

    fr = fm.fault_frame(SHAPE, PS, STRIKE, SEG)
    dist = np.abs(fr["signed"])
    mask = (dist <= 1.5 * PS).astype(np.float32)
    rec = {"rupture_mask": mask, "distance_to_rupture_m": dist, "pixel_size_m": PS, "surface_rupture": 1.0}
    sel = np.ones(SHAPE, bool)
    acc = _Acc()
    _rupture_metrics(acc, np.clip(1.0 - dist / 500.0, 0, 1), rec, sel)
    r = _summary(acc)
    assert r["rupture_auc"] == 1.0 and r["rupture_f1"] < 1.0  # p > 0.5 out to 250 m: many false positives
    acc = _Acc()
    shifted = (np.abs(fr["signed"] - 3 * PS) <= 1.5 * PS).astype(np.float64)
    _rupture_metrics(acc, shifted, rec, sel)
    r = _summary(acc)
    assert abs(r["rupture_trace_distance_px_median"] - 3.0) < 0.6 and r["rupture_f1"] < 0.5


def test_weighted_side_means_as_the_offsets_tool_reads_them():
    """1/sigma^2 weights: an outlier band with a large sigma no longer moves the side mean; unit weights change
    nothing."""
    fr = fm.fault_frame(SHAPE, PS, STRIKE, SEG)
    valid = np.ones(SHAPE, bool)
    fp = fm.fault_parallel(_field(fr, 2.0), fr)
    bins, nb = fm.profile_bins(fr, PS, 16)
    plain = fm.side_means(fp, fr, bins, nb, valid, 50.0, 500.0, 10)
    ones = fm.side_means(fp, fr, bins, nb, valid, 50.0, 500.0, 10, weights=np.ones(SHAPE))
    np.testing.assert_allclose(ones[0], plain[0], atol=1e-12)
    cloud = (fr["signed"] > 100.0) & (fr["signed"] < 200.0)  # a band on the + side read as 0 (under a cloud)
    bad = np.where(cloud, 0.0, fp)
    sig = np.where(cloud, 100.0, 0.1)
    p_plain, _ = fm.side_means(bad, fr, bins, nb, valid, 50.0, 500.0, 10)
    p_w, m_w = fm.side_means(bad, fr, bins, nb, valid, 50.0, 500.0, 10, weights=1.0 / sig ** 2)
    ok = np.isfinite(p_w)
    assert ok.sum() >= 5 and np.median(p_plain[ok]) < 0.85  # the plain mean sags towards 0
    np.testing.assert_allclose(p_w[ok], 1.0, atol=1e-5)
    np.testing.assert_allclose(m_w[ok & np.isfinite(m_w)], -1.0, atol=1e-12)
