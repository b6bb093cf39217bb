"""face_pipeline_node under real rclpy: real messages in, validated JSON, debug image and diagnostics out."""

from __future__ import annotations

import json
import time

import cv2
import jsonschema
import numpy as np
import pytest

from remote_publisher import RemotePublishers, driver_env

ASTRONAUT_FACE = (170, 50, 280, 190)


@pytest.fixture(scope="module")
def graph(ros, models_dir):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from edge_infer.ros.face_node import FacePipelineNode
    from edge_infer.ros.runner import spinning

    node = FacePipelineNode(parameter_overrides=[
        Parameter("models_dir", value=str(models_dir)), Parameter("subscribe_compressed", value=True),
        Parameter("tracking", value=False), Parameter("diagnostics_period_s", value=0.2)])
    client = Node("face_node_test_client")
    g = {"faces": [], "diags": [], "debug": [], "node": node, "client": client}
    client.create_subscription(String, "face_pipeline/faces", lambda m: g["faces"].append(json.loads(m.data)), 50)
    client.create_subscription(DiagnosticArray, "/diagnostics", g["diags"].append, 50)
    # the camera driver is another process (best effort, sensor QoS, like usb_cam / v4l2_camera)
    with spinning(node, client), RemotePublishers({"/image": ("sensor_msgs/msg/Image", "sensor"),
                                                   "/image/compressed": ("sensor_msgs/msg/CompressedImage", "sensor")},
                                                  env=driver_env()) as drivers:
        g["image_pub"], g["compressed_pub"] = drivers["/image"], drivers["/image/compressed"]
        yield g


def _wait_for(cond, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def _send_and_wait(g, pub_name, msg, timeout=10.0) -> dict:
    n = len(g["faces"])
    g[pub_name].publish(msg)
    deadline = time.monotonic() + timeout
    while len(g["faces"]) == n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(g["faces"]) > n, "no ~/faces result within the timeout"
    return g["faces"][-1]


def _check_astronaut(doc: dict, stamp) -> None:
    from edge_infer.pipeline.face_results import JSON_SCHEMA

    jsonschema.validate(doc, JSON_SCHEMA)
    assert doc["header"]["stamp"] == {"sec": stamp.sec, "nanosec": stamp.nanosec}
    assert doc["header"]["frame_id"] == "cam"
    assert len(doc["faces"]) == 1
    f = doc["faces"][0]
    x1, y1, x2, y2 = f["bbox"]
    assert x1 >= ASTRONAUT_FACE[0] and y1 >= ASTRONAUT_FACE[1] and x2 <= ASTRONAUT_FACE[2] and y2 <= ASTRONAUT_FACE[3]
    assert f["emotion"]["label"] in f["emotion"]["scores"]
    pts = np.array(f["mesh"]["points"])
    inside = (pts[:, 0] >= x1 - 10) & (pts[:, 0] <= x2 + 10) & (pts[:, 1] >= y1 - 10) & (pts[:, 1] <= y2 + 10)
    assert pts.shape == (468, 3) and inside.mean() > 0.95
    assert {"convert", "detector", "mesh", "emotion", "end_to_end", "transport", "queued"} <= set(doc["latency_ms"])
    lat = doc["latency_ms"]  # transport (stamp -> callback) + queued + processing never exceed end to end
    assert min(lat["transport"], lat["queued"]) >= 0
    assert lat["transport"] + lat["queued"] + lat["processing"] <= lat["end_to_end"] + 0.5


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "bgra8", "mono8"])
def test_raw_image_gives_the_face(graph, astronaut_rgb, encoding):
    from edge_infer.ros.image_conversion import image_to_msg

    conv = {"rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "bgra8": cv2.COLOR_RGB2BGRA, "mono8": cv2.COLOR_RGB2GRAY}[encoding]
    img = astronaut_rgb if conv is None else cv2.cvtColor(astronaut_rgb, conv)
    stamp = graph["client"].get_clock().now().to_msg()
    doc = _send_and_wait(graph, "image_pub", image_to_msg(img, encoding, "cam", stamp))
    if encoding == "mono8":  # gray input: the face is still found; colour-dependent parts may differ
        assert len(doc["faces"]) == 1
    else:
        _check_astronaut(doc, stamp)


def test_output_publishers_add_no_event_handlers(graph, astronaut_rgb):
    """Output publishers are made without rclpy's default event handlers (ros/output_publisher.py): each handler
    is a waitable the executor visits on every wake-up, and the face node has 5 publishers per tracked face.
    What remains: the two internal publishers' (rosout, parameter events) and the input subscriptions' own."""
    from edge_infer.ros.image_conversion import image_to_msg

    node = graph["node"]
    _send_and_wait(graph, "image_pub", image_to_msg(astronaut_rgb, "rgb8", "cam", graph["client"].get_clock().now().to_msg()))
    publishers, handlers = list(node.publishers), list(node.waitables)
    ours = len(publishers) - 2  # rosout and /parameter_events are rclpy's
    assert ours >= 10  # ~/detections, label info, ~/faces, diagnostics, debug, /humans/faces/tracked + 5 for the face
    assert len(node.inputs) == 2  # image and image/compressed, each with at most 4 handlers of its own
    assert len(handlers) <= 2 * 2 + 4 * len(node.inputs), f"{len(handlers)} event handlers for {ours} output publishers"


def test_compressed_image_gives_the_face(graph, astronaut_rgb):
    from edge_infer.ros.image_conversion import image_to_compressed_msg

    stamp = graph["client"].get_clock().now().to_msg()
    msg = image_to_compressed_msg(cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR), "jpeg", "cam", stamp)
    _check_astronaut(_send_and_wait(graph, "compressed_pub", msg), stamp)


def test_multi_face_frame_gives_all_faces(graph, models_dir):
    from edge_infer.ros.image_conversion import image_to_msg
    from edge_infer.samples.scenes import load_samples, scene

    frame = scene(load_samples(models_dir), 0, n_faces=4)
    doc = _send_and_wait(graph, "image_pub", image_to_msg(frame, "bgr8", "cam", graph["client"].get_clock().now().to_msg()))
    assert len(doc["faces"]) == 4 and all(f["mesh"] and f["emotion"] for f in doc["faces"])


def test_bad_inputs_are_survived_and_counted(graph, astronaut_rgb):
    from sensor_msgs.msg import CompressedImage, Image

    from edge_infer.ros.image_conversion import image_to_msg

    node = graph["node"]
    before = dict(node.stats.bad)
    bad = []
    m = Image(height=4, width=4, encoding="32FC1", step=16, data=b"\x00" * 64)
    bad.append(("image_pub", m, "unsupported_encoding"))
    m = Image(height=4, width=5, encoding="yuv422", step=10, data=b"\x00" * 40)
    bad.append(("image_pub", m, "odd_width"))
    m = Image(height=4, width=4, encoding="rgb8", step=12, data=b"\x00" * 47)
    bad.append(("image_pub", m, "bad_length"))
    m = Image(height=0, width=0, encoding="rgb8", step=0, data=b"")
    bad.append(("image_pub", m, "zero_size"))
    bad.append(("compressed_pub", CompressedImage(format="jpeg", data=b"\xff\xd8garbage"), "corrupt_compressed"))
    now = graph["client"].get_clock().now()
    graph["image_pub"].publish(image_to_msg(astronaut_rgb, "rgb8", "cam", now.to_msg()))
    time.sleep(0.3)
    old = Image(height=4, width=4, encoding="rgb8", step=12, data=b"\x00" * 48)
    old.header.stamp.sec = now.to_msg().sec - 30  # 30 s older than the newest frame
    bad.append(("image_pub", old, "stale_stamp"))
    for pub, msg, reason in bad:
        count = node.stats.bad[reason]
        graph[pub].publish(msg)
        _wait_for(lambda: node.stats.bad[reason] > count)  # one at a time: a newer frame would replace it
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(node.stats.bad[r] <= before.get(r, 0) for _, _, r in bad):
        time.sleep(0.05)
    for _, _, reason in bad:
        assert node.stats.bad[reason] > before.get(reason, 0), reason
    # and the node still works afterwards
    stamp = graph["client"].get_clock().now().to_msg()
    _check_astronaut(_send_and_wait(graph, "image_pub", image_to_msg(astronaut_rgb, "rgb8", "cam", stamp)), stamp)


def test_diagnostics_carry_rates_latency_drops_and_backend(graph, astronaut_rgb):
    time.sleep(0.5)
    status = [s for d in graph["diags"] for s in d.status if "face pipeline" in s.name]
    assert status, "no face pipeline diagnostics"
    values = {kv.key: kv.value for kv in status[-1].values}
    for key in ("input_rate_hz", "output_rate_hz", "dropped_stale", "bad_messages", "backend", "models",
                "end_to_end_p50_ms", "end_to_end_p99_ms", "detector_p50_ms", "detector_p99_ms", "mesh_p99_ms",
                "emotion_p99_ms", "processing_p99_ms"):
        assert key in values, key
    assert values["backend"].startswith("onnxruntime")
    assert float(values["end_to_end_p50_ms"]) > 0 and int(values["bad_messages"]) >= 5


def test_slow_consumer_drops_stale_frames_instead_of_queueing(graph, astronaut_rgb):
    from edge_infer.ros.image_conversion import image_to_msg

    node = graph["node"]
    dropped, outputs = node.stats.dropped, node.stats.outputs
    for _ in range(30):  # far faster than the pipeline can process
        graph["image_pub"].publish(image_to_msg(astronaut_rgb, "rgb8", "cam", graph["client"].get_clock().now().to_msg()))
        time.sleep(0.002)
    time.sleep(2.0)
    processed = node.stats.outputs - outputs
    assert node.stats.dropped > dropped and processed < 30


def test_rebuild_engines_service_answers_on_onnxruntime(graph):
    from std_srvs.srv import Trigger

    cli = graph["client"].create_client(Trigger, "face_pipeline/rebuild_engines")
    assert cli.wait_for_service(timeout_sec=5)
    future = cli.call_async(Trigger.Request())
    deadline = time.monotonic() + 5
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert future.done()
    resp = future.result()
    assert resp.success is False and "onnxruntime" in resp.message and "no TensorRT engines" in resp.message
