"""Silero VAD v6 (silero-vad==6.2.3 ``silero_vad.onnx``): stateful voice-activity probability per chunk.

The ONNX model is stateful: every call takes 512 *new* samples at 16 kHz preceded by the last 64 samples of
the previous call (the "context"), the recurrent state ``[2, 1, 128]`` and the sample rate as an int64
scalar, and returns the speech probability plus the next state. This mirrors silero's own ``OnnxWrapper``
(utils_vad.py) for batch 1 at 16 kHz, so probabilities equal silero's reference processing of the same
audio. Any :class:`~edge_infer.backends.Backend` can run it (ONNX Runtime here, TensorRT on a robot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_infer.backends import Backend, BackendError, create_backend

SAMPLE_RATE = 16000
CHUNK = 512  # new samples per call at 16 kHz
CONTEXT = 64  # samples of the previous chunk prepended to each call
STATE_SHAPE = (2, 1, 128)


def _load(model: Backend | str | Path, backend: str, options: dict[str, Any]) -> Backend:
    if isinstance(model, Backend):
        return model
    return create_backend(backend, str(model), **options)


class SileroVad:
    """Streaming silero VAD: feed 512-sample chunks in order, get one speech probability per chunk."""

    chunk_samples = CHUNK
    sample_rate = SAMPLE_RATE

    def __init__(self, model: Backend | str | Path, backend: str = "onnxruntime", **backend_options: Any) -> None:
        self.backend = _load(model, backend, backend_options)
        names = set(self.backend.input_names)
        if not {"input", "state", "sr"} <= names:
            raise BackendError(
                f"{self.backend.model_path}: not a silero VAD v5/v6 model: inputs {sorted(names)}, "
                "expected input, state, sr"
            )
        outs = self.backend.output_names
        self._out_prob = "output" if "output" in outs else outs[0]
        self._out_state = "stateN" if "stateN" in outs else outs[1]
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    @property
    def name(self) -> str:
        return "silero_vad"

    def reset(self) -> None:
        """Forget the stream: zero state and context (as silero's ``reset_states``)."""
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def __call__(self, chunk: np.ndarray) -> float:
        """Speech probability of the next 512 samples (float32 in [-1, 1]); updates state and context."""
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if x.size != CHUNK:
            raise ValueError(f"silero VAD takes {CHUNK} samples at 16 kHz per call, got {x.size}")
        inp = np.concatenate([self._context, x])[None, :]
        out = self.backend.run({"input": inp, "state": self._state, "sr": self._sr})
        self._state = np.asarray(out[self._out_state], dtype=np.float32).reshape(STATE_SHAPE)
        self._context = inp[0, -CONTEXT:].copy()
        return float(np.asarray(out[self._out_prob]).reshape(-1)[0])

    def probabilities(self, audio: np.ndarray, reset: bool = True) -> np.ndarray:
        """Probabilities of a whole clip, 512 samples at a time (the last chunk zero-padded)."""
        if reset:
            self.reset()
        a = np.asarray(audio, dtype=np.float32).reshape(-1)
        pad = (-a.size) % CHUNK
        if pad:
            a = np.concatenate([a, np.zeros(pad, dtype=np.float32)])
        return np.array([self(a[i:i + CHUNK]) for i in range(0, a.size, CHUNK)], dtype=np.float32)
