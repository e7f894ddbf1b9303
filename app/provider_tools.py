"""Processing algorithms of the geologist's tools (group "Geologist's tools" of the QuakeFusion provider):

``quakefusion:rupture_trace``, ``fault_offsets``, ``fault_arrows``, ``fault_components``, ``report``, ``export_run``.

Each takes a finished run folder and writes into it, like ``python -m backend trace|offsets|arrows|components|
report`` (same backend code, ``app/geotools.py``). ``postProcessAlgorithm`` (main thread) stores the styles (in the
GeoPackages' ``layer_styles`` and ``.qml`` files), so the layers Processing loads are styled. ``report`` is the
matplotlib report (safe in Processing's worker thread); the dialog's report fills the QGIS layout template.
``export_run`` runs on the main thread (it makes QGIS layers for the styles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorLayer,
)
from qgis.PyQt.QtCore import QUrl

from .geotools import ToolParams, offset_caveats, run_tools
from .tool_layers import VECTORS

PLUGIN_DIR = Path(__file__).resolve().parents[1]
HELP_URL = QUrl.fromLocalFile(str(PLUGIN_DIR / "docs" / "user_guide.md")).toString()
METHODS = ["auto", "probability", "step", "both", "line", "band"]
MODES = ["sample", "mean"]
SIGNS = ("Signs (t = trace direction, n = its right-hand normal, R/L = right/left side): parallel = (d_R - d_L).t "
         "(negative = right-lateral), normal = (d_R - d_L).n (positive = opening), vertical = U_R - U_L.")


class _ToolAlgorithm(QgsProcessingAlgorithm):
    """Shared parameters (run folder, trace) and the style/loading step."""

    NAME = ""
    TITLE = ""
    HELP = ""
    TOOLS: list[str] = []

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return self.TITLE

    def group(self) -> str:
        return "Geologist's tools"

    def groupId(self) -> str:  # noqa: N802
        return "geologist_tools"

    def shortHelpString(self) -> str:  # noqa: N802
        return f"{self.HELP}<p>Help: docs/user_guide.md of the plugin (Help button).</p>"

    def helpUrl(self) -> str:  # noqa: N802
        return HELP_URL

    def createInstance(self) -> Any:  # noqa: N802
        return type(self)()

    def _run_params(self) -> None:
        self.addParameter(QgsProcessingParameterFile("RUN_FOLDER", "Run folder (a finished QuakeFusion run)",
                                                     behavior=QgsProcessingParameterFile.Folder))

    def _trace_params(self) -> None:
        self.addParameter(QgsProcessingParameterVectorLayer(
            "TRACE", "Trace (line layer; empty: the run's rupture_trace.gpkg, else extracted)",
            [QgsProcessing.TypeVectorLine], optional=True))
        self.addParameter(QgsProcessingParameterEnum("METHOD", "Extraction method (no trace given)", METHODS,
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            "BAND", "Move the extracted trace onto the interferogram's decorrelation band (runs with an "
            "interferogram)", defaultValue=True))

    def _offset_params(self) -> None:
        for key, label, default, minimum in (("SPACING", "Spacing between profiles (m)", 500.0, 1.0),
                                             ("LENGTH", "Stack length across the fault (m)", 2000.0, 10.0),
                                             ("WIDTH", "Stack width along the fault (m)", 200.0, 0.0),
                                             ("EXCLUDE", "Exclude zone around the trace (m; 0 = 3 pixels)", 0.0,
                                              0.0)):
            self.addParameter(QgsProcessingParameterNumber(key, label, QgsProcessingParameterNumber.Double,
                                                           default, minValue=minimum))

    def tool_params(self, parameters: dict, context: QgsProcessingContext, run_dir: Path) -> ToolParams:
        p = ToolParams()
        if "TRACE" in parameters:
            lyr = self.parameterAsVectorLayer(parameters, "TRACE", context)
            if lyr is not None:
                from .tool_layers import save_line_layer

                try:
                    p.trace = str(save_line_layer(lyr, run_dir / "trace_input.gpkg"))
                except OSError as exc:
                    raise QgsProcessingException(str(exc)) from exc
        if self.parameterDefinition("METHOD") is not None:  # the trace algorithms (defaults when not given)
            p.method = METHODS[self.parameterAsEnum(parameters, "METHOD", context)]
            p.band = self.parameterAsBoolean(parameters, "BAND", context)
        for key in ("SPACING", "LENGTH", "WIDTH"):
            if key in parameters:
                setattr(p, key.lower(), self.parameterAsDouble(parameters, key, context))
        if "EXCLUDE" in parameters:
            p.exclude = self.parameterAsDouble(parameters, "EXCLUDE", context) or None
        return p

    def run_folder(self, parameters: dict, context: QgsProcessingContext) -> Path:
        d = Path(self.parameterAsFile(parameters, "RUN_FOLDER", context))
        if not (d / "displacement.tif").exists():
            raise QgsProcessingException(f"RUN_FOLDER {d}: no displacement.tif. Fix: give the folder of a finished "
                                         "QuakeFusion run.")
        return d

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext, feedback: Any) -> dict:  # noqa: N802
        from backend.errors import PipelineError

        run_dir = self.run_folder(parameters, context)
        p = self.tool_params(parameters, context, run_dir)
        self.extra(parameters, context, p)

        def progress(fraction: float, message: str) -> None:
            feedback.setProgress(100.0 * fraction)
            feedback.setProgressText(message)

        try:
            files = run_tools(run_dir, self.TOOLS, p, progress, feedback.isCanceled)
        except PipelineError as exc:
            raise QgsProcessingException(exc.message) from exc
        self._files = files
        for note in offset_caveats(run_dir, files):  # e.g. small steps read short with a fused SAR pair
            feedback.pushWarning(note)
        self._load(files, context)
        return self.results(files, run_dir)

    def extra(self, parameters: dict, context: QgsProcessingContext, p: ToolParams) -> None:
        """Tool-specific parameters into ``p``."""

    def results(self, files: dict[str, Path], run_dir: Path) -> dict:
        return {"RUN_FOLDER": str(run_dir)}

    def _load(self, files: dict[str, Path], context: QgsProcessingContext) -> None:
        if context.project() is None:
            return
        for key, specs in VECTORS.items():
            if key in files:
                for table, name, _kind in specs:
                    if table == "ellipses" and not self._has_layer(files[key], table):
                        continue
                    details = QgsProcessingContext.LayerDetails(name, context.project(), table)
                    context.addLayerToLoadOnCompletion(f"{files[key]}|layername={table}", details)
        for key, name in (("components", "Fault-parallel displacement (m)"),
                          ("significance", "Significance |d|/sigma")):
            if key in files:
                context.addLayerToLoadOnCompletion(str(files[key]), QgsProcessingContext.LayerDetails(
                    name, context.project(), key))

    @staticmethod
    def _has_layer(path: Path, table: str) -> bool:
        from osgeo import ogr

        ds = ogr.Open(str(path))
        return ds is not None and ds.GetLayerByName(table) is not None

    def postProcessAlgorithm(self, context: QgsProcessingContext, feedback: Any) -> dict:  # noqa: N802
        """Main thread: store the styles before Processing loads the layers."""
        from .tool_layers import tool_layers

        files = getattr(self, "_files", None)
        if files:
            tool_layers(files)
        return {}


class RuptureTraceAlgorithm(_ToolAlgorithm):
    NAME, TITLE, TOOLS = "rupture_trace", "Rupture trace", ["trace"]
    HELP = ("Extracts the surface rupture trace of a run (from rupture_probability.tif when the model wrote it, "
            "else from the displacement step) as an editable line layer RUN_FOLDER/rupture_trace.gpkg (layers "
            "rupture_trace and trace_seg, with strike and length). When the run has an interferogram and BAND is "
            "on, the trace is moved onto the band where the wrapped phase decorrelates across the rupture (its "
            "on_band attribute: the share of the trace moved). Given a TRACE, copies it there instead.")

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802
        self._run_params()
        self._trace_params()
        self.addOutput(QgsProcessingOutputVectorLayer("TRACE_OUT", "Rupture trace"))

    def extra(self, parameters: dict, context: QgsProcessingContext, p: ToolParams) -> None:
        p.new_trace = True

    def results(self, files: dict[str, Path], run_dir: Path) -> dict:
        return {"RUN_FOLDER": str(run_dir), "TRACE_OUT": f"{files['trace']}|layername=rupture_trace"}


class FaultOffsetsAlgorithm(_ToolAlgorithm):
    NAME, TITLE, TOOLS = "fault_offsets", "Fault offsets along strike", ["offsets"]
    HELP = ("COSI-Corr-style stacked profiles along the trace: every SPACING m a stack LENGTH m across and WIDTH m "
            "along the fault; each side fitted with a line (samples within EXCLUDE m of the trace ignored) and "
            "extrapolated to the trace. Writes fault_offsets.gpkg (offsets, profiles), fault_offsets.csv and "
            f"slip_along_strike.png into the run folder. {SIGNS}")

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802
        self._run_params()
        self._trace_params()
        self._offset_params()
        self.addOutput(QgsProcessingOutputVectorLayer("OFFSETS", "Fault offsets (points on the trace)"))
        self.addOutput(QgsProcessingOutputFile("CSV", "fault_offsets.csv"))
        self.addOutput(QgsProcessingOutputNumber("PROFILES", "Number of profiles"))

    def results(self, files: dict[str, Path], run_dir: Path) -> dict:
        from backend.offsets import read_csv

        return {"RUN_FOLDER": str(run_dir), "OFFSETS": f"{files['gpkg']}|layername=offsets",
                "CSV": str(files["csv"]), "PROFILES": len(read_csv(files["csv"]))}


class FaultArrowsAlgorithm(_ToolAlgorithm):
    NAME, TITLE, TOOLS = "fault_arrows", "Displacement arrows (map units)", ["arrows"]
    HELP = ("Arrows of the horizontal displacement, one every STEP pixels, as lines in map units (SCALE map units "
            "per metre; 0 = automatic) with a reference arrow and optional 1-sigma ellipses: "
            "RUN_FOLDER/fault_arrows.gpkg. MODE mean averages a block only over pixels on the arrow's side of the "
            "trace. The style needs no attribute, so it survives a shapefile export.")

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802
        self._run_params()
        self._trace_params()
        self.addParameter(QgsProcessingParameterNumber("STEP", "One arrow every N pixels",
                                                       QgsProcessingParameterNumber.Integer, 16, minValue=2))
        self.addParameter(QgsProcessingParameterNumber("SCALE", "Map units per metre (0 = automatic)",
                                                       QgsProcessingParameterNumber.Double, 0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum("MODE", "Arrow value", ["pixel value",
                                                     "block mean on the arrow's side of the trace"], defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean("ELLIPSES", "1-sigma ellipses", False))
        self.addOutput(QgsProcessingOutputVectorLayer("ARROWS", "Arrows (lines)"))

    def extra(self, parameters: dict, context: QgsProcessingContext, p: ToolParams) -> None:
        p.arrow_step = self.parameterAsInt(parameters, "STEP", context)
        p.arrow_scale = self.parameterAsDouble(parameters, "SCALE", context) or None
        p.arrow_mode = MODES[self.parameterAsEnum(parameters, "MODE", context)]
        p.ellipses = self.parameterAsBool(parameters, "ELLIPSES", context)

    def results(self, files: dict[str, Path], run_dir: Path) -> dict:
        return {"RUN_FOLDER": str(run_dir), "ARROWS": f"{files['arrows']}|layername=arrow_line"}


class FaultComponentsAlgorithm(_ToolAlgorithm):
    NAME, TITLE, TOOLS = "fault_components", "Fault-parallel/normal components and significance", ["components"]
    HELP = ("fault_components.tif: band 1 fault-parallel d.t, band 2 fault-normal d.n (m), bands 3-4 their 1-sigma; "
            "t = the nearest trace segment's direction (or the mean strike), n its right-hand normal. "
            "significance.tif: |d| / sigma of the 3-D displacement.")

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802
        self._run_params()
        self._trace_params()
        self.addParameter(QgsProcessingParameterBoolean("MEAN_STRIKE", "One direction (the traces' mean strike)",
                                                        False))
        self.addOutput(QgsProcessingOutputFile("COMPONENTS", "fault_components.tif"))
        self.addOutput(QgsProcessingOutputFile("SIGNIFICANCE", "significance.tif"))

    def extra(self, parameters: dict, context: QgsProcessingContext, p: ToolParams) -> None:
        p.mean_strike = self.parameterAsBool(parameters, "MEAN_STRIKE", context)

    def results(self, files: dict[str, Path], run_dir: Path) -> dict:
        return {"RUN_FOLDER": str(run_dir), "COMPONENTS": str(files["components"]),
                "SIGNIFICANCE": str(files["significance"]) if "significance" in files else None}


class ReportAlgorithm(_ToolAlgorithm):
    NAME, TITLE = "report", "Report (PDF)"
    HELP = ("A 4-page PDF report (and a PNG of page 1): map with colour bar, scale bar, north arrow and arrows with "
            "a reference arrow; slip along strike; a stacked profile; the run summary (matplotlib, like "
            "python -m backend report). The dialog's Report button fills the QGIS layout template instead.")

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802
        self._run_params()
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Report PDF", "PDF (*.pdf)"))
        self.addOutput(QgsProcessingOutputNumber("PAGES", "Pages"))

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext, feedback: Any) -> dict:  # noqa: N802
        from backend.errors import PipelineError
        from backend.report import make_report

        run_dir = self.run_folder(parameters, context)
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        try:
            r = make_report(run_dir, out)
        except PipelineError as exc:
            raise QgsProcessingException(exc.message) from exc
        for n in r["notes"]:
            feedback.pushInfo(n)
        return {"OUTPUT": str(r["pdf"]), "PAGES": r["pages"]}

    def postProcessAlgorithm(self, context: QgsProcessingContext, feedback: Any) -> dict:  # noqa: N802
        return {}


class ExportRunAlgorithm(_ToolAlgorithm):
    NAME, TITLE = "export_run", "Export run (GeoPackage + shapefiles)"
    HELP = ("One GeoPackage with every raster (one table per band) and vector layer of the run folder and their "
            "styles (layer_styles, plus the whole run as a QGIS project inside it: Project > Open From > "
            "GeoPackage), and the vectors as shapefiles with .qml styles.")

    def flags(self) -> Any:
        return super().flags() | QgsProcessingAlgorithm.FlagNoThreading  # QGIS layers carry the styles

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802
        self._run_params()
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "GeoPackage", "GeoPackage (*.gpkg)"))
        self.addParameter(QgsProcessingParameterFolderDestination("SHAPEFILES", "Shapefile folder", optional=True))
        self.addOutput(QgsProcessingOutputFolder("SHAPEFILES_OUT", "Shapefile folder"))
        self.addOutput(QgsProcessingOutputNumber("LAYERS", "Layers exported"))

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext, feedback: Any) -> dict:  # noqa: N802
        from .export import export_run

        run_dir = self.run_folder(parameters, context)
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        shp = self.parameterAsString(parameters, "SHAPEFILES", context) or None
        res = export_run(run_dir, out, shp, progress=lambda f, m: feedback.setProgress(100 * f))
        return {"OUTPUT": str(res["gpkg"]), "SHAPEFILES_OUT": shp,
                "LAYERS": len(res["rasters"]) + len(res["vectors"])}

    def postProcessAlgorithm(self, context: QgsProcessingContext, feedback: Any) -> dict:  # noqa: N802
        return {}


ALGORITHMS = [RuptureTraceAlgorithm, FaultOffsetsAlgorithm, FaultArrowsAlgorithm, FaultComponentsAlgorithm,
              ReportAlgorithm, ExportRunAlgorithm]
