"""Audio pipeline: raw audio chunks -> 16 kHz stream -> silero VAD (+ hysteresis) and openWakeWord -> events.

ROS-free. A ROS node only converts messages into ``process(data, stamp=...)`` calls and publishes the
returned events (``event.to_json(...)``) and ``diagnostics()``.

- VAD: one silero probability per 512-sample chunk; :class:`VadSegmenter` turns them into speech segments
  with the same rules as silero's ``get_speech_timestamps`` (start threshold, stop threshold = threshold -
  0.15, minimum speech / minimum silence, padding), but streaming: a segment is emitted as soon as its end
  is certain. A :class:`VadEvent` marks every change of the speaking state (True once a segment has lasted
  the minimum speech duration, False when it ends).
- Wake word: 80 ms frames through the openWakeWord models; a detection is a score >= threshold while armed
  and outside the refractory period after the previous detection. With ``vad_gating`` the wake-word models
  only run while the VAD hears (or recently heard) something; frames skipped meanwhile are replayed when
  speech starts, so detections are the same as without gating.
- Every event carries stream time (s and 16 kHz samples since the stream start) and, when the input had
  stamps, the matching input-clock stamp.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np

from edge_infer.models.silero_vad import CHUNK as VAD_CHUNK
from edge_infer.models.silero_vad import SileroVad
from edge_infer.models.wakeword import FRAME as WW_FRAME
from edge_infer.models.wakeword import WakeWordModel
from edge_infer.pipeline.audio_stream import TARGET_RATE, AudioStream, StreamConfig
from edge_infer.pipeline.latency import FrameTimer, LatencyTracker

SR = TARGET_RATE


# --------------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------------
def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 6)
    if isinstance(v, (np.floating,)):
        return _clean(float(v))
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


@dataclass
class AudioEvent:
    """Base of the pipeline's events: versioned JSON with a schema name (see README)."""

    SCHEMA: ClassVar[str] = "edge_infer/audio_event"
    VERSION: ClassVar[int] = 1

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": self.SCHEMA, "version": self.VERSION}
        d.update(_clean(asdict(self)))
        d.update(_clean(extra))
        return d

    def to_json(self, **extra: Any) -> str:
        """JSON text; ``extra`` adds fields such as ``frame_id`` or the ROS header ``stamp``."""
        return json.dumps(self.to_dict(**extra), allow_nan=False, separators=(",", ":"))


@dataclass
class VadEvent(AudioEvent):
    """The speaking state changed. ``stream_time`` is when it changed (padded segment start / end),
    ``decided_time`` when the pipeline could tell (later by the minimum speech / silence durations)."""

    SCHEMA: ClassVar[str] = "edge_infer/vad"
    speaking: bool
    stream_time: float
    stream_sample: int
    decided_time: float
    probability: float
    stamp: float | None = None


@dataclass
class SpeechSegmentEvent(AudioEvent):
    """One speech segment (silero ``get_speech_timestamps`` rules), in stream time and input-clock stamps.
    ``complete`` is False when the stream ended or jumped while the segment was open."""

    SCHEMA: ClassVar[str] = "edge_infer/speech_segment"
    start_time: float
    end_time: float
    start_sample: int
    end_sample: int
    duration: float
    complete: bool = True
    start_stamp: float | None = None
    end_stamp: float | None = None


@dataclass
class WakeWordEvent(AudioEvent):
    """A keyword was detected at the end of the 80 ms frame ending at ``stream_time``."""

    SCHEMA: ClassVar[str] = "edge_infer/wake_word"
    keyword: str
    model: str
    score: float
    threshold: float
    stream_time: float
    stream_sample: int
    stamp: float | None = None
    pipeline_delay_ms: float | None = None  # audio buffered after the frame end + processing of that push


EVENT_TYPES: dict[str, type[AudioEvent]] = {c.SCHEMA: c for c in (VadEvent, SpeechSegmentEvent, WakeWordEvent)}


def parse_event(text: str) -> dict[str, Any]:
    """Parse and check one event JSON (schema known, version supported, required fields present)."""
    d = json.loads(text)
    cls = EVENT_TYPES.get(d.get("schema"))
    if cls is None:
        raise ValueError(f"unknown schema {d.get('schema')!r}; known: {sorted(EVENT_TYPES)}")
    if d.get("version") != cls.VERSION:
        raise ValueError(f"{cls.SCHEMA}: version {d.get('version')!r} is not supported (expected {cls.VERSION})")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [f for f in required if f not in d]
    if missing:
        raise ValueError(f"{cls.SCHEMA}: missing fields {missing}")
    return d


# --------------------------------------------------------------------------------------------------------
# VAD hysteresis
# --------------------------------------------------------------------------------------------------------
@dataclass
class VadConfig:
    threshold: float = 0.5  # speech starts at a chunk with probability >= threshold
    neg_threshold: float | None = None  # speech may end below this; default max(threshold - 0.15, 0.01)
    min_speech_ms: float = 250.0  # shorter segments are dropped
    min_silence_ms: float = 100.0  # silence needed to end a segment
    speech_pad_ms: float = 30.0  # segments are widened by this on each side

    @property
    def stop_threshold(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(self.threshold - 0.15, 0.01)


class VadSegmenter:
    """Streaming twin of silero's ``get_speech_timestamps_from_probs`` (no max speech duration).

    Feed ``update(prob, chunk_start_sample)`` for consecutive 512-sample chunks; ``finish(end_sample)`` at the
    end of the stream. Segments equal silero's as long as ``min_silence_ms >= 2 * speech_pad_ms`` (true for
    the defaults; otherwise silero merges padding of close segments after the fact, and here the later
    segment's start is clamped to the earlier one's end instead).
    """

    def __init__(self, config: VadConfig | None = None, origin: int = 0) -> None:
        self.config = config or VadConfig()
        c = self.config
        self.min_speech = SR * c.min_speech_ms / 1000
        self.min_silence = SR * c.min_silence_ms / 1000
        self.pad = int(SR * c.speech_pad_ms / 1000)
        self.reset(origin)

    def reset(self, origin: int = 0) -> None:
        self.origin = origin
        self.triggered = False
        self.start = 0
        self.temp_end = 0
        self.confirmed = False
        self.last_end = origin  # padded end of the previous segment (clamp for the next start)
        self.last_prob = 0.0

    def _padded_start(self) -> int:
        return max(self.origin, self.last_end, self.start - self.pad)

    def update(self, prob: float, cur: int) -> list[tuple[str, Any]]:
        """-> list of ("vad", (speaking, sample, decided_sample)) / ("segment", (start, end, complete))."""
        c = self.config
        self.last_prob = prob
        out: list[tuple[str, Any]] = []
        thr, neg = c.threshold, c.stop_threshold
        if prob >= thr and self.temp_end:
            self.temp_end = 0
        if prob >= thr and not self.triggered:
            self.triggered, self.start, self.confirmed = True, cur, False
            self._maybe_confirm(cur, out)
            return out
        if prob < neg and self.triggered:
            if not self.temp_end:
                self.temp_end = cur
            if cur - self.temp_end < self.min_silence:
                return out
            end = self.temp_end
            if end - self.start > self.min_speech:
                out.extend(self._close(end + self.pad, cur + VAD_CHUNK, True))
            self.triggered, self.temp_end, self.confirmed = False, 0, False
            return out
        if self.triggered:
            self._maybe_confirm(cur, out)
        return out

    def _maybe_confirm(self, cur: int, out: list[tuple[str, Any]]) -> None:
        # once a not-silent chunk ends more than min_speech after the start, the segment is certain to pass
        # silero's (end - start) > min_speech check: its end can only come later
        if not self.confirmed and not self.temp_end and cur + VAD_CHUNK - self.start > self.min_speech:
            self.confirmed = True
            out.append(("vad", (True, self._padded_start(), cur + VAD_CHUNK)))

    def _close(self, end: int, decided: int, complete: bool) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        start = self._padded_start()
        if not self.confirmed:
            out.append(("vad", (True, start, decided)))
        out.append(("vad", (False, end, decided)))
        out.append(("segment", (start, end, complete)))
        self.last_end = end
        return out

    def finish(self, end_sample: int) -> list[tuple[str, Any]]:
        """End of stream (or a jump) at ``end_sample``: an open segment ends there, as silero does."""
        out: list[tuple[str, Any]] = []
        if self.triggered and end_sample - self.start > self.min_speech:
            out = self._close(end_sample, end_sample, False)
        self.triggered, self.temp_end, self.confirmed = False, 0, False
        return out


# --------------------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------------------
@dataclass
class AudioPipelineConfig:
    vad: VadConfig = field(default_factory=VadConfig)
    enable_vad: bool = True
    enable_wakeword: bool = True
    wake_threshold: float = 0.5
    wake_thresholds: dict[str, float] = field(default_factory=dict)  # per model label
    refractory_s: float = 2.0  # no second detection of a keyword within this time
    vad_gating: bool = False  # run the wake-word models only around voice activity
    gate_threshold: float | None = None  # VAD probability that opens the gate (default: VAD stop threshold)
    gate_hold_s: float = 1.0  # keep the gate open this long after the last voiced chunk


DEFAULT_FILES = {"vad": "silero_vad.onnx", "melspec": "oww_melspectrogram.onnx", "embedding": "oww_embedding.onnx"}


class AudioPipeline:
    """Stream assembly + VAD + wake word; ``process()`` one chunk -> events."""

    def __init__(self, vad: SileroVad | None, wakeword: WakeWordModel | None,
                 config: AudioPipelineConfig | None = None, stream: AudioStream | StreamConfig | None = None) -> None:
        self.config = config or AudioPipelineConfig()
        self.vad = vad if self.config.enable_vad else None
        self.wakeword = wakeword if self.config.enable_wakeword else None
        if isinstance(stream, AudioStream):
            self.stream = stream
        else:
            self.stream = AudioStream(stream)
        self.segmenter = VadSegmenter(self.config.vad)
        if self.vad is not None:
            self.vad.reset()
        if self.wakeword is not None:
            self.wakeword.reset()
        self.latency = LatencyTracker()
        self.inference_counts: dict[str, int] = {}
        self.inference_ms: dict[str, float] = {}
        self.counters = {"events": 0, "wake_words": 0, "speech_segments": 0, "pipeline_errors": 0,
                         "wakeword_frames": 0, "wakeword_frames_skipped": 0, "vad_chunks": 0}
        self._proc_s = 0.0
        self._reset_positions(0)

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def from_models_dir(cls, models_dir: str | Path, keywords: Iterable[str] | Mapping[str, str] = ("hey_jarvis",),
                        backend: str = "onnxruntime", config: AudioPipelineConfig | None = None,
                        stream: AudioStream | StreamConfig | None = None, files: Mapping[str, str] | None = None,
                        **backend_options: Any) -> "AudioPipeline":
        """Load the models from ``models_dir``: ``silero_vad.onnx``, ``oww_melspectrogram.onnx``,
        ``oww_embedding.onnx`` and one ``<name>.onnx`` head per keyword. ``keywords`` is a list of head names
        or a mapping head name -> spoken keyword ("hey_jarvis" -> "hey jarvis")."""
        d = Path(models_dir)
        f = {**DEFAULT_FILES, **(files or {})}
        opts = {"intra_op_threads": 1, "inter_op_threads": 1} if backend == "onnxruntime" else {}
        opts.update(backend_options)
        cfg = config or AudioPipelineConfig()
        vad = SileroVad(d / f["vad"], backend=backend, **opts) if cfg.enable_vad else None
        ww = None
        kw = dict(keywords) if isinstance(keywords, Mapping) else {k: k.replace("_", " ") for k in keywords}
        if cfg.enable_wakeword and kw:
            ww = WakeWordModel.from_files(d / f["melspec"], d / f["embedding"],
                                          {name: d / f.get(name, f"{name}.onnx") for name in kw},
                                          backend=backend, keywords=kw, **opts)
        return cls(vad, ww, cfg, stream)

    # ---- state --------------------------------------------------------------------------------------
    def _reset_positions(self, origin: int) -> None:
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = origin
        self._vad_pos = origin
        self._ww_pos = origin
        self._ww_origin = origin
        self._last_voiced_end = -(10 ** 12)
        self._armed: dict[str, bool] = {}
        self._last_detection: dict[str, int] = {}
        self.segmenter.reset(origin)

    def reset(self) -> None:
        """Forget everything (new stream): models, stream, positions. Counters are kept."""
        self.stream.reset()
        if self.vad:
            self.vad.reset()
        if self.wakeword:
            self.wakeword.reset()
        self._reset_positions(0)

    # ---- processing ---------------------------------------------------------------------------------
    def process(self, data: Any, stamp: float | None = None, **fmt: Any) -> list[AudioEvent]:
        """One input chunk (array / bytes, see :class:`AudioStream`) -> events, in stream-time order."""
        t0 = time.perf_counter()
        timer = FrameTimer()
        events: list[AudioEvent] = []
        try:
            with timer.stage("stream"):
                chunk = self.stream.push(data, stamp=stamp, **fmt)
            events = self._consume(chunk.samples, chunk.start_sample, chunk.discontinuity, timer, t0)
        except Exception as e:  # noqa: BLE001 - a model failure must not kill the node; it is counted
            self.counters["pipeline_errors"] += 1
            self.stream.stats.last_issue = f"pipeline error: {type(e).__name__}: {e}"
        self._account(timer, t0, events)
        return events

    def flush(self) -> list[AudioEvent]:
        """End of stream: process what the resampler holds, the last partial VAD chunk (zero-padded, as
        silero does) and close an open speech segment."""
        t0 = time.perf_counter()
        timer = FrameTimer()
        events: list[AudioEvent] = []
        try:
            chunk = self.stream.flush()
            events = self._consume(chunk.samples, chunk.start_sample, False, timer, t0)
            end = self._buf_start + self._buf.size
            if self.vad is not None:
                if self._vad_pos < end:
                    pad = np.zeros(VAD_CHUNK, dtype=np.float32)
                    part = self._buf[self._vad_pos - self._buf_start:]
                    pad[:part.size] = part
                    events += self._vad_chunk(pad, self._vad_pos, timer)
                    self._vad_pos = end
                events += self._segment_events(self.segmenter.finish(end))
        except Exception as e:  # noqa: BLE001
            self.counters["pipeline_errors"] += 1
            self.stream.stats.last_issue = f"pipeline error: {type(e).__name__}: {e}"
        self._account(timer, t0, events)
        return events

    def _account(self, timer: FrameTimer, t0: float, events: list[AudioEvent]) -> None:
        dt = time.perf_counter() - t0
        self._proc_s += dt
        self.latency.add_frame(timer)
        self.counters["events"] += len(events)

    def _consume(self, samples: np.ndarray, start: int, discontinuity: bool, timer: FrameTimer,
                 t0: float) -> list[AudioEvent]:
        events: list[AudioEvent] = []
        end_now = self._buf_start + self._buf.size
        if discontinuity or start != end_now:
            events += self._segment_events(self.segmenter.finish(self._vad_pos))
            if self.vad:
                self.vad.reset()
            if self.wakeword:
                self.wakeword.reset()
            self._reset_positions(start)
        if samples.size:
            self._buf = np.concatenate([self._buf, samples]) if self._buf.size else samples.astype(np.float32)
        buf_end = self._buf_start + self._buf.size
        chunk_end = buf_end
        use_vad, use_ww = self.vad is not None, self.wakeword is not None
        while True:
            v_end = self._vad_pos + VAD_CHUNK if use_vad else math.inf
            w_end = self._ww_pos + WW_FRAME if use_ww else math.inf
            nxt = min(v_end, w_end)
            if nxt > buf_end:
                break
            if v_end <= w_end:
                a = self._vad_pos - self._buf_start
                events += self._vad_chunk(self._buf[a:a + VAD_CHUNK], self._vad_pos, timer)
                self._vad_pos += VAD_CHUNK
            else:
                a = self._ww_pos - self._buf_start
                events += self._ww_frame(self._buf[a:a + WW_FRAME], timer, chunk_end, t0)
                self._ww_pos += WW_FRAME
        keep_from = min(self._vad_pos if use_vad else buf_end, self._ww_pos if use_ww else buf_end)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start:]
            self._buf_start = keep_from
        return events

    def _count(self, name: str, ms: float) -> None:
        self.inference_counts[name] = self.inference_counts.get(name, 0) + 1
        self.inference_ms[name] = self.inference_ms.get(name, 0.0) + ms

    def _vad_chunk(self, x: np.ndarray, pos: int, timer: FrameTimer) -> list[AudioEvent]:
        t = time.perf_counter()
        prob = self.vad(x)
        ms = (time.perf_counter() - t) * 1e3
        timer.add("silero_vad", ms)
        self._count("silero_vad", ms)
        self.counters["vad_chunks"] += 1
        gate = self.config.gate_threshold if self.config.gate_threshold is not None else self.config.vad.stop_threshold
        if prob >= gate:
            self._last_voiced_end = pos + VAD_CHUNK
        return self._segment_events(self.segmenter.update(prob, pos))

    def _segment_events(self, items: list[tuple[str, Any]]) -> list[AudioEvent]:
        out: list[AudioEvent] = []
        st = self.stream
        for kind, val in items:
            if kind == "vad":
                speaking, sample, decided = val
                out.append(VadEvent(bool(speaking), sample / SR, int(sample), decided / SR,
                                    float(self.segmenter.last_prob), st.stamp_at(sample)))
            else:
                s, e, complete = val
                self.counters["speech_segments"] += 1
                out.append(SpeechSegmentEvent(s / SR, e / SR, int(s), int(e), (e - s) / SR, bool(complete),
                                              st.stamp_at(s), st.stamp_at(e)))
        return out

    def _gate_open(self, frame_end: int) -> bool:
        if not self.config.vad_gating or self.vad is None:
            return True
        if self.segmenter.triggered:
            return True
        return frame_end - self._last_voiced_end <= self.config.gate_hold_s * SR

    def _ww_frame(self, x: np.ndarray, timer: FrameTimer, chunk_end: int, t0: float) -> list[AudioEvent]:
        frame_end = self._ww_pos + WW_FRAME
        compute = self._gate_open(frame_end)
        before = dict(timer.stages)
        results = self.wakeword.accept(x, compute=compute, timer=timer)
        for name, ms in timer.stages.items():
            if name not in ("stream", "silero_vad") and ms != before.get(name, 0.0):
                self._count(name, ms - before.get(name, 0.0))
        self.counters["wakeword_frames"] += 1
        if not compute:
            self.counters["wakeword_frames_skipped"] += 1
        events: list[AudioEvent] = []
        cfg = self.config
        for fr in results:
            if fr.scores is None:
                continue
            end = self._ww_origin + fr.end_sample
            for label, score in fr.scores.items():
                thr = cfg.wake_thresholds.get(label, cfg.wake_threshold)
                armed = self._armed.get(label, True)
                if score < thr:
                    self._armed[label] = True
                    continue
                last = self._last_detection.get(label)
                if not armed or (last is not None and end - last < cfg.refractory_s * SR):
                    continue
                self._armed[label] = False
                self._last_detection[label] = end
                self.counters["wake_words"] += 1
                delay = (chunk_end - end) / SR * 1e3 + (time.perf_counter() - t0) * 1e3
                events.append(WakeWordEvent(self._keyword(label), label, float(score), float(thr), end / SR, int(end),
                                            self.stream.stamp_at(end), round(delay, 3)))
        return events

    def _keyword(self, label: str) -> str:
        for h in self.wakeword.heads:
            if label in h.labels:
                return h.keyword if len(h.labels) == 1 else label
        return label

    # ---- diagnostics --------------------------------------------------------------------------------
    @property
    def audio_seconds(self) -> float:
        return self.stream.stats.output_samples / SR

    @property
    def real_time_factor(self) -> float:
        """Processing time / audio time since the start (lower is better; < 1 keeps up)."""
        a = self.audio_seconds
        return self._proc_s / a if a > 0 else float("nan")

    def backends(self) -> dict[str, str]:
        names: dict[str, str] = {}
        if self.vad is not None:
            names["silero_vad"] = self.vad.backend.name
        if self.wakeword is not None:
            names.update(self.wakeword.backend_names)
        return names

    def diagnostics(self) -> dict[str, Any]:
        """Everything a diagnostics message needs: RTF, per-model latency, counters, stream health."""
        per_inference = {k: round(self.inference_ms[k] / n, 4) for k, n in self.inference_counts.items() if n}
        return {
            "real_time_factor": round(self.real_time_factor, 5) if self.audio_seconds else None,
            "audio_seconds": round(self.audio_seconds, 3),
            "processing_seconds": round(self._proc_s, 4),
            "latency_ms_per_push": self.latency.summary(),
            "latency_ms_per_inference": per_inference,
            "inferences": dict(self.inference_counts),
            "counters": dict(self.counters),
            "stream": self.stream.stats.as_dict(),
            "backends": self.backends(),
            "vad_gating": self.config.vad_gating,
        }
