"""Screenshots of the real QGIS desktop under Xvfb: the filled-in dialog and the result layers over the rupture.

    .venv/bin/python tests/screenshots.py   # -> docs/img/qgis_dialog(_insar|_trace|_find_trace|_advanced).png,
    #                                            qgis_results.png

Starts Xvfb, then ``qgis`` with a throw-away profile in which the plugin (a ``quakefusion`` symlink on
QGIS_PLUGINPATH) is enabled, and a ``--code`` script that simulates a scene (models.scene), loads it, fills the
dialog through the real plugin instance, grabs the screen, runs the task, styles nothing by hand (the result
layers carry their .qml styles) and grabs the map. Not a pytest test (the name does not start with test_).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

QGIS_SCRIPT = r'''
import os, sys, json, traceback
from pathlib import Path
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface, plugins

CFG = json.loads(os.environ["QF_SHOT_CFG"])
OUT = Path(CFG["out"])
STATE = {}


def shot(name, widget=None):
    QApplication.processEvents()
    screen = QApplication.primaryScreen()
    pix = widget.grab() if widget is not None else screen.grabWindow(0)
    pix.save(str(OUT / name))
    print("saved", OUT / name, flush=True)


def fail(exc):
    (OUT / "error.txt").write_text(traceback.format_exc())
    QgsApplication.exit(1)


def step1():
    try:
        sys.path.insert(0, CFG["root"])
        import numpy as np, rasterio
        from affine import Affine
        from models.dataset import STRONG_OVERRIDES
        from models.scene import simulate_scene
        # a surface-rupturing Mw 6.8-7.9 event (the strong-event profile) at Sentinel-2-like pixels
        s = simulate_scene(CFG["seed"], size=(CFG["size"], CFG["size"]), pixel_size_m=CFG["pixel"],
                           overrides=STRONG_OVERRIDES)
        STATE["mw"] = float(s.params["event_params"]["mw"])
        d = Path(CFG["data"])
        prof = dict(driver="GTiff", height=CFG["size"], width=CFG["size"], dtype="float32", crs=f"EPSG:{s.crs}",
                    transform=Affine(*s.transform), nodata=float("nan"))
        files = {"optical_pre": [s.optical_pre], "optical_post": [s.optical_post], "sar_pre": [s.sar_pre],
                 "sar_post": [s.sar_post], "interferogram": [s.wrapped_phase], "coherence": [s.coherence],
                 "dem": [s.dem], "rupture": [np.where(s.rupture_mask > 0, 1.0, np.nan)]}
        layers = {}
        for name, arrs in files.items():
            p = d / f"{name}.tif"
            with rasterio.open(p, "w", count=1, **prof) as ds:
                ds.write(np.asarray(arrs[0], dtype=np.float32), 1)
            layers[name] = QgsRasterLayer(str(p), name, "gdal")
            QgsProject.instance().addMapLayer(layers[name])
        los = s.los_unit_vector
        STATE["inc"] = float(np.degrees(np.arccos(np.clip(los[2].mean(), -1, 1))))
        STATE["hdg"] = float(np.degrees(np.arctan2(los[1].mean(), -los[0].mean())))
        STATE["layers"] = layers
        # the rupture trace as a geologist maps it (the simulator's surface trace): a line layer for the dialog's
        # "Rupture trace" field
        from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer
        from models.evaluate import trace_geometry
        t = Affine(*s.transform)
        x0, y0 = t * (CFG["size"] / 2.0, CFG["size"] / 2.0)
        trace = QgsVectorLayer(f"LineString?crs=EPSG:{s.crs}", "mapped rupture trace", "memory")
        for seg in np.asarray(trace_geometry(s)["trace_segments"]).reshape(-1, 2, 2):
            f = QgsFeature()
            f.setGeometry(QgsGeometry.fromPolylineXY([QgsPointXY(x0 + e, y0 + n) for e, n in seg]))
            trace.dataProvider().addFeatures([f])
        trace.updateExtents()
        QgsProject.instance().addMapLayer(trace)
        STATE["trace"] = trace
        iface.mainWindow().showMaximized()
        iface.mapCanvas().setExtent(layers["dem"].extent())
        iface.mapCanvas().refresh()
        plugin = plugins["quakefusion"]
        STATE["plugin"] = plugin
        dlg = plugin.show_dialog()
        STATE["dlg"] = dlg
        for key, name in (("optical_pre", "optical_pre"), ("optical_post", "optical_post"), ("sar_pre", "sar_pre"),
                          ("sar_post", "sar_post"), ("phase", "interferogram"), ("coherence", "coherence"),
                          ("dem", "dem")):
            dlg.set_input(key, layers[name])
        dlg.const_incidence.setValue(STATE["inc"])
        dlg.const_heading.setValue(STATE["hdg"])
        dlg.fw_output.setFilePath(CFG["results"])
        dlg.le_run_name.setText(f"Simulated Mw {STATE['mw']:.1f} surface rupture")
        dlg.grp_advanced.setCollapsed(False)
        if CFG.get("model"):
            dlg.fw_model.setFilePath(CFG["model"])
        dlg.validate()
        dlg.adjustSize()
        dlg.move(40, 40)
        QTimer.singleShot(1500, step2)
    except Exception as exc:
        fail(exc)


def step2():
    try:
        from qgis.PyQt.QtWidgets import QScrollArea
        dlg = STATE["dlg"]
        print("dialog width", dlg.width(), "minimum", dlg.minimumWidth(), "settings need",
              dlg.scroll.widget().minimumSizeHint().width(), flush=True)
        area = dlg.findChild(QScrollArea)
        if area is not None:  # the inputs first, then the InSAR section with the product list
            area.verticalScrollBar().setValue(0)
        shot("qgis_dialog.png", dlg)
        if area is not None:
            area.ensureWidgetVisible(dlg.lst_products, 50, 150)
            shot("qgis_dialog_insar.png", dlg)
            dlg.cb_trace.setLayer(STATE["trace"])  # shown with a trace chosen; the run below stays blind
            area.ensureWidgetVisible(dlg.cb_trace, 50, 120)
            shot("qgis_dialog_trace.png", dlg)
            dlg.cb_trace.setLayer(None)
            dlg.chk_find_trace.setChecked(True)  # no trace at hand: find it (shown; the run below stays blind)
            area.ensureWidgetVisible(dlg.chk_find_trace, 50, 120)
            shot("qgis_dialog_find_trace.png", dlg)
            dlg.chk_find_trace.setChecked(False)
            area.ensureWidgetVisible(dlg.chk_relight, 50, 20)  # Advanced: device, tile, model, relighting
            shot("qgis_dialog_advanced.png", dlg)
            area.verticalScrollBar().setValue(0)
        shot("qgis_dialog_desktop.png")
        task = STATE["dlg"].run()
        task.done.connect(lambda ok, text: QTimer.singleShot(500, lambda: step3(ok, text)))
    except Exception as exc:
        fail(exc)


def step3(ok, text):
    try:
        print("task:", ok, text, flush=True)
        STATE["dlg"].hide()
        root = QgsProject.instance().layerTreeRoot()
        layers = STATE["layers"]
        # every input hidden (the truth raster, several pixels wide at this scale, would hide the estimate's
        # step): the mapped trace (a thin line) shows where the rupture is
        for lyr in layers.values():
            root.findLayer(lyr.id()).setItemVisibilityChecked(False)
        iface.mapCanvas().setExtent(layers["dem"].extent())
        iface.mapCanvas().refreshAllLayers()
        QTimer.singleShot(3000, step4)
    except Exception as exc:
        fail(exc)


def unload_check():
    """Real QGIS: unload removes the Raster-menu entries, toolbar and provider; loading again works."""
    from qgis.PyQt.QtWidgets import QToolBar
    from qgis.utils import loadPlugin, startPlugin, unloadPlugin

    def state():
        menus = [a.text() for a in iface.rasterMenu().actions()]
        tbs = [t for t in iface.mainWindow().findChildren(QToolBar) if t.objectName() == "QuakeFusionToolbar"
               and t.parent() is not None]
        prov = QgsApplication.processingRegistry().providerById("quakefusion") is not None
        return {"raster_menu_has_quakefusion": any("QuakeFusion" in m for m in menus), "toolbars": len(tbs),
                "provider": prov}

    loaded = state()
    unloadPlugin("quakefusion")
    QApplication.processEvents()
    unloaded = state()
    loadPlugin("quakefusion")
    startPlugin("quakefusion")
    reloaded = state()
    return {"loaded": loaded, "unloaded": unloaded, "reloaded": reloaded}


def step4():
    try:
        # the run's group open and the inputs' legends closed, so the panel lists the layers a run adds
        from qgis.core import QgsLayerTree
        view = iface.layerTreeView()
        for child in QgsProject.instance().layerTreeRoot().children():
            group = QgsLayerTree.isGroup(child)
            child.setExpanded(group)
            index = view.node2index(child) if hasattr(view, "node2index") else \
                view.layerTreeModel().node2index(child)
            view.setExpanded(index, group)
        QApplication.processEvents()
        shot("qgis_results.png", iface.mainWindow())
        (OUT / "unload_check.json").write_text(json.dumps(unload_check()))
        QgsApplication.exit(0)
    except Exception as exc:
        fail(exc)


QTimer.singleShot(3000, step1)
'''


def run_qgis_script(script_text: str, cfg: dict, out: Path, display: str = ":97", timeout: int = 300,
                    min_shots: int = 3, check_unload: bool = True) -> int:
    """Start Xvfb and QGIS (throw-away profile, the plugin enabled) with ``script_text`` as ``--code``; the script
    reads ``cfg`` (+ ``out``: its shot folder, ``root``) from ``QF_SHOT_CFG`` and saves PNGs there; they are copied
    to ``out``. Returns an exit status."""
    tmp = Path(tempfile.mkdtemp(prefix="qf-shots-"))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shots = tmp / "shots"
    for d in ("plugins", "profiles/default/QGIS", "data", "results", "runtime", "shots"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    (tmp / "runtime").chmod(0o700)
    (tmp / "plugins" / "quakefusion").symlink_to(ROOT, target_is_directory=True)
    (tmp / "profiles" / "default" / "QGIS" / "QGIS3.ini").write_text(
        "[PythonPlugins]\nquakefusion=true\n\n[qgis]\nshowTips322=false\ncheckVersion=false\n"
        "newProjectDefault=false\n\n[core]\nNewsFeed\\httpsfeedqgisorg\\disabled=true\n")
    script = tmp / "shots.py"
    script.write_text(script_text)
    env = {**os.environ, "DISPLAY": display, "QGIS_PLUGINPATH": str(tmp / "plugins"),
           "PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT)]),
           "XDG_RUNTIME_DIR": str(tmp / "runtime"), "QT_QPA_PLATFORM": "xcb",
           "QF_SHOT_CFG": json.dumps({**cfg, "out": str(shots), "root": str(ROOT), "data": str(tmp / "data"),
                                      "results": str(tmp / "results")})}
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        proc = subprocess.run(["qgis", "--nologo", "--noversioncheck", "--profiles-path", str(tmp),
                               "--code", str(script)], env=env, timeout=timeout, capture_output=True, text=True)
        print(proc.stdout[-4000:])
        crashed = "Inferior 1" in proc.stdout + proc.stderr or proc.returncode not in (0,)
        print(f"qgis exit code {proc.returncode}{' (CRASHED at exit)' if crashed else ''}")
        if (shots / "error.txt").exists():
            print((shots / "error.txt").read_text(), file=sys.stderr)
            return 1
        check = shots / "unload_check.json"
        if check_unload and check.exists():
            print("real-QGIS load/unload/load check:", check.read_text())
            st = json.loads(check.read_text())
            want_on = {"raster_menu_has_quakefusion": True, "toolbars": 1, "provider": True}
            want_off = {"raster_menu_has_quakefusion": False, "toolbars": 0, "provider": False}
            if st["loaded"] != want_on or st["unloaded"] != want_off or st["reloaded"] != want_on:
                print("load/unload check FAILED", file=sys.stderr)
                return 1
        made = sorted(shots.glob("*.png"))
        if len(made) < min_shots:
            print(proc.stderr[-4000:], file=sys.stderr)
            return 1
        for p in made:
            shutil.copy(p, out / p.name)
            print("->", out / p.name)
        return 0
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--pixel", type=float, default=10.0)
    ap.add_argument("--model", default="", help="model .onnx (default: the shipped models/quakefusion.onnx)")
    ap.add_argument("--display", default=":97")
    ap.add_argument("--timeout", type=int, default=300)
    args = ap.parse_args()
    cfg = {"seed": args.seed, "size": args.size, "pixel": args.pixel, "model": args.model}
    return run_qgis_script(QGIS_SCRIPT, cfg, Path(args.out), args.display, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
