"""`edge-infer demo`: the whole product on the embedded default (ONNX Runtime CPU, zoo models, sample photos).

1. Per-model results on the real photos (ROS-free library calls).
2. The real face_pipeline_node under real rclpy, fed a few hundred 720p frames made from the photos
   (moving, scaling, 1-4 faces), with a summary of faces, emotions, output FPS and per-stage / end-to-end
   latency from the node's own messages, and one annotated debug image written to disk.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from edge_infer.pipeline.face_pipeline import FaceConfig, FacePipeline
from edge_infer.pipeline.frames import Frame
from edge_infer.pipeline.latency import latency_stats
from edge_infer.bench.camera_feed import CameraFeed
from edge_infer.ros.bench_harness import FaceBenchHarness
from edge_infer.ros.runner import rclpy_session, spinning
from edge_infer.samples.scenes import load_samples
from edge_infer.samples.speech import speech_16k, to_int16


def model_report(models_dir: Path, echo=print) -> None:
    """Part 1: what each face model says about each sample photo."""
    pipeline = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=False))
    for name, img in load_samples(models_dir).items():
        result = pipeline.process(Frame(img, "bgr8"))
        echo(f"  {name} ({img.shape[1]}x{img.shape[0]}): {len(result.faces)} face(s); "
             + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timer.stages.items()))
        for f in result.faces:
            x1, y1, x2, y2 = f.box
            inside = np.mean((f.mesh[:, 0] >= x1) & (f.mesh[:, 0] <= x2) & (f.mesh[:, 1] >= y1) & (f.mesh[:, 1] <= y2))
            echo(f"    face_detector: box ({x1:.0f},{y1:.0f})-({x2:.0f},{y2:.0f}) score {f.score:.4f}")
            echo(f"    emotion: {f.emotion} ({f.emotion_scores[f.emotion]:.2f}); "
                 + " ".join(f"{k}={v:.2f}" for k, v in sorted(f.emotion_scores.items(), key=lambda kv: -kv[1])[:3]))
            echo(f"    face_mesh: {len(f.mesh)} points, {inside:.0%} inside the box, confidence {f.mesh_confidence:.3f}")


def run_face_demo(models_dir: Path, out_dir: Path, n_frames: int = 300, rate_hz: float = 15.0, echo=print,
                  camera: str = "subprocess") -> dict:
    """Part 2: a camera process (best effort, like camera drivers, with the shipped DDS profile) publishes
    frames into the real node; summarise what comes out and what the transport lost."""
    from edge_infer.launch_description import node_environment
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from edge_infer.ros.face_node import FacePipelineNode
    from edge_infer.ros.image_conversion import msg_to_image

    diags: list[DiagnosticArray] = []
    debug: dict = {}
    faces_by_stamp: dict[int, int] = {}

    def on_debug(msg: Image) -> None:  # keep the annotated frame with the most faces
        n = faces_by_stamp.get(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, 0)
        if n > debug.get("faces", 0):
            debug.update(faces=n, image=msg_to_image(msg).bgr().copy())

    def face_node() -> list:
        return [FacePipelineNode(parameter_overrides=[Parameter("models_dir", value=str(models_dir))])]

    feed = CameraFeed(models_dir=str(models_dir), frames=n_frames)  # the demo sequence: 1, 2 and 4 faces
    camera_env = {**os.environ, **node_environment({})}  # the camera process uses the large-data profile
    with FaceBenchHarness(feed, nodes_under_test=face_node, camera=camera, camera_env=camera_env,
                          node_name="edge_infer_demo",
                          on_output=lambda r: faces_by_stamp.__setitem__(r.stamp_ns, len(r.doc["faces"]))) as h:
        h.node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        h.node.create_subscription(Image, "/face_pipeline/debug_image", on_debug, qos_profile_sensor_data)
        h.wait_connected()
        echo(f"  publishing {n_frames} frames of 1280x720 rgb8 at {rate_hz:g} Hz to {h.image_topic} ...")
        match = h.run(n_frames, rate_hz, drain_s=1.5)
        deadline = time.monotonic() + 1.5  # at least one diagnostics period
        while not diags and time.monotonic() < deadline:
            time.sleep(0.05)
        node_stats = h.nodes_under_test[0].stats

    parsed = [r.doc for _, r in match.pairs]
    faces_per_frame = Counter(len(p["faces"]) for p in parsed)
    emotions = Counter(f["emotion"]["label"] for p in parsed for f in p["faces"] if f["emotion"])
    stages = sorted({k for p in parsed for k in p["latency_ms"]})
    latency = {k: latency_stats([p["latency_ms"][k] for p in parsed if k in p["latency_ms"]]).as_dict() for k in stages}
    out_dir.mkdir(parents=True, exist_ok=True)
    image_path = out_dir / "demo_annotated.png"
    if "image" in debug:
        cv2.imwrite(str(image_path), debug["image"])
    return {
        "frames_sent": len(match.sent), "results_received": len(parsed), "dropped_stale": node_stats.dropped,
        "frames_received_by_node": node_stats.inputs, "lost_in_transport": node_stats.lost,
        "camera": "another process, best effort (sensor QoS), DDS profile" if camera == "subprocess" else "this process, best effort",
        "bad_messages": dict(node_stats.bad), "output_fps": round(match.output_rate_hz, 2),
        "faces_per_frame": dict(sorted(faces_per_frame.items())), "emotions": dict(emotions.most_common()),
        "detector_ran_on": sum(p["detector_ran"] for p in parsed), "latency_ms": latency,
        "harness_latency_ms": latency_stats(match.latencies_ms).as_dict(),
        "diagnostics_messages": len(diags), "annotated_image": str(image_path) if "image" in debug else None,
        "backend": parsed[0]["backend"] if parsed else None,
    }


def print_face_summary(s: dict, echo=print) -> None:
    echo(f"  camera: {s['camera']}; the node received {s['frames_received_by_node']}/{s['frames_sent']} frames, "
         f"{s['lost_in_transport']} lost in transport (DDS)")
    echo(f"  received {s['results_received']}/{s['frames_sent']} results ({s['dropped_stale']} stale frames dropped "
         f"by design, bad {s['bad_messages'] or 0}); output {s['output_fps']} FPS on {s['backend']}")
    echo(f"  faces per frame: {s['faces_per_frame']}; detector ran on {s['detector_ran_on']} frames (tracking between)")
    echo(f"  emotions: {s['emotions']}")
    echo("  latency ms        p50      p99")
    for k, v in s["latency_ms"].items():
        echo(f"    {k:<14} {v['p50']:>7.1f}  {v['p99']:>7.1f}")
    h = s["harness_latency_ms"]
    echo(f"    {'send->result':<14} {h['p50']:>7.1f}  {h['p99']:>7.1f}   (measured by the bench harness)")
    echo(f"  /diagnostics messages: {s['diagnostics_messages']}; annotated image: {s['annotated_image']}")


def run_audio_demo(models_dir: Path, echo=print) -> dict:
    """Part 3: a microphone process (``edge-infer bag play`` of synthesized speech, best effort like microphone
    drivers) -> the real audio_node ("please open the door ... hey jarvis")."""
    import tempfile

    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool, String

    from edge_infer.ros.audio_node import AudioNode
    from edge_infer.ros.driver_check import play_bag_process, speech_bag

    events: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, rclpy_session():
        bag = speech_bag(Path(tmp))
        node = AudioNode(parameter_overrides=[Parameter("models_dir", value=str(models_dir))])
        client = Node("edge_infer_audio_demo")
        client.create_subscription(Bool, "audio_node/vad", lambda m: events.append(("vad", str(m.data))), 50)
        client.create_subscription(String, "audio_node/speech_segments",
                                   lambda m: events.append(("speech_segment", m.data)), 50)
        client.create_subscription(String, "audio_node/wake_word", lambda m: events.append(("wake_word", m.data)), 50)
        with spinning(node, client):
            echo("  a microphone process plays synthesized speech (flite) to /audio, best effort, real time")
            played = play_bag_process(bag, qos="sensor")
            if played.returncode != 0:
                raise RuntimeError(f"microphone process failed: {played.stderr[-1000:]}")
            time.sleep(0.5)
            rtf = node.pipeline.real_time_factor
            st = node.pipeline.stream.stats
            received, lost, qos = st.chunks, st.lost_chunks, node.input.describe()
    for kind, text in events:
        if kind == "vad":
            echo(f"    ~/vad             speaking={text}")
        else:
            d = json.loads(text)
            if kind == "wake_word":
                echo(f"    ~/wake_word       '{d['keyword']}' score {d['score']:.2f} at {d['stream_time']:.2f} s")
            else:
                echo(f"    ~/speech_segments {d['start_time']:.2f}-{d['end_time']:.2f} s ({d['duration']:.2f} s)")
    wake = [e for e in events if e[0] == "wake_word"]
    echo(f"  wake words: {len(wake)}; real-time factor {rtf:.3f}; chunks received {received}, lost in transport "
         f"{lost}; node input {qos}")
    return {"events": len(events), "wake_words": len(wake), "real_time_factor": rtf, "chunks_received": received,
            "chunks_lost_in_transport": lost, "input_qos": qos}
