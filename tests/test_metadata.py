"""metadata.txt holds everything the QGIS plugin repository asks for."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = [
    "name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "homepage",
    "tracker", "repository", "tags", "category", "icon", "experimental",
]


def _metadata() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive for QGIS
    assert parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]


def test_required_fields_present_and_sane() -> None:
    meta = _metadata()
    for key in REQUIRED:
        assert meta.get(key, "").strip(), f"metadata.txt: '{key}' is missing or empty"
    assert meta["name"] == "QuakeFusion"
    assert meta["qgisMinimumVersion"] == "3.22"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert meta["experimental"] in {"True", "False"}
    assert meta["category"] in {"Raster", "Vector", "Database", "Web", "Plugins"}
    assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", meta["email"])
    for url in ("homepage", "tracker", "repository"):
        assert meta[url].startswith("https://")
    assert len(meta["about"]) > 200
    assert "insar" in meta["tags"].split(",")


def test_icon_and_entry_point_exist() -> None:
    meta = _metadata()
    icon = ROOT / meta["icon"]
    assert icon.is_file() and icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "def classFactory(iface)" in (ROOT / "__init__.py").read_text()
    assert meta["icon"] in (ROOT / "resources.qrc").read_text()
