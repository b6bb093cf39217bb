"""The interface packages `make` builds (vision_msgs, hri_msgs, tf2_msgs) are real, working ROS 2 types.

A publisher in another process (as a camera driver or a consumer would be) sends Detection2DArray,
Expression and TFMessage (what /tf carries: the head poses' face_<id> / gaze_<id> frames); this process
receives them with the header intact. Runs on Kilted and again on Jazzy (`ros`).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import require_ros_module

STAMP = (1234, 567_890)
FRAME_ID = "camera_optical_frame"

PUBLISHER = r"""
import sys, time
import rclpy
kind, topic = sys.argv[1], sys.argv[2]
if kind == "detections":
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
    det = Detection2D(id="7")
    det.bbox.center.position.x, det.bbox.center.position.y = 320.5, 200.25
    det.bbox.size_x, det.bbox.size_y = 64.0, 80.0
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id, hyp.hypothesis.score = "face", 0.875
    det.results.append(hyp)
    msg = Detection2DArray(detections=[det])
elif kind == "tf":
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
    face = TransformStamped(child_frame_id="face_f00001")
    face.transform.translation.x, face.transform.translation.z = -0.125, 1.5
    face.transform.rotation.x, face.transform.rotation.w = 0.6, 0.8
    face.header.stamp.sec, face.header.stamp.nanosec = int(sys.argv[3]), int(sys.argv[4])
    face.header.frame_id = sys.argv[5]  # TFMessage has no header of its own: each transform has one
    msg = TFMessage(transforms=[face])
else:
    from hri_msgs.msg import Expression
    msg = Expression(expression=Expression.HAPPY, confidence=0.75)
if kind != "tf":
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(sys.argv[3]), int(sys.argv[4])
    msg.header.frame_id = sys.argv[5]
rclpy.init()
node = rclpy.create_node("env_test_publisher")
pub = node.create_publisher(type(msg), topic, 10)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    pub.publish(msg)
    time.sleep(0.05)
"""


def receive_from_other_process(ros, msg_type, kind: str, topic: str):
    """Start the publisher process and return the first message this process receives from it."""
    node = ros.create_node(f"env_test_subscriber_{kind}")
    received = []
    node.create_subscription(msg_type, topic, received.append, 10)
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, kind, topic, str(STAMP[0]), str(STAMP[1]),
                                  FRAME_ID], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline and publisher.poll() is None:
            ros.spin_once(node, timeout_sec=0.1)
        if not received:
            publisher.kill()
            out = publisher.communicate(timeout=10)[0].decode(errors="replace")
            pytest.fail(f"nothing received on {topic} (publisher exit {publisher.returncode}):\n{out[-3000:]}")
        return received[0]
    finally:
        publisher.kill()
        publisher.wait(timeout=10)
        node.destroy_node()


def assert_header(msg) -> None:
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == STAMP
    assert msg.header.frame_id == FRAME_ID


def test_detection2darray_crosses_processes_with_header(ros):
    require_ros_module("vision_msgs")
    from vision_msgs.msg import Detection2DArray

    msg = receive_from_other_process(ros, Detection2DArray, "detections", "env_test/detections")
    assert_header(msg)
    (det,) = msg.detections
    assert det.id == "7"
    assert (det.bbox.center.position.x, det.bbox.center.position.y) == (320.5, 200.25)
    assert (det.bbox.size_x, det.bbox.size_y) == (64.0, 80.0)
    assert det.results[0].hypothesis.class_id == "face"
    assert det.results[0].hypothesis.score == pytest.approx(0.875)


def test_hri_expression_crosses_processes_with_header(ros):
    require_ros_module("hri_msgs")
    from hri_msgs.msg import Expression

    msg = receive_from_other_process(ros, Expression, "expression", "env_test/expression")
    assert_header(msg)
    assert msg.expression == Expression.HAPPY == "happy"
    assert msg.confidence == pytest.approx(0.75)


@pytest.mark.ros
def test_composition_interfaces_for_launch_ros_are_built():
    """launch_ros imports composition_interfaces (LoadComposableNodes); `make` builds it like the others."""
    require_ros_module("composition_interfaces")
    from composition_interfaces.srv import LoadNode

    request = LoadNode.Request(package_name="edge_infer", plugin_name="x")
    assert request.package_name == "edge_infer"


def test_tf2_msgs_tfmessage_crosses_processes_with_header(ros):
    """/tf's type, built from ../shared/ros_interfaces/tf2_msgs (apt ros-$ROS_DISTRO-tf2-msgs on a robot)."""
    require_ros_module("tf2_msgs")
    from tf2_msgs.msg import TFMessage

    msg = receive_from_other_process(ros, TFMessage, "tf", "env_test/tf")
    (face,) = msg.transforms
    assert_header(face)
    assert face.child_frame_id == "face_f00001"
    t, q = face.transform.translation, face.transform.rotation
    assert (t.x, t.y, t.z) == (-0.125, 0.0, 1.5)
    assert (q.x, q.y, q.z, q.w) == pytest.approx((0.6, 0.0, 0.0, 0.8))


@pytest.mark.ros
def test_tf2_msgs_action_and_service_types_are_built():
    """tf2_msgs' LookupTransform action (it needs action_msgs + unique_identifier_msgs from the ros wheels) and
    FrameGraph service are generated too: the package is whole, as apt ships it."""
    require_ros_module("tf2_msgs")
    from tf2_msgs.action import LookupTransform
    from tf2_msgs.msg import TF2Error
    from tf2_msgs.srv import FrameGraph

    goal = LookupTransform.Goal(target_frame="camera_optical_frame", source_frame="face_f00001")
    assert (goal.target_frame, goal.source_frame) == ("camera_optical_frame", "face_f00001")
    assert LookupTransform.Result().error.error == TF2Error.NO_ERROR
    assert FrameGraph.Response().frame_yaml == ""
