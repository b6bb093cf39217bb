"""Audio stream assembly: raw chunks of any size/format/rate -> one continuous 16 kHz mono float32 stream.

Everything a ROS audio topic can throw at a consumer is handled here, once, without ROS:

- sample formats: int16 / int32 / float32 / uint8-PCM arrays, or raw bytes with a sample-format name
  (``s16le``, ``s24le``, ``s32le``, ``f32le``, ``u8``, ...);
- interleaved multi-channel audio, mixed down to mono (mean of the channels, or one chosen channel);
- any sample rate, converted to 16 kHz by :class:`StreamingResampler` (windowed-sinc polyphase filter whose
  output does not depend on how the input was chunked);
- stream time in 16 kHz samples, mapped back to the message clock (``stamp_at``); gaps between message
  stamps are detected, short ones zero-filled (stream time stays aligned with the clock), long ones reported
  as a discontinuity so the models can reset;
- bad input (NaN/inf, clipping, odd byte counts, partial frames, wrong dtype, undecodable data) is repaired
  or dropped and *counted* in :class:`AudioStreamCounters`; :meth:`AudioStream.push` never raises.

A chunk comes from anyone on the DDS domain, and some messages carry their own rate and channel count, so
nothing is allocated from a size the sender chose before it is bounded: samples per chunk
(``max_chunk_samples``), the sample rate (:data:`MIN_SAMPLE_RATE`..:data:`MAX_SAMPLE_RATE`, and a resampler
filter of at most :data:`MAX_FILTER_TAPS`: a rate like 383999 Hz shares no factor with 16 kHz and would need
a 16000-phase filter of 1 GB), channels (:data:`MAX_CHANNELS`) and zero-filled gaps (``max_gap_fill_s``).
A dropped chunk is counted by reason (``bad_reasons``; the audio node reports them as ``bad_<reason>``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_infer.errors import EdgeInferError

TARGET_RATE = 16000
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000  # what an input may declare (the node's sample_rate range)
MAX_CHANNELS = 32  # interleaved channels an input may declare (the node's channels range)
#: phases x taps of the resampler's filter table (8 MB of float64). Every usual rate needs far less (44.1 kHz:
#: 160 x 94; 47952 Hz: 1000 x 96); a rate that shares no factor with 16 kHz needs 16000 phases
MAX_FILTER_TAPS = 1 << 20
#: default bound on the values (samples of all channels) of one chunk: 65 s of 16 kHz mono, 2.7 s of 48 kHz
#: with 8 channels; a microphone sends 10-100 ms per message. The upper bound of ``max_chunk_samples``
MAX_CHUNK_SAMPLES, CHUNK_SAMPLES_CEILING = 1 << 20, 1 << 26
MAX_GAP_FILL_S = 10.0  # the largest max_gap_fill_s a config may choose (the zero-fill is allocated)
_OUTPUT_BLOCK = 4096  # resampler outputs computed per gather (bounds the index arrays of the 44.1 kHz path)


class BadChunk(EdgeInferError, ValueError):
    """A chunk the stream refuses before allocating for it; ``reason`` is a short stable key counted in
    diagnostics as ``bad_<reason>`` (like :class:`edge_infer.pipeline.frames.BadFrame`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def check_sample_rate(rate: int) -> int:
    """``rate`` if a stream may take it: within the bounds and with a resampler filter of bounded size."""
    rate = int(rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise BadChunk("sample_rate", f"{rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]")
    taps = StreamingResampler.filter_size(rate, TARGET_RATE)
    if taps > MAX_FILTER_TAPS:
        raise BadChunk("sample_rate", f"{rate} Hz shares too small a factor with {TARGET_RATE} Hz: its resampling "
                                      f"filter would have {taps} entries (at most {MAX_FILTER_TAPS}; usual rates "
                                      f"such as 44100 or 48000 need under 20000)")
    return rate


def check_channels(channels: int) -> int:
    channels = int(channels)
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadChunk("channels", f"{channels} channels is outside [1, {MAX_CHANNELS}]")
    return channels

# name -> (numpy dtype, full scale, offset); bytes decode as (raw - offset) / full_scale
_FORMATS: dict[str, tuple[str, float, float]] = {
    "s16le": ("<i2", 32768.0, 0.0),
    "s16be": (">i2", 32768.0, 0.0),
    "s24le": ("s24le", 8388608.0, 0.0),  # packed 3-byte little endian, decoded by hand
    "s32le": ("<i4", 2147483648.0, 0.0),
    "f32le": ("<f4", 1.0, 0.0),
    "f64le": ("<f8", 1.0, 0.0),
    "u8": ("u1", 128.0, 128.0),
    "s8": ("i1", 128.0, 0.0),
}
_FORMAT_ALIASES = {
    "int16": "s16le", "s16": "s16le", "pcm16": "s16le", "s16_le": "s16le",
    "int24": "s24le", "s24": "s24le", "s24_3le": "s24le",
    "int32": "s32le", "s32": "s32le",
    "float32": "f32le", "f32": "f32le", "float": "f32le", "float_le": "f32le",
    "float64": "f64le", "f64": "f64le",
    "uint8": "u8", "u8pcm": "u8", "pcm8": "u8",
    "int8": "s8",
}


def normalize_sample_format(name: str) -> str:
    """Canonical sample-format name (``s16le``, ``f32le``, ``u8``, ...); raises ValueError if unknown."""
    key = str(name).strip().lower().replace("-", "_")
    key = _FORMAT_ALIASES.get(key, key).replace("_", "")
    if key not in _FORMATS:
        raise ValueError(f"unknown sample format '{name}'; choose one of {sorted(_FORMATS)} (or {sorted(_FORMAT_ALIASES)})")
    return key


def sample_format_width(fmt: str) -> int:
    fmt = normalize_sample_format(fmt)
    return 3 if fmt == "s24le" else np.dtype(_FORMATS[fmt][0]).itemsize


# --------------------------------------------------------------------------------------------------------
# Resampler
# --------------------------------------------------------------------------------------------------------
class StreamingResampler:
    """Rational-ratio windowed-sinc (Kaiser) polyphase resampler for streams.

    Output sample ``n`` is the band-limited interpolation of the input at input position ``n * in_rate /
    out_rate``: the filter is centred, so stream time is not shifted (the price is a look-ahead of about
    ``half_width`` output samples before an output can be computed). Each output is a fixed dot product of
    fixed input samples, so the output does not depend on the chunk sizes the input arrived in.
    """

    def __init__(self, in_rate: int, out_rate: int = TARGET_RATE, half_width: int = 16, rolloff: float = 0.94,
                 beta: float = 8.6) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self.up, self.down, fc, span, taps = self._geometry(self.in_rate, self.out_rate, half_width, rolloff)
        self.passthrough = self.up == self.down
        if taps > MAX_FILTER_TAPS:  # the table and its temporaries would be allocated below
            raise BadChunk("sample_rate", f"{self.in_rate} -> {self.out_rate} Hz needs a resampling filter of "
                                          f"{taps} entries (at most {MAX_FILTER_TAPS}): the rates share too small "
                                          f"a factor")
        if not self.passthrough:
            self._kh = int(math.ceil(span))
            ks = np.arange(-(self._kh - 1), self._kh + 1)  # input offsets relative to floor(t)
            frac = np.arange(self.up)[:, None] / self.up
            tau = frac - ks[None, :]  # t - i for every phase and tap
            win = np.where(np.abs(tau) < span, np.i0(beta * np.sqrt(np.clip(1.0 - (tau / span) ** 2, 0.0, None))), 0.0)
            table = 2.0 * fc * np.sinc(2.0 * fc * tau) * win / np.i0(beta)
            self._table = table / table.sum(axis=1, keepdims=True)  # unity DC gain in every phase
            self._offsets = ks
        self.reset()

    @staticmethod
    def _geometry(in_rate: int, out_rate: int, half_width: int = 16,
                  rolloff: float = 0.94) -> tuple[int, int, float, float, int]:
        """(phases up, input step down, cutoff in cycles per input sample, filter half length in input samples,
        entries of the filter table; 0 for passthrough): output n <-> input n*down/up."""
        g = math.gcd(in_rate, out_rate)
        up, down = out_rate // g, in_rate // g
        fc = 0.5 * min(1.0, up / down) * rolloff
        span = half_width / (2.0 * fc)
        return up, down, fc, span, 0 if up == down else up * 2 * int(math.ceil(span))

    @classmethod
    def filter_size(cls, in_rate: int, out_rate: int = TARGET_RATE) -> int:
        """Entries of the filter table the resampler for this pair of rates builds (0 for passthrough):
        computed without building it, so a rate can be refused before anything is allocated."""
        return cls._geometry(int(in_rate), int(out_rate))[4]

    @property
    def latency_in_samples(self) -> int:
        """Input samples that must arrive after position t before output at t can be computed."""
        return 0 if self.passthrough else self._kh

    def reset(self) -> None:
        self.n_in = 0  # input samples received
        self.n_out = 0  # output samples produced
        if not self.passthrough:
            self._buf = np.zeros(self._kh, dtype=np.float64)  # virtual zeros before the stream start
            self._buf_start = -self._kh  # absolute input index of _buf[0]

    def _emit(self, last_n: int) -> np.ndarray:
        if last_n < self.n_out:
            return np.zeros(0, dtype=np.float32)
        ns = np.arange(self.n_out, last_n + 1, dtype=np.int64)
        pos = ns * self.down
        base, phase = pos // self.up, pos % self.up
        first = base - (self._kh - 1) - self._buf_start  # buffer index of each output's first tap
        if self.up <= 8:
            # few phases (48/32/96 kHz: one): one strided window view and one mat-vec per phase
            windows = np.lib.stride_tricks.sliding_window_view(self._buf, self._table.shape[1])
            y = np.empty(ns.size, dtype=np.float64)
            for p in range(min(self.up, ns.size)):
                sel = slice(p, None, self.up)  # outputs n0+p, n0+p+up, ... share one phase
                y[sel] = windows[first[sel]] @ self._table[phase[p]]
        else:  # 44.1 kHz family (up = 160, 320, 640): gather per output, in blocks (bounded index arrays)
            y = np.empty(ns.size, dtype=np.float64)
            taps = np.arange(self._table.shape[1])[None, :]
            for a in range(0, ns.size, _OUTPUT_BLOCK):
                b = a + _OUTPUT_BLOCK
                y[a:b] = np.einsum("ij,ij->i", self._buf[first[a:b, None] + taps], self._table[phase[a:b]])
        self.n_out = last_n + 1
        # keep only what the next output needs
        nxt = (self.n_out * self.down) // self.up - (self._kh - 1) - self._buf_start
        if nxt > 0:
            self._buf = self._buf[nxt:]
            self._buf_start += nxt
        return y.astype(np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).ravel()
        self.n_in += x.size
        if self.passthrough:
            self.n_out += x.size
            return x.astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        last_in = self._buf_start + self._buf.size - 1  # newest input index available
        # output n needs inputs up to floor(n*down/up) + kh
        last_n = ((last_in - self._kh) * self.up + self.up - 1) // self.down
        return self._emit(last_n)

    def flush(self) -> np.ndarray:
        """Outputs still held back by the look-ahead (the input is zero-extended); call at end of stream."""
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        total = -(-self.n_in * self.up // self.down)  # ceil: outputs inside the input's duration
        self._buf = np.concatenate([self._buf, np.zeros(self._kh + 1)])
        return self._emit(total - 1)

    def output_position(self, input_index: float) -> float:
        """Output-sample position (fractional) of an input-sample index."""
        return input_index * self.up / self.down


def resample(x: np.ndarray, in_rate: int, out_rate: int = TARGET_RATE) -> np.ndarray:
    """One-shot resampling of a whole clip with the streaming resampler (same filter, same result)."""
    r = StreamingResampler(in_rate, out_rate)
    return np.concatenate([r.process(x), r.flush()])


# --------------------------------------------------------------------------------------------------------
# Stream
# --------------------------------------------------------------------------------------------------------
@dataclass
class StreamConfig:
    sample_rate: int = TARGET_RATE  # input rate (Hz)
    channels: int = 1  # interleaved channels in the input
    sample_format: str = "s16le"  # how raw bytes (uint8 data) decode; also the expected dtype of arrays
    mixdown: str | int = "mean"  # "mean" of all channels, or the index of one channel to keep
    gap_tolerance_s: float = 0.1  # stamp jump beyond the expected continuation that counts as a gap
    max_gap_fill_s: float = 1.0  # gaps up to this are zero-filled; longer ones are discontinuities
    partial_frames: str = "carry"  # "carry" a split sample/frame into the next chunk, or "drop" it
    max_chunk_samples: int = MAX_CHUNK_SAMPLES  # values (all channels) of one chunk; larger ones are dropped

    def __post_init__(self) -> None:
        self.sample_format = normalize_sample_format(self.sample_format)
        check_channels(self.channels)
        check_sample_rate(self.sample_rate)
        if self.partial_frames not in ("carry", "drop"):
            raise ValueError("partial_frames must be 'carry' or 'drop'")
        if not 0.0 <= float(self.max_gap_fill_s) <= MAX_GAP_FILL_S:
            raise ValueError(f"max_gap_fill_s must be in [0, {MAX_GAP_FILL_S:g}], got {self.max_gap_fill_s}")
        if not 1 <= int(self.max_chunk_samples) <= CHUNK_SAMPLES_CEILING:
            raise ValueError(f"max_chunk_samples must be in [1, {CHUNK_SAMPLES_CEILING}], "
                             f"got {self.max_chunk_samples}")


@dataclass
class AudioStreamCounters:
    """Counters of everything the stream had to repair or drop (published as diagnostics)."""

    chunks: int = 0
    empty_chunks: int = 0
    bad_chunks: int = 0  # dropped entirely (undecodable / wrong type / over a bound)
    bad_reasons: dict[str, int] = field(default_factory=dict)  # reason -> dropped chunks (bad_chunks by reason)
    lost_chunks: int = 0  # never arrived: the transport reported them lost (counted by the ROS node)
    input_samples: int = 0  # input frames (all channels of one instant = one frame)
    output_samples: int = 0  # 16 kHz samples produced (incl. zero-filled gaps)
    nonfinite_samples: int = 0
    nonfinite_chunks: int = 0
    clipped_samples: int = 0
    clipped_chunks: int = 0
    partial_frame_chunks: int = 0  # byte counts / sample counts that do not fill whole frames
    dtype_mismatches: int = 0
    rate_changes: int = 0
    channel_changes: int = 0
    gaps: int = 0
    gap_seconds: float = 0.0
    filled_seconds: float = 0.0
    discontinuities: int = 0
    stamp_backwards: int = 0
    last_issue: str = ""

    def count_bad(self, reason: str, issue: str) -> None:
        """One chunk dropped for ``reason`` (e.g. ``too_large``, ``sample_rate``, ``undecodable``)."""
        self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1
        self.bad_chunks += 1
        self.last_issue = issue

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gap_seconds"] = round(self.gap_seconds, 6)
        d["filled_seconds"] = round(self.filled_seconds, 6)
        return d


@dataclass
class StreamChunk:
    """What one push produced: 16 kHz mono float32 samples starting at stream sample ``start_sample``."""

    samples: np.ndarray
    start_sample: int
    discontinuity: bool = False  # stream time jumped before these samples: reset models
    issues: list[str] = field(default_factory=list)

    @property
    def end_sample(self) -> int:
        return self.start_sample + int(self.samples.size)


class AudioStream:
    """Turns chunks of any format/rate/size into a continuous 16 kHz mono stream with a sample clock."""

    def __init__(self, config: StreamConfig | None = None, **overrides: Any) -> None:
        cfg = config or StreamConfig()
        if overrides:
            cfg = StreamConfig(**{**asdict(cfg), **overrides})
        self.config = cfg
        self.stats = AudioStreamCounters()
        self._rate = check_sample_rate(cfg.sample_rate)
        self._channels = check_channels(cfg.channels)
        self._resampler = StreamingResampler(self._rate, TARGET_RATE)
        self._origin = 0  # stream sample of the current resampler's input index 0
        self._byte_carry = b""
        self._sample_carry = np.zeros(0, dtype=np.float64)
        self._prev_stamp: float | None = None
        self._prev_frames = 0
        self._anchor: tuple[float, float] | None = None  # (stamp, stream sample position)

    # ---- public API -------------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Stream samples (16 kHz) emitted so far = stream time of the next sample."""
        return self._origin + self._resampler.n_out

    @property
    def time(self) -> float:
        return self.position / TARGET_RATE

    def stamp_at(self, stream_sample: float) -> float | None:
        """Message-clock time (s) of a stream sample, from the latest stamped message; None if unstamped."""
        if self._anchor is None:
            return None
        stamp, pos = self._anchor
        return stamp + (stream_sample - pos) / TARGET_RATE

    def reset(self) -> None:
        self._resampler = StreamingResampler(self._rate, TARGET_RATE)
        self._origin = 0
        self._byte_carry = b""
        self._sample_carry = np.zeros(0, dtype=np.float64)
        self._prev_stamp = None
        self._prev_frames = 0
        self._anchor = None

    def push(self, data: Any, stamp: float | None = None, sample_rate: int | None = None, channels: int | None = None,
             sample_format: str | None = None) -> StreamChunk:
        """Add one chunk. Never raises: problems are repaired or the chunk is dropped, and counted."""
        st = self.stats
        issues: list[str] = []
        start = self.position
        try:
            return self._push(data, stamp, sample_rate, channels, sample_format, issues)
        except Exception as e:  # noqa: BLE001 - the pipeline must survive any input
            issue = f"dropped chunk: {type(e).__name__}: {e}"
            issues.append(issue)
            st.count_bad(e.reason if isinstance(e, BadChunk) else "undecodable", issue)
            return StreamChunk(np.zeros(0, dtype=np.float32), start, False, issues)
        finally:
            # counted last: a reader on another thread (diagnostics, a test) that sees the chunk
            # counted also sees what the chunk added to the other counters
            st.chunks += 1

    def flush(self) -> StreamChunk:
        """End of stream: emit what the resampler still holds back."""
        start = self.position
        y = self._resampler.flush()
        self.stats.output_samples += y.size
        return StreamChunk(y, start)

    # ---- internals ----------------------------------------------------------------------------------
    def _note(self, issues: list[str], msg: str) -> None:
        issues.append(msg)
        self.stats.last_issue = msg

    def _push(self, data: Any, stamp: float | None, sample_rate: int | None, channels: int | None,
              sample_format: str | None, issues: list[str]) -> StreamChunk:
        st, cfg = self.stats, self.config
        fmt = normalize_sample_format(sample_format) if sample_format else cfg.sample_format
        ch = check_channels(channels) if channels else self._channels
        new_rate = check_sample_rate(sample_rate) if sample_rate and int(sample_rate) != self._rate else None
        if stamp is not None and not math.isfinite(float(stamp)):
            raise BadChunk("stamp", f"stamp {stamp}")
        self._check_size(data, fmt)
        discontinuity = False
        head: list[np.ndarray] = []  # samples that precede this chunk's own (resampler tail, gap fill)
        pre = self.position
        if ch != self._channels:
            st.channel_changes += 1
            self._note(issues, f"channel count changed {self._channels} -> {ch}")
            self._channels = ch
            self._sample_carry = np.zeros(0)
        if new_rate is not None:
            st.rate_changes += 1
            self._note(issues, f"sample rate changed {self._rate} -> {new_rate}")
            head.append(self._restart_resampler(new_rate))

        # gap detection from message stamps; decided before decoding so a discontinuity also drops a
        # partial sample carried over from before it, applied after decoding so a bad chunk changes nothing
        gap_kind, delta = ("none", 0.0) if stamp is None else self._classify_gap(float(stamp))
        if gap_kind == "jump":
            self._byte_carry = b""
            self._sample_carry = np.zeros(0)
        x = self._decode(data, fmt, issues)  # float64, interleaved, scaled to [-1, 1]
        frames = self._frame(x, ch, issues)  # (n, ch)
        n = frames.shape[0]
        if gap_kind != "none":
            fill = self._apply_gap(gap_kind, delta, issues)
            if gap_kind == "jump":
                discontinuity = True
                head = []  # a discontinuity starts a new stream segment
                pre = self.position
            elif fill.size:
                head.append(fill)

        if stamp is not None:
            self._prev_stamp, self._prev_frames = stamp, n
            # stream position of this chunk's first input sample (exact for any rate ratio)
            self._anchor = (stamp, self._origin + self._resampler.output_position(self._resampler.n_in))
        if n == 0:
            st.empty_chunks += 1
        else:
            mono = self._mix(frames)  # finite already (NaN/inf were replaced while decoding)
            st.input_samples += n
            head.append(self._resampler.process(mono))
        y = np.concatenate(head).astype(np.float32, copy=False) if head else np.zeros(0, dtype=np.float32)
        st.output_samples += y.size
        return StreamChunk(y, pre, discontinuity, issues)

    def _check_size(self, data: Any, fmt: str) -> None:
        """Refuse a chunk of more than ``max_chunk_samples`` values before any conversion copies it (decoding
        makes float64 copies: 4x an int16 message). Arrays are sized without copying; bytes by sample width."""
        limit = int(self.config.max_chunk_samples)
        if isinstance(data, (bytes, bytearray, memoryview)):
            n = memoryview(data).nbytes // sample_format_width(fmt)
        elif isinstance(data, np.ndarray):  # uint8 / void arrays are raw bytes in `fmt` (see _decode)
            raw = data.dtype == np.uint8 or data.dtype.kind == "V"
            n = data.nbytes // sample_format_width(fmt) if raw else data.size
        else:
            n = len(data) if hasattr(data, "__len__") and not isinstance(data, (str, dict)) else 0
        if n > limit:
            raise BadChunk("too_large", f"{n} samples in one chunk (at most {limit}, parameter max_chunk_samples)")

    def _restart_resampler(self, rate: int) -> np.ndarray:
        """Finish the old rate (its held-back tail is returned), continue the stream at the new rate."""
        fresh = StreamingResampler(rate, TARGET_RATE)  # first: if it cannot be built, nothing has changed
        tail = self._resampler.flush()
        self._origin += self._resampler.n_out
        self._rate = rate
        self._resampler = fresh
        self._prev_stamp = None  # the previous chunk's duration no longer predicts the next stamp
        return tail

    def _classify_gap(self, stamp: float) -> tuple[str, float]:
        """-> ("none" | "back" | "fill" | "jump", seconds between the expected and the actual stamp)."""
        cfg = self.config
        if self._prev_stamp is None:
            return "none", 0.0
        delta = stamp - (self._prev_stamp + self._prev_frames / self._rate)
        if delta < -cfg.gap_tolerance_s:
            return "back", delta
        if delta <= cfg.gap_tolerance_s:
            return "none", delta
        return ("fill" if delta <= cfg.max_gap_fill_s else "jump"), delta

    def _apply_gap(self, kind: str, delta: float, issues: list[str]) -> np.ndarray:
        """Count the gap; -> zero-fill samples to emit before this chunk (empty unless kind == "fill")."""
        st = self.stats
        none = np.zeros(0, dtype=np.float32)
        if kind == "back":
            st.stamp_backwards += 1
            self._note(issues, f"stamp went back by {-delta:.3f} s")
            return none
        st.gaps += 1
        st.gap_seconds += delta
        if kind == "fill":
            n_fill = int(round(delta * self._rate))
            st.filled_seconds += n_fill / self._rate
            self._note(issues, f"gap of {delta:.3f} s zero-filled")
            return self._resampler.process(np.zeros(n_fill))
        st.discontinuities += 1
        self._note(issues, f"gap of {delta:.3f} s: stream time jumps, models reset")
        self._origin += self._resampler.n_out + int(round(delta * TARGET_RATE))
        self._resampler = StreamingResampler(self._rate, TARGET_RATE)
        return none

    def _decode(self, data: Any, fmt: str, issues: list[str]) -> np.ndarray:
        st, cfg = self.stats, self.config
        if data is None:
            raise TypeError("no data")
        if isinstance(data, (bytes, bytearray, memoryview)):
            return self._decode_bytes(bytes(data), fmt, issues)
        if isinstance(data, str):
            raise TypeError("text is not audio")
        arr = np.asarray(data)
        if arr.dtype == np.uint8 or (arr.dtype.kind == "V"):
            return self._decode_bytes(arr.tobytes(), fmt, issues)
        if arr.ndim == 2:  # (frames, channels) or (channels, frames): make it interleaved
            ch = self._channels
            if arr.shape[1] == ch:
                arr = arr.reshape(-1)
            elif arr.shape[0] == ch:
                arr = arr.T.reshape(-1)
            else:
                raise ValueError(f"2-D audio of shape {arr.shape} does not match {ch} channels")
        elif arr.ndim != 1:
            arr = arr.reshape(-1)
        kind = arr.dtype.kind
        expected_dtype, full_scale, _ = _FORMATS[fmt]
        if kind == "f":
            if fmt not in ("f32le", "f64le"):
                st.dtype_mismatches += 1
                self._note(issues, f"got float{arr.dtype.itemsize * 8} samples, expected {fmt}: read as [-1, 1] floats")
            return self._clip_floats(self._finite(arr.astype(np.float64), issues), issues)
        if kind in "iu":
            if kind == "u" or kind == "b":
                raise TypeError(f"unsigned {arr.dtype} arrays other than uint8 are not audio here")
            native_scale = {1: 128.0, 2: 32768.0, 4: 2147483648.0}.get(arr.dtype.itemsize)
            exp_kind = "f" if fmt in ("f32le", "f64le") else "i"
            if exp_kind != "i" or native_scale != full_scale:
                st.dtype_mismatches += 1
            if arr.dtype.itemsize == 8 or native_scale is None:  # e.g. a python list of ints -> int64
                scale = full_scale if exp_kind == "i" else 32768.0
                self._note(issues, f"got {arr.dtype} samples: read as {('int16' if scale == 32768.0 else fmt)} values")
            else:
                scale = native_scale
                if native_scale != full_scale or exp_kind != "i":
                    self._note(issues, f"got {arr.dtype} samples, expected {fmt}: read as {arr.dtype}")
            x = np.clip(arr.astype(np.float64) / scale, -1.0, 1.0)  # int64 read as int16 can exceed +-1
            self._count_saturation(x, scale, issues)
            return x
        raise TypeError(f"{arr.dtype} data is not audio")

    def _decode_bytes(self, raw: bytes, fmt: str, issues: list[str]) -> np.ndarray:
        st, cfg = self.stats, self.config
        width = sample_format_width(fmt)
        if self._byte_carry:
            raw = self._byte_carry + raw
            self._byte_carry = b""
        rem = len(raw) % width
        if rem:
            st.partial_frame_chunks += 1
            self._note(issues, f"{len(raw)} bytes is not a multiple of the {width}-byte {fmt} sample: "
                               f"{rem} byte(s) {'carried' if cfg.partial_frames == 'carry' else 'dropped'}")
            if cfg.partial_frames == "carry":
                self._byte_carry = raw[-rem:]
            raw = raw[: len(raw) - rem]
        dt, full_scale, offset = _FORMATS[fmt]
        if fmt == "s24le":
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            v = np.where(v >= 1 << 23, v - (1 << 24), v)
        else:
            v = np.frombuffer(raw, dtype=np.dtype(dt))
        with np.errstate(invalid="ignore"):  # signalling NaNs in float bytes: replaced by 0 just below
            x = (v.astype(np.float64) - offset) / full_scale
        if dt.endswith(("f4", "f8")):
            return self._clip_floats(self._finite(x, issues), issues)
        self._count_saturation(x, full_scale, issues)
        return x

    def _clip_floats(self, x: np.ndarray, issues: list[str]) -> np.ndarray:
        """Float samples beyond +-1 are clipped and counted."""
        over = np.abs(x) > 1.0
        if over.any():
            nc = int(over.sum())
            self.stats.clipped_samples += nc
            self.stats.clipped_chunks += 1
            self._note(issues, f"{nc} float samples beyond +-1 clipped")
            x = np.clip(x, -1.0, 1.0)
        return x

    def _count_saturation(self, x: np.ndarray, full_scale: float, issues: list[str]) -> None:
        """Integer samples at full scale are most likely clipped at the source: counted, left as they are."""
        sat = (x >= (full_scale - 1) / full_scale) | (x <= -1.0)
        if sat.any():
            nc = int(sat.sum())
            self.stats.clipped_samples += nc
            self.stats.clipped_chunks += 1
            self._note(issues, f"{nc} samples at full scale (clipping)")

    def _finite(self, x: np.ndarray, issues: list[str]) -> np.ndarray:
        """NaN/inf -> 0, counted (before clipping, so inf is not mistaken for clipping)."""
        bad = ~np.isfinite(x)
        if bad.any():
            nb = int(bad.sum())
            self.stats.nonfinite_samples += nb
            self.stats.nonfinite_chunks += 1
            self._note(issues, f"{nb} NaN/inf samples replaced by 0")
            x = np.where(bad, 0.0, x)
        return x

    def _frame(self, x: np.ndarray, ch: int, issues: list[str]) -> np.ndarray:
        if ch == 1:
            return x.reshape(-1, 1)
        if self._sample_carry.size:
            x = np.concatenate([self._sample_carry, x])
            self._sample_carry = np.zeros(0)
        rem = x.size % ch
        if rem:
            self.stats.partial_frame_chunks += 1
            self._note(issues, f"{x.size} samples is not a multiple of {ch} channels: {rem} "
                               f"{'carried' if self.config.partial_frames == 'carry' else 'dropped'}")
            if self.config.partial_frames == "carry":
                self._sample_carry = x[-rem:]
            x = x[: x.size - rem]
        return x.reshape(-1, ch)

    def _mix(self, frames: np.ndarray) -> np.ndarray:
        if frames.shape[1] == 1:
            return frames[:, 0]
        m = self.config.mixdown
        if isinstance(m, int) or (isinstance(m, str) and m.isdigit()):
            return frames[:, min(int(m), frames.shape[1] - 1)]
        return frames.mean(axis=1)
