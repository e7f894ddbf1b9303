"""Run-folder rasters and vector layers for the geologist's tools (trace, offsets, arrows, report).

Rasters are read with rasterio, like the rest of the backend. Vector layers are read and written with GDAL/OGR
from ``osgeo`` (shipped with every QGIS install), imported only when a vector is read or written. Coordinates are
map coordinates of the run's grid (``RunData.crs_wkt``); rasters are north-up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .errors import PipelineError

# Files of a run folder read here (docs/backend.md); rupture_probability.tif comes with the Step 7 model.
RUN_FILES = {"displacement": "displacement.tif", "sigma": "displacement_sigma.tif",
             "probability": "rupture_probability.tif", "run_json": "run.json"}
MAX_FIELD_CHARS = 10  # shapefile (dBase) limit on field names


class ToolsError(PipelineError):
    """A problem with a run folder, a trace file or a tool parameter; the message names it and the fix."""


@dataclass
class RunData:
    """The rasters of one run: ``disp`` (3, H, W) east/north/up (m), ``sigma`` (3, H, W) 1-sigma (m) or None,
    ``prob`` (H, W) rupture probability 0..1 or None; north-up ``transform`` (affine.Affine) in ``crs_wkt``."""

    disp: np.ndarray
    transform: object
    crs_wkt: str
    sigma: np.ndarray | None = None
    prob: np.ndarray | None = None
    run_dir: Path | None = None
    run_json: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.disp.shape[1]), int(self.disp.shape[2])

    @property
    def pixel_size(self) -> float:
        return float(math.sqrt(abs(self.transform.a * self.transform.e)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the raster's outer edges."""
        t, (h, w) = self.transform, self.shape
        return t.c, t.f + h * t.e, t.c + w * t.a, t.f

    def rowcol(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, col) of map points, pixel centres at integers."""
        t = self.transform
        return (np.asarray(y, float) - t.f) / t.e - 0.5, (np.asarray(x, float) - t.c) / t.a - 0.5

    def xy(self, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates of fractional (row, col) pixel positions (pixel centres at integers)."""
        t = self.transform
        return t.c + (np.asarray(col, float) + 0.5) * t.a, t.f + (np.asarray(row, float) + 0.5) * t.e

    def sample(self, arr: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear samples of ``arr`` ((H, W) or (k, H, W)) at map points; NaN outside or next to no data."""
        r, c = self.rowcol(x, y)
        stack = arr[None] if arr.ndim == 2 else arr
        out = np.stack([ndimage.map_coordinates(b, [r, c], output=np.float64, order=1, mode="constant",
                                                cval=np.nan) for b in stack])
        return out[0] if arr.ndim == 2 else out

    def pixel_grid_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (X, Y), each (H, W), of all pixel centres."""
        h, w = self.shape
        x, y = self.xy(np.zeros(w), np.arange(w))[0], self.xy(np.arange(h), np.zeros(h))[1]
        return np.meshgrid(x, y)


def load_run(run_dir: str | Path) -> RunData:
    """Read ``displacement.tif`` (+ ``displacement_sigma.tif``, ``rupture_probability.tif``, ``run.json`` when
    present) of a run folder."""
    import rasterio

    d = Path(run_dir)
    p = d / RUN_FILES["displacement"]
    if not p.exists():
        raise ToolsError(f"run folder {d}: no {RUN_FILES['displacement']}. Fix: give the --out folder of a "
                         "finished QuakeFusion run.", "run_dir")
    with rasterio.open(p) as ds:
        if ds.count < 3:
            raise ToolsError(f"{p}: {ds.count} band(s), expected 3 (east, north, up in m).", "run_dir")
        if ds.crs is None:
            raise ToolsError(f"{p}: no CRS. Fix: the raster must be georeferenced.", "run_dir")
        if abs(ds.transform.b) > 0 or abs(ds.transform.d) > 0 or ds.transform.e >= 0:
            raise ToolsError(f"{p}: not north-up. Fix: warp it to a north-up grid.", "run_dir")
        disp = ds.read([1, 2, 3], masked=True).filled(np.nan).astype(np.float32)
        transform, crs_wkt, shape = ds.transform, ds.crs.to_wkt(), (ds.height, ds.width)
    sigma = prob = None
    ps = d / RUN_FILES["sigma"]
    if ps.exists():
        with rasterio.open(ps) as ds:
            if (ds.height, ds.width) == shape and ds.count >= 3:
                sigma = ds.read([1, 2, 3], masked=True).filled(np.nan).astype(np.float32)
    pp = d / RUN_FILES["probability"]
    if pp.exists():
        with rasterio.open(pp) as ds:
            if (ds.height, ds.width) == shape:
                prob = ds.read(1, masked=True).filled(np.nan).astype(np.float32)
    return RunData(disp=disp, transform=transform, crs_wkt=crs_wkt, sigma=sigma, prob=prob, run_dir=d,
                   run_json=read_run_json(d))


def read_run_json(run_dir: str | Path) -> dict:
    """A run folder's ``run.json`` ({} without one)."""
    pj = Path(run_dir) / RUN_FILES["run_json"]
    return json.loads(pj.read_text()) if pj.exists() else {}


def run_pixel_size(run_dir: str | Path) -> float:
    """The pixel size (m) of a run's ``displacement.tif``, from its header only (as ``RunData.pixel_size``)."""
    import rasterio

    with rasterio.open(Path(run_dir) / RUN_FILES["displacement"]) as ds:
        return float(math.sqrt(abs(ds.transform.a * ds.transform.e)))


# ------------------------------------------------------------------------------------------- geometry helpers


def azimuth_deg(de: np.ndarray | float, dn: np.ndarray | float) -> np.ndarray:
    """Azimuth of the vector (east, north), degrees clockwise from north in [0, 360)."""
    return np.mod(np.degrees(np.arctan2(de, dn)), 360.0)


def right_normal(t: np.ndarray) -> np.ndarray:
    """Right-hand normal of the unit vector ``t`` = (east, north): ``t`` turned 90 degrees clockwise."""
    return np.array([t[1], -t[0]])


def cumulative_length(line: np.ndarray) -> np.ndarray:
    """Distance along a polyline ((k, 2) map coordinates) at each vertex, starting at 0."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])


def point_at(line: np.ndarray, s: np.ndarray | float) -> np.ndarray:
    """Point(s) at distance ``s`` along a polyline (clamped to its ends)."""
    cl = cumulative_length(line)
    s = np.clip(s, 0.0, cl[-1])
    return np.stack([np.interp(s, cl, line[:, 0]), np.interp(s, cl, line[:, 1])], axis=-1)


def signed_distance(px: np.ndarray, py: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of points to a polyline, positive on its right-hand side (looking along the line)."""
    px, py = np.asarray(px, float), np.asarray(py, float)
    best = np.full(px.shape, np.inf)
    sign = np.ones(px.shape)
    for (x0, y0), (x1, y1) in zip(line[:-1], line[1:]):
        vx, vy = x1 - x0, y1 - y0
        L2 = max(vx * vx + vy * vy, 1e-12)
        u = np.clip(((px - x0) * vx + (py - y0) * vy) / L2, 0.0, 1.0)
        dx, dy = px - (x0 + u * vx), py - (y0 + u * vy)
        d = np.hypot(dx, dy)
        closer = d < best
        best = np.where(closer, d, best)
        # right of (vx, vy): cross product (v x p) < 0  <=>  p . (vy, -vx) > 0
        sign = np.where(closer, np.where(dx * vy - dy * vx >= 0, 1.0, -1.0), sign)
    return best * sign


def nearest_signed_distance(px: np.ndarray, py: np.ndarray, lines: list[np.ndarray]) -> np.ndarray:
    """Signed distance of points to the nearest of several polylines (+ on that line's right-hand side)."""
    best = np.full(np.shape(px), np.inf)
    for line in lines:
        d = signed_distance(px, py, line)
        best = np.where(np.abs(d) < np.abs(best), d, best)
    return best


def trace_side(px: np.ndarray, py: np.ndarray, lines: list[np.ndarray]) -> np.ndarray:
    """float32 +1 / -1: right / left of the nearest trace line (looking along it), the ``fault_side`` channel."""
    return np.where(nearest_signed_distance(px, py, lines) >= 0, 1.0, -1.0).astype(np.float32)


def simplify(line: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker simplification of a polyline with tolerance ``tol`` (map units)."""
    if len(line) < 3 or tol <= 0:
        return line
    keep = np.zeros(len(line), bool)
    keep[[0, -1]] = True
    stack = [(0, len(line) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = line[i], line[j]
        ab = b - a
        n = float(np.hypot(*ab))
        seg = line[i + 1:j] - a
        d = np.abs(seg[:, 0] * ab[1] - seg[:, 1] * ab[0]) / n if n > 0 else np.hypot(seg[:, 0], seg[:, 1])
        k = int(np.argmax(d))
        if d[k] > tol:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return line[keep]


# ------------------------------------------------------------------------------------------- vector layers


@dataclass
class Layer:
    """One vector layer to write: ``geom`` is ``"Point"``, ``"LineString"`` or ``"Polygon"``; ``fields`` maps
    name (at most 10 characters, so shapefiles keep it) to ``"real"``, ``"int"`` or ``"str"``; each feature is
    (coordinates, attributes): a point (x, y), a line (k, 2), a polygon's outer ring (k, 2)."""

    name: str
    geom: str
    fields: dict[str, str]
    features: list[tuple[object, dict]] = field(default_factory=list)

    def __post_init__(self) -> None:
        long = [f for f in self.fields if len(f) > MAX_FIELD_CHARS]
        if long:
            raise ValueError(f"field names longer than {MAX_FIELD_CHARS} characters: {long}")


def _ogr():  # noqa: ANN202
    try:
        from osgeo import ogr, osr
    except ImportError as exc:  # pragma: no cover - QGIS always ships osgeo
        raise ToolsError("GDAL's Python bindings (osgeo) are missing: run this inside QGIS's Python, or install "
                         "the GDAL bindings (python3-gdal).") from exc
    ogr.UseExceptions()
    osr.UseExceptions()
    return ogr, osr


def _srs(osr, crs_wkt: str):  # noqa: ANN001, ANN202
    s = osr.SpatialReference()
    s.ImportFromWkt(crs_wkt)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def _geometry(ogr, kind: str, coords: object):  # noqa: ANN001, ANN202
    if kind == "Point":
        g = ogr.Geometry(ogr.wkbPoint)
        g.AddPoint_2D(float(coords[0]), float(coords[1]))
        return g
    pts = np.asarray(coords, float)
    if kind == "LineString":
        g = ogr.Geometry(ogr.wkbLineString)
        for x, y in pts:
            g.AddPoint_2D(float(x), float(y))
        return g
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in np.vstack([pts, pts[:1]]) if not np.allclose(pts[0], pts[-1]) else pts:
        ring.AddPoint_2D(float(x), float(y))
    g = ogr.Geometry(ogr.wkbPolygon)
    g.AddGeometry(ring)
    return g


def _targets(ogr, path: Path, layers: list[Layer]):  # noqa: ANN001, ANN202
    """(driver, [(file, layers in it)]) for ``write_layers``."""
    suffix = path.suffix.lower()
    if suffix in (".gpkg", ".geojson", ".json"):
        if suffix != ".gpkg" and len(layers) > 1:
            raise ValueError("GeoJSON holds one layer; write a GeoPackage or shapefiles for several")
        return ogr.GetDriverByName("GPKG" if suffix == ".gpkg" else "GeoJSON"), [(path, layers)]
    driver = ogr.GetDriverByName("ESRI Shapefile")
    if suffix == ".shp":
        return driver, [(path, [lay]) if len(layers) == 1 else (path.with_name(f"{path.stem}_{lay.name}.shp"), [lay])
                        for lay in layers]
    return driver, [(path / f"{lay.name}.shp", [lay]) for lay in layers]


def _reopen_geopackage(ogr, target: Path):  # noqa: ANN001, ANN202
    """An existing GeoPackage opened for update with its feature tables dropped (its ``layer_styles`` kept), or
    None when it is not one. Rewritten in place, not deleted and created anew, so that a tool run again keeps the
    file QGIS may have open and its styles table: the QGIS side then replaces the style rows with sqlite3
    (``app.tool_layers.save_vector_style``), since QGIS's own style save hung on a GeoPackage whose earlier layers
    it had loaded (the tools dialog run twice in the real desktop)."""
    try:
        ds = ogr.Open(str(target), 1)
    except RuntimeError:
        return None
    if ds is None or ds.GetDriver().GetName() != "GPKG":
        return None
    for i in reversed(range(ds.GetLayerCount())):
        if ds.GetLayer(i).GetName() != "layer_styles":
            ds.DeleteLayer(i)
    return ds


def _write_features(ogr, ds, ol, lay: Layer) -> None:  # noqa: ANN001
    defn = ol.GetLayerDefn()
    tx = ds.TestCapability(ogr.ODsCTransactions)
    if tx:
        ds.StartTransaction()
    for coords, attrs in lay.features:
        f = ogr.Feature(defn)
        for name, kind in lay.fields.items():
            v = attrs.get(name)
            if v is None or (kind == "real" and not math.isfinite(float(v))):
                f.SetFieldNull(name)
            else:
                f.SetField(name, {"real": float, "int": int, "str": str}[kind](v))
        f.SetGeometry(_geometry(ogr, lay.geom, coords))
        ol.CreateFeature(f)
    if tx:
        ds.CommitTransaction()


def write_layers(path: str | Path, layers: list[Layer], crs_wkt: str) -> list[Path]:
    """Write ``layers`` to a GeoPackage (``*.gpkg``: one file, one table per layer, replaced if it exists), a
    GeoJSON file (``*.geojson``, one layer) or shapefiles (``*.shp``: one layer -> that file; several ->
    ``<stem>_<layer>.shp`` beside it; a folder -> ``<folder>/<layer>.shp``). Returns the files written."""
    ogr, osr = _ogr()
    kinds = {"Point": ogr.wkbPoint, "LineString": ogr.wkbLineString, "Polygon": ogr.wkbPolygon}
    ftypes = {"real": ogr.OFTReal, "int": ogr.OFTInteger, "str": ogr.OFTString}
    srs = _srs(osr, crs_wkt)
    driver, targets = _targets(ogr, Path(path), layers)
    written = []
    for target, lays in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        ds = _reopen_geopackage(ogr, target) if target.suffix.lower() == ".gpkg" and target.exists() else None
        if ds is None:
            if target.exists():
                driver.DeleteDataSource(str(target))
            ds = driver.CreateDataSource(str(target))
        for lay in lays:
            ol = ds.CreateLayer(lay.name, srs, kinds[lay.geom])
            for name, kind in lay.fields.items():
                fd = ogr.FieldDefn(name, ftypes[kind])
                if kind == "real":
                    fd.SetWidth(18)
                    fd.SetPrecision(6)
                ol.CreateField(fd)
            _write_features(ogr, ds, ol, lay)
        ds = None  # noqa: F841 - closes and flushes the file
        written.append(target)
    return written


def _open_line_layer(ogr, p: Path, layer: str | None):  # noqa: ANN001, ANN202
    """(datasource, layer name) of the trace file ``p``: ``layer``, else ``rupture_trace``, else the first line
    layer."""
    try:
        ds = ogr.Open(str(p))
    except RuntimeError as exc:
        raise ToolsError(f"trace file {p}: not readable as a vector layer ({exc}). Fix: give a GeoPackage, "
                         "shapefile or GeoJSON line layer.", "trace") from exc
    if ds is None:
        raise ToolsError(f"trace file {p}: not readable as a vector layer.", "trace")
    names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    if layer is None:
        lines = [n for n in names if ogr.GT_Flatten(ds.GetLayerByName(n).GetGeomType())
                 in (ogr.wkbLineString, ogr.wkbMultiLineString)]
        layer = "rupture_trace" if "rupture_trace" in names else (lines[0] if lines else (names or [None])[0])
    if layer not in names:
        raise ToolsError(f"trace file {p}: no layer {layer!r} (layers: {names}).", "trace")
    return ds, layer


def _line_parts(ogr, g) -> list[np.ndarray]:  # noqa: ANN001
    flat = ogr.GT_Flatten(g.GetGeometryType())
    parts = [g] if flat == ogr.wkbLineString else (
        [g.GetGeometryRef(i) for i in range(g.GetGeometryCount())] if flat == ogr.wkbMultiLineString else [])
    out = []
    for part in parts:
        pts = np.array([part.GetPoint_2D(i) for i in range(part.GetPointCount())], float)
        if len(pts) >= 2:
            out.append(pts)
    return out


def read_lines(path: str | Path, crs_wkt: str, layer: str | None = None) -> list[np.ndarray]:
    """Line features of a vector file (GeoPackage, shapefile, GeoJSON, anything OGR reads) as (k, 2) arrays in
    ``crs_wkt`` (reprojected from the layer's CRS; a layer without CRS is taken to be in ``crs_wkt``). The layer is
    ``layer``, else ``rupture_trace`` when present, else the first layer with line geometry."""
    ogr, osr = _ogr()
    p = Path(path)
    ds, layer = _open_line_layer(ogr, p, layer)
    lyr = ds.GetLayerByName(layer)
    dst = _srs(osr, crs_wkt)
    src = lyr.GetSpatialRef()
    ct = None
    if src is not None:
        src = src.Clone()
        src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        if not src.IsSame(dst):
            ct = osr.CoordinateTransformation(src, dst)
    out: list[np.ndarray] = []
    for f in lyr:
        g = f.GetGeometryRef()
        if g is None:
            continue
        g = g.Clone()
        if ct is not None:
            g.Transform(ct)
        out += _line_parts(ogr, g)
    if not out:
        raise ToolsError(f"trace file {p} (layer {layer}): no line features. Fix: draw the trace as a line "
                         "layer (LineString).", "trace")
    return out


def read_table(path: str | Path, layer: str | None = None) -> tuple[list[str], list[dict]]:
    """Field names and attribute rows of a vector layer (first layer by default), for checks and tests."""
    ogr, _ = _ogr()
    ds = ogr.Open(str(path))
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    defn = lyr.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    rows = [{n: f.GetField(n) for n in names} | {"_geom": f.GetGeometryRef().ExportToWkt()} for f in lyr]
    return names, rows
