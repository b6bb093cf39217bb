"""LiteRT (``ai-edge-litert``, the TFLite runtime) backend: ``.tflite`` models with named I/O like the others.

Two jobs: the *source framework* reference when validating an imported TFLite model (the face mesh), and a
runtime in its own right (measured on the dev machine: the original face mesh takes 2.3 ms with LiteRT's
XNNPACK delegate against 5.0 ms for the converted ONNX under ONNX Runtime). ``threads`` is LiteRT's
``num_threads`` (0 = :func:`edge_infer.backends.base.default_cpu_threads`).

TFLite models are usually saved with batch 1. A feed with another batch resizes the input tensors (and
re-allocates) once per new shape; a model whose graph pins batch 1 (a Reshape constant) is then run row by
row instead, so callers can always pass a batch. The interpreter is not thread safe: ``run`` holds a lock.
``ai_edge_litert`` is imported only when this backend is created.

``names`` renames TFLite tensors (``{"input_1": "image", ...}``, from the zoo's ``litert.names``) so a model
run here answers to the same I/O names as its ONNX conversion: ``backend: auto`` can pick either runtime and
the pipeline does not notice.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.backends.base import Backend, BackendError, TensorInfo, default_cpu_threads

log = logging.getLogger(__name__)

LITERT_HINT = "running .tflite models needs LiteRT: pip install ai-edge-litert==2.3.0"


def _info(detail: Mapping[str, Any]) -> TensorInfo:
    sig = detail.get("shape_signature")
    dims = sig if sig is not None and len(sig) else detail["shape"]
    shape = tuple(int(d) if int(d) >= 0 else None for d in dims)
    return TensorInfo(str(detail["name"]), shape, np.dtype(detail["dtype"]).name)


class LiteRTBackend(Backend):
    """A ``.tflite`` model under LiteRT's Interpreter (XNNPACK delegate for float models on CPU)."""

    def __init__(self, model_path: str, threads: int = 0, names: Mapping[str, str] | None = None, **_: Any) -> None:
        super().__init__(model_path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise BackendError(f"{LITERT_HINT} ({e})") from e
        try:
            threads = int(threads) or default_cpu_threads()
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as e:  # missing file, not a flatbuffer, unsupported op
            raise BackendError(f"LiteRT could not load {model_path}: {str(e).splitlines()[0] if str(e) else e}") from e
        names = dict(names or {})
        self._in_details = [dict(d, name=names.get(d["name"], d["name"])) for d in self.interpreter.get_input_details()]
        self._out_details = [dict(d, name=names.get(d["name"], d["name"])) for d in self.interpreter.get_output_details()]
        unknown = set(names) - {d["name"] for d in self.interpreter.get_input_details() + self.interpreter.get_output_details()}
        if unknown:
            raise BackendError(f"{model_path}: no tensors named {sorted(unknown)} to rename; the model has "
                               f"{[d['name'] for d in self.interpreter.get_input_details()]} -> "
                               f"{[d['name'] for d in self.interpreter.get_output_details()]}")
        self._inputs = [_info(d) for d in self._in_details]
        self._outputs = [_info(d) for d in self._out_details]
        self._shapes = {d["name"]: tuple(int(v) for v in d["shape"]) for d in self._in_details}
        self._row_by_row = False
        self._lock = threading.Lock()
        import ai_edge_litert

        self.name = f"litert[{getattr(ai_edge_litert, '__version__', '?')},{threads}t]"

    def _resize(self, feeds: Mapping[str, np.ndarray]) -> bool:
        """Match the input tensors to the feeds' shapes; False when the graph cannot take them."""
        changed = False
        for d in self._in_details:
            shape = tuple(np.shape(feeds[d["name"]]))
            if shape != self._shapes[d["name"]]:
                self.interpreter.resize_tensor_input(d["index"], list(shape), strict=False)
                self._shapes[d["name"]] = shape
                changed = True
        if changed:
            try:
                self.interpreter.allocate_tensors()
            except Exception as e:
                log.info("%s: LiteRT cannot resize its inputs to %s (%s); running row by row",
                         self.model_path, {k: v for k, v in self._shapes.items()}, e)
                return False
        return True

    def _invoke(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        for d in self._in_details:
            self.interpreter.set_tensor(d["index"], np.ascontiguousarray(feeds[d["name"]], dtype=d["dtype"]))
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_tensor(d["index"])) for d in self._out_details]

    def _run_rows(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Batch 1 at a time, for graphs that pin batch 1; outputs concatenated along the batch axis."""
        first = feeds[self._in_details[0]["name"]]
        n = int(first.shape[0]) if np.ndim(first) else 1
        rows = []
        for i in range(n):
            row = {k: (v[i:i + 1] if np.ndim(v) and v.shape[0] == n else v) for k, v in feeds.items()}
            if not self._resize(row):
                raise BackendError(f"{self.model_path}: LiteRT cannot run inputs of shapes "
                                   f"{ {k: list(np.shape(v)) for k, v in row.items()} }; model expects "
                                   f"{[t.describe() for t in self.inputs]}")
            rows.append(self._invoke(row))
        return [np.concatenate(outs) for outs in zip(*rows)]

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            self.check_feeds(feeds)  # names the missing and unexpected tensors
        with self._lock:
            try:
                if not self._row_by_row and not self._resize(feeds):
                    self._row_by_row = True
                values = self._run_rows(feeds) if self._row_by_row else self._invoke(feeds)
            except BackendError:
                raise
            except Exception as e:
                raise BackendError(f"{self.model_path}: LiteRT inference failed: {e}") from e
        result = dict(zip(self.output_names, values))
        return {n: result[n] for n in output_names} if output_names else result

    def close(self) -> None:
        self.interpreter = None
