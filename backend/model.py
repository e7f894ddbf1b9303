"""ONNX model: metadata (``metadata_props["quakefusion"]``) and the ONNX Runtime session.

Device: ``cpu``, ``cuda`` (fails with a clear message when CUDA does not initialise) or ``auto`` (CUDA when the
CUDA provider really initialises, otherwise CPU - silently, without ORT's alarming library-loading errors).
``OnnxModel.device`` reports the device actually used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PipelineError

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "quakefusion.onnx"


@dataclass
class ModelMeta:
    raw: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.raw.get("model_version", "unknown"))

    @property
    def input_name(self) -> str:
        return str(self.raw.get("input_name", "features"))

    @property
    def output_displacement(self) -> str:
        return str(self.raw.get("outputs", {}).get("displacement", "displacement_enu_m"))

    @property
    def output_sigma(self) -> str:
        return str(self.raw.get("outputs", {}).get("sigma", "sigma_enu_m"))

    @property
    def channels(self) -> list[Any]:
        return list(self.raw["channels"])

    @property
    def tile_multiple(self) -> int:
        return int(self.raw.get("tile_multiple", 16))

    @property
    def pixel_size_range_m(self) -> tuple[float, float] | None:
        r = self.raw.get("pixel_size_range_m")
        return (float(r[0]), float(r[1])) if r else None


def read_metadata(path: str | Path) -> ModelMeta:
    """The ``quakefusion`` metadata JSON of an ``.onnx`` file (reads only the model header via ORT)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise PipelineError(f"model ({path}): ONNX Runtime cannot load it ({exc}). Fix: give the .onnx exported by "
                            "`make export` (models/quakefusion.onnx)", "model") from exc
    meta = sess.get_modelmeta().custom_metadata_map
    if "quakefusion" not in meta:
        raise PipelineError(f"model ({path}): no 'quakefusion' metadata. Fix: export it with `make export`", "model")
    return ModelMeta(json.loads(meta["quakefusion"]))


def _cuda_session(model_bytes_or_path: str, so: Any) -> Any | None:
    """A CUDA session if the CUDA provider initialises, else None (ORT's loader errors silenced)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None
    ort.set_default_logger_severity(4)
    try:
        sess = ort.InferenceSession(model_bytes_or_path, so,
                                    providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except Exception:
        return None
    finally:
        ort.set_default_logger_severity(2)
    return sess if sess.get_providers()[0] == "CUDAExecutionProvider" else None


class OnnxModel:
    """Loaded model; ``run(x)`` maps ``(B, C, H, W)`` features to ``(displacement, sigma)``, each ``(B, 3, H, W)``."""

    def __init__(self, path: str | Path | None = None, device: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path) if path is not None else DEFAULT_MODEL
        if not self.path.exists():
            raise PipelineError(f"model ({self.path}): file not found. Fix: run `make export` or give --model", "model")
        if device not in ("auto", "cpu", "cuda"):
            raise PipelineError(f"device {device!r} unknown. Fix: use auto, cpu or cuda", "device")
        self.meta = read_metadata(self.path)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.threads = int(threads) if threads else (os.cpu_count() or 1)
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = None
        if device in ("auto", "cuda"):
            sess = _cuda_session(str(self.path), so)
            if sess is None and device == "cuda":
                raise PipelineError("device cuda: the CUDA execution provider does not initialise here (no NVIDIA GPU, "
                                    "or onnxruntime-gpu's CUDA/cuDNN libraries are missing). Fix: use --device auto "
                                    "or cpu, or install the CUDA runtime that your onnxruntime-gpu needs", "device")
        if sess is None:
            sess = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
            self.device = "cpu"
        else:
            self.device = "cuda"
        self.session = sess
        self.providers = sess.get_providers()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = self.session.run([self.meta.output_displacement, self.meta.output_sigma],
                                {self.meta.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return outs[0], outs[1]
