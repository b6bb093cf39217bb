"""All result topics of the face node behind one call: typed messages (vision_msgs, ROS4HRI, the face/gaze
frames on /tf), the ``~/fatigue`` JSON and the ``~/faces`` JSON mirror, each with the input image's header.

The node calls :meth:`TypedFaceOutputs.publish` once per processed frame. The interface packages are
optional at run time: where vision_msgs or hri_msgs is not installed (a robot without the apt package),
their outputs are off, the node says once which and how to enable them, and everything else runs.
"""

from __future__ import annotations

import importlib
import os

from rclpy.node import Node
from std_msgs.msg import String

from edge_infer.pipeline.face_pipeline import FaceFrameResult
from edge_infer.pipeline.face_results import face_result_to_json, fatigue_to_json
from edge_infer.pipeline.frames import Frame
from edge_infer.ros.output_publisher import output_publisher
from edge_infer.ros.typed.head_frames import HeadPoseFrames

#: interface package -> (what it enables, its apt package); ``$ROS_DISTRO`` is filled in when set
OPTIONAL_PACKAGES = {
    "vision_msgs": ("~/detections, ~/label_info", "ros-{distro}-vision-msgs"),
    "hri_msgs": ("/humans/faces/* (ROS4HRI)", "ros-{distro}-hri-msgs"),
}


def _importable(package: str) -> bool:
    try:
        importlib.import_module(f"{package}.msg")
    except ImportError:
        return False
    return True


def missing_packages_message(missing: list[str]) -> str:
    """One line: which outputs are off and the apt packages that turn them on."""
    distro = os.environ.get("ROS_DISTRO") or "$ROS_DISTRO"
    parts = [f"{OPTIONAL_PACKAGES[p][0]} off ({p} is not installed)" for p in missing]
    apt = " ".join(OPTIONAL_PACKAGES[p][1].format(distro=distro) for p in missing)
    return f"typed outputs: {'; '.join(parts)}; enable with: sudo apt install {apt}"


class TypedFaceOutputs:
    """Publishers of a face node's results; the arguments are the node's proposed parameters.

    ``ros4hri``: the /humans/faces topics (needs hri_msgs). ``json_output``: the ``~/faces`` JSON mirror
    (std_msgs/String, carries the 468-point mesh); off: no JSON work at all. ``publish_cropped``: the
    per-face ``cropped`` / ``aligned`` images (built only while subscribed). ``~/detections`` is always on
    where vision_msgs is installed. ``score_threshold`` goes into LabelInfo. ``/tf`` (tf2_msgs, every ROS
    install has it) carries face_<id> / gaze_<id> of the faces that have a head pose; ``~/fatigue`` (JSON,
    schema ``edge_infer/fatigue``) each face's fatigue signals and head pose, built only while subscribed.
    """

    def __init__(self, node: Node, *, ros4hri: bool = True, json_output: bool = True, publish_cropped: bool = True,
                 score_threshold: float = 0.0, face_size: tuple[int, int] = (128, 128),
                 hri_namespace: str = "/humans/faces") -> None:
        self.node = node
        wanted = ["vision_msgs"] + (["hri_msgs"] if ros4hri else [])
        self.missing = [p for p in wanted if not _importable(p)]
        if self.missing:
            node.get_logger().warning(missing_packages_message(self.missing))
        self.vision = self.hri = None
        if "vision_msgs" not in self.missing:
            from edge_infer.ros.typed.vision import VisionOutputs

            self.vision = VisionOutputs(node, score_threshold)
        if ros4hri and "hri_msgs" not in self.missing:
            from edge_infer.ros.typed.hri import Ros4HriOutputs

            self.hri = Ros4HriOutputs(node, publish_cropped, face_size, hri_namespace)
        self.json_pub = output_publisher(node, String, "~/faces", 10) if json_output else None
        self.frames = HeadPoseFrames(node)
        self.fatigue_pub = output_publisher(node, String, "~/fatigue", 10)

    def publish(self, header, result: FaceFrameResult, frame: Frame | None = None, backend: str = "",
                latency_ms: dict[str, float] | None = None) -> None:
        """Every enabled output of one frame; ``header`` is the input image's (stamp and frame_id)."""
        self.frames.publish(header, result)  # first: a TF listener can look a face up when its topics arrive
        if self.vision is not None:
            self.vision.publish(header, result)
        if self.hri is not None:
            self.hri.publish(header, result, frame)
        if self.fatigue_pub.get_subscription_count():
            self.fatigue_pub.publish(String(data=fatigue_to_json(result, header.stamp.sec, header.stamp.nanosec,
                                                                 header.frame_id)))
        if self.json_pub is not None and self.json_pub.get_subscription_count():
            self.json_pub.publish(String(data=face_result_to_json(
                result, header.stamp.sec, header.stamp.nanosec, header.frame_id, backend, latency_ms or {})))

    def end_stream(self) -> None:
        """The node stops processing (deactivate / cleanup / shutdown): faces end (ROS4HRI: empty ``tracked``,
        per-face publishers destroyed). ``publish()`` must not run concurrently."""
        if self.hri is not None:
            self.hri.end_stream()

    def set_score_threshold(self, threshold: float) -> None:
        """A live ``score_threshold``: republish ``~/label_info`` (transient local) so it says the value in use."""
        if self.vision is not None:
            self.vision.publish_label_info(threshold)

    def close(self) -> None:
        """Destroy every publisher (lifecycle cleanup / shutdown); publish() must not run concurrently."""
        for part in (self.vision, self.hri):
            if part is not None:
                part.close()
        for pub in (self.json_pub, self.fatigue_pub):
            if pub is not None:
                self.node.destroy_publisher(pub)
        if self.frames is not None:
            self.frames.close()
        self.vision = self.hri = self.json_pub = self.fatigue_pub = self.frames = None
