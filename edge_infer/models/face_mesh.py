"""MediaPipe FaceMesh (468 points) pre/post-processing: ROIs, rotated crops, decoding, in numpy + cv2.

Model I/O (see :mod:`edge_infer.offline.tflite_import`): ``image`` [N,192,192,3] RGB in [0,1] ->
``landmarks`` [N,1,1,1404] (468 x (x,y,z) in crop pixels) and ``face_flag`` [N,1,1,1] (presence logit).

Why a keypoint-aligned rotated crop and not the detection box plus a margin: the mesh model was trained on
MediaPipe's ROIs, i.e. a square 1.5x the face box, rotated so the eye line is horizontal. Feeding it tilted
faces (head roll of a person looking at a robot, a camera mounted at an angle) moves the input away from the
training distribution and costs accuracy (measured on astronaut.png rolled 25 degrees: mean landmark error
0.5 px with the rotated crop, 8 px with an axis-aligned crop of the same box), while the rotation is free:
``cv2.warpAffine`` resamples the crop anyway, and RetinaFace already gives the eye keypoints. The same
rotated ROI, derived from the previous frame's mesh (:func:`roi_from_landmarks`), lets a tracker skip the
detector on following frames exactly as MediaPipe does.

Coordinates are continuous pixels (pixel ``i`` spans [i, i+1)), the convention of the RetinaFace decoder.
Tensor names, the crop size and the pixel scale come from the zoo entry ``face_mesh`` in ``config/models.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from edge_infer.models.spec import zoo_model

_SPEC = zoo_model("face_mesh")
INPUT_NAME: str = _SPEC.io_names("inputs", 1)[0]
#: output names in the order landmarks, face presence logit
LANDMARKS, FACE_FLAG = _SPEC.io_names("outputs", 2)
INPUT_SIZE: int = _SPEC.fixed_dim("inputs", 0, 1)
PIXEL_SCALE = np.float32(_SPEC.preprocess_value("scale"))  # uint8 -> model input
#: the original TFLite's tensor names -> INPUT_NAME, LANDMARKS, FACE_FLAG (zoo ``litert.names``)
TFLITE_NAMES: dict[str, str] = dict(_SPEC.litert.names) if _SPEC.litert else {}
NUM_LANDMARKS = 468
ROI_SCALE = 1.5  # MediaPipe face_detection_front_detection_to_roi / face_landmark_landmarks_to_roi
#: mesh indices of the outer eye corners (image-left eye first), MediaPipe's rotation keypoints for tracking
EYE_CORNERS = (33, 263)


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in image pixels; ``rotation`` in radians, clockwise on screen (y points down)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0

    def crop_to_image(self, size: int = INPUT_SIZE, pixel_index: bool = False) -> np.ndarray:
        """2x3 affine mapping crop pixels (continuous, [0,size]) to image pixels.

        ``pixel_index``: the same map between pixel *indices* (cv2's convention: the centre of pixel i is at
        i, not i + 0.5), i.e. shifted by half a pixel on both sides, as ``cv2.warpAffine`` wants it. Written
        out in floats: this runs for every face on every frame, and the numpy version (inverse, two matrix
        products) cost ~0.1 ms per face after a detector run has emptied the caches.
        """
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        a, b = c * self.width / size, -s * self.height / size
        d, e = s * self.width / size, c * self.height / size
        half = size / 2
        tx, ty = self.cx - (a + b) * half, self.cy - (d + e) * half
        if pixel_index:  # x_img + 0.5 = M (x_crop + 0.5)
            tx, ty = tx + (a + b - 1.0) * 0.5, ty + (d + e - 1.0) * 0.5
        return np.array([[a, b, tx], [d, e, ty]])

    def corners(self) -> np.ndarray:
        """[4,2] corners (top-left, top-right, bottom-right, bottom-left of the crop) in image pixels."""
        m = self.crop_to_image(1)
        unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
        return unit @ m[:, :2].T + m[:, 2]


def _normalize_angle(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def _roi(box: Sequence[float], start: Sequence[float], end: Sequence[float], scale: float) -> Roi:
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * scale  # MediaPipe square_long
    rotation = _normalize_angle(math.atan2(float(end[1]) - float(start[1]), float(end[0]) - float(start[0])))
    return Roi((x1 + x2) / 2, (y1 + y2) / 2, side, side, rotation)


def roi_from_detection(box: Sequence[float], keypoints: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """ROI for the mesh from a RetinaFace box (x1,y1,x2,y2) and its [5,2] keypoints (eyes first).

    Rotation makes the eye line (image-left eye -> image-right eye) horizontal in the crop.
    """
    kp = np.asarray(keypoints, np.float64)
    return _roi(box, kp[0], kp[1], scale)


def roi_from_landmarks(landmarks_px: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """Next frame's ROI from this frame's [468,2|3] mesh in image pixels (MediaPipe's tracking step).

    Like MediaPipe: axis-aligned bounds of all points, square of 1.5x the long side, rotation from the outer
    eye corners (33 -> 263).
    """
    pts = np.asarray(landmarks_px, np.float64)[:, :2]
    box = (*pts.min(axis=0), *pts.max(axis=0))
    return _roi(box, pts[EYE_CORNERS[0]], pts[EYE_CORNERS[1]], scale)


def crop_batch(image_rgb: np.ndarray, rois: Sequence[Roi], size: int = INPUT_SIZE,
               channel_order: str = "rgb") -> np.ndarray:
    """[N,size,size,3] float32 RGB in [0,1]: one rotated, resampled crop per ROI (edges replicated).

    ``channel_order`` "bgr": the image is BGR (a bgr8 camera frame); only the small crops are swapped to RGB,
    never the whole frame.
    """
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', not {channel_order!r}")
    image = np.ascontiguousarray(image_rgb)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    crops = np.empty((len(rois), size, size, 3), np.uint8)
    swap = channel_order == "bgr" and image_rgb.ndim == 3
    warped = np.empty((size, size, 3), np.uint8) if swap else None
    for i, roi in enumerate(rois):
        m = roi.crop_to_image(size, pixel_index=True)  # cv2's pixel-centre convention
        source, m = _compact_source(image, roi, m)
        cv2.warpAffine(source, m, (size, size), dst=warped if swap else crops[i],
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        if swap:
            cv2.cvtColor(warped, cv2.COLOR_BGR2RGB, dst=crops[i])
    out = np.empty(crops.shape, np.float32)
    np.multiply(crops, PIXEL_SCALE, out=out, dtype=np.float32)  # one pass, straight into the model's layout
    return out


def _compact_source(image: np.ndarray, roi: Roi, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``image`` the crop reads, copied contiguous, and the warp matrix shifted to it.

    Why: warping straight from a 720p frame reads ~200 short row pieces spread over megabytes; for a frame that
    is not in the cache (every new camera frame) that cost 0.55 ms per face, against 0.25 ms for one sequential
    copy of the ROI's bounding box plus the warp from it (measured on the close-up benchmark frames). Where the
    box is clipped by the frame, the copy's edge is the frame's edge, so BORDER_REPLICATE sees the same pixels.
    Results equal the direct warp's except for cv2's fixed-point rounding (<= 1 level, ~0.01% of the values).
    """
    h, w = image.shape[:2]
    corners = roi.corners()
    x0, y0 = (int(v) - 2 for v in np.floor(corners.min(axis=0)))  # 2 px: the bilinear neighbour, rounding
    x1, y1 = (int(v) + 3 for v in np.ceil(corners.max(axis=0)))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2 or (x1 - x0) * (y1 - y0) * 2 > w * h:
        return image, m  # outside the frame (replicated edge pixels) or most of it: no gain in a copy
    shifted = m.copy()
    shifted[0, 2] -= x0
    shifted[1, 2] -= y0
    return np.ascontiguousarray(image[y0:y1, x0:x1]), shifted


def decode(
    landmarks_out: np.ndarray, score_out: np.ndarray, rois: Sequence[Roi], size: int = INPUT_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs -> (points [N,468,3] in image pixels, confidence [N] in 0..1).

    z is scaled like x (crop pixels * roi.width / size) so depth has the same unit as x and y.
    """
    n = len(rois)
    if n == 0:
        return np.zeros((0, NUM_LANDMARKS, 3), np.float32), np.zeros((0,), np.float32)
    raw = np.asarray(landmarks_out, np.float32).reshape(n, -1, 3)[:, :NUM_LANDMARKS]
    points = np.empty_like(raw)
    for i, roi in enumerate(rois):
        m = roi.crop_to_image(size)
        points[i, :, :2] = raw[i, :, :2] @ m[:, :2].T.astype(np.float32) + m[:, 2].astype(np.float32)
        points[i, :, 2] = raw[i, :, 2] * (roi.width / size)
    logits = np.asarray(score_out, np.float32).reshape(n)
    confidence = 1.0 / (1.0 + np.exp(-logits))
    return points, confidence


def roi_iou(a: Roi, b: Roi) -> float:
    """IoU of two rotated ROIs; a tracker uses it to decide if a tracked face is still the detected one."""
    pa, pb = a.corners().astype(np.float32), b.corners().astype(np.float32)
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    union = a.width * a.height + b.width * b.height - inter
    return float(inter / union) if union > 0 else 0.0
