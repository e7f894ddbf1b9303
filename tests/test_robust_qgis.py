"""Robustness (issue #13) inside QGIS: Processing's range errors say the allowed range, a cancelled Processing run
fails (non-zero exit in qgis_process), qgis_process leaves no ``*.aux.xml`` beside the inputs; the dependency
installer runs QGIS's own interpreter; the dialog's device text claims a GPU only when CUDA initialises."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.robust_util import DARFIELD, digest, leftovers, tree
from tests.test_processing_qgis_process import ALG, QGIS_PROCESS, qp_env  # noqa: F401 (fixture)


@pytest.fixture
def provider(qgis_app, qgis_processing, qf_plugin_pkg):  # noqa: ANN201
    from qgis.core import QgsApplication
    from quakefusion.app.provider import QuakeFusionProvider

    reg = QgsApplication.processingRegistry()
    prov = QuakeFusionProvider()
    assert reg.addProvider(prov)
    yield reg.algorithmById(ALG)
    reg.removeProvider(prov)


@pytest.mark.qgis_slow
@pytest.mark.parametrize(("param", "value", "fragment"), [
    ("TILE", 5, "Tile size (px) (TILE) = 5 is outside the allowed range: give a whole number from 64 to 4096"),
    ("INCIDENCE_CONSTANT", 120, "(INCIDENCE_CONSTANT) = 120 is outside the allowed range: give a number from 2 to 89"),
    ("INCIDENCE_CONSTANT", 0, "from 2 to 89"),
    ("HEADING_CONSTANT", -400, "from -360 to 360"),
    ("WAVELENGTH_CUSTOM", 5.55, "from 0.005 to 0.5"),
    ("TILE", "abc", "'abc' is not a number"),
])
def test_processing_range_errors_say_the_range(provider, tmp_path, param, value, fragment) -> None:
    from qgis.core import QgsProcessingContext

    params = {"PHASE": str(DARFIELD / "wrapped_phase.tif"), "OUTPUT_FOLDER": str(tmp_path), param: value}
    ok, msg = provider.checkParameterValues(params, QgsProcessingContext())
    assert not ok and fragment in msg, msg


@pytest.mark.qgis_slow
def test_processing_cancel_is_a_failure_and_writes_nothing(provider, tiny_model, tmp_path) -> None:
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    fb = QgsProcessingFeedback()
    fb.cancel()  # the user pressed Cancel
    before = digest([DARFIELD / "optical.tif"])
    with pytest.raises(QgsProcessingException, match="Cancelled by the user: nothing was written"):
        processing.run(ALG, {"OPTICAL_PRE": str(DARFIELD / "optical.tif"), "OPTICAL_PRE_BAND": 1,
                             "OPTICAL_POST": str(DARFIELD / "optical.tif"), "OPTICAL_POST_BAND": 2,
                             "MODEL": str(tiny_model), "DEVICE": 2, "RUN_NAME": "cancelled",
                             "OUTPUT_FOLDER": str(tmp_path / "o")}, feedback=fb)
    assert tree(tmp_path / "o") == [] and digest([DARFIELD / "optical.tif"]) == before


@pytest.mark.qgis_slow
def test_qgis_process_leaves_no_aux_xml_beside_inputs(qp_env, tiny_model, tmp_path) -> None:  # noqa: F811
    src = tmp_path / "inputs"
    src.mkdir()
    for n in ("wrapped_phase.tif", "coherence.tif", "optical.tif", "incidence.tif", "heading.tif"):
        shutil.copy(DARFIELD / n, src / n)
    before = digest(src.iterdir())
    out = subprocess.run([QGIS_PROCESS, "--json", "run", ALG, "--", f"PHASE={src / 'wrapped_phase.tif'}",
                          f"COHERENCE={src / 'coherence.tif'}", f"OPTICAL_PRE={src / 'optical.tif'}",
                          f"OPTICAL_POST={src / 'optical.tif'}", "OPTICAL_POST_BAND=2",
                          f"INCIDENCE={src / 'incidence.tif'}", f"HEADING={src / 'heading.tif'}", "DEVICE=2",
                          f"MODEL={tiny_model}", "RUN_NAME=r", f"OUTPUT_FOLDER={tmp_path / 'out'}"],
                         env=qp_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert tree(src) == sorted(p.name for p in src.iterdir()) and not list(src.glob("*.aux.xml"))
    assert digest(src.iterdir()) == before
    run = json.loads((tmp_path / "out" / "r" / "run.json").read_text())
    assert leftovers(tmp_path / "out") == [] and set(run["files"]) <= set(tree(tmp_path / "out" / "r"))


@pytest.mark.qgis_slow
def test_qgis_process_range_error_exit_code(qp_env, tmp_path) -> None:  # noqa: F811
    out = subprocess.run([QGIS_PROCESS, "run", ALG, "--", f"PHASE={DARFIELD / 'wrapped_phase.tif'}", "TILE=5",
                          f"OUTPUT_FOLDER={tmp_path / 'out'}"], env=qp_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0
    assert "give a whole number from 64 to 4096" in out.stdout + out.stderr
    assert tree(tmp_path / "out") == []


# ---------------------------------------------------------------------------------- dependencies, device text
def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def test_installer_finds_python_in_the_qgis_apps_folder_on_windows(tmp_path) -> None:
    from app.deps import find_qgis_python

    root = tmp_path / "QGIS 3.34.4"  # the standalone installer's layout (OSGeo4W is the same)
    exe = _touch(root / "bin" / "qgis-bin.exe")
    py = _touch(root / "apps" / "Python39" / "python.exe")
    _touch(tmp_path / "elsewhere" / "python3.exe")  # a python on PATH must not be used
    got = find_qgis_python(executable=str(exe), prefix=str(root / "apps" / "Python39"),
                           exec_prefix=str(root / "apps" / "Python39"), base_prefix="", version=(3, 9), windows=True)
    assert got == py
    # sys.prefix pointing somewhere without python.exe: found from the executable's installation
    got = find_qgis_python(executable=str(exe), prefix=str(tmp_path / "x"), exec_prefix=str(tmp_path / "x"),
                           base_prefix="", version=(3, 9), windows=True)
    assert got == py


def test_installer_finds_python_in_the_macos_bundle(tmp_path) -> None:
    from app.deps import find_qgis_python

    app = tmp_path / "QGIS.app" / "Contents"
    exe = _touch(app / "MacOS" / "QGIS")
    fw = app / "Frameworks" / "Python.framework" / "Versions" / "3.10"
    py = _touch(fw / "bin" / "python3.10")
    got = find_qgis_python(executable=str(exe), prefix=str(fw), exec_prefix=str(fw), base_prefix=str(fw),
                           version=(3, 10), windows=False)
    assert got == py


def test_installer_uses_this_interpreter_never_a_bare_python3() -> None:
    from app.deps import find_qgis_python, pip_command, qgis_python

    assert Path(qgis_python()).is_absolute() and Path(qgis_python()).exists()
    assert find_qgis_python() == Path(sys.executable)
    # Linux QGIS: sys.executable is /usr/bin/qgis; the interpreter of the same version under the prefix
    got = find_qgis_python(executable="/usr/bin/qgis", prefix=sys.base_prefix, exec_prefix=sys.base_exec_prefix,
                           base_prefix=sys.base_prefix, version=sys.version_info[:2], windows=False)
    assert got is not None and got.name == f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert pip_command().startswith(qgis_python()) and not pip_command().startswith("python3 ")


def test_no_gpu_claim_when_cuda_does_not_initialise() -> None:
    import onnxruntime as ort

    from app.deps import gpu_status
    from backend.model import cuda_initialises

    usable, text = gpu_status()
    assert usable == cuda_initialises()
    if not usable:
        assert text.startswith("CPU only:") and "GPU build" not in text and "found" not in text
        if "CUDAExecutionProvider" in ort.get_available_providers():  # onnxruntime-gpu on a GPU-less machine
            assert "does not initialise here" in text
    else:
        assert "initialises here" in text
