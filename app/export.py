""""Export run…": one GeoPackage with every raster and vector layer of a run folder and their styles, plus
shapefiles (with ``.qml`` styles) for the vectors. Main thread (it makes QGIS layers to carry the styles).

* Rasters: each band of each GeoTIFF becomes one raster table (GeoPackage rasters are single-band when Float32),
  named ``<file stem>`` or ``<file stem>_<band name>`` (``displacement_east``...), written with GDAL.
* Vectors: every layer of every GeoPackage of the run (arrows, trace, offsets...) copied with GDAL.
* Styles: vector styles in the GeoPackage's ``layer_styles`` table (default style: QGIS opens them styled), and
  the whole run as a QGIS project stored inside the GeoPackage (``quakefusion`` project: every layer styled,
  rasters included; Project ▸ Open From ▸ GeoPackage).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

BAND_NAMES = {
    "displacement": ["east", "north", "up"], "displacement_sigma": ["sigma_east", "sigma_north", "sigma_up"],
    "fault_components": ["parallel", "normal", "parallel_sigma", "normal_sigma"],
    "los_displacement": ["fused", "from_phase"],
}
PROJECT_NAME = "quakefusion"


def _raster_tables(run_dir: Path) -> list[tuple[Path, int, str]]:
    """(GeoTIFF, band, table name) of every band of every GeoTIFF in the run folder."""
    from osgeo import gdal

    out = []
    for tif in sorted(Path(run_dir).glob("*.tif")):
        ds = gdal.Open(str(tif))
        if ds is None:
            continue
        base = re.sub(r"_\d+$", "", tif.stem)  # per-interferogram files: los_displacement_2 -> los_displacement
        names = BAND_NAMES.get(tif.stem, BAND_NAMES.get(base, []))
        for b in range(1, ds.RasterCount + 1):
            suffix = names[b - 1] if b <= len(names) else (f"b{b}" if ds.RasterCount > 1 else "")
            out.append((tif, b, f"{tif.stem}_{suffix}" if suffix else tif.stem))
        ds = None
    return out


def _vector_tables(run_dir: Path, exclude: Path) -> list[tuple[Path, str, str]]:
    """(GeoPackage, layer, table name in the export) of every vector layer of the run folder."""
    from osgeo import ogr

    out: list[tuple[Path, str, str]] = []
    for gpkg in sorted(Path(run_dir).glob("*.gpkg")):
        if gpkg.resolve() == exclude.resolve():
            continue
        ds = ogr.Open(str(gpkg))
        if ds is None:
            continue
        for i in range(ds.GetLayerCount()):
            name = ds.GetLayer(i).GetName()
            if name != "layer_styles":  # a name already taken (user_trace.gpkg|rupture_trace): prefixed
                taken = any(t == name for _g, _n, t in out)
                out.append((gpkg, name, f"{gpkg.stem}_{name}" if taken else name))
        ds = None
    return out


def _source_style(gpkg: Path, table: str) -> Any:
    """The default style of a run layer (from its GeoPackage's layer_styles or a .qml) as a QDomDocument, or
    None: the tools' own style when it is a known layer."""
    from qgis.core import QgsVectorLayer
    from qgis.PyQt.QtXml import QDomDocument

    from .tool_layers import VECTORS, style_vector

    src = QgsVectorLayer(f"{gpkg}|layername={table}", table, "ogr")
    kinds = {t: k for specs in VECTORS.values() for t, _n, k in specs}
    if table in kinds:
        style_vector(src, kinds[table])
    elif table == "displacement_arrows":
        from .layers import arrow_renderer

        idx = src.fields().indexOf("horiz_m")
        mx = float(src.maximumValue(idx) or 1.0) if idx >= 0 and src.featureCount() else 1.0
        src.setRenderer(arrow_renderer(mx))
    doc = QDomDocument()
    src.exportNamedStyle(doc)
    return doc


def export_run(run_dir: str | Path, gpkg: str | Path, shp_dir: str | Path | None = None,
               progress: Any = None) -> dict[str, Any]:
    """Write ``gpkg`` (replaced if it exists) and, with ``shp_dir``, ``<shp_dir>/<layer>.shp`` (+ ``.qml``).
    Returns {"gpkg", "rasters": [table], "vectors": [table], "shapefiles": [Path]}."""
    from osgeo import gdal
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    gdal.UseExceptions()
    run_dir, gpkg = Path(run_dir), Path(gpkg)
    gpkg.parent.mkdir(parents=True, exist_ok=True)
    if gpkg.exists():
        gpkg.unlink()
    vectors = _vector_tables(run_dir, gpkg)
    rasters = _raster_tables(run_dir)
    total = max(len(vectors) + len(rasters), 1)
    for i, (src, name, table) in enumerate(vectors):
        gdal.VectorTranslate(str(gpkg), str(src), format="GPKG", layers=[name], layerName=table,
                             accessMode="append" if gpkg.exists() else None)
        if progress:
            progress(i / total, f"vector {table}")
    for j, (tif, band, table) in enumerate(rasters):
        src = gdal.Open(str(tif))
        # GeoPackage rasters hold Byte/(U)Int16/Float32: unwrap_regions (int32 ids) goes as UInt16
        wide_int = src.GetRasterBand(band).DataType in (gdal.GDT_Int32, gdal.GDT_UInt32)
        src = None
        gdal.Translate(str(gpkg), str(tif), format="GPKG", bandList=[band],
                       outputType=gdal.GDT_UInt16 if wide_int else gdal.GDT_Unknown,
                       creationOptions=["APPEND_SUBDATASET=YES", f"RASTER_TABLE={table}",
                                        "TILE_FORMAT=PNG" if wide_int else "TILE_FORMAT=TIFF"])
        if progress:
            progress((len(vectors) + j) / total, f"raster {table}")
    project = QgsProject()
    root = project.layerTreeRoot()
    shapefiles: list[Path] = []
    for src, name, table in vectors:
        doc = _source_style(src, name)
        lyr = QgsVectorLayer(f"{gpkg}|layername={table}", table, "ogr")
        lyr.importNamedStyle(doc)
        err = lyr.saveStyleToDatabase(table, "QuakeFusion style", True, "")
        if err:
            raise OSError(f"cannot store the style of {table} in {gpkg}: {err}")
        project.addMapLayer(lyr, False)
        root.addLayer(lyr)
        if shp_dir is not None:
            shapefiles.append(_shapefile(lyr, Path(shp_dir), table))
    for tif, band, table in rasters:
        lyr = QgsRasterLayer(f"GPKG:{gpkg}:{table}", table, "gdal")
        lyr.setRenderer(_raster_renderer(tif, band, table))
        project.addMapLayer(lyr, False)
        node = root.addLayer(lyr)
        node.setItemVisibilityChecked(table in ("displacement_east", "fault_components_parallel"))
    project.setCrs(next((lyr.crs() for lyr in project.mapLayers().values() if lyr.crs().isValid()),
                        project.crs()))
    if not project.write(f"geopackage:{gpkg}?projectName={PROJECT_NAME}"):
        raise OSError(f"cannot store the project in {gpkg}: {project.error()}")
    if progress:
        progress(1.0, "done")
    return {"gpkg": gpkg, "rasters": [t for _p, _b, t in rasters], "vectors": [t for _p, _n, t in vectors],
            "shapefiles": shapefiles}


def _raster_renderer(tif: Path, band: int, table: str) -> Any:
    """The run's style of a band: the dialog's (app/layers.py) for the first band of a known file, else a
    diverging (sigma: sequential) ramp over the robust range."""
    from .layers import LAYERS, base_key, pseudocolor_renderer, raster_style_values, regions_renderer, robust_abs_max

    key = {f.split(".")[0]: k for k, f, _n, _kind, _b in LAYERS}.get(base_key(tif.stem))
    if key is not None and band == 1:
        v = raster_style_values(key, tif)
        if v["kind"] == "regions":
            return regions_renderer(int(v["max"]))
        return pseudocolor_renderer(None, 1, v["min"], v["max"], v["kind"], v["units"])
    m = robust_abs_max(tif, band)
    kind = "sigma" if "sigma" in table or table.startswith("uncertainty") else "diverging"
    return pseudocolor_renderer(None, 1, -m if kind == "diverging" else 0.0, m, kind, "m")


def shapefile_names(names: list[str]) -> dict[str, str]:
    """Field name -> a unique name of at most 10 characters (dBase), e.g. ``azimuth_deg`` -> ``azimuth_de``."""
    out: dict[str, str] = {}
    for n in names:
        short, k = n[:10], 1
        while short in out.values():
            short, k = f"{n[:10 - len(str(k))]}{k}", k + 1
        out[n] = short
    return out


def _shapefile(layer: Any, folder: Path, table: str) -> Path:
    """The layer as ``<folder>/<table>.shp`` + ``.qml``; fields longer than 10 characters get their short name in
    the file and in the style (so a data-defined arrow angle still reads its field)."""
    import re

    from qgis.core import QgsCoordinateTransformContext, QgsVectorFileWriter

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{table}.shp"
    keep = [i for i, f in enumerate(layer.fields()) if f.name() != "fid"]  # the GeoPackage's key
    names = shapefile_names([layer.fields()[i].name() for i in keep])
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName = "ESRI Shapefile"
    opts.fileEncoding = "UTF-8"
    opts.attributes = keep
    opts.attributesExportNames = list(names.values())
    res = QgsVectorFileWriter.writeAsVectorFormatV2(layer, str(out), QgsCoordinateTransformContext(), opts)
    if res[0] != QgsVectorFileWriter.NoError:
        raise OSError(f"cannot write {out}: {res[1]}")
    qml = out.with_suffix(".qml")
    layer.saveNamedStyle(str(qml))
    text = qml.read_text(encoding="utf-8")
    for old, short in names.items():
        if old != short:
            text = re.sub(rf"\b{re.escape(old)}\b", short, text)
    qml.write_text(text, encoding="utf-8")
    return out
