"""Audio pipeline on real synthesized speech: wake word, VAD vs silero's reference, chunking, bad input."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from scipy.signal import resample_poly

from audio_clips import NEGATIVE_SPECS, POSITIVE_SPECS, SR, clip, conversation, padded, speech_end, to_int16, white_noise
from edge_infer.models.silero_vad import SileroVad
from edge_infer.models.wakeword import WakeWordModel
from edge_infer.pipeline.audio_pipeline import (AudioPipeline, AudioPipelineConfig, SpeechSegmentEvent, VadEvent,
                                                WakeWordEvent, parse_event)
from edge_infer.pipeline.audio_stream import AudioStream, StreamConfig, StreamingResampler, resample

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------------------------------------------
# fixtures: models are loaded once; every pipeline resets them
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vad(models_dir):
    return SileroVad(models_dir / "silero_vad.onnx", intra_op_threads=1, inter_op_threads=1)


@pytest.fixture(scope="module")
def ww(models_dir):
    return WakeWordModel.from_files(models_dir / "oww_melspectrogram.onnx", models_dir / "oww_embedding.onnx",
                                    {"hey_jarvis": models_dir / "hey_jarvis.onnx"}, keywords={"hey_jarvis": "hey jarvis"},
                                    intra_op_threads=1, inter_op_threads=1)


@pytest.fixture(scope="module")
def make_pipe(vad, ww):
    def make(stream: StreamConfig | None = None, **cfg):
        return AudioPipeline(vad, ww, AudioPipelineConfig(**cfg), stream)
    return make


def run(pipe: AudioPipeline, data: np.ndarray, chunk: int, **fmt) -> list:
    events = []
    for i in range(0, len(data), chunk):
        events += pipe.process(data[i:i + chunk], **fmt)
    return events + pipe.flush()


def wakes(events):
    return [e for e in events if isinstance(e, WakeWordEvent)]


def segments(events):
    return [(e.start_sample, e.end_sample) for e in events if isinstance(e, SpeechSegmentEvent)]


# ---------------------------------------------------------------------------------------------------------
# wake word
# ---------------------------------------------------------------------------------------------------------
def test_wake_word_once_per_positive_clip(make_pipe, capsys):
    pipe = make_pipe()
    scores = {}
    for spec in POSITIVE_SPECS:
        x = padded(clip(*spec), 1.0, 1.5)
        pipe.reset()
        ev = wakes(run(pipe, to_int16(x), 1280))
        name = f"{spec[2]}@{spec[3]}"
        assert len(ev) == 1, f"{name}: expected exactly one detection, got {[(e.stream_time, e.score) for e in ev]}"
        end = SR + speech_end(0.7 * clip(*spec))
        e = ev[0]
        assert e.keyword == "hey jarvis" and e.model == "hey_jarvis"
        # the detection comes after most of the keyword and at most 0.5 s after its end
        assert end - 0.5 * SR <= e.stream_sample <= end + 0.5 * SR, (name, e.stream_time, end / SR)
        scores[name] = round(e.score, 3)
    with capsys.disabled():
        print(f"\n  wake-word scores on positives: {scores}")


def test_wake_word_never_on_negatives(make_pipe, ww, capsys):
    pipe = make_pipe()
    worst = {}
    clips = {f"{s[0]}/{s[1]}:{s[2]}": padded(clip(*s), 0.5, 1.0) for s in NEGATIVE_SPECS}
    clips["silence"] = np.zeros(5 * SR, np.float32)
    clips["white noise"] = white_noise(5.0, 0.1)
    clips["loud noise"] = white_noise(3.0, 0.5, seed=1)
    for name, x in clips.items():
        pipe.reset()
        assert wakes(run(pipe, to_int16(x), 1000)) == [], name
        worst[name] = round(max(s["hey_jarvis"] for s in ww.scores_for_clip(x)), 4)
    assert max(worst.values()) < 0.5
    with capsys.disabled():
        print(f"\n  max wake-word score on negatives: {max(worst.values())} ({worst})")


def test_refractory_period_and_rearm(make_pipe):
    x = np.concatenate([padded(clip(*POSITIVE_SPECS[0]), 0.5, 0.2), padded(clip(*POSITIVE_SPECS[2]), 0.0, 1.0)])
    assert len(wakes(run(make_pipe(refractory_s=0.5), to_int16(x), 512))) == 2
    assert len(wakes(run(make_pipe(refractory_s=5.0), to_int16(x), 512))) == 1


def test_vad_gating_gives_the_same_detections_with_less_compute(make_pipe):
    audio, spans = conversation()
    pcm = to_int16(audio)
    plain = make_pipe()
    ev_plain = wakes(run(plain, pcm, 512))
    gated = make_pipe(vad_gating=True)
    ev_gated = wakes(run(gated, pcm, 512))
    assert [(e.stream_sample, round(e.score, 5)) for e in ev_gated] == [(e.stream_sample, round(e.score, 5)) for e in ev_plain]
    assert len(ev_plain) == len(spans) == 2
    c = gated.diagnostics()["counters"]
    assert c["wakeword_frames_skipped"] > 0.1 * c["wakeword_frames"]


def test_skipped_frames_replay_exactly(ww):
    """Frames buffered without compute and replayed give bit-identical scores (short and cold replays)."""
    x = padded(clip(*POSITIVE_SPECS[4]), 4.0, 1.0)
    ref = [f.scores for f in (ww.reset() or ww.accept(x))]
    ww.reset()
    got = {}
    n_frames = len(ref)
    for k in range(n_frames):
        compute = not (3 <= k < 10 or 12 <= k < 50) or k == n_frames - 1 or k >= 50
        for f in ww.accept(x[k * 1280:(k + 1) * 1280], compute=compute):
            if f.scores is not None:
                got[f.frame] = f.scores
    # after the cold replay (40 skipped frames > ring) scores are exact once the history is warm again
    exact = [k for k in got if got[k] == ref[k]]
    assert set(range(50, n_frames)) <= set(exact)
    assert all(got[k] == ref[k] for k in got)


# ---------------------------------------------------------------------------------------------------------
# VAD vs silero's reference processing
# ---------------------------------------------------------------------------------------------------------
def silero_reference(audio: np.ndarray, model_path) -> list[tuple[int, int]]:
    """silero-vad 6.2.3 get_speech_timestamps (defaults), re-implemented on onnxruntime directly: the ONNX
    loop of OnnxWrapper (512 samples + 64 context, state, sr) and get_speech_timestamps_from_probs."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    state, context, probs = np.zeros((2, 1, 128), np.float32), np.zeros((1, 64), np.float32), []
    for i in range(0, len(audio), 512):
        chunk = audio[i:i + 512]
        chunk = np.pad(chunk, (0, 512 - len(chunk)))[None].astype(np.float32)
        x = np.concatenate([context, chunk], axis=1)
        out, state = sess.run(None, {"input": x, "state": state, "sr": np.array(16000, np.int64)})
        context = x[:, -64:]
        probs.append(float(out.item()))
    threshold, neg = 0.5, 0.35
    min_speech, pad, min_silence = SR * 250 / 1000, SR * 30 / 1000, SR * 100 / 1000
    triggered, speeches, cur_speech, temp_end = False, [], {}, 0
    for i, p in enumerate(probs):
        cur = 512 * i
        if p >= threshold and temp_end:
            temp_end = 0
        if p >= threshold and not triggered:
            triggered = True
            cur_speech["start"] = cur
            continue
        if p < neg and triggered:
            if not temp_end:
                temp_end = cur
            if cur - temp_end < min_silence:
                continue
            cur_speech["end"] = temp_end
            if cur_speech["end"] - cur_speech["start"] > min_speech:
                speeches.append(cur_speech)
            cur_speech, temp_end, triggered = {}, 0, False
    if cur_speech and len(audio) - cur_speech["start"] > min_speech:
        cur_speech["end"] = len(audio)
        speeches.append(cur_speech)
    for i, s in enumerate(speeches):
        if i == 0:
            s["start"] = int(max(0, s["start"] - pad))
        if i != len(speeches) - 1:
            sil = speeches[i + 1]["start"] - s["end"]
            if sil < 2 * pad:
                s["end"] += int(sil // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - sil // 2))
            else:
                s["end"] = int(min(len(audio), s["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            s["end"] = int(min(len(audio), s["end"] + pad))
    return [(s["start"], s["end"]) for s in speeches]


def assert_segments_close(got, ref, tol=512):
    assert len(got) == len(ref), f"segments differ: got {got}, silero {ref}"
    for (gs, ge), (rs, re) in zip(got, ref):
        assert abs(gs - rs) <= tol and abs(ge - re) <= tol, f"got {got}, silero {ref}"


def test_vad_segments_match_silero_reference(make_pipe, models_dir):
    audio, _ = conversation()
    # end while still speaking too: the open segment is closed at the end of the stream, as silero does
    audio = np.concatenate([audio, 0.7 * clip(*NEGATIVE_SPECS[0])[:12000]])
    pcm = to_int16(audio)
    ref = silero_reference(pcm.astype(np.float32) / 32768, models_dir / "silero_vad.onnx")
    assert len(ref) >= 5
    events = run(make_pipe(enable_wakeword=False), pcm, 512)
    assert segments(events) == ref  # same audio, same chunk grid: identical
    # VAD state changes pair up with the segments
    vads = [e for e in events if isinstance(e, VadEvent)]
    assert [e.speaking for e in vads] == [True, False] * len(ref)
    assert [e.stream_sample for e in vads] == [s for seg in ref for s in seg]


# ---------------------------------------------------------------------------------------------------------
# chunking, formats, rates
# ---------------------------------------------------------------------------------------------------------
def test_chunk_sizes_formats_and_48k_give_the_same_detections(make_pipe):
    audio, spans = conversation()
    pcm = to_int16(audio)
    base = run(make_pipe(), pcm, 512)
    base_w = [(e.stream_sample, e.score) for e in wakes(base)]
    base_s = segments(base)
    assert len(base_w) == len(spans) == 2 and len(base_s) >= 4
    for chunk in (160, 1000, 4096):
        ev = run(make_pipe(), pcm, chunk)
        assert [(e.stream_sample, e.score) for e in wakes(ev)] == base_w, chunk
        assert segments(ev) == base_s, chunk
    # raw little-endian bytes (UInt8MultiArray / AudioData) with odd-sized messages
    raw = pcm.tobytes()
    pipe = make_pipe()
    ev = []
    for i in range(0, len(raw), 1001):
        ev += pipe.process(np.frombuffer(raw[i:i + 1001], np.uint8), sample_format="s16le")
    ev += pipe.flush()
    assert [(e.stream_sample, e.score) for e in wakes(ev)] == base_w
    assert segments(ev) == base_s
    # 48 kHz stereo, int16 and float32 (a different, independent resampler made the 48 kHz audio)
    up = resample_poly(audio.astype(np.float64), 3, 1)
    stereo = np.stack([up, 0.8 * up], axis=1)
    for name, data in (("int16", to_int16(stereo).reshape(-1)), ("float32", stereo.astype(np.float32).reshape(-1))):
        pipe = make_pipe(StreamConfig(sample_rate=48000, channels=2,
                                      sample_format="s16le" if name == "int16" else "f32le"))
        ev = run(pipe, data, 3 * 2 * 1000)  # 1000 frames of 2 channels per message
        got_w = [e.stream_sample for e in wakes(ev)]
        assert len(got_w) == len(base_w), name
        assert all(abs(g - b) <= 1280 for g, (b, _) in zip(got_w, base_w)), (name, got_w, base_w)
        assert_segments_close(segments(ev), base_s)
        assert pipe.stream.stats.bad_chunks == 0 and pipe.stream.stats.dtype_mismatches == 0


def test_resampler_is_chunk_size_independent_and_accurate():
    rng = np.random.default_rng(0)
    for rate in (48000, 44100, 22050, 8000):
        x = rng.standard_normal(rate) * 0.1
        ref = resample(x, rate)
        assert ref.size == SR
        for chunk in (1, 160, 1000, 4096):
            if chunk == 1 and rate > 8000:
                continue
            r = StreamingResampler(rate)
            y = np.concatenate([r.process(x[i:i + chunk]) for i in range(0, x.size, chunk)] + [r.flush()])
            np.testing.assert_array_equal(y, ref)
        t = np.arange(rate) / rate
        y = resample(np.sin(2 * np.pi * 1000 * t), rate)
        tt = np.arange(y.size) / SR
        assert np.abs(y[200:-200] - np.sin(2 * np.pi * 1000 * tt[200:-200])).max() < 1e-4
        if rate > 2 * 9000:  # a tone above 8 kHz must not alias into the 16 kHz stream
            assert np.sqrt(np.mean(resample(np.sin(2 * np.pi * 9000 * t), rate)[200:-200] ** 2)) < 1e-3


# ---------------------------------------------------------------------------------------------------------
# bad input, gaps, stamps
# ---------------------------------------------------------------------------------------------------------
def test_bad_input_is_counted_and_survived(make_pipe):
    pipe = make_pipe()
    junk = [
        np.array([np.nan, np.inf, -np.inf, 0.5] * 300, np.float32),  # NaN/inf, float where int16 is expected
        np.full(800, 32767, np.int16),  # clipping
        np.frombuffer(b"\x01\x02\x03", np.uint8),  # odd byte count (1 byte carried)
        b"\x04",  # completes the carried sample
        None, "not audio", np.array([1 + 2j]), np.array([object()]), {"a": 1},  # wrong types
        [100, -100, 200],  # python list of ints
        np.zeros((3, 7, 2), np.int16),  # odd shape: flattened
        np.zeros(0, np.int16),  # empty
        np.array([2.5, -3.0], np.float64),  # floats beyond +-1
    ]
    for j in junk:
        assert isinstance(pipe.process(j), list)
    st = pipe.stream.stats
    assert st.nonfinite_samples == 900 and st.nonfinite_chunks == 1
    assert st.clipped_samples == 802 and st.clipped_chunks == 2
    assert st.partial_frame_chunks == 1
    assert st.bad_chunks == 5
    assert st.dtype_mismatches >= 3
    assert st.empty_chunks == 1
    # a gap in the message stamps: short ones are zero-filled, long ones reset the models
    t0 = 100.0
    n = pipe.stream.position
    assert pipe.process(np.zeros(1600, np.int16), stamp=t0) == []
    pipe.process(np.zeros(1600, np.int16), stamp=t0 + 0.1 + 0.3)  # 0.3 s late: filled
    assert st.gaps == 1 and abs(st.filled_seconds - 0.3) < 1e-3
    assert pipe.stream.position == n + 3200 + int(0.3 * SR)
    pipe.process(np.zeros(1600, np.int16), stamp=t0 + 0.5 + 3.0)  # 3 s late: discontinuity
    assert st.discontinuities == 1 and st.gaps == 2
    pipe.process(np.zeros(1600, np.int16), stamp=t0)  # back in time: counted
    assert st.stamp_backwards == 1
    # ... and the pipeline still works: a wake word after all that, with stamps on the events
    x = to_int16(padded(clip(*POSITIVE_SPECS[0]), 0.5, 1.0))
    base = 200.0
    ev = []
    for i in range(0, x.size, 800):
        ev += pipe.process(x[i:i + 800], stamp=base + i / SR)
    w = wakes(ev)
    assert len(w) == 1
    start = pipe.stream.position - x.size  # stream sample of x[0]
    assert abs(w[0].stamp - (base + (w[0].stream_sample - start) / SR)) < 1e-6
    assert pipe.diagnostics()["counters"]["pipeline_errors"] == 0


def test_stereo_channel_and_rate_changes(make_pipe):
    pipe = make_pipe(StreamConfig(sample_rate=48000, channels=2))
    pipe.process(np.zeros(2 * 4801, np.int16))
    pipe.process(np.zeros(3, np.int16))  # not a whole frame: 1 sample carried
    assert pipe.stream.stats.partial_frame_chunks == 1
    pipe.process(np.zeros(1000, np.int16), channels=1)
    pipe.process(np.zeros(1000, np.int16), sample_rate=16000)
    st = pipe.stream.stats
    assert st.channel_changes == 1 and st.rate_changes == 1 and st.bad_chunks == 0
    assert pipe.stream.position > 0


def test_event_json_is_versioned(make_pipe):
    x = to_int16(padded(clip(*POSITIVE_SPECS[1]), 0.5, 1.0))
    ev = run(make_pipe(), x, 4096)
    kinds = {type(e) for e in ev}
    assert kinds == {VadEvent, SpeechSegmentEvent, WakeWordEvent}
    for e in ev:
        d = parse_event(e.to_json(frame_id="mic", stamp={"sec": 1, "nanosec": 2}))
        assert d["schema"].startswith("edge_infer/") and d["version"] == 1 and d["frame_id"] == "mic"
    w = json.loads(wakes(ev)[0].to_json())
    assert w["schema"] == "edge_infer/wake_word" and w["keyword"] == "hey jarvis" and 0.5 <= w["score"] <= 1
    with pytest.raises(ValueError):
        parse_event(json.dumps({"schema": "edge_infer/wake_word", "version": 99}))


def test_diagnostics_report_rtf_and_model_latency(make_pipe):
    pipe = make_pipe()
    run(pipe, to_int16(padded(clip(*POSITIVE_SPECS[3]), 0.5, 0.5)), 512)
    d = pipe.diagnostics()
    assert 0 < d["real_time_factor"] < 1
    assert {"silero_vad", "oww_melspectrogram", "oww_embedding", "hey_jarvis"} <= set(d["latency_ms_per_inference"])
    assert d["backends"]["silero_vad"].startswith("onnxruntime")
    json.dumps(d)


def test_speech_synthesizer_errors_are_user_facing():
    """samples.speech is the one synthesizer: a bad engine is an EdgeInferError (one line from the CLI)."""
    from edge_infer.errors import EdgeInferError
    from edge_infer.samples.speech import SpeechSynthesisError, synthesize

    with pytest.raises(SpeechSynthesisError, match="flite or espeak-ng") as e:
        synthesize("hello", engine="festival")
    assert isinstance(e.value, EdgeInferError)
    assert to_int16(np.array([1.0, -1.5, 0.5])).tolist() == [32767, -32768, 16384]
