"""`edge-infer bench audio`: real-time factor and wake-word detection latency of the audio pipeline.

The benchmark streams a synthetic conversation (real synthesized speech: "hey jarvis" said by several flite
voices, other phrases by espeak-ng and flite, silence and white noise) through :class:`AudioPipeline` in
fixed-size chunks, as a ROS audio topic would deliver it, and measures

- real-time factor = processing time / audio time (target <= 0.05), with and without VAD gating;
- detection latency = time from the end of the keyword (last sample above -35 dB of the clip's peak) to
  the wake-word event, counting (a) the audio the model needs after the keyword (the frame that crosses
  the threshold), (b) the rest of the chunk that frame arrived in and (c) the processing time of that
  chunk (target <= 150 ms).

Speech comes from :mod:`edge_infer.samples.speech` (Debian's flite and espeak-ng; positives in flite's voices,
which the hey_jarvis model detects).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from edge_infer.pipeline.audio_pipeline import AudioPipeline, AudioPipelineConfig, WakeWordEvent
from edge_infer.pipeline.latency import latency_stats
from edge_infer.samples.speech import HEY_JARVIS_CLIPS, SR, speech_16k, speech_end, to_int16

NEGATIVES = [("good morning robot", "espeak-ng", "en-us", 1.0), ("what time is it", "flite", "slt", 1.0),
             ("turn on the lights please", "espeak-ng", "en-gb", 1.0), ("hello there how are you", "flite", "awb", 1.0)]


def bench_stream(seed: int = 0, positives: Iterable[tuple] = HEY_JARVIS_CLIPS, negatives: Iterable[tuple] = NEGATIVES,
                 gap_s: float = 1.5) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """-> (16 kHz int16 audio, [(keyword start, keyword end) sample of each positive]). Positives and
    negatives alternate, separated by ``gap_s`` of silence or faint white noise."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    marks: list[tuple[int, int]] = []
    pos, neg = list(positives), list(negatives)
    n = 0

    def add(x: np.ndarray) -> None:
        nonlocal n
        parts.append(x)
        n += x.size

    gap = int(gap_s * SR)
    for i in range(max(len(pos), len(neg))):
        add((rng.standard_normal(gap) * 0.003).astype(np.float32) if i % 2 else np.zeros(gap, np.float32))
        if i < len(pos):
            x = speech_16k(pos[i][0], pos[i][1], pos[i][2], pos[i][3]) * 0.7
            marks.append((n, n + speech_end(x)))
            add(x)
            add(np.zeros(gap, np.float32))
        if i < len(neg):
            add(speech_16k(*neg[i]) * 0.7)
    add(np.zeros(gap, np.float32))
    return to_int16(np.concatenate(parts)), marks


def _run(pipe: AudioPipeline, audio: np.ndarray, chunk: int) -> tuple[float, list[tuple[Any, int, float]]]:
    """Stream ``audio`` in chunks -> (processing seconds, [(event, chunk end sample, push ms)])."""
    events: list[tuple[Any, int, float]] = []
    total = 0.0
    for i in range(0, audio.size, chunk):
        t = time.perf_counter()
        evs = pipe.process(audio[i:i + chunk])
        dt = time.perf_counter() - t
        total += dt
        end = min(i + chunk, audio.size)
        events += [(e, end, dt * 1e3) for e in evs]
    t = time.perf_counter()
    events += [(e, audio.size, 0.0) for e in pipe.flush()]
    total += time.perf_counter() - t
    return total, events


def run_audio_bench(models_dir: str | Path, chunk_samples: int = 512, backend: str = "onnxruntime",
                    keywords: Iterable[str] = ("hey_jarvis",), repeats: int = 1, print_results: bool = True,
                    **backend_options: Any) -> dict[str, Any]:
    """Benchmark the audio pipeline on synthesized speech; prints and returns the numbers.

    Returns a dict with ``real_time_factor`` (ungated and VAD-gated), ``detection_latency_ms`` stats,
    per-model mean inference ms, detections / misses / false alarms, and the targets.
    """
    audio, marks = bench_stream()
    audio_s = audio.size / SR
    results: dict[str, Any] = {"audio_seconds": round(audio_s, 3), "chunk_samples": chunk_samples,
                               "keywords": list(keywords), "targets": {"real_time_factor": 0.05,
                                                                       "detection_latency_ms": 150.0}}
    for mode, gating in (("ungated", False), ("vad_gated", True)):
        best = None
        for _ in range(max(1, repeats)):  # the fastest run counts (least disturbed by other processes)
            pipe = AudioPipeline.from_models_dir(models_dir, keywords=list(keywords), backend=backend,
                                                 config=AudioPipelineConfig(vad_gating=gating), **backend_options)
            pipe.process(np.zeros(4096, np.int16))  # warm-up outside the measurement
            pipe.reset()
            pipe.counters = {k: 0 for k in pipe.counters}
            pipe.inference_counts.clear()
            pipe.inference_ms.clear()
            proc_s, events = _run(pipe, audio, chunk_samples)
            if best is None or proc_s < best[0]:
                best = (proc_s, events, pipe.diagnostics())
        proc_s, events, diag = best
        wakes = [(e, end, ms) for e, end, ms in events if isinstance(e, WakeWordEvent)]
        latencies, model_ms, chunk_ms, proc_ms = [], [], [], []
        hits = 0
        for ks, ke in marks:
            found = [(e, end, ms) for e, end, ms in wakes if ks <= e.stream_sample <= ke + 2 * SR]
            if not found:
                continue
            hits += 1
            e, end, ms = found[0]
            model_part = (e.stream_sample - ke) / SR * 1e3  # audio after the keyword end the model needed
            chunk_part = (end - e.stream_sample) / SR * 1e3  # the rest of the chunk that frame came in
            model_ms.append(model_part)
            chunk_ms.append(chunk_part)
            proc_ms.append(ms)
            latencies.append(model_part + chunk_part + ms)
        false_alarms = len(wakes) - hits
        lat = latency_stats(latencies).as_dict()
        results[mode] = {
            "real_time_factor": round(proc_s / audio_s, 5),
            "processing_seconds": round(proc_s, 4),
            "detection_latency_ms": lat,
            "latency_parts_ms_mean": {"model (frame end - keyword end)": round(float(np.mean(model_ms)), 2) if model_ms else None,
                                      "rest of chunk": round(float(np.mean(chunk_ms)), 2) if chunk_ms else None,
                                      "processing": round(float(np.mean(proc_ms)), 3) if proc_ms else None},
            "detections": hits, "keywords_spoken": len(marks), "false_alarms": false_alarms,
            "scores": [round(e.score, 4) for e, _, _ in wakes],
            "latency_ms_per_inference": diag["latency_ms_per_inference"],
            "wakeword_frames_skipped": diag["counters"]["wakeword_frames_skipped"],
            "wakeword_frames": diag["counters"]["wakeword_frames"],
            "backends": diag["backends"],
        }
    results["real_time_factor"] = results["ungated"]["real_time_factor"]
    results["detection_latency_ms_p50"] = results["ungated"]["detection_latency_ms"]["p50"]
    results["detection_latency_ms_max"] = results["ungated"]["detection_latency_ms"]["max"]
    if print_results:
        print(format_audio_bench(results))
    return results


def format_audio_bench(r: dict[str, Any]) -> str:
    lines = [f"audio bench: {r['audio_seconds']} s of audio in chunks of {r['chunk_samples']} samples "
             f"(16 kHz), keywords {r['keywords']}"]
    for mode in ("ungated", "vad_gated"):
        m = r[mode]
        lat = m["detection_latency_ms"]
        ok_rtf = "ok" if m["real_time_factor"] <= r["targets"]["real_time_factor"] else "ABOVE TARGET"
        ok_lat = "ok" if (lat["max"] or 0) <= r["targets"]["detection_latency_ms"] else "ABOVE TARGET"
        lines.append(f"  {mode:9}  real-time factor {m['real_time_factor']:.4f} (target <= 0.05: {ok_rtf}); "
                     f"detections {m['detections']}/{m['keywords_spoken']}, false alarms {m['false_alarms']}; "
                     f"wake-word frames computed {m['wakeword_frames'] - m['wakeword_frames_skipped']}/{m['wakeword_frames']}")
        lines.append(f"             detection latency ms: p50 {lat['p50']}, max {lat['max']} (target <= 150: {ok_lat}); "
                     f"parts (mean) {m['latency_parts_ms_mean']}")
        lines.append(f"             per inference ms: {m['latency_ms_per_inference']}")
    return "\n".join(lines)
