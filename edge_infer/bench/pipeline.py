"""`edge-infer bench pipeline`: what the pipeline costs on top of its models, in ratios from one run.

The machine is noisy, so every comparison is interleaved frame by frame (A, B, A, B...) on the same
frames and reported as a ratio of medians rather than as absolute times from separate runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from edge_infer.models import face_mesh, retinaface
from edge_infer.models import emotion as emotion_model
from edge_infer.samples.scenes import load_samples, scene
from edge_infer.pipeline.face_pipeline import FaceConfig, FacePipeline
from edge_infer.pipeline.frames import Frame

TARGETS = {"pipeline_over_raw_throughput": 0.9, "e2e_p50_minus_raw_ms": 3.0, "six_over_one_face_cost": 2.5}


def _raw_inputs(pipeline: FacePipeline, frame: Frame) -> list[tuple]:
    """The exact tensors the pipeline feeds each model for this frame, prepared once outside the timing."""
    res = pipeline.process(frame)
    tensor, _ = retinaface.prepare_input(frame.rgb(), pipeline.config.detector_size)
    rois = [face_mesh.roi_from_detection(f.box, f.keypoints) for f in res.faces]
    calls = [(pipeline.detector, {"input": tensor})]
    if res.faces:
        calls.append((pipeline.mesh, {"image": face_mesh.crop_batch(frame.rgb(), rois)}))
        calls.append((pipeline.emotion, {"input": emotion_model.crop_faces(frame.gray(), np.stack([f.box for f in res.faces]))}))
    return calls


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def _interleaved(a: Callable[[int], object], b: Callable[[int], object], n: int) -> tuple[np.ndarray, np.ndarray]:
    ta, tb = [], []
    for i in range(n):
        ta.append(_time(lambda: a(i)))
        tb.append(_time(lambda: b(i)))
    return np.array(ta), np.array(tb)


def run_pipeline_bench(models_dir: Path, frames: int = 40, backend: str = "onnxruntime",
                       progress: bool = True, node_e2e: Callable[[Path, int], dict] | None = None,
                       **backend_options) -> dict:
    """Ratios of the pipeline against its raw models; ``node_e2e`` (``edge_infer.ros.bench_harness.node_end_to_end``)
    adds the end-to-end latency through the real node (kept out of here: this module never imports rclpy)."""
    from tqdm import tqdm

    samples = load_samples(models_dir)
    no_track = FacePipeline.from_models_dir(models_dir, backend, FaceConfig(tracking=False), **backend_options)
    track = FacePipeline.from_models_dir(models_dir, backend, FaceConfig(tracking=True), **backend_options)
    steps = tqdm(total=4, desc="bench pipeline", disable=not progress, leave=False)
    out: dict = {"backend": no_track.backend_name, "frames": frames, "frame_size": [1280, 720]}

    for n_faces in (1, 6):
        fr = [Frame(scene(samples, i, n_faces), "bgr8") for i in range(frames)]
        raw = [_raw_inputs(no_track, f) for f in fr]
        t_pipe, t_raw = _interleaved(lambda i: no_track.process(fr[i]),
                                     lambda i: [be.run(feeds) for be, feeds in raw[i]], frames)
        out[f"{n_faces}_face"] = {"pipeline_ms_p50": float(np.median(t_pipe)), "raw_models_ms_p50": float(np.median(t_raw)),
                                  "faces_found": len(no_track.process(fr[0]).faces)}
        steps.update()
    one, six = out["1_face"], out["6_face"]
    out["pipeline_over_raw_throughput"] = one["raw_models_ms_p50"] / one["pipeline_ms_p50"]
    out["six_over_one_face_cost"] = six["pipeline_ms_p50"] / one["pipeline_ms_p50"]

    steady = [Frame(scene(samples, i), "bgr8") for i in range(frames)]
    t_on, t_off = _interleaved(lambda i: track.process(steady[i]), lambda i: no_track.process(steady[i]), frames)
    out["tracking"] = {"on_ms_p50": float(np.median(t_on)), "off_ms_p50": float(np.median(t_off)),
                       "on_over_off_throughput": float(np.median(t_off) / np.median(t_on))}
    steps.update()
    if node_e2e is not None:
        out["e2e"] = node_e2e(models_dir, frames)
        out["e2e_p50_minus_raw_ms"] = out["e2e"]["end_to_end_p50_ms"] - out["e2e"]["raw_models_p50_ms"]
    steps.update()
    steps.close()
    out["targets"] = {k: {"target": v, "measured": round(out[k], 3),
                          "met": out[k] >= v if k == "pipeline_over_raw_throughput" else out[k] <= v}
                      for k, v in TARGETS.items() if k in out}
    return out


def print_pipeline_bench(r: dict, echo=print) -> None:
    one, six, tr = r["1_face"], r["6_face"], r["tracking"]
    echo(f"bench pipeline ({r['backend']}, {r['frames']} frames of 1280x720 per case, interleaved)")
    echo(f"  1 face : pipeline {one['pipeline_ms_p50']:.1f} ms, raw models {one['raw_models_ms_p50']:.1f} ms")
    echo(f"  6 faces: pipeline {six['pipeline_ms_p50']:.1f} ms, raw models {six['raw_models_ms_p50']:.1f} ms "
         f"({six['faces_found']} faces found)")
    echo(f"  tracking on {tr['on_ms_p50']:.1f} ms / off {tr['off_ms_p50']:.1f} ms per frame "
         f"-> on/off throughput {tr['on_over_off_throughput']:.2f}x")
    if "e2e" in r:
        echo(f"  node end-to-end p50 {r['e2e']['end_to_end_p50_ms']:.1f} ms, raw models {r['e2e']['raw_models_p50_ms']:.1f} ms")
    for k, t in r["targets"].items():
        cmp = ">=" if k == "pipeline_over_raw_throughput" else "<="
        echo(f"  {k:<30} {t['measured']:>8.3f}  (target {cmp} {t['target']})  {'met' if t['met'] else 'NOT met'}")
