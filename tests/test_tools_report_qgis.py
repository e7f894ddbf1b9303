"""Report from the dialog (app/report_layout.py): the shipped QGIS layout template filled with the Mw 6.9 truth
run -> a 2-page PDF; the pages rendered with pdftoppm and checked for their content."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsLayoutItemLegend, QgsLayoutItemMap, QgsLayoutItemPicture, QgsProject

pytestmark = pytest.mark.qgis_slow


def test_template_is_shipped_with_every_item(qgis_app, qf_plugin_pkg) -> None:
    from quakefusion.app.report_layout import ITEM_IDS, TEMPLATE, load_template

    layout = load_template(QgsProject(), TEMPLATE)
    assert all(layout.itemById(i) is not None for i in ITEM_IDS)
    assert layout.pageCollection().pageCount() == 2
    page = layout.pageCollection().page(0).pageSize()
    assert (round(page.width()), round(page.height())) == (297, 210)
    assert isinstance(layout.itemById("map"), QgsLayoutItemMap)
    assert layout.itemById("legend").linkedMap() is layout.itemById("map")
    assert layout.itemById("north").northMode() == QgsLayoutItemPicture.GridNorth


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) not installed")
def test_layout_report_pdf(qgis_app, qf_plugin_pkg, mw69_run, tmp_path: Path) -> None:
    from quakefusion.app.geotools import ToolParams
    from quakefusion.app.report_layout import make_layout_report

    run = Path(shutil.copytree(mw69_run, tmp_path / "run"))
    p = ToolParams(spacing=500, length=1000, width=200, exclude=30)
    res = make_layout_report(run, tmp_path / "report.pdf", p, title="Mw 6.9 (simulated truth)")
    assert res["pages"] == 2 and res["pdf"].stat().st_size > 50_000
    layout = res["layout"]
    legend = next(i for i in layout.items() if isinstance(i, QgsLayoutItemLegend))
    names = [n.name() for n in legend.model().rootGroup().findLayers()]
    assert names == ["Reference arrow", "Displacement arrows (map units)", "Fault offsets (fault-parallel, m)",
                     "Rupture trace", "Fault-parallel displacement (m)"]
    base = legend.model().rootGroup().findLayers()[-1].layer()
    lim = base.renderer().classificationMax()
    assert lim in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0) and base.renderer().classificationMin() == -lim
    assert layout.itemById("summary").text().startswith("run folder:")
    assert "model: version" in layout.itemById("summary").text()
    assert layout.itemById("slip_plot").picturePath().endswith("report_slip.png")
    out = Path(os.environ.get("QF_REPORT_PNG_DIR", tmp_path))
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(res["pdf"]), str(out / "report_page")], check=True)
    pages = sorted(out.glob("report_page*.png"))
    assert len(pages) == 2
    from PIL import Image

    for png in pages:
        im = np.asarray(Image.open(png).convert("RGB")).astype(int)
        assert im.shape[1] > im.shape[0]  # landscape
        assert (im.std(axis=(0, 1)) > 20).all()  # not blank
    # page 1: the diverging map (red and blue pixels both present)
    im = np.asarray(Image.open(pages[0]).convert("RGB")).astype(int)
    red = ((im[..., 0] > 150) & (im[..., 2] < 100)).mean()
    blue = ((im[..., 2] > 150) & (im[..., 0] < 100)).mean()
    assert red > 0.01 and blue > 0.01


def test_plugin_zip_ships_the_template_and_the_guide() -> None:
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("qf_package", ROOT / "tools" / "package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.plugin_files()
    assert "resources/report_template.qpt" in files and "docs/user_guide.md" in files
    assert "docs/img/tools_dialog.png" in files  # the guide's screenshots (tests/test_package.py checks them all)
    assert not any(f.startswith("tests/") for f in files)


def test_layout_report_summary_opens_with_the_caution_of_a_fused_sar_pair(qgis_app, qf_plugin_pkg, mw69_run,
                                                                          tmp_path: Path) -> None:
    """A run that fused the SAR amplitude pair, offsets below a pixel: the layout's summary opens with the caution
    (a long summary runs past the frame's bottom), then the run summary as before."""
    from quakefusion.app.geotools import ToolParams
    from quakefusion.app.report_layout import make_layout_report

    from models.testing import copy_run_with_inputs

    run = copy_run_with_inputs(mw69_run, tmp_path / "run", ["optical_pre", "optical_post", "sar_pre", "sar_post"])
    res = make_layout_report(run, tmp_path / "report.pdf", ToolParams(spacing=500, length=1000, width=200,
                                                                      exclude=30))
    text = res["layout"].itemById("summary").text()
    assert text.startswith("Caution: This run fused the SAR amplitude pair")
    assert "optical pair and the DEM only" in text and "\nrun folder:" in text
    assert res["pages"] == 2
