"""Rupture trace extraction (backend/trace.py) against the simulated Mw 6.9 truth; GeoPackage and user traces."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geodata import ToolsError, cumulative_length, load_run, read_table, write_layers
from backend.trace import SEGMENT_LAYER, TRACE_LAYER, TraceParams, extract_trace, read_trace, trace_layers, write_trace


def share_within(run, scene, lines, tol_px: float = 2.0) -> float:
    """Share of the traces' length (sampled every metre) within ``tol_px`` pixels of the true trace."""
    dist = np.asarray(scene.distance_to_rupture_m, float)
    near = total = 0
    for line in lines:
        cl = cumulative_length(line)
        s = np.arange(0.0, cl[-1], 1.0)
        d = run.sample(dist, np.interp(s, cl, line[:, 0]), np.interp(s, cl, line[:, 1]))
        near += int(np.sum(d <= tol_px * run.pixel_size))
        total += len(s)
    return near / total


@pytest.mark.parametrize("method", ["probability", "step"])
def test_extracted_trace_follows_the_true_trace(mw69_run, mw69_scene, method):
    run = load_run(mw69_run)
    lines, source = extract_trace(run, TraceParams(method=method))
    assert source == method
    assert len(lines) == 1  # one straight rupture crosses the scene
    line = lines[0]
    assert share_within(run, mw69_scene, lines) >= 0.9
    # crosses (nearly) the whole 7.68 km scene: the true trace is ~7.9 km long inside it
    assert cumulative_length(line)[-1] > 7000
    strike = mw69_scene.params["event_params"]["strike_deg"]  # 73.7: eastwards, so the orientation keeps it
    de, dn = line[-1] - line[0]
    assert abs(np.degrees(np.arctan2(de, dn)) - strike) < 1.0


def test_trace_gpkg_layers_and_user_trace_in_another_crs(mw69_run, tmp_path):
    run = load_run(mw69_run)
    lines, source = extract_trace(run)
    assert source == "probability"  # auto: rupture_probability.tif exists
    p = write_trace(tmp_path / "rupture_trace.gpkg", lines, run.crs_wkt, source)
    names, rows = read_table(p, TRACE_LAYER)
    assert names == ["trace_id", "strike", "length_m", "source", "step_z", "signif", "on_band"]
    assert rows[0]["step_z"] is None and rows[0]["signif"] is None  # only the line search measures them
    assert rows[0]["source"] == "probability" and abs(rows[0]["strike"] - 73.7) < 1.0
    names, segs = read_table(p, SEGMENT_LAYER)
    assert {"trace_id", "seg_id", "strike", "length_m", "along_m"} <= set(names)
    assert abs(sum(r["length_m"] for r in segs) - rows[0]["length_m"]) < 1e-6
    back = read_trace(p, run.crs_wkt)
    np.testing.assert_allclose(back[0], lines[0], atol=1e-6)
    # the same trace as GeoJSON in WGS 84 (as a user might draw it) comes back in the run's CRS
    from osgeo import osr

    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromWkt(run.crs_wkt)
    dst.ImportFromEPSG(4326)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(src, dst)
    ll = np.array([ct.TransformPoint(float(x), float(y))[:2] for x, y in lines[0]])
    assert np.all(np.abs(ll[:, 0]) <= 180) and np.all(np.abs(ll[:, 1]) <= 90)
    gj = tmp_path / "drawn.geojson"
    write_layers(gj, trace_layers([ll], "user")[:1], dst.ExportToWkt())
    back = read_trace(gj, run.crs_wkt)
    np.testing.assert_allclose(back[0], lines[0], atol=0.01)


def test_no_rupture_is_a_clear_error(mw69_run, tmp_path):
    run = load_run(mw69_run)
    run.disp = np.broadcast_to(np.array([0.3, -0.2, 0.1], np.float32)[:, None, None], run.disp.shape).copy()
    run.prob = None
    with pytest.raises(ToolsError, match="no rupture trace found"):
        extract_trace(run)
    with pytest.raises(ToolsError, match="no rupture_probability.tif"):
        extract_trace(run, TraceParams(method="probability"))
