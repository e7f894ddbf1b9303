"""Processing provider "QuakeFusion" with the algorithm "Estimate displacement (multi-modal)".

Same parameters as the dialog; usable from the toolbox, batch mode, the model designer and
``qgis_process run quakefusion:estimate_displacement -- PHASE=ifg.tif ... OUTPUT_FOLDER=out``.
``checkParameterValues`` runs the backend's ``backend.config.check`` (the same rules as the CLI and the dialog);
``processAlgorithm`` calls ``runner.execute`` (hence ``backend.pipeline.run_estimate``): feedback -> progress,
``feedback.isCanceled`` -> cancel. ``postProcessAlgorithm`` (main thread) writes the ``.qml`` styles, so loaded
layers look like the dialog's.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputString,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsProcessingProvider,
)
from qgis.PyQt.QtGui import QIcon

from backend import config as C

from .runner import ANGLES, MODALITIES, MoreIfgs, RunSpec, default_run_name, problems

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))
INPUT_LABELS = {
    "optical_pre": "Optical image, pre-event", "optical_post": "Optical image, post-event",
    "sar_pre": "SAR amplitude, pre-event", "sar_post": "SAR amplitude, post-event",
    "phase": "InSAR wrapped interferogram (rad)", "coherence": "InSAR coherence (0..1)", "dem": "DEM (m)",
    "incidence": "LOS incidence raster (deg)", "heading": "LOS heading raster (deg)",
}
WAVELENGTHS = [(f"{p.label}: {p.value} m", p.value) for p in C.WAVELENGTH_PRESETS] + [("Custom (WAVELENGTH_CUSTOM)",
                                                                                          None)]
SIGNS = [(f"{p.label} ({p.value:+d})", p.value) for p in C.SIGN_PRESETS] + [("Custom +1", 1), ("Custom -1", -1)]
DEVICES = ["auto", "cuda", "cpu"]
OUTPUT_KEYS = {"DISPLACEMENT": "displacement", "DISPLACEMENT_SIGMA": "displacement_sigma",
               "EAST": "east", "NORTH": "north", "UP": "up", "HORIZONTAL": "horizontal",
               "UNCERTAINTY": "uncertainty", "LOS_DISPLACEMENT": "los_displacement",
               "UNWRAPPED_PHASE": "unwrapped_phase", "REWRAPPED_PHASE": "rewrapped_phase",
               "RUPTURE_PROBABILITY": "rupture_probability", "UNWRAP_REGIONS": "unwrap_regions"}
# interferograms 2, 3, ...: layers, and per-option comma-separated lists (one value = all, else one each; empty = as
# the first interferogram)
MORE_LAYERS = {"MORE_PHASES": "More interferograms (2, 3, ...; wrapped phase, rad)",
               "MORE_COHERENCES": "Their coherences (same order; none or one each)",
               "MORE_LOS_VECTORS": "Their LOS unit-vector rasters (3 bands E, N, U; instead of angles)"}
MORE_LISTS = {"MORE_WAVELENGTHS": "Their wavelengths (m), comma-separated (empty: as the first)",
              "MORE_PHASE_SIGNS": "Their phase signs (+1/-1), comma-separated (empty: as the first)",
              "MORE_INCIDENCES": "Their incidence angles (deg), comma-separated (empty: as the first)",
              "MORE_HEADINGS": "Their headings (deg), comma-separated (empty: as the first)"}


@contextlib.contextmanager
def no_aux_xml() -> Iterator[None]:
    """GDAL_PAM_ENABLED=NO for this thread only: datasets opened meanwhile (the input layers QGIS loads for the
    algorithm, and the backend's reads) never write ``*.aux.xml`` beside the user's files. The rest of QGIS keeps its
    setting."""
    try:
        from osgeo import gdal
    except ImportError:  # no GDAL bindings: nothing to switch (the backend sets it for its own reads)
        yield
        return
    old = gdal.GetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", old)


def no_aux_xml_in_qgis_process() -> bool:
    """In ``qgis_process`` (one headless run per process, no user session to disturb) switch GDAL's ``*.aux.xml``
    side-car files off for the whole process: QGIS opens the input layers (and computes their statistics) before
    the algorithm runs, and would leave ``<input>.aux.xml`` beside the user's files. Returns True if switched."""
    from qgis.core import QgsApplication

    if QgsApplication.platform() != "qgis_process":
        return False
    try:
        from osgeo import gdal
    except ImportError:
        return False
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    return True


class QuakeFusionProvider(QgsProcessingProvider):
    def id(self) -> str:  # noqa: A003
        return "quakefusion"

    def name(self) -> str:
        return "QuakeFusion"

    def longName(self) -> str:  # noqa: N802
        return "QuakeFusion (earthquake displacement from optical, SAR, InSAR and DEM)"

    def icon(self) -> QIcon:
        return QIcon(os.path.join(PLUGIN_DIR, "icon.png"))

    def loadAlgorithms(self) -> None:  # noqa: N802
        no_aux_xml_in_qgis_process()
        self.addAlgorithm(EstimateDisplacementAlgorithm())
        from .provider_tools import ALGORITHMS  # the geologist's tools (Step 10)
        for alg in ALGORITHMS:
            self.addAlgorithm(alg())


class EstimateDisplacementAlgorithm(QgsProcessingAlgorithm):
    def name(self) -> str:
        return "estimate_displacement"

    def displayName(self) -> str:  # noqa: N802
        return "Estimate displacement (multi-modal)"

    def group(self) -> str:
        return ""

    def groupId(self) -> str:  # noqa: N802
        return ""

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Fuses any subset of an optical pair, a SAR amplitude pair, a wrapped interferogram (+ coherence) "
                "and a DEM with the QuakeFusion model into east/north/up displacement (m) with 1-sigma uncertainty, "
                "and unwraps the interferogram with the fused estimate. Give at least an interferogram, an optical "
                "pair or a SAR pair. Incidence/heading: a raster or a constant (degrees; heading clockwise from "
                "north), or a 3-band LOS unit-vector raster (E, N, U). Phase sign: +1 when the phase grows with range "
                "increase (LiCSAR/COMET, HyP3, ISCE). More interferograms (ascending + descending, C/L band): "
                "MORE_PHASES with their coherences, LOS-vector rasters and comma-separated wavelengths, signs and "
                "angles (one value applies to all; empty = as the first). Each is unwrapped (MCF) and east/north/up "
                "are re-estimated from all of them; components the data do not constrain are NaN. "
                "INSAR_PRODUCTS: LiCSAR interferogram folders or ASF HyP3 products (zip or folder; ';'-separated) "
                "add one interferogram each, with the product's coherence, line of sight (LiCSAR E/N/U files, HyP3 "
                "look vectors), Sentinel-1 wavelength and sign +1, and its DEM when no DEM layer is given. "
                "TRACE (optional): a known surface rupture trace (a mapped or drawn line layer, or rupture_trace.gpkg "
                "of a first run): the network's windows stop at it, so the offset across it is read sharp; a layer "
                "that is not a file is saved to OUTPUT_FOLDER/trace_inputs/<run>.gpkg. "
                "FIND_TRACE (no trace at hand): a blind first pass, its rupture trace extracted (line search, placed "
                "on the interferogram's decorrelation band when there is one), then the run with that trace, which is "
                "written as rupture_trace.gpkg in the run folder; where no trace is significant the blind run is the "
                "result and run.json says why. About twice the time. "
                "RELIGHT (advanced, on by default): with a DEM, the sun of each optical image is fitted to the DEM's "
                "shading and the pre image is relit to the post image's sun, so a sun that differs between the dates "
                "is not read as motion on relief. "
                "Writes GeoTIFFs, styles (.qml) and run.json into a new sub-folder of the output folder.")

    def icon(self) -> QIcon:
        return QIcon(os.path.join(PLUGIN_DIR, "icon.png"))

    def helpUrl(self) -> str:  # noqa: N802 - the shipped user guide
        from .provider_tools import HELP_URL
        return HELP_URL

    def createInstance(self) -> EstimateDisplacementAlgorithm:  # noqa: N802
        return EstimateDisplacementAlgorithm()

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802
        for key in (*MODALITIES, *ANGLES):
            up = key.upper()
            self.addParameter(QgsProcessingParameterRasterLayer(up, INPUT_LABELS[key], optional=True))
            self.addParameter(QgsProcessingParameterBand(f"{up}_BAND", f"{INPUT_LABELS[key]}: band", 1, up,
                                                         optional=True))
        self.addParameter(QgsProcessingParameterNumber("INCIDENCE_CONSTANT", "LOS incidence constant (deg), if no "
                                                       "raster", QgsProcessingParameterNumber.Double,
                                                       C.DEFAULT_INCIDENCE_DEG, minValue=C.INCIDENCE_RANGE_DEG[0],
                                                       maxValue=C.INCIDENCE_RANGE_DEG[1]))
        self.addParameter(QgsProcessingParameterNumber("HEADING_CONSTANT", "LOS heading constant (deg), if no "
                                                       "raster", QgsProcessingParameterNumber.Double,
                                                       C.DEFAULT_HEADING_DEG, minValue=C.HEADING_RANGE_DEG[0],
                                                       maxValue=C.HEADING_RANGE_DEG[1]))
        self.addParameter(QgsProcessingParameterEnum("WAVELENGTH", "Radar wavelength",
                                                     [w[0] for w in WAVELENGTHS], defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("WAVELENGTH_CUSTOM", "Custom wavelength (m)",
                                                       QgsProcessingParameterNumber.Double,
                                                       C.WAVELENGTH_PRESETS[0].value, optional=True,
                                                       minValue=C.WAVELENGTH_RANGE_M[0],
                                                       maxValue=C.WAVELENGTH_RANGE_M[1]))
        self.addParameter(QgsProcessingParameterEnum("PHASE_SIGN", "Phase sign convention",
                                                     [s[0] for s in SIGNS], defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterLayer("LOS_VECTOR", "LOS unit-vector raster (3 bands E, N, U; "
                                                            "instead of incidence/heading)", optional=True))
        self.addParameter(QgsProcessingParameterString(
            "INSAR_PRODUCTS", "InSAR products: LiCSAR interferogram folders (YYYYMMDD_YYYYMMDD) or HyP3 products "
            "(zip or folder), separated by ';' (phase, coherence and line of sight from their files)", optional=True))
        for key, label in MORE_LAYERS.items():
            self.addParameter(QgsProcessingParameterMultipleLayers(key, label, QgsProcessing.TypeRaster,
                                                                   optional=True))
        for key, label in MORE_LISTS.items():
            self.addParameter(QgsProcessingParameterString(key, label, optional=True))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "TRACE", "Rupture trace, if known (line layer: the network's windows stop at it)",
            [QgsProcessing.TypeVectorLine], optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "FIND_TRACE", "No trace at hand: find it on a blind first pass and run again with it (about twice the "
            "time)", defaultValue=False))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (empty: intersection of the inputs)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", ["Auto", "GPU (CUDA)", "CPU"],
                                                     defaultValue=0))
        adv = [
            QgsProcessingParameterNumber("TILE", "Tile size (px)", QgsProcessingParameterNumber.Integer,
                                         C.DEFAULT_TILE, minValue=C.MIN_TILE, maxValue=C.MAX_TILE),
            QgsProcessingParameterFile("MODEL", "Model (.onnx; empty: shipped model)", extension="onnx",
                                       optional=True),
            QgsProcessingParameterString("RUN_NAME", "Run name (sub-folder)", optional=True),
            QgsProcessingParameterBoolean("LOAD_ALL", "Load all result layers (else east/north/up and arrows)",
                                          defaultValue=False),
            QgsProcessingParameterBoolean("RELIGHT", "Relight the pre optical image to the post image's sun from the "
                                          "DEM (topographic shading)", defaultValue=True),
        ]
        for p in adv:
            p.setFlags(p.flags() | p.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputFolder("RUN_FOLDER", "Run folder"))
        for out, key in OUTPUT_KEYS.items():
            self.addOutput(QgsProcessingOutputRasterLayer(out, key.replace("_", " ")))
        self.addOutput(QgsProcessingOutputVectorLayer("ARROWS", "Displacement arrows",
                                                      QgsProcessing.TypeVectorPoint))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", "Device used"))
        self.addOutput(QgsProcessingOutputNumber("INTERFEROGRAMS", "Interferograms used"))
        self.addOutput(QgsProcessingOutputNumber("SECONDS", "Run time (s)"))

    def checkParameterValues(self, parameters: dict, context: QgsProcessingContext) -> tuple[bool, str]:  # noqa: N802
        with no_aux_xml():  # the input layers are opened (and their statistics computed) here
            return self._check(parameters, context)

    def _check(self, parameters: dict, context: QgsProcessingContext) -> tuple[bool, str]:
        bad = self._range_problems(parameters)
        if bad:
            return False, "\n".join(bad)
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        found = problems(self._spec(parameters, context, write_trace=False), lambda name: name.upper())
        if found:
            return False, "\n".join(p.text for p in found)
        return True, ""

    def _range_problems(self, parameters: dict) -> list[str]:
        """Numbers outside their range, with the allowed range (QGIS itself only says "Incorrect parameter value")."""
        out = []
        for p in self.parameterDefinitions():
            raw = parameters.get(p.name())
            if not isinstance(p, QgsProcessingParameterNumber) or raw is None or raw == "":
                continue
            try:
                v = float(raw)
            except (TypeError, ValueError):
                if isinstance(raw, str):
                    out.append(f"{p.description()} ({p.name()}): {raw!r} is not a number")
                continue
            lo, hi = p.minimum(), p.maximum()
            integer = p.dataType() == QgsProcessingParameterNumber.Integer
            if not (lo <= v <= hi) or (integer and v != int(v)):
                kind = "a whole number" if integer else "a number"
                out.append(f"{p.description()} ({p.name()}) = {raw} is outside the allowed range: give {kind} from "
                           f"{lo:g} to {hi:g}")
        return out

    def _more_ifgs(self, parameters: dict, context: QgsProcessingContext) -> MoreIfgs:
        def layers(key: str) -> list[str]:
            return [lyr.source() for lyr in self.parameterAsLayerList(parameters, key, context)]

        def numbers(key: str) -> list[float]:
            text = self.parameterAsString(parameters, key, context) or ""
            try:
                return [float(x) for x in text.replace(";", ",").split(",") if x.strip()]
            except ValueError as exc:
                raise QgsProcessingException(f"{MORE_LISTS[key]} ({key}): {text!r} is not a comma-separated list "
                                             "of numbers") from exc

        return MoreIfgs(phases=layers("MORE_PHASES"), coherences=layers("MORE_COHERENCES"),
                        los_vectors=layers("MORE_LOS_VECTORS"), wavelengths=numbers("MORE_WAVELENGTHS"),
                        phase_signs=[int(x) for x in numbers("MORE_PHASE_SIGNS")],
                        incidences=numbers("MORE_INCIDENCES"), headings=numbers("MORE_HEADINGS"))

    def _trace(self, parameters: dict, context: QgsProcessingContext, out_root: Path, run_name: str,
               write: bool) -> str | None:
        """The TRACE layer as a file: its own, else written to OUTPUT_FOLDER/trace_inputs/<run>.gpkg (kept: run.json
        names it). ``write`` False (parameter check): a layer that is not a file is not written yet (None)."""
        from .tool_layers import run_trace_input

        lyr = self.parameterAsVectorLayer(parameters, "TRACE", context) if parameters.get("TRACE") else None
        try:
            return run_trace_input(lyr, out_root, run_name, write)
        except OSError as exc:
            raise QgsProcessingException(f"Rupture trace (TRACE): {exc}") from exc

    def _spec(self, parameters: dict, context: QgsProcessingContext, write_trace: bool = True) -> RunSpec:
        inputs: dict[str, tuple[str, int]] = {}
        for key in (*MODALITIES, *ANGLES):
            lyr = self.parameterAsRasterLayer(parameters, key.upper(), context)
            if lyr is not None:
                band = self.parameterAsInt(parameters, f"{key.upper()}_BAND", context) or 1
                inputs[key] = (lyr.source(), int(band))
        lv = self.parameterAsRasterLayer(parameters, "LOS_VECTOR", context)
        if lv is not None:
            inputs["los_vector"] = (lv.source(), 1)
        wavelength = WAVELENGTHS[self.parameterAsEnum(parameters, "WAVELENGTH", context)][1]
        if wavelength is None:
            wavelength = self.parameterAsDouble(parameters, "WAVELENGTH_CUSTOM", context)
        extent = None
        if parameters.get("EXTENT") not in (None, ""):
            crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
            r = self.parameterAsExtent(parameters, "EXTENT", context, crs)
            if not r.isNull() and not r.isEmpty():
                extent = (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum(),
                          crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED) if crs.isValid() else "")
        model = self.parameterAsString(parameters, "MODEL", context)
        out_root = Path(self.parameterAsString(parameters, "OUTPUT_FOLDER", context) or ".")
        run_name = self.parameterAsString(parameters, "RUN_NAME", context) or default_run_name()
        return RunSpec(out_root=out_root, run_name=run_name, inputs=inputs,
                       trace=self._trace(parameters, context, out_root, run_name, write_trace),
                       find_trace=self.parameterAsBoolean(parameters, "FIND_TRACE", context),
                       incidence_deg=self.parameterAsDouble(parameters, "INCIDENCE_CONSTANT", context),
                       heading_deg=self.parameterAsDouble(parameters, "HEADING_CONSTANT", context),
                       wavelength_m=wavelength if "phase" in inputs else None,
                       phase_sign=SIGNS[self.parameterAsEnum(parameters, "PHASE_SIGN", context)][1],
                       device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
                       illumination="auto" if self.parameterAsBoolean(parameters, "RELIGHT", context) else "off",
                       tile=self.parameterAsInt(parameters, "TILE", context),
                       model_path=Path(model) if model else None, extent=extent, intersection=True,
                       more_ifgs=self._more_ifgs(parameters, context),
                       products=[x.strip() for x in re.split(r"[;\n]", self.parameterAsString(
                           parameters, "INSAR_PRODUCTS", context) or "") if x.strip()])

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext, feedback: Any) -> dict:  # noqa: N802
        with no_aux_xml():
            return self._process(parameters, context, feedback)

    def _process(self, parameters: dict, context: QgsProcessingContext, feedback: Any) -> dict:
        from backend.errors import Cancelled, PipelineError

        from .runner import execute

        spec = self._spec(parameters, context)
        from backend.outputs import clean_stale_runs

        for folder in clean_stale_runs(spec.out_root):  # what killed runs (qgis_process, QGIS) left behind
            feedback.pushInfo(f"removed the partial files of an interrupted run in {folder}")

        def progress(fraction: float, message: str) -> None:
            feedback.setProgress(100.0 * fraction)
            feedback.setProgressText(message)

        try:
            outcome = execute(spec, progress=progress, cancel=feedback.isCanceled, log=feedback.pushInfo)
        except Cancelled as exc:  # an exception, so that Processing (and qgis_process) report failure
            raise QgsProcessingException("Cancelled by the user: nothing was written.") from exc
        except PipelineError as exc:
            raise QgsProcessingException(exc.message) from exc
        feedback.pushInfo(f"Results in {outcome.out_dir} ({outcome.device}, {outcome.seconds:.1f} s)")
        results: dict[str, Any] = {"RUN_FOLDER": str(outcome.out_dir), "OUTPUT_FOLDER": str(spec.out_root),
                                   "DEVICE_USED": outcome.device, "SECONDS": outcome.seconds}
        for out, key in OUTPUT_KEYS.items():
            results[out] = str(outcome.files[key]) if key in outcome.files else None
            if key in ("unwrapped_phase", "los_displacement", "unwrap_regions") and f"{key}_1" in outcome.files:
                results[out] = str(outcome.files[f"{key}_1"])  # several interferograms: the first's
        results["INTERFEROGRAMS"] = len(outcome.run.get("parameters", {}).get("interferograms", []))
        results["ARROWS"] = str(outcome.files["arrows"]) if "arrows" in outcome.files else None
        self._outcome = outcome
        self._load(outcome, spec.run_name, context, self.parameterAsBool(parameters, "LOAD_ALL", context))
        return results

    def postProcessAlgorithm(self, context: QgsProcessingContext, feedback: Any) -> dict:  # noqa: N802
        """Main thread: the .qml styles beside the files (before Processing loads the layers)."""
        from .layers import write_styles

        outcome = getattr(self, "_outcome", None)
        if outcome is not None:
            outcome.styles = write_styles(outcome.files)
        return {}

    def _load(self, outcome: Any, run_name: str, context: QgsProcessingContext, load_all: bool) -> None:
        from .layers import entries, layer_name, layer_source, nan_reasons

        if context.project() is None:
            return
        reasons = nan_reasons(outcome.files)
        for key, path, name, kind in entries(outcome.files):
            if not load_all and key not in ("east", "north", "up", "arrows", "rupture_trace"):
                continue
            src = layer_source(path, kind)
            details = QgsProcessingContext.LayerDetails(f"{run_name}: {layer_name(key, name, reasons)}",
                                                        context.project(), key)
            context.addLayerToLoadOnCompletion(src, details)
