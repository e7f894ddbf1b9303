"""One process holds PyQGIS, Debian's GDAL bindings, rasterio (its own GDAL), pyproj and ONNX Runtime.

The venv sees Debian's dist-packages (older pyproj without PROJ data, affine, numpy 1.x): these tests
prove the pins work together and that importing the backend does not break QGIS's own transforms.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest


def test_numpy_is_1x_for_debian_gdal_bindings() -> None:
    assert int(np.__version__.split(".")[0]) == 1
    from osgeo import gdal_array

    arr = gdal_array.OpenArray(np.arange(12, dtype=np.float32).reshape(3, 4)).ReadAsArray()
    assert arr[2, 3] == 11.0


def _import_all_backend_modules() -> list[str]:
    import backend

    names = []
    for info in pkgutil.iter_modules(backend.__path__):
        if info.name == "__main__":
            continue
        importlib.import_module(f"backend.{info.name}")
        names.append(info.name)
    return names


def test_stack_imports_and_transforms_in_one_process(qgis_app) -> None:
    import onnxruntime
    import pyproj
    import rasterio
    from osgeo import gdal
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsPointXY,
        QgsProject,
    )

    modules = _import_all_backend_modules()
    assert "conventions" in modules

    # QGIS transform UTM 34N -> WGS84 after the backend (rasterio, pyproj, onnxruntime) is loaded.
    utm = QgsCoordinateReferenceSystem("EPSG:32634")
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    assert utm.isValid() and wgs84.isValid()
    fwd = QgsCoordinateTransform(utm, wgs84, QgsProject.instance())
    p = fwd.transform(QgsPointXY(500000.0, 4400000.0))
    # Central meridian of zone 34 is 21 E; 4400 km north is about 39.7499 N.
    assert p.x() == pytest.approx(21.0, abs=1e-9)
    assert p.y() == pytest.approx(39.74990752, abs=1e-7)
    back = QgsCoordinateTransform(wgs84, utm, QgsProject.instance()).transform(QgsPointXY(22.18, 39.76))
    # pyproj (wheel with its own PROJ data) agrees with QGIS to the millimetre.
    x, y = pyproj.Transformer.from_crs(4326, 32634, always_xy=True).transform(22.18, 39.76)
    assert back.x() == pytest.approx(x, abs=1e-3)
    assert back.y() == pytest.approx(y, abs=1e-3)
    assert x == pytest.approx(601077.51, abs=0.05) and y == pytest.approx(4401785.86, abs=0.05)

    # rasterio's CRS/transform machinery and Debian GDAL both work in this process.
    from rasterio.warp import transform as rio_transform

    xs, ys = rio_transform("EPSG:4326", "EPSG:32634", [22.18], [39.76])
    assert xs[0] == pytest.approx(x, abs=1e-3) and ys[0] == pytest.approx(y, abs=1e-3)
    assert rasterio.crs.CRS.from_epsg(32634).to_epsg() == 32634
    # affine 3.x breaks rasterio 1.4's dataset.res and tuple(transform): the pin keeps them working.
    from rasterio.io import MemoryFile

    profile = dict(driver="GTiff", width=4, height=3, count=1, dtype="float32", crs="EPSG:32634",
                   transform=rasterio.transform.from_origin(500000.0, 4400000.0, 30.0, 30.0))
    with MemoryFile() as mem, mem.open(**profile) as ds:
        assert ds.res == (30.0, 30.0)
        assert tuple(ds.transform)[:6] == (30.0, 0.0, 500000.0, 0.0, -30.0, 4400000.0)
    assert int(gdal.VersionInfo()) >= 3060000

    # ONNX Runtime always has its CPU provider.
    assert "CPUExecutionProvider" in onnxruntime.get_available_providers()
