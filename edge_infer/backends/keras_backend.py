"""Keras 3 backend (torch as Keras' own backend): runs a Keras ``.h5`` / ``.keras`` file with Keras itself.

Its job is the independent reference: the zoo's emotion model is fer's Keras h5, which edge_infer rebuilds by
hand as a torch module; validating the exported ONNX against Keras reading the h5 checks that rebuild, where
a comparison with our own torch module could not. Inputs and outputs keep Keras' names and layout (NHWC);
callers that compare with an NCHW model adapt the feeds (:mod:`edge_infer.offline.validate` does).
``safe_mode`` keeps Keras from deserializing Lambda code. keras is imported only when this backend is created.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.backends.base import Backend, BackendError, TensorInfo

KERAS_HINT = "running a Keras file needs keras 3 (torch backend): pip install keras==3.15.1"


def _shape(t: Any) -> tuple[int | None, ...]:
    return tuple(int(d) if d is not None else None for d in t.shape)


class KerasBackend(Backend):
    """A Keras model in inference mode; batches go through one ``predict_on_batch`` call."""

    def __init__(self, model_path: str, **_: Any) -> None:
        super().__init__(model_path)
        os.environ.setdefault("KERAS_BACKEND", "torch")  # no TensorFlow on the dev machines or robots
        try:
            import keras
        except ImportError as e:
            raise BackendError(f"{KERAS_HINT} ({e})") from e
        try:
            self.model = keras.models.load_model(str(model_path), compile=False, safe_mode=True)
        except Exception as e:
            raise BackendError(f"Keras cannot load {model_path}: {str(e).splitlines()[0] if str(e) else e}") from e
        self._inputs = [TensorInfo(t.name, _shape(t), str(t.dtype)) for t in self.model.inputs]
        self._outputs = [TensorInfo(n, _shape(t), str(t.dtype)) for n, t in zip(self.model.output_names, self.model.outputs)]
        self.name = f"keras[{keras.__version__},{keras.backend.backend()}]"

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.check_feeds(feeds)
        try:
            out = self.model.predict_on_batch([np.asarray(feeds[n]) for n in self.input_names])
        except Exception as e:
            raise BackendError(f"{self.model_path}: Keras inference failed: {e}") from e
        values = out if isinstance(out, (list, tuple)) else [out]
        result = {n: np.asarray(v) for n, v in zip(self.output_names, values)}
        return {n: result[n] for n in output_names} if output_names else result
