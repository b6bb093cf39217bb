"""All result topics of the face node behind one call: typed messages (vision_msgs, ROS4HRI, the face/gaze
frames on /tf), the ``~/fatigue`` JSON and the ``~/faces`` JSON mirror, each with the input image's header.

The node calls :meth:`TypedFaceOutputs.publish` once per processed frame, naming its camera: ``~/detections``,
``~/label_info``, ``~/faces`` and ``~/fatigue`` are per camera (``~/<camera>/detections``... for a named camera,
:func:`edge_infer.pipeline.cameras.camera_topic`), the ROS4HRI graph and ``/tf`` are one for the node. The
interface packages are
optional at run time: where vision_msgs or hri_msgs is not installed (a robot without the apt package),
their outputs are off, the node says once which and how to enable them, and everything else runs.
"""

from __future__ import annotations

import importlib
import os

from rclpy.node import Node
from std_msgs.msg import String

from dataclasses import dataclass
from typing import Any, Sequence

from edge_infer.pipeline.cameras import camera_topic
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


@dataclass
class _CameraOutputs:
    """One camera's result topics (the ROS4HRI graph and /tf are the node's)."""

    vision: Any  # VisionOutputs or None (vision_msgs not installed)
    json_pub: Any  # ~/faces or None (json_output false)
    fatigue_pub: Any

    def close(self, node: Node) -> None:
        if self.vision is not None:
            self.vision.close()
        for pub in (self.json_pub, self.fatigue_pub):
            if pub is not None:
                node.destroy_publisher(pub)


class TypedFaceOutputs:
    """Publishers of a face node's results; the arguments are the node's proposed parameters.

    ``ros4hri``: the /humans/faces topics (needs hri_msgs). ``json_output``: the ``~/faces`` JSON mirror
    (std_msgs/String, carries the 468-point mesh); off: no JSON work at all. ``publish_cropped``: the
    per-face ``cropped`` / ``aligned`` images (built only while subscribed). ``~/detections`` is always on
    where vision_msgs is installed. ``score_threshold`` goes into LabelInfo. ``/tf`` (tf2_msgs, every ROS
    install has it) carries face_<id> / gaze_<id> of the faces that have a head pose; ``~/fatigue`` (JSON,
    schema ``edge_infer/fatigue``) each face's fatigue signals and head pose, built only while subscribed.
    ``cameras``: the cameras whose topics exist from the start (:meth:`add_camera` / :meth:`remove_camera` later).
    """

    def __init__(self, node: Node, *, ros4hri: bool = True, json_output: bool = True, publish_cropped: bool = True,
                 score_threshold: float = 0.0, face_size: tuple[int, int] = (128, 128),
                 hri_namespace: str = "/humans/faces", cameras: Sequence[str] = ("",)) -> None:
        self.node = node
        self.json_output, self.score_threshold = json_output, score_threshold
        wanted = ["vision_msgs"] + (["hri_msgs"] if ros4hri else [])
        self.missing = [p for p in wanted if not _importable(p)]
        if self.missing:
            node.get_logger().warning(missing_packages_message(self.missing))
        self.hri = None
        if ros4hri and "hri_msgs" not in self.missing:
            from edge_infer.ros.typed.hri import Ros4HriOutputs

            self.hri = Ros4HriOutputs(node, publish_cropped, face_size, hri_namespace)
        self.frames = HeadPoseFrames(node)
        self.cameras: dict[str, _CameraOutputs] = {}
        for camera in cameras:
            self.add_camera(camera)

    def add_camera(self, camera: str) -> None:
        """The result topics of ``camera`` (``~/<camera>/detections``...; ``''``: ``~/detections``...)."""
        if camera in self.cameras:
            return
        vision = None
        if "vision_msgs" not in self.missing:
            from edge_infer.ros.typed.vision import VisionOutputs

            vision = VisionOutputs(self.node, self.score_threshold, camera_topic(camera, "detections", True),
                                   camera_topic(camera, "label_info", True))
        json_pub = output_publisher(self.node, String, camera_topic(camera, "faces", True), 10) \
            if self.json_output else None
        self.cameras[camera] = _CameraOutputs(vision, json_pub,
                                              output_publisher(self.node, String, camera_topic(camera, "fatigue", True), 10))

    def remove_camera(self, camera: str) -> None:
        """``camera`` is gone: its faces leave the ROS4HRI graph, its topics are destroyed."""
        if self.hri is not None:
            self.hri.end_camera(camera)
        outputs = self.cameras.pop(camera, None)
        if outputs is not None:
            outputs.close(self.node)

    @property
    def vision(self):
        """The first camera's vision_msgs outputs (a single-camera node's ``~/detections``)."""
        first = next(iter(self.cameras.values()), None)
        return first.vision if first is not None else None

    @property
    def json_pub(self):
        """The first camera's ``~/faces`` publisher (None when json_output is off)."""
        first = next(iter(self.cameras.values()), None)
        return first.json_pub if first is not None else None

    def publish(self, header, result: FaceFrameResult, frame: Frame | None = None, backend: str = "",
                latency_ms: dict[str, float] | None = None, camera: str = "") -> None:
        """Every enabled output of one frame of ``camera``; ``header`` is the input image's (stamp and frame_id).
        A camera without outputs (removed meanwhile) publishes nothing."""
        outputs = self.cameras.get(camera)
        if outputs is None:
            return
        self.frames.publish(header, result)  # first: a TF listener can look a face up when its topics arrive
        if outputs.vision is not None:
            outputs.vision.publish(header, result)
        if self.hri is not None:
            self.hri.publish(header, result, frame, camera)
        if outputs.fatigue_pub.get_subscription_count():
            outputs.fatigue_pub.publish(String(data=fatigue_to_json(result, header.stamp.sec, header.stamp.nanosec,
                                                                    header.frame_id)))
        if outputs.json_pub is not None and outputs.json_pub.get_subscription_count():
            outputs.json_pub.publish(String(data=face_result_to_json(
                result, header.stamp.sec, header.stamp.nanosec, header.frame_id, backend, latency_ms or {},
                camera=camera)))

    def expire(self) -> list[str]:
        """Cameras whose frames stopped: their faces leave the ROS4HRI graph (see Ros4HriOutputs.expire)."""
        return self.hri.expire() if self.hri is not None else []

    def end_stream(self) -> None:
        """The node stops processing (deactivate / cleanup / shutdown): faces end (ROS4HRI: empty ``tracked``,
        per-face publishers destroyed). ``publish()`` must not run concurrently."""
        if self.hri is not None:
            self.hri.end_stream()

    def set_score_threshold(self, threshold: float) -> None:
        """A live ``score_threshold``: republish ``~/label_info`` (transient local) so it says the value in use."""
        self.score_threshold = threshold
        for outputs in self.cameras.values():
            if outputs.vision is not None:
                outputs.vision.publish_label_info(threshold)

    def close(self) -> None:
        """Destroy every publisher (lifecycle cleanup / shutdown); publish() must not run concurrently."""
        for outputs in self.cameras.values():
            outputs.close(self.node)
        self.cameras = {}
        if self.hri is not None:
            self.hri.close()
        if self.frames is not None:
            self.frames.close()
        self.hri = self.frames = None
