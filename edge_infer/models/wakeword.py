"""openWakeWord (0.5.1) streaming wake-word detection: melspectrogram -> speech embedding -> keyword head(s).

The feature pipeline mirrors openwakeword's own streaming code (``utils.AudioFeatures._streaming_features``
and ``model.Model.predict``) for audio fed in 1280-sample (80 ms) frames, so scores equal openwakeword's:

- every 1280 new samples (int16 values as float32), the melspectrogram model runs on those samples plus
  the 480 previous ones (3 hops of 160; fewer at the very start, exactly like openwakeword) -> 8 mel frames,
  transformed ``x / 10 + 2``;
- the mel buffer starts as ``ones(76, 32)``; each frame, the last 76 mel frames -> one 96-d embedding;
- the embedding buffer starts with the embeddings of 4 s of random int16 noise in [-1000, 1000) (seeded
  here so results are reproducible; openwakeword does not seed);
- each head scores the last N embeddings (N = its input length, 16 for ``hey_jarvis``); the first 5 scores
  after a reset are forced to 0 (openwakeword's ``prediction_buffer`` warm-up).

Any head of the same family works (input ``[1, N, 96]``, output ``[1, C]``); several heads share the
features. Frames can be *skipped* (not computed) to save compute while nothing is said; when computing
resumes the skipped frames are replayed from a ring buffer, so scores are identical to never skipping as
long as the gap is shorter than the ring (``replay_frames``), and flagged invalid (None) while the
replayed history is still too short to reproduce them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from edge_infer.backends import Backend, BackendError, create_backend

SAMPLE_RATE = 16000
FRAME = 1280  # 80 ms: one embedding per frame
HOP = 160
MEL_CONTEXT = 3 * HOP  # 480 samples of the previous frame prepended to the melspectrogram input
MEL_BINS = 32
EMB_WINDOW = 76  # mel frames per embedding
EMB_STEP = 8  # mel frames per 1280 samples
EMB_DIM = 96
MEL_BUFFER_MAX = 10 * 97
FEATURE_BUFFER_MAX = 120
WARMUP_PREDICTIONS = 5
# frames after which a replay from a cold history reproduces scores exactly:
# the embedding needs ceil(76/8) = 10 frames of mel, the 16-frame head 15 more
_EMB_FRAMES = -(-EMB_WINDOW // EMB_STEP)


def _load(model: Backend | str | Path, backend: str, options: Mapping[str, Any]) -> Backend:
    if isinstance(model, Backend):
        return model
    return create_backend(backend, str(model), **dict(options))


def _mel_transform(spec: np.ndarray) -> np.ndarray:
    return spec / 10.0 + 2.0


class OwwFeatures:
    """Shared front end: melspectrogram + embedding models with openwakeword's streaming buffers."""

    def __init__(self, melspec: Backend | str | Path, embedding: Backend | str | Path, backend: str = "onnxruntime",
                 seed: int = 0, **backend_options: Any) -> None:
        self.melspec = _load(melspec, backend, backend_options)
        self.embedding = _load(embedding, backend, backend_options)
        self._mel_in = self.melspec.input_names[0]
        self._mel_out = self.melspec.output_names[0]
        self._emb_in = self.embedding.input_names[0]
        self._emb_out = self.embedding.output_names[0]
        self.seed = seed
        self._initial_features: np.ndarray | None = None
        self.reset()

    # -- model calls ---------------------------------------------------------------------------------
    def melspectrogram(self, samples: np.ndarray) -> np.ndarray:
        """(n,) int16-valued samples -> (frames, 32) transformed mel frames."""
        x = np.asarray(samples, dtype=np.float32).reshape(1, -1)
        spec = np.squeeze(self.melspec.run({self._mel_in: x})[self._mel_out])
        return _mel_transform(spec).reshape(-1, MEL_BINS)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """(b, 76, 32) mel windows -> (b, 96) embeddings."""
        w = np.asarray(windows, dtype=np.float32).reshape(-1, EMB_WINDOW, MEL_BINS, 1)
        return self.embedding.run({self._emb_in: w})[self._emb_out].reshape(-1, EMB_DIM)

    def initial_features(self) -> np.ndarray:
        """openwakeword's start-up embedding buffer: embeddings of 4 s of int16 noise in [-1000, 1000)."""
        if self._initial_features is None:
            noise = np.random.default_rng(self.seed).integers(-1000, 1000, SAMPLE_RATE * 4).astype(np.int16)
            spec = self.melspectrogram(noise)
            windows = [spec[i:i + EMB_WINDOW] for i in range(0, spec.shape[0], EMB_STEP)
                       if spec[i:i + EMB_WINDOW].shape[0] == EMB_WINDOW]
            self._initial_features = self.embed(np.stack(windows))
        return self._initial_features

    # -- streaming state -----------------------------------------------------------------------------
    def reset(self) -> None:
        self.raw_tail = np.zeros(0, dtype=np.float32)  # up to MEL_CONTEXT previous samples
        self.mel_buffer = np.ones((EMB_WINDOW, MEL_BINS), dtype=np.float32)
        self.feature_buffer = self.initial_features().copy()

    def step(self, frame: np.ndarray, timer: Any = None) -> np.ndarray:
        """Consume one 1280-sample frame (int16 values as float32); returns the new 96-d embedding."""
        x = np.concatenate([self.raw_tail, frame]) if self.raw_tail.size else frame
        if timer is not None:
            with timer.stage("oww_melspectrogram"):
                spec = self.melspectrogram(x)
        else:
            spec = self.melspectrogram(x)
        self.mel_buffer = np.vstack([self.mel_buffer, spec])[-MEL_BUFFER_MAX:]
        self.raw_tail = frame[-MEL_CONTEXT:].copy()
        window = self.mel_buffer[-EMB_WINDOW:]
        if timer is not None:
            with timer.stage("oww_embedding"):
                emb = self.embed(window[None])
        else:
            emb = self.embed(window[None])
        self.feature_buffer = np.vstack([self.feature_buffer, emb])[-FEATURE_BUFFER_MAX:]
        return emb[0]

    def get_features(self, n: int) -> np.ndarray:
        return self.feature_buffer[-n:][None].astype(np.float32)

    @property
    def backend_names(self) -> dict[str, str]:
        return {"oww_melspectrogram": self.melspec.name, "oww_embedding": self.embedding.name}


class WakeWordHead:
    """One keyword classifier on the last N embeddings (``[1, N, 96]`` -> ``[1, C]``)."""

    def __init__(self, model: Backend | str | Path, name: str | None = None, keyword: str | None = None,
                 class_labels: Iterable[str] | None = None, backend: str = "onnxruntime", **backend_options: Any) -> None:
        self.backend = _load(model, backend, backend_options)
        if name is None:
            name = Path(self.backend.model_path).stem
        self.name = name
        self.keyword = keyword or name.replace("_", " ")
        inp = self.backend.inputs[0]
        self._in = inp.name
        self._out = self.backend.output_names[0]
        shape = inp.shape
        if len(shape) != 3 or shape[2] not in (EMB_DIM, None) or not isinstance(shape[1], int):
            raise BackendError(f"{self.backend.model_path}: not an openWakeWord head: input {inp.describe()}, "
                               f"expected [1, N, {EMB_DIM}]")
        self.window = int(shape[1])
        out_shape = self.backend.outputs[0].shape
        n_out = out_shape[-1] if out_shape and isinstance(out_shape[-1], int) else 1
        labels = list(class_labels) if class_labels else []
        if n_out == 1:
            self.labels = [self.name]
        else:
            self.labels = labels if len(labels) == n_out else [f"{self.name}:{i}" for i in range(n_out)]

    def __call__(self, features: np.ndarray) -> dict[str, float]:
        out = np.asarray(self.backend.run({self._in: features})[self._out]).reshape(-1)
        return {label: float(out[i]) for i, label in enumerate(self.labels)}


@dataclass
class FrameScores:
    """Scores of one 80 ms frame; ``end_sample`` counts samples since the model's reset."""

    frame: int
    end_sample: int
    scores: dict[str, float] | None  # None: skipped, or not reproducible yet after a long skip


class WakeWordModel:
    """Streaming detector: any number of heads on one shared :class:`OwwFeatures` front end."""

    def __init__(self, features: OwwFeatures, heads: Iterable[WakeWordHead], replay_frames: int = 32) -> None:
        self.features = features
        self.heads = list(heads)
        if not self.heads:
            raise ValueError("at least one wake-word head is needed")
        self.window = max(h.window for h in self.heads)
        # frames of history needed before a score is exact again after features went cold
        self.warm_frames = _EMB_FRAMES + self.window - 1
        self.replay_frames = max(int(replay_frames), self.warm_frames + 1)
        self.reset()

    @classmethod
    def from_files(cls, melspec: str | Path, embedding: str | Path, heads: Mapping[str, str | Path],
                   backend: str = "onnxruntime", keywords: Mapping[str, str] | None = None,
                   **backend_options: Any) -> "WakeWordModel":
        feats = OwwFeatures(melspec, embedding, backend=backend, **backend_options)
        hs = [WakeWordHead(p, name=n, keyword=(keywords or {}).get(n), backend=backend, **backend_options)
              for n, p in heads.items()]
        return cls(feats, hs)

    @property
    def labels(self) -> list[str]:
        return [label for h in self.heads for label in h.labels]

    def reset(self) -> None:
        self.features.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self.frames = 0  # complete frames received since reset
        self._computed = -1  # last frame whose features were computed
        self._valid_from = 0  # first frame whose scores are exact
        self._ring: deque[np.ndarray] = deque(maxlen=self.replay_frames + 1)

    @staticmethod
    def to_int16_values(samples: np.ndarray) -> np.ndarray:
        """[-1, 1] floats -> int16 sample values as float32 (openwakeword takes 16-bit PCM)."""
        return np.clip(np.rint(np.asarray(samples, dtype=np.float32) * 32768.0), -32768, 32767).astype(np.float32)

    def accept(self, samples: np.ndarray, compute: bool = True, timer: Any = None) -> list[FrameScores]:
        """Add 16 kHz float samples; one :class:`FrameScores` per completed 1280-sample frame.

        ``compute=False`` only buffers the frames (scores None); the next computed frame replays them.
        """
        x = self.to_int16_values(samples).reshape(-1)
        buf = np.concatenate([self._pending, x]) if self._pending.size else x
        n_frames = buf.size // FRAME
        out: list[FrameScores] = []
        for i in range(n_frames):
            frame = buf[i * FRAME:(i + 1) * FRAME]
            k = self.frames
            self.frames += 1
            self._ring.append(frame)
            if compute:
                out.extend(self._compute_upto(k, timer))
            else:
                out.append(FrameScores(k, (k + 1) * FRAME, None))
        self._pending = buf[n_frames * FRAME:].copy()
        return out

    def _compute_upto(self, k: int, timer: Any) -> list[FrameScores]:
        out: list[FrameScores] = []
        skipped = k - self._computed - 1
        if skipped > 0:
            ring = list(self._ring)  # ring[-1] is frame k
            if skipped + 1 <= len(ring):
                # every frame since the last computed one is still buffered (or nothing was computed since
                # the reset): the features' state is current, replaying in order is exact
                first = self._computed + 1
            else:  # cold replay: ring[0] only provides the 480-sample context of the first replayed frame
                first = k - (len(ring) - 2)
                self.features.raw_tail = ring[0][-MEL_CONTEXT:].copy()
                self._valid_from = max(self._valid_from, first + self.warm_frames)
            for j in range(first, k):
                self.features.step(ring[len(ring) - 1 - (k - j)], timer)
                out.append(FrameScores(j, (j + 1) * FRAME, self._score(j, timer) if j >= self._valid_from else None))
        self.features.step(self._ring[-1], timer)
        self._computed = k
        out.append(FrameScores(k, (k + 1) * FRAME, self._score(k, timer) if k >= self._valid_from else None))
        return out

    def _score(self, k: int, timer: Any) -> dict[str, float]:
        scores: dict[str, float] = {}
        for h in self.heads:
            feats = self.features.get_features(h.window)
            if timer is not None:
                with timer.stage(h.name):
                    s = h(feats)
            else:
                s = h(feats)
            if k < WARMUP_PREDICTIONS:
                s = {label: 0.0 for label in s}
            scores.update(s)
        return scores

    def scores_for_clip(self, audio: np.ndarray) -> list[dict[str, float]]:
        """Per-frame scores of a whole 16 kHz clip from a fresh state (for tests and tools)."""
        self.reset()
        return [f.scores or {} for f in self.accept(audio)]

    @property
    def backend_names(self) -> dict[str, str]:
        names = dict(self.features.backend_names)
        names.update({h.name: h.backend.name for h in self.heads})
        return names
