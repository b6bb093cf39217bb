"""Runtime backends behind one interface; heavy runtimes are imported only when asked for."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from edge_infer.backends.base import Backend, BackendError, TensorInfo, close_backends

__all__ = ["Backend", "BackendError", "TensorInfo", "create_backend", "resolve_auto", "close_backends", "BACKEND_NAMES",
           "ONNX_BACKEND_NAMES"]

BACKEND_NAMES = ("onnxruntime", "tensorrt", "torch", "litert", "keras", "auto")
#: the runtimes that load the zoo's .onnx files: what the nodes' ``backend`` parameter offers
ONNX_BACKEND_NAMES = ("onnxruntime", "tensorrt", "torch", "auto")

log = logging.getLogger(__name__)

_ORT_OPTIONS = ("providers", "intra_op_threads", "inter_op_threads", "log_severity_level", "provider_options",
                "session_config")
_TORCH_OPTIONS = ("threads", "intra_op_threads", "device", "input_names", "output_names", "input_shapes",
                  "architectures", "architecture", "arch_kwargs", "trust_checkpoint")
_TRT_OPTIONS = ("device", "cuda_graph", "profile_index", "verify_sidecar", "dla_core", "cuda_layer")
_LITERT_OPTIONS = ("threads", "names")
_auto_logged: set[tuple[str, str]] = set()


def resolve_auto() -> tuple[str, str]:
    """(backend, reason) that ``auto`` picks here: TensorRT with a CUDA layer and a GPU, else ONNX Runtime."""
    from edge_infer.backends.tensorrt.trt import availability

    ok, reason = availability()
    return ("tensorrt", reason) if ok else ("onnxruntime", reason)


def _litert_instead(model_path: str, options: dict[str, Any]) -> tuple[Backend | None, str]:
    """``auto`` on a CPU: (the model's original .tflite under LiteRT, why) or (None, why not)."""
    tflite = options.get("litert_model")
    if not tflite:
        return None, ""
    if not Path(tflite).is_file():
        return None, f"not LiteRT: {tflite} missing (edge-infer zoo fetch writes it)"
    if importlib.util.find_spec("ai_edge_litert") is None:
        return None, "not LiteRT: ai-edge-litert is not installed"
    threads = options.get("threads") or options.get("intra_op_threads") or 0
    try:
        backend = create_backend("litert", str(tflite), threads=threads, names=options.get("litert_names"))
    except BackendError as e:
        return None, f"not LiteRT: {e}"
    return backend, f"{Path(tflite).name}: XNNPACK on the CPU, faster than ONNX Runtime for models from TFLite"


def _log_auto(model_path: str, choice: str) -> None:
    """Once per process, model and choice: nodes re-create backends (engine rebuilds) without repeating it."""
    if (model_path, choice) not in _auto_logged:
        _auto_logged.add((model_path, choice))
        log.info("backend auto -> %s for %s", choice, Path(model_path).name)


def _pick(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in names and v is not None}


def create_backend(kind: str, model_path: str, **options: Any) -> Backend:
    """Load ``model_path`` with the runtime named ``kind``.

    ``options`` are runtime specific and each backend takes only its own: onnxruntime ``providers``,
    ``intra_op_threads``, ``inter_op_threads``; tensorrt ``device``, ``cuda_graph`` and, for an ``.onnx`` path,
    the engine cache options ``engine_build`` (auto|never|force), ``engine_dir``, ``precision``, ``batch``,
    ``profiles``, ``spec_profile``, ``workspace_mb``, ``dla_core``, ``timing_cache``; torch ``threads``,
    ``input_names``/``output_names``/``input_shapes`` and, for checkpoints, ``architectures`` (the registry, e.g.
    :data:`edge_infer.models.architectures.ARCHITECTURES`), ``architecture``, ``arch_kwargs``,
    ``trust_checkpoint``; litert (``.tflite``) ``threads``; keras (``.h5``/``.keras``) none.
    ``auto`` = TensorRT when it is importable (with cuda-python or pycuda) and a GPU is present; else, for a model
    that came from TFLite (``litert_model``: its original ``.tflite``, ``litert_names``: TFLite tensor -> the
    ``.onnx``'s I/O names, both from the zoo's ``litert`` entry), LiteRT when that file and ``ai-edge-litert`` are
    there (measured 2-3x faster than ONNX Runtime on its conversion, docs/PERFORMANCE.md); else ONNX Runtime. The
    choice and its reason are logged once per process and model.
    """
    if kind == "auto":
        chosen, reason = resolve_auto()
        if chosen == "onnxruntime":
            litert, why = _litert_instead(model_path, options)
            if litert is not None:
                _log_auto(model_path, f"litert ({why}; {reason})")
                return litert
            reason = f"{reason}; {why}" if why else reason
        _log_auto(model_path, f"{chosen} ({reason})")
        if chosen == "onnxruntime" and Path(model_path).suffix != ".onnx":
            raise BackendError(f"backend auto fell back to ONNX Runtime ({reason}), which cannot load {model_path}; "
                               "give the .onnx model instead of an engine")
        kind = chosen
    if kind == "onnxruntime":
        from edge_infer.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, **_pick(options, _ORT_OPTIONS))
    if kind == "tensorrt":
        from edge_infer.backends.tensorrt.cache import engine_for
        from edge_infer.backends.tensorrt.runtime import TensorRTBackend
        from edge_infer.backends.tensorrt.trt import import_tensorrt

        import_tensorrt()  # the clear "install python3-libnvinfer" error before any engine build is attempted
        return TensorRTBackend(engine_for(model_path, options), **_pick(options, _TRT_OPTIONS))
    if kind == "torch":
        from edge_infer.backends.torch_backend import TorchBackend

        return TorchBackend(model_path, **_pick(options, _TORCH_OPTIONS))
    if kind == "litert":
        from edge_infer.backends.litert_backend import LiteRTBackend

        return LiteRTBackend(model_path, **_pick(options, _LITERT_OPTIONS))
    if kind == "keras":
        from edge_infer.backends.keras_backend import KerasBackend

        return KerasBackend(model_path)
    raise BackendError(f"unknown backend '{kind}'; choose one of {BACKEND_NAMES}")
