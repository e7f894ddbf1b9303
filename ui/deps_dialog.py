"""Dialog shown when onnxruntime or rasterio is missing from QGIS's Python: install (CPU or GPU) or read how."""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QProcess, Qt
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
)

from ..app import deps

DOC_URL = "https://github.com/quakefusion/quakefusion/blob/main/docs/install.md"


class DepsDialog(QDialog):
    """Explains what is missing, offers ``pip install`` into QGIS's Python (CPU or GPU build) and manual steps."""

    def __init__(self, missing: list[str], parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("QuakeFusion needs Python packages")
        self.missing = list(missing)
        self.process: QProcess | None = None
        lay = QVBoxLayout(self)
        self.lbl_what = QLabel(
            f"<p>QuakeFusion needs <b>{', '.join(self.missing)}</b> in QGIS's Python to run the model and read "
            "rasters. The dialog and menus work without them, but Run stays disabled.</p>"
            "<p>Install them now into QGIS's Python (keeps QGIS's numpy "
            f"{deps.numpy_version() or ''}):</p>")
        self.lbl_what.setWordWrap(True)
        lay.addWidget(self.lbl_what)
        self.rb_cpu = QRadioButton("CPU build (onnxruntime) — works everywhere")
        self.rb_gpu = QRadioButton("GPU build (onnxruntime-gpu) — NVIDIA GPU with CUDA 12 and cuDNN 9")
        self.rb_cpu.setChecked(True)
        lay.addWidget(self.rb_cpu)
        lay.addWidget(self.rb_gpu)
        self.lbl_cmd = QLabel()
        self.lbl_cmd.setWordWrap(True)
        self.lbl_cmd.setTextInteractionFlags(Qt.TextSelectableByMouse)
        lay.addWidget(self.lbl_cmd)
        self.lbl_manual = QLabel(
            "Manual installation (Windows: OSGeo4W Shell; macOS: the QGIS.app Python; Linux: the system Python "
            f"that QGIS uses) is described in <a href='{DOC_URL}'>docs/install.md</a>. Restart QGIS afterwards.")
        self.lbl_manual.setOpenExternalLinks(True)
        self.lbl_manual.setWordWrap(True)
        lay.addWidget(self.lbl_manual)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setVisible(False)
        lay.addWidget(self.output)
        self.buttons = QDialogButtonBox()
        self.btn_install = QPushButton("Install now")
        self.buttons.addButton(self.btn_install, QDialogButtonBox.ActionRole)
        self.buttons.addButton(QDialogButtonBox.Close)
        self.buttons.rejected.connect(self.reject)
        self.btn_install.clicked.connect(self.install)
        lay.addWidget(self.buttons)
        self.rb_cpu.toggled.connect(self._update_cmd)
        self._update_cmd()
        self.resize(640, 360)

    def gpu(self) -> bool:
        return self.rb_gpu.isChecked()

    def command(self) -> str:
        return deps.pip_command(self.gpu())

    def _update_cmd(self, *_: Any) -> None:
        self.lbl_cmd.setText(f"<p>Command:<br><code>{self.command().replace('<', '&lt;')}</code></p>")

    def install(self) -> None:
        """Run pip in a QProcess (QGIS stays responsive); the output is shown and logged."""
        self.output.setVisible(True)
        self.output.appendPlainText(f"$ {self.command()}\n")
        self.btn_install.setEnabled(False)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.start(deps.qgis_python(), deps.pip_args(self.gpu()))

    def _read(self) -> None:
        if self.process is not None:
            self.output.appendPlainText(bytes(self.process.readAllStandardOutput()).decode(errors="replace"))

    def _finished(self, code: int, _status: Any = None) -> None:
        ok = code == 0
        text = ("Installed. Restart QGIS to use QuakeFusion." if ok else
                f"pip failed (exit code {code}). See the output above and the manual steps in docs/install.md.")
        self.output.appendPlainText(text)
        QgsMessageLog.logMessage(f"dependency installation: {text}", "QuakeFusion",
                                 Qgis.Info if ok else Qgis.Warning)
        self.btn_install.setEnabled(not ok)
