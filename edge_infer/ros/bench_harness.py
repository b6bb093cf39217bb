"""End-to-end latency of the real face_pipeline_node (publish -> ~/faces) for `edge-infer bench pipeline`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_infer.samples.scenes import scene


def measure_node_e2e(models_dir: Path, samples, frames: int) -> dict:
    """End-to-end latency through the real node (publish -> ~/faces) vs the raw model time of the same frames.

    Frames are sent one at a time (next one after the result), so the number is latency, not queueing.
    """
    import json
    import threading

    import cv2
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from edge_infer.ros.face_node import FacePipelineNode
    from edge_infer.ros.image_conversion import image_to_msg
    from edge_infer.ros.runner import spinning

    own_init = not rclpy.ok()
    if own_init:
        rclpy.init()
    node = FacePipelineNode(parameter_overrides=[Parameter("models_dir", value=str(models_dir)),
                                                 Parameter("tracking", value=False)])
    client = Node("bench_pipeline_client")
    got: list[dict] = []
    arrived = threading.Event()

    def on_faces(m: String) -> None:
        got.append(json.loads(m.data))
        arrived.set()

    client.create_subscription(String, "face_pipeline/faces", on_faces, 10)
    pub = client.create_publisher(Image, "image", qos_profile_sensor_data)
    try:
        with spinning(node, client, matched_publisher=pub):
            for i in range(frames):
                rgb = cv2.cvtColor(scene(samples, i), cv2.COLOR_BGR2RGB)
                arrived.clear()
                pub.publish(image_to_msg(rgb, "rgb8", "camera", client.get_clock().now().to_msg()))
                arrived.wait(5.0)
    finally:
        if own_init:
            rclpy.try_shutdown()
    e2e = [g["latency_ms"]["end_to_end"] for g in got[1:]]  # first frame warms up
    raw = [g["latency_ms"]["detector"] + g["latency_ms"].get("mesh", 0) + g["latency_ms"].get("emotion", 0) for g in got[1:]]
    return {"frames": len(got), "end_to_end_p50_ms": float(np.median(e2e)), "raw_models_p50_ms": float(np.median(raw))}
