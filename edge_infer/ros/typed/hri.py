"""ROS4HRI (REP-155) face topics: ``/humans/faces/tracked`` and, per face id, ``roi``, ``landmarks``,
``expression``, ``cropped`` and ``aligned``, all with the input image's header.

A face's publishers are created when its id first appears and destroyed in the frame it is no longer
tracked, so the number of publishers follows the faces in view (bounded by ``max_faces``), however many
people come and go over hours. A per-face message is built only while someone subscribes to its topic
(``cropped`` / ``aligned`` are images: they are the reason for this rule). QoS: reliable, keep last 1, as
ROS4HRI's own face node (hri_face_detect) publishes them.

One node, several cameras, one graph: ``tracked`` always lists the faces of every camera (libhri reads it as the
complete set of the robot's faces), each camera's part being its latest processed frame. A camera whose frames
stop (its driver died, it was removed) has its faces dropped after ``stale_after_s``, so a consumer never holds
faces that nobody sees. A camera slower than that gets longer (3 of its frame intervals), so its faces do not flip
between lost and new between two of its frames.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from hri_msgs.msg import Expression, FacialLandmarks, IdsList, NormalizedPointOfInterest2D, NormalizedRegionOfInterest2D
from rclpy.node import Node
from sensor_msgs.msg import Image

from edge_infer.pipeline import hri_mapping
from edge_infer.pipeline.face_pipeline import Face, FaceFrameResult
from edge_infer.pipeline.frames import Frame
from edge_infer.ros.image_conversion import image_to_msg
from edge_infer.ros.output_publisher import output_publisher

NAMESPACE = "/humans/faces"
DEPTH = 1
#: a camera's faces leave ``tracked`` when it has had no processed frame for this long (or 3 of its intervals)
STALE_AFTER_S = 2.0
STALE_INTERVALS = 3


def roi_msg(header, face: Face, width: int, height: int) -> NormalizedRegionOfInterest2D:
    """The face box normalised to the image; ``c`` = the detector score (the last detection's when tracked)."""
    x1, y1, x2, y2 = hri_mapping.normalized_roi(face.box, width, height)
    return NormalizedRegionOfInterest2D(header=header, xmin=x1, ymin=y1, xmax=x2, ymax=y2, c=float(face.score))


def landmarks_msg(header, face: Face, width: int, height: int) -> FacialLandmarks:
    """The 70 ROS4HRI landmarks (hri_mapping.LANDMARKS), normalised; ``c`` = the mesh's face confidence."""
    c = float(face.mesh_confidence or 0.0)
    points = hri_mapping.normalized_landmarks(face.mesh, width, height).tolist()
    return FacialLandmarks(header=header, width=width, height=height,
                           landmarks=[NormalizedPointOfInterest2D(x=x, y=y, c=c) for x, y in points])


def expression_msg(header, face: Face) -> Expression:
    """The top FER class as a ROS4HRI expression, ``confidence`` = its probability; valence/arousal 0 (not
    estimated: see edge_infer.pipeline.hri_mapping)."""
    name, confidence = hri_mapping.expression(face.emotion, face.emotion_scores)
    return Expression(header=header, expression=name, confidence=confidence)


@dataclass
class _FacePublishers:
    roi: object
    landmarks: object
    expression: object
    cropped: object | None
    aligned: object | None

    def all(self) -> list:
        return [p for p in (self.roi, self.landmarks, self.expression, self.cropped, self.aligned) if p is not None]


class Ros4HriOutputs:
    """``tracked`` + per-face publishers of one face node; :meth:`publish` once per processed frame."""

    def __init__(self, node: Node, publish_cropped: bool = True, face_size: tuple[int, int] = (128, 128),
                 namespace: str = NAMESPACE) -> None:
        self.node, self.publish_cropped, self.face_size, self.namespace = node, publish_cropped, face_size, namespace
        self.tracked_pub = output_publisher(node, IdsList, f"{namespace}/tracked", DEPTH)
        self._faces: dict[str, _FacePublishers] = {}
        self._camera_ids: dict[str, list[str]] = {}  # camera -> ids of its latest processed frame
        self._camera_seen: dict[str, float] = {}  # camera -> monotonic time of that frame
        self._camera_interval: dict[str, float] = {}  # camera -> time between its last two processed frames
        self._frame_id = ""  # the last input's frame: the closing empty list is in the same frame
        self._lock = threading.Lock()  # publish() runs on the node's worker thread, close() on another

    def _all_ids(self) -> list[str]:
        return [i for ids in self._camera_ids.values() for i in ids]

    @property
    def face_ids(self) -> list[str]:
        """Ids that have publishers now."""
        with self._lock:
            return list(self._faces)

    def publisher_count(self) -> int:
        with self._lock:
            return 1 + sum(len(p.all()) for p in self._faces.values())

    def _create(self, face_id: str) -> _FacePublishers:
        ns, n = f"{self.namespace}/{face_id}", self.node
        images = self.publish_cropped
        return _FacePublishers(output_publisher(n, NormalizedRegionOfInterest2D, f"{ns}/roi", DEPTH),
                               output_publisher(n, FacialLandmarks, f"{ns}/landmarks", DEPTH),
                               output_publisher(n, Expression, f"{ns}/expression", DEPTH),
                               output_publisher(n, Image, f"{ns}/cropped", DEPTH) if images else None,
                               output_publisher(n, Image, f"{ns}/aligned", DEPTH) if images else None)

    def _destroy(self, pubs: _FacePublishers) -> None:
        for p in pubs.all():
            self.node.destroy_publisher(p)

    def _sync(self, ids: list[str]) -> dict[str, _FacePublishers]:
        """Publishers for exactly ``ids``: new ids get theirs, vanished ids lose theirs."""
        wanted = set(ids)
        for gone in [i for i in self._faces if i not in wanted]:
            self._destroy(self._faces.pop(gone))
        for new in [i for i in ids if i not in self._faces]:
            self._faces[new] = self._create(new)
        return dict(self._faces)

    def publish(self, header, result: FaceFrameResult, frame: Frame | None = None, camera: str = "") -> None:
        """All ROS4HRI messages of one frame of ``camera``. ``frame``: the input image (for cropped/aligned; None:
        skip them). ``tracked`` lists this frame's faces and the other cameras' current ones."""
        with self._lock:
            self._camera_ids[camera] = [f.id for f in result.faces]
            now = time.monotonic()
            if camera in self._camera_seen:
                self._camera_interval[camera] = now - self._camera_seen[camera]
            self._camera_seen[camera] = now
            ids = self._all_ids()
            pubs = self._sync(ids)
            self._frame_id = header.frame_id
            # in the lock: with several workers, the lists go out in the order they were made
            self.tracked_pub.publish(IdsList(header=header, ids=ids))
        w, h = result.width, result.height
        for face in result.faces:
            p = pubs[face.id]
            if p.roi.get_subscription_count():
                p.roi.publish(roi_msg(header, face, w, h))
            if face.mesh is not None and p.landmarks.get_subscription_count():
                p.landmarks.publish(landmarks_msg(header, face, w, h))
            if face.emotion is not None and p.expression.get_subscription_count():
                p.expression.publish(expression_msg(header, face))
            if frame is not None and p.cropped is not None:
                self._publish_images(header, face, frame, p)

    def _publish_images(self, header, face: Face, frame: Frame, p: _FacePublishers) -> None:
        size = self.face_size
        if p.cropped.get_subscription_count():
            chip = hri_mapping.warp_face(frame.rgb(), hri_mapping.crop_transform(face.box, size), size)
            p.cropped.publish(image_to_msg(chip, "rgb8", header.frame_id, header.stamp))
        if p.aligned.get_subscription_count():
            right_eye, left_eye = hri_mapping.eye_centres(face.mesh, face.keypoints)
            m = hri_mapping.align_transform(face.box, right_eye, left_eye, size)
            p.aligned.publish(image_to_msg(hri_mapping.warp_face(frame.rgb(), m, size), "rgb8", header.frame_id,
                                           header.stamp))

    def end_camera(self, camera: str) -> bool:
        """``camera`` has no faces any more (removed, or its frames stopped): ``tracked`` is published without
        them and their publishers are destroyed. True when it had faces listed."""
        with self._lock:
            gone = self._camera_ids.pop(camera, [])
            self._camera_seen.pop(camera, None)
            self._camera_interval.pop(camera, None)
            if not gone:
                return False
            ids = self._all_ids()
            self._sync(ids)
            frame_id = self._frame_id
        msg = IdsList(ids=ids)
        msg.header.stamp, msg.header.frame_id = self.node.get_clock().now().to_msg(), frame_id
        self.tracked_pub.publish(msg)
        return True

    def expire(self, stale_after_s: float = STALE_AFTER_S) -> list[str]:
        """End the cameras whose latest processed frame is older than ``stale_after_s`` (or 3 of the camera's
        frame intervals, whichever is longer); returns their names."""
        now = time.monotonic()
        with self._lock:
            stale = [c for c, t in self._camera_seen.items()
                     if now - t > max(stale_after_s, STALE_INTERVALS * self._camera_interval.get(c, 0.0))]
        return [c for c in stale if self.end_camera(c)]

    def end_stream(self) -> None:
        """No more frames (the node deactivates): every face is gone. Publishes an empty ``tracked`` list (a
        ROS4HRI consumer drops the people it holds) and destroys the per-face publishers, so ``ros2 node info``
        no longer lists topics of faces that are not there. Called after the worker stopped."""
        with self._lock:
            had_faces = bool(self._faces)
            self._camera_ids.clear()
            self._camera_seen.clear()
            self._camera_interval.clear()
            self._sync([])
            frame_id = self._frame_id
        if had_faces or frame_id:
            ids = IdsList(ids=[])
            ids.header.stamp, ids.header.frame_id = self.node.get_clock().now().to_msg(), frame_id
            self.tracked_pub.publish(ids)

    def close(self) -> None:
        """Destroy every publisher (the node's shutdown / cleanup)."""
        with self._lock:
            for pubs in self._faces.values():
                self._destroy(pubs)
            self._faces.clear()
            self.node.destroy_publisher(self.tracked_pub)
