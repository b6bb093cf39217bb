"""Runtime backends behind one interface; heavy runtimes are imported only when asked for."""

from __future__ import annotations

from typing import Any

from .base import Backend, BackendError, TensorInfo

__all__ = ["Backend", "BackendError", "TensorInfo", "create_backend", "BACKEND_NAMES"]

BACKEND_NAMES = ("onnxruntime", "tensorrt", "torch", "auto")


def create_backend(kind: str, model_path: str, **options: Any) -> Backend:
    """Load ``model_path`` with the runtime named ``kind``.

    ``options`` are runtime specific: onnxruntime takes ``providers``, ``intra_op_threads``,
    ``inter_op_threads``.
    """
    if kind == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, **options)
    raise BackendError(f"unknown backend '{kind}'; choose one of {BACKEND_NAMES}")
