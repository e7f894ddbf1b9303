"""The matplotlib report (backend/report.py) through the CLI entry (backend/tools_cli.py)."""

from __future__ import annotations

import re
import shutil

import numpy as np

from backend.tools_cli import main


def pdf_pages(path) -> int:  # noqa: ANN001
    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


def test_report_pdf_pages_and_png(mw69_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(mw69_run, run)
    (run / "rupture_trace.gpkg").unlink(missing_ok=True)  # extracted afresh from rupture_probability.tif
    out = tmp_path / "out" / "report.pdf"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert out.read_bytes()[:5] == b"%PDF-" and pdf_pages(out) == 4  # map, slip, profile, run summary
    import matplotlib.image as mpimg

    img = mpimg.imread(out.with_suffix(".png"))
    assert img.shape[0] > 800 and img.shape[1] > 1200  # A4 landscape at 110 dpi
    rgb = img[..., :3]
    red = rgb[..., 0] > rgb[..., 2] + 0.2  # fault-parallel colours on both sides of the trace
    blue = rgb[..., 2] > rgb[..., 0] + 0.2
    assert red.mean() > 0.1 and blue.mean() > 0.05
    text = out.read_bytes()
    assert b"QuakeFusion report" in text


def test_report_without_a_rupture_still_renders(mw69_run, tmp_path):
    import rasterio

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(mw69_run / "run.json", run)
    with rasterio.open(mw69_run / "displacement.tif") as src:
        prof = src.profile
        data = np.broadcast_to(np.array([0.3, -0.2, 0.05], np.float32)[:, None, None], (3, src.height, src.width))
    with rasterio.open(run / "displacement.tif", "w", **prof) as dst:
        dst.write(data)
    out = tmp_path / "r.pdf"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert pdf_pages(out) == 4 and out.with_suffix(".png").stat().st_size > 20_000


def test_cli_errors_name_the_input(tmp_path, capsys):
    assert main(["offsets", str(tmp_path), "--spacing", "500", "--length", "2000", "--width", "200"]) == 2
    assert "no displacement.tif" in capsys.readouterr().err
