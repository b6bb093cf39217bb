"""Typed face outputs (edge_infer.ros.typed): face ids, vision_msgs detections, ROS4HRI topics and the JSON
mirror, received by a consumer in another process (test/typed_listener.py) and recorded into a bag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from edge_infer.pipeline.face_pipeline import Face, FaceConfig, FaceFrameResult, FacePipeline
from edge_infer.pipeline.face_results import JSON_SCHEMA, face_result_to_dict
from edge_infer.pipeline.frames import Frame
from edge_infer.pipeline.latency import FrameTimer
from edge_infer.samples.scenes import load_samples, scene

from conftest import REPO_ROOT, require_ros_module

LISTENER = Path(__file__).with_name("typed_listener.py")
PER_FACE = ("roi", "landmarks", "expression", "cropped", "aligned")


@pytest.fixture(scope="module")
def samples(models_dir):
    return load_samples(models_dir)


def _blank() -> Frame:
    return Frame(np.full((720, 1280, 3), 40, np.uint8), "bgr8")


# ------------------------------------------------------------------------------------------ ids (no ROS)
@pytest.mark.parametrize("tracking", [True, False], ids=["tracking", "detect_every_frame"])
def test_ids_persist_while_a_face_moves_and_change_when_it_comes_back(models_dir, samples, tracking):
    pipeline = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=tracking))
    ids = []
    for i in range(0, 48, 2):  # the astronaut moving and scaling across the frame
        faces = pipeline.process(Frame(scene(samples, i, 1), "bgr8")).faces
        assert len(faces) == 1
        ids.append(faces[0].id)
    assert len(set(ids)) == 1 and ids[0]
    assert pipeline.process(_blank()).faces == []  # the face leaves
    back = pipeline.process(Frame(scene(samples, 48, 1), "bgr8")).faces
    assert len(back) == 1 and back[0].id != ids[0]
    doc = face_result_to_dict(pipeline.process(Frame(scene(samples, 50, 1), "bgr8")), 1, 2, "cam", "ort", {})
    jsonschema.validate(doc, JSON_SCHEMA)
    assert doc["faces"][0]["id"] == back[0].id  # the JSON mirror carries the same id (optional field, v1)


def test_group_ids_are_distinct_and_stable(models_dir, samples):
    pipeline = FacePipeline.from_models_dir(models_dir)
    sets = [sorted(f.id for f in pipeline.process(Frame(scene(samples, i, 6), "bgr8")).faces) for i in range(14)]
    assert len(sets[0]) == 6 and len(set(sets[0])) == 6
    assert all(s == sets[0] for s in sets)  # across tracked frames and a scheduled re-detection (frame 10)


# ------------------------------------------------------------------------------------------ messages
@pytest.fixture(scope="module")
def group(models_dir, samples):
    pipeline = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=False))
    frame = Frame(scene(samples, 0, 6), "bgr8")
    return frame, pipeline.process(frame)


def _header(sec: int, nanosec: int = 0, frame_id: str = "cam"):
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def test_detections_msg_holds_every_face_in_pixels(group):
    require_ros_module("vision_msgs")
    from edge_infer.ros.typed.vision import detections_msg

    _, result = group
    header = _header(12, 34)
    msg = detections_msg(header, result)
    assert msg.header == header and len(msg.detections) == len(result.faces) == 6
    for det, face in zip(msg.detections, result.faces):
        x1, y1, x2, y2 = face.box
        assert det.header == header and det.id == face.id
        assert det.bbox.center.position.x == pytest.approx((x1 + x2) / 2) and det.bbox.size_x == pytest.approx(x2 - x1)
        assert det.bbox.center.position.y == pytest.approx((y1 + y2) / 2) and det.bbox.size_y == pytest.approx(y2 - y1)
        assert det.results[0].hypothesis.class_id == "face"
        assert det.results[0].hypothesis.score == pytest.approx(face.score)


def test_hri_msgs_are_normalised_with_the_input_header(group):
    require_ros_module("hri_msgs")
    from hri_msgs.msg import Expression

    from edge_infer.ros.typed.hri import expression_msg, landmarks_msg, roi_msg

    _, result = group
    header = _header(5)
    face = result.faces[0]
    roi = roi_msg(header, face, result.width, result.height)
    assert roi.header == header and roi.xmin == pytest.approx(face.box[0] / 1280) and roi.ymax == pytest.approx(face.box[3] / 720)
    assert roi.c == pytest.approx(face.score)
    lm = landmarks_msg(header, face, result.width, result.height)
    pts = np.array([[p.x, p.y, p.c] for p in lm.landmarks])
    assert lm.header == header and (lm.width, lm.height) == (1280, 720) and pts.shape == (70, 3)
    assert (pts[:, 0] >= roi.xmin - 0.02).all() and (pts[:, 0] <= roi.xmax + 0.02).all()
    assert (pts[:, 1] >= roi.ymin - 0.02).all() and (pts[:, 1] <= roi.ymax + 0.03).all()
    assert np.allclose(pts[:, 2], face.mesh_confidence)
    ex = expression_msg(header, face)
    assert ex.header == header and ex.expression in {v for k, v in vars(Expression).items() if k.isupper() and isinstance(v, str)}
    assert ex.confidence == pytest.approx(max(face.emotion_scores.values())) and ex.valence == 0.0


# ------------------------------------------------------------------------------------------ publishers
def _synthetic(ids: list[str]) -> FaceFrameResult:
    faces = [Face(np.array([10 * k, 10, 10 * k + 50, 60], np.float32), 0.9, np.zeros((5, 2), np.float32), id=i)
             for k, i in enumerate(ids)]
    return FaceFrameResult(faces, 1280, 720, FrameTimer(), True)


def test_per_face_publishers_follow_the_ids_without_leaking(ros):
    require_ros_module("hri_msgs")
    from rclpy.node import Node

    from edge_infer.ros.typed.hri import Ros4HriOutputs

    node = Node("typed_leak_check")
    try:
        base = len(list(node.publishers))
        hri = Ros4HriOutputs(node, publish_cropped=True, namespace="/leak_check/faces")
        rng = np.random.default_rng(0)
        next_id, live = 0, []
        for frame in range(300):  # people coming and going: up to 8 at once, 300 frames, ~200 distinct ids
            live = [i for i in live if rng.random() > 0.15]
            while len(live) < 8 and rng.random() < 0.6:
                next_id += 1
                live.append(f"f{next_id:05d}")
            hri.publish(_header(frame), _synthetic(live))
            assert sorted(hri.face_ids) == sorted(live)
            assert len(list(node.publishers)) == base + 1 + 5 * len(live) == base + hri.publisher_count()
        assert next_id > 150
        hri.publish(_header(999), _synthetic([]))
        assert hri.face_ids == [] and len(list(node.publishers)) == base + 1  # only `tracked` left
        hri.close()
        assert len(list(node.publishers)) == base
    finally:
        node.destroy_node()


@pytest.mark.parametrize("missing", [["vision_msgs"], ["hri_msgs"], ["vision_msgs", "hri_msgs"]])
def test_missing_interface_packages_log_once_and_the_rest_publishes(ros, monkeypatch, group, missing):
    from rclpy.node import Node
    from std_msgs.msg import String

    from edge_infer.ros.runner import spinning, wait_for_subscriber
    from edge_infer.ros.typed import TypedFaceOutputs

    for package in missing:  # as on a robot without the apt package: `import <package>` fails
        monkeypatch.setitem(sys.modules, package, None)
        monkeypatch.setitem(sys.modules, f"{package}.msg", None)
    node, client = Node("typed_missing"), Node("typed_missing_client")
    warnings: list[str] = []

    class Logger:
        def warning(self, text, **_):
            warnings.append(text)

        info = debug = error = warning

    monkeypatch.setattr(node, "get_logger", lambda: Logger())
    outputs = TypedFaceOutputs(node, score_threshold=0.6)
    assert len(warnings) == 1
    for package in missing:
        assert package in warnings[0] and f"-{package.replace('_', '-')}" in warnings[0]
    assert ("~/detections" in warnings[0]) == ("vision_msgs" in missing)
    assert ("/humans/faces" in warnings[0]) == ("hri_msgs" in missing)
    assert (outputs.vision is None) == ("vision_msgs" in missing) and (outputs.hri is None) == ("hri_msgs" in missing)
    got: list[str] = []
    client.create_subscription(String, "/typed_missing/faces", lambda m: got.append(m.data), 10)
    frame, result = group
    with spinning(node, client, matched_publisher=outputs.json_pub):
        for k in range(3):
            outputs.publish(_header(k + 1), result, frame, "onnxruntime", {"processing": 1.0})
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(got) == 3 and len(json.loads(got[0])["faces"]) == 6
        assert len(warnings) == 1  # once, not per frame
        outputs.close()


def test_json_output_off_means_no_json_publisher(ros):
    from rclpy.node import Node

    from edge_infer.ros.typed import TypedFaceOutputs

    node = Node("typed_no_json")
    try:
        outputs = TypedFaceOutputs(node, json_output=False, ros4hri=False)
        assert outputs.json_pub is None and outputs.hri is None
        topics = {pub.topic_name for pub in node.publishers}
        assert "/typed_no_json/faces" not in topics and "/typed_no_json/detections" in topics
        outputs.close()
    finally:
        node.destroy_node()


def test_face_transforms_follow_the_head_poses_and_need_a_frame_id(ros, group):
    """face_<id> in the header's frame, gaze_<id> in face_<id>, one pair per face with a head pose, the input
    stamp; a face without a pose has none; an image without frame_id gets no frames (one warning)."""
    from rclpy.node import Node

    from edge_infer.pipeline.face_signals import FaceSignals
    from edge_infer.pipeline.head_pose import GAZE_IN_FACE
    from edge_infer.ros.typed.head_frames import HeadPoseFrames, face_transforms

    frame, result = group
    FaceSignals().annotate(result, 5.0)
    assert all(f.head_pose is not None and f.fatigue is not None for f in result.faces)
    transforms = face_transforms(_header(7, 8, "camera_optical"), result)
    assert len(transforms) == 12
    for face, (t_face, t_gaze) in zip(result.faces, zip(transforms[::2], transforms[1::2])):
        assert (t_face.header.frame_id, t_face.child_frame_id) == ("camera_optical", f"face_{face.id}")
        assert (t_gaze.header.frame_id, t_gaze.child_frame_id) == (f"face_{face.id}", f"gaze_{face.id}")
        assert (t_face.header.stamp.sec, t_face.header.stamp.nanosec) == (7, 8) == (t_gaze.header.stamp.sec,
                                                                                   t_gaze.header.stamp.nanosec)
        v, q = t_face.transform.translation, t_face.transform.rotation
        assert (v.x, v.y, v.z) == pytest.approx(face.head_pose.translation)
        assert (q.x, q.y, q.z, q.w) == pytest.approx(face.head_pose.rotation)
        r = t_gaze.transform.rotation
        assert (r.x, r.y, r.z, r.w) == pytest.approx(GAZE_IN_FACE)
    pose, result.faces[0].head_pose = result.faces[0].head_pose, None
    try:
        assert len(face_transforms(_header(7), result)) == 10  # no pose: no frames for that face
    finally:
        result.faces[0].head_pose = pose
    node = Node("typed_tf")
    warnings: list[str] = []
    try:
        frames = HeadPoseFrames(node)
        node.get_logger = lambda: type("L", (), {"warning": lambda self, text, **_: warnings.append(text)})()
        assert frames.publish(_header(9, 0, ""), result) == 0 and frames.publish(_header(10, 0, ""), result) == 0
        assert len(warnings) == 1 and "empty header.frame_id" in warnings[0]
        assert frames.publish(_header(11), result) == 12
        frames.close()
    finally:
        node.destroy_node()


# ------------------------------------------------------------------------------------------ another process
class ListenerProcess:
    """test/typed_listener.py in its own process; its JSON lines collected by a reader thread."""

    def __init__(self, node_name: str, bag: Path, log: Path) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, str(LISTENER), "--node", node_name, "--bag", str(bag)],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.wait_for(lambda: any(m["kind"] == "ready" for m in self.lines), 30), "listener did not start"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def wait_for(self, cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(cond())

    def of(self, kind: str, stamp: list[int] | None = None, topic: str | None = None) -> list[dict]:
        return [m for m in list(self.lines) if m["kind"] == kind and (stamp is None or m["header"]["stamp"] == stamp)
                and (topic is None or m["topic"] == topic)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        self.log.close()


def _complete(listener: ListenerProcess, stamp: list[int], n_faces: int) -> bool:
    """Everything of one input frame arrived: detections, JSON, tracked and every per-face topic of every id."""
    tracked = listener.of("tracked", stamp)
    if not (listener.of("detections", stamp) and tracked and len(tracked[0]["ids"]) == n_faces):
        return False
    if not [m for m in listener.of("faces") if m["stamp"] == stamp]:
        return False
    return all(listener.of(kind, stamp, f"/humans/faces/{i}/{kind}") for i in tracked[0]["ids"] for kind in PER_FACE)


def _seen_then_gone(listener: ListenerProcess, face_id: str) -> bool:
    """The listener's graph showed a publisher of the id's roi topic, and later none."""
    counts = [g["roi_publishers"] for g in listener.of("graph") if g["id"] == face_id]
    return bool(counts) and counts[-1] == 0 and any(c > 0 for c in counts)


def _publish_until_complete(outputs, pipeline, samples, listener, first_sec: int, n_frames: int = 80):
    """Publishes the 6-face scene (one frame per 0.1 s) until one frame's outputs all arrived; returns
    (stamp, result) of that frame. The first frames' per-face messages have no subscriber yet: the listener
    subscribes to a face's topics when its id appears in `tracked`, like any ROS4HRI consumer."""
    sent = []
    for i in range(n_frames):
        frame = Frame(scene(samples, i, 6), "bgr8")
        result = pipeline.process(frame)
        header = _header(first_sec + i, 1000 * i)
        outputs.publish(header, result, frame, "onnxruntime", {"processing": 1.0})
        sent.append(([header.stamp.sec, header.stamp.nanosec], result))
        time.sleep(0.1)
        done = [(s, r) for s, r in sent if _complete(listener, s, 6)]
        if done:
            return done[0]
    pytest.fail(f"no frame's typed outputs all arrived in another process; got kinds "
                f"{sorted({m['kind'] for m in listener.lines})}")


def test_typed_topics_reach_another_process_with_the_input_header_and_record_to_a_bag(ros, models_dir, samples, tmp_path):
    """Done-means of issue 13: a group photo with 6 faces, consumed from another process."""
    require_ros_module("vision_msgs")
    require_ros_module("hri_msgs")
    from rclpy.node import Node

    from edge_infer.bags.read import bag_info, iter_messages
    from edge_infer.ros.typed import TypedFaceOutputs

    pipeline = FacePipeline.from_models_dir(models_dir)
    node = Node("typed_pub")
    outputs = TypedFaceOutputs(node, score_threshold=pipeline.config.score_threshold)  # LabelInfo sent now, before
    listener = ListenerProcess("/typed_pub", tmp_path / "bag", tmp_path / "listener.log")  # anyone listens
    try:
        assert listener.wait_for(lambda: outputs.vision.detections_pub.get_subscription_count() > 0
                                 and outputs.json_pub.get_subscription_count() > 0, 20)
        stamp, result = _publish_until_complete(outputs, pipeline, samples, listener, first_sec=1000)

        # ~/detections: one array for the frame, 6 detections, the input header, the JSON mirror's boxes
        dets = listener.of("detections", stamp)
        assert len(dets) == 1 and dets[0]["header"] == {"stamp": stamp, "frame_id": "cam"}
        json_faces = {f["id"]: f["bbox"] for f in [m for m in listener.of("faces") if m["stamp"] == stamp][0]["faces"]}
        assert len(dets[0]["detections"]) == 6 and set(json_faces) == {d["id"] for d in dets[0]["detections"]}
        for d in dets[0]["detections"]:
            x1, y1, x2, y2 = json_faces[d["id"]]
            assert d["header"] == dets[0]["header"] and d["class_id"] == "face" and 0.6 <= d["score"] <= 1
            assert d["cx"] == pytest.approx((x1 + x2) / 2, abs=0.1) and d["sx"] == pytest.approx(x2 - x1, abs=0.1)
            assert d["cy"] == pytest.approx((y1 + y2) / 2, abs=0.1) and d["sy"] == pytest.approx(y2 - y1, abs=0.1)
        labels = listener.of("label_info")
        assert len(labels) == 1 and labels[0]["class_map"] == [[0, "face"]] and labels[0]["threshold"] == pytest.approx(0.6)

        # ROS4HRI: tracked lists the 6 ids; each id's messages carry the input stamp and agree with the result
        ids = listener.of("tracked", stamp)[0]["ids"]
        assert sorted(ids) == sorted(json_faces) and len(set(ids)) == 6
        by_id = {f.id: f for f in result.faces}
        for face_id in ids:
            face = by_id[face_id]
            roi = listener.of("roi", stamp, f"/humans/faces/{face_id}/roi")[0]
            assert roi["header"]["frame_id"] == "cam"
            assert roi["roi"][:4] == pytest.approx([face.box[0] / 1280, face.box[1] / 720, face.box[2] / 1280, face.box[3] / 720], abs=1e-5)
            lm = listener.of("landmarks", stamp, f"/humans/faces/{face_id}/landmarks")[0]
            pts = np.array(lm["points"])
            assert lm["n"] == 70 and (lm["width"], lm["height"]) == (1280, 720)
            assert (pts[:, 0] > roi["roi"][0] - 0.02).all() and (pts[:, 0] < roi["roi"][2] + 0.02).all()
            ex = listener.of("expression", stamp, f"/humans/faces/{face_id}/expression")[0]
            assert ex["confidence"] == pytest.approx(max(face.emotion_scores.values()), abs=1e-6)
            for kind in ("cropped", "aligned"):
                img = listener.of(kind, stamp, f"/humans/faces/{face_id}/{kind}")[0]
                assert (img["width"], img["height"], img["encoding"], img["bytes"]) == (128, 128, "rgb8", 128 * 128 * 3)

        # the faces leave: tracked empties, and the other process sees every per-face publisher go
        outputs.publish(_header(2000), pipeline.process(_blank()), None)
        assert outputs.hri.face_ids == [] and outputs.hri.publisher_count() == 1
        assert listener.wait_for(lambda: listener.of("tracked", [2000, 0]), 10)
        assert listener.wait_for(lambda: all(_seen_then_gone(listener, i) for i in ids), 15), \
            "publishers of vanished ids still in the other process's graph"
        # ... and come back: new ids, never the old ones
        stamp2, result2 = _publish_until_complete(outputs, pipeline, samples, listener, first_sec=3000)
        assert {f.id for f in result2.faces}.isdisjoint(ids) and len(result2.faces) == 6
    finally:
        listener.stop()
        outputs.close()
        node.destroy_node()

    # the recorded bag reads back with edge_infer's bag reader: typed messages, input stamps, every message
    info = bag_info(tmp_path / "bag")
    assert info["topics"]["/typed_pub/detections"]["type"] == "vision_msgs/msg/Detection2DArray"
    assert info["topics"]["/humans/faces/tracked"]["type"] == "hri_msgs/msg/IdsList"
    received = {}
    for m in listener.lines:
        if "topic" in m:
            received[m["topic"]] = received.get(m["topic"], 0) + 1
    assert {t: v["count"] for t, v in info["topics"].items() if v["count"]} == received
    decoded = {}
    for raw, msg in iter_messages(tmp_path / "bag", ["/typed_pub/detections", "/humans/faces/tracked",
                                                     f"/humans/faces/{ids[0]}/landmarks", f"/humans/faces/{ids[0]}/expression"]):
        decoded.setdefault(raw.topic, []).append(msg)
        assert msg.header.frame_id == "cam"
    assert [len(d.detections) for d in decoded["/typed_pub/detections"]][0] == 6
    assert any([m.header.stamp.sec, m.header.stamp.nanosec] == stamp for m in decoded["/humans/faces/tracked"])
    assert len(decoded[f"/humans/faces/{ids[0]}/landmarks"][0].landmarks) == 70
    assert decoded[f"/humans/faces/{ids[0]}/expression"][0].expression
