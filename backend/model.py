"""ONNX model: metadata (``metadata_props["quakefusion"]``) and the ONNX Runtime session.

Device: ``cpu``, ``cuda`` (fails with a clear message when CUDA does not initialise) or ``auto`` (CUDA when the
CUDA provider really initialises, otherwise CPU - silently, without ORT's alarming library-loading errors).
``OnnxModel.device`` reports the device actually used.
"""

from __future__ import annotations

import functools
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
    def outputs(self) -> dict[str, str]:
        """Output key -> ONNX output name, as the metadata lists them (``displacement`` and ``sigma`` always;
        ``rupture_probability`` from models that predict it)."""
        out = {str(k): str(v) for k, v in self.raw.get("outputs", {}).items()}
        out.setdefault("displacement", "displacement_enu_m")
        out.setdefault("sigma", "sigma_enu_m")
        return out

    @property
    def uninformative_outputs(self) -> dict[str, str]:
        """Output key -> why it is not written: outputs the graph computes but that carry no information (the
        export says so, ``models/export.py`` ``UNINFORMATIVE_OUTPUTS``; e.g. a rupture head that has not learnt).
        A layer that shows the base rate everywhere would read as "no rupture here": the run leaves it out and
        its notes say why."""
        return {str(k): str(v) for k, v in (self.raw.get("uninformative_outputs") or {}).items()}

    @property
    def trace_branch_weights(self) -> bool:
        """Whether the graph for a given rupture trace has weights of its own (metadata ``trace_branch``): then every
        tile of a run with a trace takes that branch, also tiles the trace does not cross (else the two weight sets
        would meet at tile seams); otherwise such tiles take the faster branch, which computes the same there."""
        return bool(self.raw.get("trace_branch"))

    @property
    def receptive_field_px(self) -> int | None:
        """Context (px) the network needs on each side of a pixel, when the export recorded it."""
        v = self.raw.get("receptive_field_px")
        return int(v) if v else None

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


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        v |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if b < 0x80:
            return v, i


def _pb_fields(buf: bytes, lo: int, hi: int) -> Any:
    """Protobuf fields in ``buf[lo:hi]``: (number, wire type, start, end) of the length-delimited ones, (number,
    0, value, value) of varints; fixed-size ones are skipped."""
    i = lo
    while i < hi:
        tag, i = _varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = _varint(buf, i)
            yield num, wt, v, v
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > hi:
                raise ValueError("length past the end")
            yield num, wt, i, i + n
            i += n
        elif wt in (1, 5):
            i += 8 if wt == 1 else 4
        else:
            raise ValueError(f"wire type {wt}")


def _header_metadata(path: Path) -> dict[str, str] | None:
    """``metadata_props`` of an ONNX ``ModelProto`` (field 14: key 1 / value 2) read from the protobuf wire format
    without building the graph (an ONNX Runtime session takes ~12 s for this network; this takes milliseconds).
    None where the file does not parse as one (the caller then asks ONNX Runtime, whose message names the fault)."""
    try:
        buf = path.read_bytes()
        out = {}
        for num, wt, a, b in _pb_fields(buf, 0, len(buf)):
            if num == 14 and wt == 2:
                kv = {n: buf[x:y].decode("utf-8") for n, w, x, y in _pb_fields(buf, a, b) if w == 2 and n in (1, 2)}
                out[kv.get(1, "")] = kv.get(2, "")
        return out
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def read_metadata(path: str | Path) -> ModelMeta:
    """The ``quakefusion`` metadata JSON of an ``.onnx`` file (the header only; ONNX Runtime is asked only where
    the file does not parse, for its message)."""
    meta = _header_metadata(Path(path))
    if meta is None or "quakefusion" not in meta:
        meta = _session_metadata(path)
    try:
        return ModelMeta(json.loads(meta["quakefusion"]))
    except ValueError as exc:
        raise PipelineError(f"model ({path}): its 'quakefusion' metadata is not valid JSON ({exc}). Fix: export it "
                            "with `make export`", "model") from exc


def cpu_session_options(threads: int | None = None) -> Any:
    """ONNX Runtime options for a CPU session of the model (the backend, the evaluation and the benchmarks).

    No memory-reuse plan: for this graph (~7 k nodes, two branches) ORT's allocation planner took 6.5-8 s of a ~8-s
    session start (22 s for 0.7.0's two-branch file); without it the session starts in 0.7-2 s, inference time and
    peak memory unchanged (1024^2 tile: 1.58 -> 1.65 s, 3.79 -> 3.92 GB; BENCHMARKS.md). CUDA sessions keep it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_mem_reuse = False
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    return so


def _session_metadata(path: str | Path) -> dict[str, str]:
    import onnxruntime as ort

    so = cpu_session_options()
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise PipelineError(f"model ({path}): ONNX Runtime cannot load it ({exc}). Fix: give the .onnx exported by "
                            "`make export` (models/quakefusion.onnx)", "model") from exc
    meta = sess.get_modelmeta().custom_metadata_map
    if "quakefusion" not in meta:
        raise PipelineError(f"model ({path}): no 'quakefusion' metadata. Fix: export it with `make export`", "model")
    return meta


REQUIRED_OUTPUTS = ("displacement", "sigma")
KNOWN_OUTPUTS = {"displacement": 3, "sigma": 3, "rupture_probability": 1, "sar_share": 1}  # key -> bands


def check_compatible(meta: ModelMeta, path: Path) -> None:
    """Raise :class:`PipelineError` (naming ``path`` and the fix) unless this backend can run the model: every
    input channel has a builder and every output is one the backend knows how to write."""
    from .features import BUILDERS, channel_name

    fix = ("Fix: give a model exported for this plugin version (`make export` writes models/quakefusion.onnx), or "
           "update the plugin")
    if "channels" not in meta.raw:
        raise PipelineError(f"model ({path}): its metadata lists no input channels. {fix}", "model")
    unknown = [channel_name(c) for c in meta.channels if channel_name(c) not in BUILDERS]
    if unknown:
        raise PipelineError(f"model ({path}) needs input channel(s) {', '.join(map(repr, unknown))} that this "
                            f"plugin cannot build (known: {', '.join(sorted(BUILDERS))}). {fix}", "model")
    odd = [k for k in meta.outputs if k not in KNOWN_OUTPUTS]
    if odd:
        raise PipelineError(f"model ({path}) has output(s) {', '.join(map(repr, odd))} that this plugin cannot "
                            f"write (known: {', '.join(KNOWN_OUTPUTS)}). {fix}", "model")


# A one-node ONNX model (Identity, opset 13; 69 bytes): whether the CUDA provider initialises is asked of it, not
# of the network. A session of the network with the CUDA provider that does not initialise falls back to a CPU
# session built with the default options (memory planner on): 33-45 s on 2 cores for the shipped model, before the
# CPU session the backend wants is built. Measured 2026-12-02 with onnxruntime-gpu on a machine without a GPU: model
# load with device "auto" 33-45 s -> 2.9 s; `make demo`'s two network runs had spent 40 and 48 s loading.
_PROBE_MODEL = (b'\x08\x07:;\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x05probeZ\x0f\n\x01x\x12\n\n\x08\x08\x01\x12\x04\n'
                b'\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01B\x04\n\x00\x10\r')


def _try_cuda(model_bytes_or_path: str | bytes, so: Any) -> Any | None:
    """A session of the model with the CUDA provider first, or None when CUDA does not run it (ORT's loader errors
    silenced)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        sess = ort.InferenceSession(model_bytes_or_path, so,
                                    providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except Exception:
        return None
    finally:
        ort.set_default_logger_severity(2)
    return sess if sess.get_providers()[0] == "CUDAExecutionProvider" else None


@functools.lru_cache(maxsize=1)
def cuda_provider_initialises() -> bool:
    """True if ONNX Runtime's CUDA provider starts here (asked of a one-node model; cached per process). False at
    once without onnxruntime-gpu."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return _try_cuda(_PROBE_MODEL, so) is not None


def _cuda_session(model_path: str, so: Any) -> Any | None:
    """A CUDA session of the model if the CUDA provider initialises here, else None."""
    return _try_cuda(model_path, so) if cuda_provider_initialises() else None


@functools.lru_cache(maxsize=4)
def cuda_initialises(path: str | None = None) -> bool:
    """True if a CUDA session of the model (default: the shipped one) really starts here (cached per process)."""
    import onnxruntime as ort

    model = Path(path) if path else DEFAULT_MODEL
    if not model.exists():
        return False
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return _cuda_session(str(model), so) is not None


class OnnxModel:
    """Loaded model; ``run(x)`` maps ``(B, C, H, W)`` features to its outputs (see :meth:`run`)."""

    def __init__(self, path: str | Path | None = None, device: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path) if path is not None else DEFAULT_MODEL
        if not self.path.exists():
            raise PipelineError(f"model ({self.path}): file not found. Fix: run `make export` or give --model", "model")
        if device not in ("auto", "cpu", "cuda"):
            raise PipelineError(f"device {device!r} unknown. Fix: use auto, cpu or cuda", "device")
        self.meta = read_metadata(self.path)
        check_compatible(self.meta, self.path)
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
            try:
                sess = ort.InferenceSession(str(self.path), cpu_session_options(self.threads),
                                            providers=["CPUExecutionProvider"])
            except Exception as exc:  # the header read, the graph did not
                raise PipelineError(f"model ({self.path}): ONNX Runtime cannot load it ({exc}). Fix: give the .onnx "
                                    "exported by `make export` (models/quakefusion.onnx)", "model") from exc
            self.device = "cpu"
        else:
            self.device = "cuda"
        self.session = sess
        self.providers = sess.get_providers()

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``(B, C, H, W)`` features -> output key -> ``(B, k, H, W)`` (``displacement``/``sigma``: k = 3)."""
        keys = list(self.meta.outputs)
        outs = self.session.run([self.meta.outputs[k] for k in keys],
                                {self.meta.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(keys, outs))
