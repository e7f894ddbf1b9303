"""Screenshots of the geologist's tools in the real QGIS desktop under Xvfb (for docs/user_guide.md):

    .venv/bin/python tests/screenshots_tools.py     # -> docs/img/tools_*.png, profile_dock.png, report_page-*.png,
                                                    #    qgis_dialog_768.png, tools_caution.png

The Mw 6.9 event of the issue (seed 7) as a truth run folder (``models.testing.write_truth_run``: truth + 5 cm
noise, a rupture probability), the plugin's tools dialog run through the real plugin instance ("All four"), the
profile dock with a profile across the middle of the trace, the report PDF (pages rendered with pdftoppm) and the
main dialog at its opening size. Not a pytest test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import ROOT, run_qgis_script  # noqa: E402

QGIS_SCRIPT = r'''
import os, sys, json, subprocess, traceback
from pathlib import Path
import numpy as np
from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface, plugins

CFG = json.loads(os.environ["QF_SHOT_CFG"])
OUT = Path(CFG["out"])
STATE = {}


def shot(name, widget=None):
    QApplication.processEvents()
    pix = widget.grab() if widget is not None else QApplication.primaryScreen().grabWindow(0)
    pix.save(str(OUT / name))
    print("saved", OUT / name, flush=True)


def fail(exc):
    (OUT / "error.txt").write_text(traceback.format_exc())
    QgsApplication.exit(1)


def step1():
    try:
        sys.path.insert(0, CFG["root"])
        from models.scene import simulate_scene
        from models.testing import write_truth_run
        run = Path(CFG["results"]) / "Mw6.9_truth"
        s = simulate_scene(7, size=(CFG["size"], CFG["size"]), pixel_size_m=CFG["pixel"])
        write_truth_run(s, run, noise_m=0.05, seed=1)
        STATE["run"] = run
        iface.mainWindow().showMaximized()
        plugin = plugins["quakefusion"]
        STATE["plugin"] = plugin
        dlg = plugin.show_tools()
        STATE["tools"] = dlg
        dlg.fw_run.setFilePath(str(run))
        dlg.spin_spacing.setValue(500)
        dlg.spin_length.setValue(1000)
        dlg.spin_width.setValue(200)
        dlg.spin_exclude.setValue(30)
        dlg.spin_step.setValue(16)
        dlg.adjustSize()
        dlg.move(60, 80)
        task = dlg.run_tool("all")
        task.done.connect(lambda ok, text: QTimer.singleShot(800, lambda: step2(ok, text)))
    except Exception as exc:
        fail(exc)


def step2(ok, text):
    try:
        print("tools:", ok, text, flush=True)
        shot("tools_dialog.png", STATE["tools"])
        STATE["tools"].hide()
        lyr = QgsProject.instance().mapLayersByName("Fault-parallel displacement (m)")[0]
        iface.mapCanvas().setDestinationCrs(lyr.crs())
        iface.mapCanvas().setExtent(lyr.extent())
        iface.mapCanvas().refreshAllLayers()
        QTimer.singleShot(3000, step3)
    except Exception as exc:
        fail(exc)


def step3():
    try:
        shot("tools_results.png", iface.mainWindow())
        from backend.offsets import read_csv
        rows = [r for r in read_csv(STATE["run"] / "fault_offsets.csv") if r["parallel_m"] not in ("", "nan")]
        mid = rows[len(rows) // 2]
        c = np.array([float(mid["x"]), float(mid["y"])])
        s = np.radians(float(mid["strike_deg"]))
        n = np.array([np.cos(s), -np.sin(s)])
        a, b = QgsPointXY(*(c - 700 * n)), QgsPointXY(*(c + 700 * n))
        dock = STATE["plugin"].show_profile()
        dock.fw_run.setFilePath(str(STATE["run"]))
        dock.spin_width.setValue(200)
        dock.spin_exclude.setValue(30)
        from qgis.core import QgsGeometry
        dock.tool.band.setToGeometry(QgsGeometry.fromPolylineXY([a, b]), None)
        dock.line_drawn(a, b)
        dock.setMinimumWidth(520)
        STATE["dock"] = dock
        QTimer.singleShot(2500, step4)
    except Exception as exc:
        fail(exc)


def step4():
    try:
        shot("profile_dock.png", iface.mainWindow())
        shot("profile_dock_only.png", STATE["dock"])
        pdf = Path(CFG["results"]) / "report.pdf"
        task = STATE["tools"].report(str(pdf))
        STATE["pdf"] = pdf
        task.done.connect(lambda ok, text: QTimer.singleShot(500, lambda: step5(ok, text)))
    except Exception as exc:
        fail(exc)


def step5(ok, text):
    try:
        print("report:", ok, text, flush=True)
        subprocess.run(["pdftoppm", "-r", "80", "-png", str(STATE["pdf"]), str(OUT / "report_page")], check=True)
        dlg = STATE["plugin"].show_dialog()
        dlg.move(40, 40)
        STATE["dlg"] = dlg
        QTimer.singleShot(1500, step6)
    except Exception as exc:
        fail(exc)


def step6():
    try:
        d = STATE["dlg"]
        print("main dialog opens", d.width(), "x", d.height(), "px; sizeHint", d.sizeHint().height(), flush=True)
        shot("qgis_dialog_768.png", d)
        d.hide()
        # the same run folder as if it had fused the SAR amplitude pair: Offsets then carry the caution
        from models.testing import copy_run_with_inputs
        run = copy_run_with_inputs(STATE["run"], Path(CFG["results"]) / "Mw6.9_sar_fused",
                                   ["optical_pre", "optical_post", "sar_pre", "sar_post", "dem"])
        tools = STATE["tools"]
        tools.show()
        tools.fw_run.setFilePath(str(run))
        print("offsets on the SAR-fused copy", run, flush=True)
        task = tools.run_tool("offsets")
        if task is None:
            raise RuntimeError("offsets did not start: " + tools.lbl_status.text())
        task.done.connect(lambda ok, text: QTimer.singleShot(800, step7))
        QTimer.singleShot(30000, step7)  # a task that never finishes (as a second run did before): shoot, quit
    except Exception as exc:
        fail(exc)


def step7():
    if STATE.get("step7"):
        return
    STATE["step7"] = True
    try:
        print("caution:", STATE["tools"].last_caveats, flush=True)
        if not STATE["tools"].last_caveats:
            raise RuntimeError("Offsets on the SAR-fused copy did not finish with its caution within 30 s")
        shot("tools_caution.png", STATE["tools"])
        QgsApplication.exit(0)
    except Exception as exc:
        fail(exc)


QTimer.singleShot(3000, step1)
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--pixel", type=float, default=30.0)
    ap.add_argument("--display", default=":96")
    ap.add_argument("--timeout", type=int, default=400)
    args = ap.parse_args()
    return run_qgis_script(QGIS_SCRIPT, {"size": args.size, "pixel": args.pixel}, Path(args.out), args.display,
                           args.timeout, min_shots=5, check_unload=False)


if __name__ == "__main__":
    sys.exit(main())
