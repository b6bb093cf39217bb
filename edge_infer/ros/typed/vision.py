"""vision_msgs outputs: ``~/detections`` (Detection2DArray, the input image's header) and ``~/label_info``.

One Detection2D per face: ``bbox`` centre and size in image pixels (the JSON mirror's box, unclipped), ``id``
= the face's track id (the same id as the ROS4HRI topics and the JSON), ``results[0]`` = class ``face`` with
the detector score. Between detector runs a face is tracked by its mesh and keeps the score of the detection
that started or last refreshed it (the detector runs every ``detect_every`` frames and whenever a face is lost).
``~/label_info`` (LabelInfo, transient local: late subscribers get it) is published on configure and again when
``score_threshold`` changes live: class 0 = ``face`` and the detector's score threshold.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Detection2D, Detection2DArray, LabelInfo, ObjectHypothesisWithPose, VisionClass

from edge_infer.pipeline.face_pipeline import FaceFrameResult
from edge_infer.ros.output_publisher import output_publisher

CLASS_ID = "face"
LABEL_INFO_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def detections_msg(header, result: FaceFrameResult) -> Detection2DArray:
    """The frame's faces as a Detection2DArray; every header (array and detections) is the input's."""
    out = Detection2DArray(header=header)
    for face in result.faces:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        det = Detection2D(header=header, id=face.id)
        det.bbox.center.position.x, det.bbox.center.position.y = (x1 + x2) / 2, (y1 + y2) / 2
        det.bbox.size_x, det.bbox.size_y = x2 - x1, y2 - y1
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = CLASS_ID, float(face.score)
        det.results = [hypothesis]
        out.detections.append(det)
    return out


class VisionOutputs:
    """The two vision_msgs publishers of a face node; :meth:`publish` once per processed frame."""

    def __init__(self, node: Node, score_threshold: float, topic: str = "~/detections",
                 label_topic: str = "~/label_info") -> None:
        self.node = node
        self.detections_pub = output_publisher(node, Detection2DArray, topic, 10)
        self.label_pub = output_publisher(node, LabelInfo, label_topic, LABEL_INFO_QOS)
        self.publish_label_info(score_threshold)

    def publish_label_info(self, score_threshold: float) -> None:
        """Class 0 = ``face`` and the detector's threshold; again whenever the live threshold changes (the
        transient-local history of depth 1 then holds the value in use for late subscribers)."""
        label = LabelInfo(class_map=[VisionClass(class_id=0, class_name=CLASS_ID)], threshold=float(score_threshold))
        label.header.stamp = self.node.get_clock().now().to_msg()
        self.label_pub.publish(label)

    def publish(self, header, result: FaceFrameResult) -> None:
        if self.detections_pub.get_subscription_count():  # nobody listening: no message to build
            self.detections_pub.publish(detections_msg(header, result))

    def close(self) -> None:
        self.node.destroy_publisher(self.detections_pub)
        self.node.destroy_publisher(self.label_pub)
