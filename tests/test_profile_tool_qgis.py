"""The profile map tool (app/profile_tool.py) in QGIS: two clicks on the real map canvas across the Mw 6.9 truth
run's trace -> the dock's steps (fault-parallel within 10 % of the truth, left-lateral sign), plot and exports."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsRectangle, QgsVectorLayer
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt

pytestmark = pytest.mark.qgis_slow


def _click(tool, canvas, pt: QgsPointXY) -> None:
    px = canvas.getCoordinateTransform().transform(pt)
    ev = QgsMapMouseEvent(canvas, QEvent.MouseButtonPress, QPoint(round(px.x()), round(px.y())), Qt.LeftButton,
                          Qt.LeftButton, Qt.NoModifier)
    tool.canvasPressEvent(ev)


def test_profile_tool_clicks_steps_and_exports(qgis_app, qgis_iface, qgis_canvas, qf_plugin_pkg, mw69_run,
                                               mw69_truth, tmp_path: Path) -> None:
    from quakefusion.app.profile_tool import ProfileDock

    from backend.geodata import load_run
    from backend.trace import extract_trace

    run_dir = Path(shutil.copytree(mw69_run, tmp_path / "run"))
    run = load_run(run_dir)
    lines, _ = extract_trace(run)
    line = max(lines, key=len)
    c = line[len(line) // 2]
    t = line[-1] - line[0]
    t /= np.hypot(*t)
    n = np.array([t[1], -t[0]])  # right-hand normal: from the left side to the right side
    a, b = c - 600 * n, c + 600 * n
    crs = QgsCoordinateReferenceSystem.fromWkt(run.crs_wkt)
    qgis_canvas.setDestinationCrs(crs)
    qgis_canvas.resize(800, 800)
    xmin, ymin, xmax, ymax = run.bounds
    qgis_canvas.setExtent(QgsRectangle(xmin, ymin, xmax, ymax))
    qgis_canvas.refresh()
    dock = ProfileDock(qgis_iface)
    dock.fw_run.setFilePath(str(run_dir))
    dock.spin_width.setValue(200)
    dock.spin_exclude.setValue(30)
    dock.activate_tool()
    assert qgis_canvas.mapTool() is dock.tool
    _click(dock.tool, qgis_canvas, QgsPointXY(*a))
    assert dock.profile is None and dock.tool.start is not None
    _click(dock.tool, qgis_canvas, QgsPointXY(*b))
    p = dock.profile
    assert p is not None, dock.lbl_steps.text()
    truth = mw69_truth(*c)["parallel"]
    assert truth > 1.5  # left-lateral event
    assert p.steps["parallel"]["value"] == pytest.approx(truth, rel=0.10)
    assert 0 < p.steps["parallel"]["sigma"] < 0.1
    assert abs(p.fault_m - 600) < 3 * run.pixel_size  # the click positions are rounded to canvas pixels
    assert "left-lateral" in dock.lbl_steps.text() and f"{p.steps['parallel']['value']:+.3f}" in dock.lbl_steps.text()
    assert len(dock.figure.axes) == 2 and len(dock.figure.axes[1].lines) >= 3
    # exports
    csv_path = dock.export_csv(str(tmp_path / "prof.csv"))
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == len(p.distance_m) and {"distance_m", "parallel_m", "east_m"} <= set(rows[0])
    gpkg = dock.export_gpkg(str(tmp_path / "prof.gpkg"))
    lyr = QgsVectorLayer(f"{gpkg}|layername=profile_line", "l", "ogr")
    f = next(lyr.getFeatures())
    assert f["par_m"] == pytest.approx(p.steps["parallel"]["value"]) and lyr.crs() == crs
    assert QgsVectorLayer(f"{gpkg}|layername=profile_pts", "p", "ogr").featureCount() == len(p.distance_m)
    png = dock.export_png(str(tmp_path / "prof"))
    assert png.suffix == ".png" and png.read_bytes()[:4] == b"\x89PNG"
    dock.close()
