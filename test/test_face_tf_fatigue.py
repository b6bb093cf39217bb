"""Head-pose frames on /tf and fatigue signals of the face node (issue 20, parts 3 and 4), end to end: the node
as a robot runs it (console script, own process), the camera (images + camera_info) in another process, this
process reading /tf, /humans/faces/tracked, ~/fatigue, ~/faces and /diagnostics.

One node process for the module; the tests run in file order (the first one needs a node that has not yet
received a camera_info: the node keeps the latest one while it is active).
"""

from __future__ import annotations

import json
import threading
import time

import jsonschema
import numpy as np
import pytest

from edge_infer.samples.scenes import load_samples, scene

from remote_publisher import RemotePublishers, driver_env
from ros_clients import get_parameters, set_parameter, wait_for

pytestmark = pytest.mark.ros

NODE = "/face_pipeline"
FRAME_ID = "camera_optical"
W, H = 1280, 720
FX = FY = 1280.0  # a real-looking calibration: ~53 degrees horizontal field of view, principal point near the centre
CX, CY = 641.3, 358.2


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class Rig:
    """The node process, the remote camera and what this process received, keyed by input stamp (ns)."""

    def __init__(self, proc, observer, pubs, log, samples) -> None:
        self.proc, self.observer, self.pubs, self.log, self.samples = proc, observer, pubs, log, samples
        self.lock = threading.Lock()
        self.tf: dict[int, list] = {}  # stamp -> transforms (face_ and gaze_) received with it
        self.tf_stamps: list[int] = []  # every TFMessage's first stamp, in arrival order
        self.tracked: dict[int, list[str]] = {}
        self.fatigue: dict[int, dict] = {}
        self.faces: dict[int, dict] = {}
        self.camera_info_sent = False

    # -------- receiving
    def on_tf(self, msg) -> None:
        with self.lock:
            for t in msg.transforms:
                self.tf.setdefault(_ns(t.header.stamp), []).append(t)
            if msg.transforms:
                self.tf_stamps.append(_ns(msg.transforms[0].header.stamp))

    def on_tracked(self, msg) -> None:
        with self.lock:
            self.tracked[_ns(msg.header.stamp)] = list(msg.ids)

    def on_json(self, store: dict, msg) -> None:
        doc = json.loads(msg.data)
        s = doc["header"]["stamp"]
        with self.lock:
            store[s["sec"] * 1_000_000_000 + s["nanosec"]] = doc

    # -------- sending
    def camera_info(self, stamp):
        from sensor_msgs.msg import CameraInfo

        msg = CameraInfo(width=W, height=H, distortion_model="plumb_bob", d=[0.0] * 5,
                         k=[FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0], r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                         p=[FX, 0.0, CX, 0.0, 0.0, FY, CY, 0.0, 0.0, 0.0, 1.0, 0.0])
        msg.header.stamp, msg.header.frame_id = stamp, FRAME_ID
        return msg

    def send(self, bgr: np.ndarray, with_info: bool, timeout: float = 60.0) -> int:
        """One frame (camera_info first, with the same stamp, when ``with_info``); waits for its ~/fatigue and
        ~/faces answers and returns its stamp."""
        from edge_infer.ros.image_conversion import image_to_msg

        stamp = self.observer.node.get_clock().now().to_msg()
        if with_info:
            self.camera_info_sent = True
            self.pubs["/camera_info"].publish(self.camera_info(stamp))
        self.pubs["/image"].publish(image_to_msg(bgr, "bgr8", FRAME_ID, stamp))
        key = _ns(stamp)
        assert wait_for(lambda: key in self.fatigue and key in self.faces and key in self.tracked, timeout), \
            f"no answer to the frame stamped {key}:\n{self.log.read_text()[-3000:]}"
        return key

    def scene(self, i: int) -> np.ndarray:
        return scene(self.samples, i, n_faces=6)

    def diag(self, key: str, startswith: str, timeout: float = 15.0) -> str:
        """The node's diagnostics value ``key`` once it starts with ``startswith`` (diagnostics lag a period)."""
        wait_for(lambda: self.observer.snapshot()[1].get(key, "").startswith(startswith), timeout)
        return self.observer.snapshot()[1].get(key, "")


@pytest.fixture(scope="module")
def rig(ros, models_dir, tmp_path_factory):
    from hri_msgs.msg import IdsList
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage

    from edge_infer.ros.driver_check import FaceNodeObserver, node_process
    from edge_infer.ros.runner import Spinner

    log = tmp_path_factory.mktemp("face_tf_fatigue") / "face_node.log"
    params = {"models_dir": str(models_dir), "diagnostics_period_s": 0.25, "enable_emotion": False,
              "publish_cropped": False}
    with node_process("face_pipeline_node", params, profile=True, log_path=log) as proc:
        observer = FaceNodeObserver()
        g = Rig(proc, observer, None, log, load_samples(models_dir))
        node = observer.node
        tf_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # tf2_ros's listener's
        node.create_subscription(TFMessage, "/tf", g.on_tf, tf_qos)
        node.create_subscription(IdsList, "/humans/faces/tracked", g.on_tracked, 50)
        node.create_subscription(String, f"{NODE}/fatigue", lambda m: g.on_json(g.fatigue, m), 50)
        node.create_subscription(String, f"{NODE}/faces", lambda m: g.on_json(g.faces, m), 50)
        with Spinner(node):
            assert observer.wait_node(90), f"face node did not come up (exit {proc.poll()}):\n{log.read_text()[-3000:]}"
            with RemotePublishers({"/image": ("sensor_msgs/msg/Image", "reliable"),
                                   "/camera_info": ("sensor_msgs/msg/CameraInfo", "reliable")},
                                  env=driver_env(), depth=5) as pubs:
                g.pubs = pubs
                yield g
        assert proc.poll() is None, f"the face node died:\n{log.read_text()[-3000:]}"


def _check_frames(g: Rig, stamp: int, faces: int = 6) -> list:
    """The TF frames of one answered frame: face_<id> in the image's frame and gaze_<id> in face_<id> for every
    tracked id, all with the input stamp. Returns the face transforms."""
    from edge_infer.pipeline.head_pose import GAZE_IN_FACE

    assert wait_for(lambda: len(g.tf.get(stamp, [])) >= 2 * faces, 10), (stamp, g.tf.get(stamp))
    with g.lock:
        transforms, ids = list(g.tf[stamp]), g.tracked[stamp]
    assert len(ids) == faces and len(set(ids)) == faces
    by_child = {t.child_frame_id: t for t in transforms}
    assert len(transforms) == len(by_child) == 2 * faces, [t.child_frame_id for t in transforms]
    assert set(by_child) == {f"face_{i}" for i in ids} | {f"gaze_{i}" for i in ids}
    out = []
    for i in ids:
        face, gaze = by_child[f"face_{i}"], by_child[f"gaze_{i}"]
        assert face.header.frame_id == FRAME_ID and gaze.header.frame_id == f"face_{i}"
        assert _ns(face.header.stamp) == _ns(gaze.header.stamp) == stamp
        p, q = face.transform.translation, face.transform.rotation
        assert 0.2 < p.z < 5.0 and abs(p.x) < p.z and abs(p.y) < p.z, (i, p)  # in front, inside the view
        assert np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0, abs=1e-6)
        g_t, g_q = gaze.transform.translation, gaze.transform.rotation
        assert (g_t.x, g_t.y, g_t.z) == (0.0, 0.0, 0.0)
        assert (g_q.x, g_q.y, g_q.z, g_q.w) == pytest.approx(GAZE_IN_FACE)
        out.append(face)
    return out


def _check_fatigue(g: Rig, stamp: int, ids: list[str], open_eyed: bool = True) -> dict:
    """The frame's ~/fatigue message: the input header, one entry per tracked id, eyes open; the ~/faces mirror
    carries the same fatigue and head pose per face. Returns face_id -> ~/fatigue entry."""
    from edge_infer.pipeline.face_results import FATIGUE_JSON_SCHEMA, JSON_SCHEMA
    from edge_infer.pipeline.fatigue import FatigueConfig

    doc, mirror = g.fatigue[stamp], g.faces[stamp]
    jsonschema.validate(doc, FATIGUE_JSON_SCHEMA)
    jsonschema.validate(mirror, JSON_SCHEMA)
    assert doc["header"]["frame_id"] == mirror["header"]["frame_id"] == FRAME_ID
    assert doc["header"]["stamp"]["sec"] * 1_000_000_000 + doc["header"]["stamp"]["nanosec"] == stamp
    entries = {f["face_id"]: f for f in doc["faces"]}
    assert sorted(entries) == sorted(ids) == sorted(f["id"] for f in mirror["faces"])
    c = FatigueConfig()
    for f in mirror["faces"]:
        e = entries[f["id"]]
        assert f["fatigue"] == {k: v for k, v in e.items() if k != "head_pose"} and f["head_pose"] == e["head_pose"]
        assert e["measured"] and e["head_pose"] is not None
        if open_eyed:  # real photos of open eyes: no closure, no blink, no long closure, no yawn
            assert e["eye_closure"] < c.blink_closure - c.closure_hysteresis, e
            assert (e["eyes_closed"], e["blinks"], e["long_closures"], e["yawning"], e["yawns"]) == \
                (False, 0, 0, False, 0), e
    return entries


# ------------------------------------------------------------------------------------------ tests, in order
def test_without_camera_info_default_intrinsics_frames_and_one_warning(rig):
    g = rig
    assert not g.camera_info_sent, "run this module in file order: the node keeps the latest camera_info"
    started, stamps = time.monotonic(), []
    while time.monotonic() - started < 3.5 or len(stamps) < 6:  # the warning waits 2 s for a late camera_info
        stamps.append(g.send(g.scene(len(stamps) * 3), with_info=False))
    for s in stamps:
        _check_frames(g, s)
        assert all(f["head_pose"]["assumed_intrinsics"] for f in g.faces[s]["faces"])
    intrinsics = g.diag("intrinsics", "default")
    assert intrinsics.startswith("default (no camera_info)") and "fx = fy = image width" in intrinsics, intrinsics
    assert wait_for(lambda: "head pose: no usable camera_info" in g.log.read_text(), 10), g.log.read_text()[-2000:]
    for i in range(3):  # more frames without camera_info: still one warning
        _check_frames(g, g.send(g.scene(60 + 3 * i), with_info=False))
    warnings = [ln for ln in g.log.read_text().splitlines() if "head pose: no usable camera_info" in ln]
    assert len(warnings) == 1 and "WARN" in warnings[0] and "/camera_info" in warnings[0], warnings


def test_six_faces_frames_and_fatigue_with_the_input_stamp_then_gone(rig):
    g = rig
    stamps = [g.send(g.scene(100 + 3 * i), with_info=True) for i in range(8)]
    intrinsics = g.diag("intrinsics", "camera_info")
    assert intrinsics.startswith(f"camera_info: fx {FX:.1f} fy {FY:.1f} cx {CX:.1f} cy {CY:.1f}"), intrinsics
    later = stamps[2:]  # the camera_info of the first frames may arrive just after their image
    for s in later:
        faces = _check_frames(g, s)
        ids = g.tracked[s]
        entries = _check_fatigue(g, s, ids)
        for t in faces:  # the TF frame is the JSON's head pose (rounded to 0.1 mm there)
            pose = entries[t.child_frame_id.removeprefix("face_")]["head_pose"]
            v = t.transform.translation
            assert [v.x, v.y, v.z] == pytest.approx(pose["translation"], abs=1e-4)
            assert pose["assumed_intrinsics"] is False
    assert len({tuple(sorted(g.tracked[s])) for s in later}) == 1, "ids stay while the faces are tracked"
    print(f"\nface_<id> distances (m): {sorted(round(t.transform.translation.z, 2) for t in faces)}")

    # the 7th sample face (camera.png) beside an astronaut, in one camera-sized frame: open eyes too
    both = np.full((H, W, 3), 40, np.uint8)
    both[104:616, 64:576] = g.samples["astronaut.png"]
    both[104:616, 704:1216] = g.samples["camera.png"]
    pair = [g.send(both, with_info=True) for _ in range(3)][-1]
    _check_frames(g, pair, faces=2)
    _check_fatigue(g, pair, g.tracked[pair])

    # the faces go: nothing more on /tf, no fatigue entries, no state kept
    blank = np.full((H, W, 3), 40, np.uint8)
    gone = [g.send(blank, with_info=True) for _ in range(3)]
    for s in gone:
        assert g.tracked[s] == [] and g.fatigue[s]["faces"] == [] and g.faces[s]["faces"] == []
    assert g.diag("fatigue_faces", "0") == "0"
    with g.lock:
        assert not [s for s in g.tf_stamps if s >= gone[0]], "face frames published after the faces went"


def test_live_fatigue_threshold_and_publish_tf(rig):
    """`ros2 param set` (the same service) changes the tracker's config from the next frame, no restart."""
    g = rig
    node = g.observer.node
    try:
        result = set_parameter(node, NODE, "fatigue.blink_closure", 0.0)  # every eye is "closed" from now on
        assert result.successful, result.reason
        stamps = [g.send(g.scene(200 + 3 * i), with_info=True) for i in range(3)]
        for s in stamps:  # the change was applied (under the frame lock) before the call returned
            entries = _check_fatigue(g, s, g.tracked[s], open_eyed=False)
            assert all(e["eyes_closed"] for e in entries.values()), entries
        refused = set_parameter(node, NODE, "fatigue.blink_min_s", 0.9)  # above blink_max_s 0.5
        assert not refused.successful and "blink_max_s" in refused.reason, refused.reason
        assert get_parameters(node, NODE, ["fatigue.blink_min_s"]) == {"fatigue.blink_min_s": 0.05}
    finally:
        assert set_parameter(node, NODE, "fatigue.blink_closure", 0.5).successful
    s = g.send(g.scene(212), with_info=True)
    assert not any(e["eyes_closed"] for e in _check_fatigue(g, s, g.tracked[s], open_eyed=False).values())

    try:
        assert set_parameter(node, NODE, "publish_tf", False).successful
        off = [g.send(g.scene(220 + 3 * i), with_info=True) for i in range(2)]
        assert all(f["head_pose"] is None for s in off for f in g.faces[s]["faces"])
        assert g.diag("intrinsics", "off") == "off (publish_tf false)"
        with g.lock:
            assert not [s for s in g.tf_stamps if s >= off[0]]
    finally:
        assert set_parameter(node, NODE, "publish_tf", True).successful
    _check_frames(g, g.send(g.scene(230), with_info=True))
