"""ROS4HRI (REP-155) face and gaze frames on ``/tf``: per face with a head pose, ``face_<id>`` (parent: the
image's ``frame_id``, the camera's optical frame) and ``gaze_<id>`` (parent ``face_<id>``), stamped with the
input image's stamp, as hri_face_detect publishes them.

The poses are computed on the node's worker by :mod:`edge_infer.pipeline.face_signals`; this module only turns
them into one ``tf2_msgs/TFMessage`` per frame. Nothing is published for a face that is gone: its frames stop,
and TF listeners let them age out of their buffers. QoS: tf2_ros's TransformBroadcaster's (reliable, volatile,
keep last 100), so any TF listener matches.
"""

from __future__ import annotations

from geometry_msgs.msg import Quaternion, TransformStamped, Vector3
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from edge_infer.pipeline.face_pipeline import FaceFrameResult
from edge_infer.pipeline.head_pose import FACE_FRAME_PREFIX, GAZE_FRAME_PREFIX, GAZE_IN_FACE
from edge_infer.ros.output_publisher import output_publisher

TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)


def _transform(stamp, parent: str, child: str, translation, rotation) -> TransformStamped:
    t = TransformStamped(header=Header(stamp=stamp, frame_id=parent), child_frame_id=child)
    t.transform.translation = Vector3(x=float(translation[0]), y=float(translation[1]), z=float(translation[2]))
    t.transform.rotation = Quaternion(x=float(rotation[0]), y=float(rotation[1]), z=float(rotation[2]),
                                      w=float(rotation[3]))
    return t


def face_transforms(header, result: FaceFrameResult) -> list[TransformStamped]:
    """face_<id> (in ``header.frame_id``) and gaze_<id> (in face_<id>) of every face with a head pose and an id."""
    out = []
    for face in result.faces:
        pose = face.head_pose
        if pose is None or not face.id:
            continue
        face_frame = FACE_FRAME_PREFIX + face.id
        out.append(_transform(header.stamp, header.frame_id, face_frame, pose.translation, pose.rotation))
        out.append(_transform(header.stamp, face_frame, GAZE_FRAME_PREFIX + face.id, (0.0, 0.0, 0.0), GAZE_IN_FACE))
    return out


class HeadPoseFrames:
    """The node's ``/tf`` publisher; :meth:`publish` once per processed frame."""

    def __init__(self, node: Node, topic: str = "/tf") -> None:
        self.node = node
        self.pub = output_publisher(node, TFMessage, topic, TF_QOS)
        self._warned_frame_id = False

    def publish(self, header, result: FaceFrameResult) -> int:
        """The frames of this image's faces (none: nothing is published); returns the number of transforms."""
        transforms = face_transforms(header, result)
        if not transforms:
            return 0
        if not header.frame_id:  # a TF frame needs a parent: an image without frame_id has no camera frame
            if not self._warned_frame_id:
                self._warned_frame_id = True
                self.node.get_logger().warning("images have an empty header.frame_id: face_<id> frames need the "
                                               "camera's frame as their parent, none are published on /tf")
            return 0
        self.pub.publish(TFMessage(transforms=transforms))
        return len(transforms)

    def close(self) -> None:
        self.node.destroy_publisher(self.pub)
