"""`edge-infer demo`: the whole product on the embedded default (ONNX Runtime CPU, zoo models, sample photos).

1. Per-model results on the real photos (ROS-free library calls).
2. The real face_pipeline_node under real rclpy, fed a few hundred 720p frames made from the photos
   (moving, scaling, 1-4 faces), with a summary of faces, emotions, output FPS and per-stage / end-to-end
   latency from the node's own messages, and one annotated debug image written to disk.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from edge_infer.pipeline.face_pipeline import FaceConfig, FacePipeline
from edge_infer.pipeline.frames import Frame
from edge_infer.pipeline.latency import latency_stats
from edge_infer.samples.scenes import demo_sequence, load_samples
from edge_infer.ros.runner import spinning


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


def run_face_demo(models_dir: Path, out_dir: Path, n_frames: int = 300, rate_hz: float = 15.0, echo=print) -> dict:
    """Part 2: publish frames into the real node and summarise what comes out."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from edge_infer.ros.face_node import FacePipelineNode
    from edge_infer.ros.image_conversion import image_to_msg, msg_to_image

    samples = load_samples(models_dir)
    frames = list(demo_sequence(samples, n_frames))
    rclpy.init()
    node = FacePipelineNode(parameter_overrides=[Parameter("models_dir", value=str(models_dir))])
    client = Node("edge_infer_demo")
    results: list[dict] = []
    diags: list[DiagnosticArray] = []
    debug: dict = {}

    faces_by_stamp: dict[tuple[int, int], int] = {}

    def on_faces(msg: String) -> None:
        results.append({"raw": msg.data})
        doc = json.loads(msg.data)
        faces_by_stamp[(doc["header"]["stamp"]["sec"], doc["header"]["stamp"]["nanosec"])] = len(doc["faces"])

    def on_debug(msg: Image) -> None:  # keep the annotated frame with the most faces
        n = faces_by_stamp.get((msg.header.stamp.sec, msg.header.stamp.nanosec), 0)
        if n > debug.get("faces", 0):
            debug.update(faces=n, image=msg_to_image(msg).bgr().copy())

    client.create_subscription(String, "face_pipeline/faces", on_faces, 50)
    client.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    client.create_subscription(Image, "face_pipeline/debug_image", on_debug, qos_profile_sensor_data)
    pub = client.create_publisher(Image, "image", qos_profile_sensor_data)
    try:
        with spinning(node, client, matched_publisher=pub):
            echo(f"  publishing {n_frames} frames of 1280x720 rgb8 at {rate_hz:g} Hz to /image ...")
            t_start = time.monotonic()
            for i, bgr in enumerate(frames):
                msg = image_to_msg(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "rgb8", "camera",
                                   client.get_clock().now().to_msg())
                pub.publish(msg)
                time.sleep(max(0.0, t_start + (i + 1) / rate_hz - time.monotonic()))
            time.sleep(1.5)  # let the last frame and one more diagnostics period through
            elapsed = time.monotonic() - t_start
    finally:
        rclpy.try_shutdown()
    node_stats = node.stats

    parsed = [json.loads(r["raw"]) for r in results]
    faces_per_frame = Counter(len(p["faces"]) for p in parsed)
    emotions = Counter(f["emotion"]["label"] for p in parsed for f in p["faces"] if f["emotion"])
    stages = sorted({k for p in parsed for k in p["latency_ms"]})
    latency = {k: latency_stats([p["latency_ms"][k] for p in parsed if k in p["latency_ms"]]).as_dict() for k in stages}
    out_dir.mkdir(parents=True, exist_ok=True)
    image_path = out_dir / "demo_annotated.png"
    if "image" in debug:
        cv2.imwrite(str(image_path), debug["image"])
    summary = {
        "frames_sent": n_frames, "results_received": len(parsed), "dropped_stale": node_stats.dropped,
        "bad_messages": dict(node_stats.bad), "output_fps": round(len(parsed) / elapsed, 2),
        "faces_per_frame": dict(sorted(faces_per_frame.items())), "emotions": dict(emotions.most_common()),
        "detector_ran_on": sum(p["detector_ran"] for p in parsed), "latency_ms": latency,
        "diagnostics_messages": len(diags), "annotated_image": str(image_path) if "image" in debug else None,
        "backend": parsed[0]["backend"] if parsed else None,
    }
    return summary


def print_face_summary(s: dict, echo=print) -> None:
    echo(f"  received {s['results_received']}/{s['frames_sent']} results ({s['dropped_stale']} stale frames dropped "
         f"by design, bad {s['bad_messages'] or 0}); output {s['output_fps']} FPS on {s['backend']}")
    echo(f"  faces per frame: {s['faces_per_frame']}; detector ran on {s['detector_ran_on']} frames (tracking between)")
    echo(f"  emotions: {s['emotions']}")
    echo("  latency ms        p50      p99")
    for k, v in s["latency_ms"].items():
        echo(f"    {k:<14} {v['p50']:>7.1f}  {v['p99']:>7.1f}")
    echo(f"  /diagnostics messages: {s['diagnostics_messages']}; annotated image: {s['annotated_image']}")


def run_audio_demo(models_dir: Path, echo=print) -> dict:
    """Part 3: a synthesized utterance ("please open the door ... hey jarvis") through the real audio_node."""
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool, Int16MultiArray, String

    from edge_infer.bench.audio import speech_16k
    from edge_infer.ros.audio_node import AudioNode

    silence = np.zeros(16000, np.float32)
    parts = [silence, speech_16k("please open the door"), silence, speech_16k("hey jarvis"), silence, silence]
    audio = np.clip(np.concatenate(parts) * 0.7 * 32767, -32768, 32767).astype(np.int16)
    rclpy.init()
    node = AudioNode(parameter_overrides=[Parameter("models_dir", value=str(models_dir))])
    client = Node("edge_infer_audio_demo")
    events: list[tuple[str, str]] = []
    client.create_subscription(Bool, "audio_node/vad", lambda m: events.append(("vad", str(m.data))), 50)
    client.create_subscription(String, "audio_node/speech_segments", lambda m: events.append(("speech_segment", m.data)), 50)
    client.create_subscription(String, "audio_node/wake_word", lambda m: events.append(("wake_word", m.data)), 50)
    pub = client.create_publisher(Int16MultiArray, "audio", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    try:
        with spinning(node, client, matched_publisher=pub):
            echo(f"  playing {len(audio) / 16000:.1f} s of synthesized speech (flite) to /audio in 100 ms chunks, real time")
            t0 = time.monotonic()
            for i in range(0, len(audio), 1600):
                msg = Int16MultiArray()
                msg.data = audio[i:i + 1600].tolist()
                pub.publish(msg)
                time.sleep(max(0.0, t0 + (i + 1600) / 16000 - time.monotonic()))
            time.sleep(0.5)
            rtf = node.pipeline.real_time_factor
    finally:
        rclpy.try_shutdown()
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
    echo(f"  wake words: {len(wake)}; real-time factor {rtf:.3f}")
    return {"events": len(events), "wake_words": len(wake), "real_time_factor": rtf}
