"""``QuakeFusionTask`` (a QgsTask): one run in a worker thread; styles and layers on the main thread.

``run()`` (worker thread) calls ``runner.execute`` - hence ``backend.pipeline.run_estimate``, which writes every
file; progress goes to the task manager and the dialog, ``cancel()`` stops within one tile. ``finished()`` (main
thread) writes the ``.qml`` styles and adds the layers: QGIS layers are never created in the worker thread.
"""

from __future__ import annotations

import html
import traceback
from typing import Any

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import QUrl, pyqtSignal

from .runner import LOG_TAG, RunOutcome, RunSpec


def log(message: str, level: Any = Qgis.Info) -> None:
    """Write to the 'QuakeFusion' tab of the QGIS log (thread-safe)."""
    QgsMessageLog.logMessage(message, LOG_TAG, level)


class QuakeFusionTask(QgsTask):
    """One run in the background. Signals: ``message(str)`` (stage text) and ``done(bool ok, str text)``."""

    message = pyqtSignal(str)
    done = pyqtSignal(bool, str)

    def __init__(self, spec: RunSpec, iface: Any = None) -> None:
        super().__init__(f"QuakeFusion: {spec.run_name}", QgsTask.CanCancel)
        self.spec = spec
        self.iface = iface
        self.outcome: RunOutcome | None = None
        self.error: str | None = None
        self.error_input: str | None = None
        self.details: str | None = None
        self.group: Any = None
        self.layers: list[Any] = []

    # worker thread ------------------------------------------------------------------------------------------------
    def _progress(self, fraction: float, text: str) -> None:
        self.setProgress(100.0 * fraction)
        self.message.emit(text)

    def run(self) -> bool:
        try:
            from backend.errors import Cancelled, PipelineError

            from .runner import execute
        except ImportError as exc:  # a dependency is missing
            self.error = (f"a Python package is missing ({exc.name or exc}). Fix: Raster ▸ QuakeFusion ▸ Install "
                          "dependencies")
            self.details = traceback.format_exc()
            return False
        try:
            log(f"run '{self.spec.run_name}' started: inputs {sorted(self.spec.inputs)}, device {self.spec.device}, "
                f"tile {self.spec.tile}, output {self.spec.out_root}")
            self.outcome = execute(self.spec, progress=self._progress, cancel=self.isCanceled, log=log)
            return True
        except Cancelled:
            return False
        except PipelineError as exc:
            self.error, self.error_input = exc.message, exc.input_name
            return False
        except MemoryError:
            self.error = "not enough memory. Fix: choose a smaller tile size (Advanced) or a smaller extent"
            self.details = traceback.format_exc()
            return False
        except Exception as exc:  # never a traceback in the user's face: message bar + log
            self.error = f"unexpected error ({type(exc).__name__}: {exc}). Details are in the QuakeFusion log"
            self.details = traceback.format_exc()
            return False

    # main thread --------------------------------------------------------------------------------------------------
    def _push_insar(self, bar: Any) -> None:
        """Warn (message bar, log) about regions that stay separate and E/N/U the inversion left NaN."""
        insar = insar_messages(self.outcome.run.get("notes", []))
        if insar and bar is not None:
            bar.pushMessage("QuakeFusion InSAR", "<br>".join(html.escape(n) for n in insar), Qgis.Warning, 0)
        for n in insar:
            log(n, Qgis.Warning)

    def finished(self, ok: bool) -> None:  # noqa: FBT001 (QgsTask API)
        bar = self.iface.messageBar() if self.iface is not None else None
        if ok and self.outcome is not None:
            try:
                from .layers import add_layers, write_styles

                self.outcome.styles = write_styles(self.outcome.files)
                self.group, self.layers = add_layers(self.outcome.files, self.spec.run_name)
            except Exception as exc:
                ok = False
                self.error = f"the results were written to {self.outcome.out_dir} but could not be added ({exc})"
                self.details = traceback.format_exc()
        if ok and self.outcome is not None:
            folder = self.outcome.out_dir
            from qgis.core import QgsSettings

            QgsSettings().setValue("QuakeFusion/last_run_dir", str(folder))  # the tools and profile dock start here
            url = QUrl.fromLocalFile(str(folder)).toString()
            text = (f"'{html.escape(self.spec.run_name)}' finished in {self.outcome.seconds:.1f} s on "
                    f"{self.outcome.device.upper()}: {len(self.layers)} layers added. "
                    f"<a href=\"{url}\">Open the output folder</a>; offsets, profiles, report: Raster ▸ "
                    "QuakeFusion ▸ Geologist's tools…")
            if bar is not None:
                bar.pushMessage("QuakeFusion", text, Qgis.Success, 15)
            self._push_insar(bar)
            if self.outcome.valid_fraction == 0.0:
                warn = ("the model returned no valid displacement (NaN everywhere) for these inputs. Try adding the "
                        "interferogram or another modality; details in the QuakeFusion log")
                if bar is not None:
                    bar.pushMessage("QuakeFusion", warn, Qgis.Warning, 0)
                log(warn, Qgis.Warning)
            log(f"run '{self.spec.run_name}' done: {len(self.layers)} layers from {folder}", Qgis.Success)
            self.done.emit(True, f"Done: {len(self.layers)} layers added from {folder}")
            return
        if self.isCanceled():
            text = "Run cancelled; nothing was written."
            if bar is not None:
                bar.pushMessage("QuakeFusion", text, Qgis.Info, 8)
            log(f"run '{self.spec.run_name}' cancelled")
            self.done.emit(False, text)
            return
        reason = self.error or "the run stopped without a reason (see the QuakeFusion log)"
        if bar is not None:
            bar.pushMessage("QuakeFusion failed", reason, Qgis.Critical, 0)
        log(f"run '{self.spec.run_name}' failed: {reason}", Qgis.Critical)
        if self.details:
            log(self.details, Qgis.Critical)
        self.done.emit(False, f"Failed: {reason}")


def insar_messages(notes: list[str]) -> list[str]:
    """The notes the user must see after an InSAR run: unwrapping regions that stay separate (unknown relative
    cycle count across a decorrelated gap) and east/north/up left NaN by the 3-D inversion (with the reason)."""
    keys = ("unknown relative cycle count", "3-D inversion:", "network was not run")
    return [n for n in notes if any(k in n for k in keys)]


class ToolTask(QgsTask):
    """A geologist's tool (trace, offsets, arrows, components, report) in the background.

    ``work(progress, cancel)`` runs in the worker thread and returns ``{key: Path}`` of the files written (backend
    only, no QGIS layers); ``on_done(files)`` runs on the main thread in ``finished()`` (styles, layers, layouts)
    and returns the text for the message bar. Signals: ``message(str)``, ``done(bool ok, str text)``."""

    message = pyqtSignal(str)
    done = pyqtSignal(bool, str)

    def __init__(self, title: str, work: Any, on_done: Any = None, iface: Any = None) -> None:
        super().__init__(f"QuakeFusion: {title}", QgsTask.CanCancel)
        self.title = title
        self.work = work
        self.on_done = on_done
        self.iface = iface
        self.files: dict[str, Any] = {}
        self.error: str | None = None
        self.details: str | None = None
        self.text = ""

    def _progress(self, fraction: float, text: str) -> None:
        self.setProgress(100.0 * fraction)
        self.message.emit(text)

    def run(self) -> bool:
        try:
            from backend.errors import PipelineError
        except ImportError as exc:
            self.error = f"a Python package is missing ({exc}). Fix: Raster ▸ QuakeFusion ▸ Install dependencies…"
            return False
        try:
            self.files = self.work(self._progress, self.isCanceled) or {}
            return not self.isCanceled()
        except PipelineError as exc:
            self.error = exc.message
        except Exception as exc:
            self.error = f"unexpected error ({type(exc).__name__}: {exc}). Details are in the QuakeFusion log"
            self.details = traceback.format_exc()
        return False

    def finished(self, ok: bool) -> None:  # noqa: FBT001 (QgsTask API)
        bar = self.iface.messageBar() if self.iface is not None else None
        if ok:
            try:
                self.text = self.on_done(self.files) if self.on_done is not None else f"{self.title}: done"
            except Exception as exc:
                ok = False
                self.error = f"the files were written but could not be loaded ({exc})"
                self.details = traceback.format_exc()
        if ok:
            if bar is not None:
                bar.pushMessage("QuakeFusion", html.escape(self.text), Qgis.Success, 10)
            log(f"{self.title}: {self.text}", Qgis.Success)
            self.done.emit(True, self.text)
            return
        reason = "cancelled" if self.isCanceled() else (self.error or "stopped without a reason (see the log)")
        if bar is not None:
            bar.pushMessage(f"QuakeFusion: {self.title}", reason, Qgis.Info if self.isCanceled() else Qgis.Critical,
                            0)
        log(f"{self.title} failed: {reason}", Qgis.Critical)
        if self.details:
            log(self.details, Qgis.Critical)
        self.done.emit(False, f"{self.title}: {reason}")
