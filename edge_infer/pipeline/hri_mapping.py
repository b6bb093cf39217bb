"""The face pipeline's results in ROS4HRI (REP-155, ``hri_msgs``) terms, ROS-free: the 70 facial landmarks
from the 468-point mesh, the FER classes as ``hri_msgs/Expression`` names, normalised regions, and the
``cropped`` / ``aligned`` face images. ``edge_infer.ros.typed`` turns these into messages.

Landmarks
---------
``hri_msgs/FacialLandmarks`` holds 70 points in the dlib / OpenPose order (0-16 jaw from the subject's right
ear over the chin to the left ear, 17-26 eyebrows, 27-35 nose, 36-47 eyes, 48-67 mouth, 68-69 pupils).
"Right" is the subject's right, i.e. the image's left for a face looking at the camera (MediaPipe's "right"
means the same). :data:`LANDMARKS` says where each point comes from: one mesh vertex, taken from the
MediaPipe contour that Google's face-mesh annotations name (silhouette, rightEyebrowUpper, rightEyeUpper0,
lipsLowerOuter, ...), and picked so that the points sit as far apart along that contour as dlib's do:

- jaw 0-16: the ``silhouette`` contour from the vertex at eye-corner height (127 / 356, where dlib starts the
  jaw) down to the menton (152, the lowest chin vertex): on each side the vertices nearest to 8 equal
  arc-length steps (measured on the astronaut sample: within 5 px of the ideal positions on a 96 px half
  contour whose vertices are ~9 px apart);
- eyebrows 17-26: the five upper-contour vertices of ``right/leftEyebrowUpper`` from outside to inside;
- nose 27-35: 27 ``midwayBetweenEyes`` (168), 30 ``noseTip`` (1), 28/29 the midline vertices a third and two
  thirds of the way between them (197, 5); 31/35 ``noseRight/LeftCorner`` (98 / 327), 33 ``noseBottom`` (2),
  32/34 the nostril vertices half way to it (97 / 326);
- eyes 36-47: the corners of the ``*EyeUpper0`` / ``*EyeLower0`` eyelid contours and the lid vertices at a
  third and two thirds of the eye width (right eye 33, 160, 158, 133, 153, 144; left eye 362, 385, 387, 263,
  373, 380);
- mouth 48-59: the corners (61 / 291), the outer lip vertices nearest a third and two thirds of the half
  width (39, 37 / 267, 269 above; 321, 314 / 84, 91 below) and the midline (0 above, 17 below);
- mouth 60-67: the inner lip corners (78 / 308), the vertices nearest half width (81, 311 above; 402, 178
  below) and the midline (13, 14);
- pupils 68-69: the 468-vertex model has no iris, so a pupil is the centroid of its eye's 16 eyelid vertices:
  the centre of the eye opening, which is where the pupil is when the person looks ahead.

Every point's confidence is the mesh's face confidence (the model gives no per-point confidence).
ROS4HRI's own node (hri_face_detect) uses a different table: its jaw points lie just inside the silhouette,
its menton (175) above the lowest chin vertex, and its lower-lip points 55-59 and 65-67 run in mirrored
order (59 next to 54 instead of 48); this table follows the message's own definition (the OpenPose face
figure that FacialLandmarks.msg links).

Expressions
-----------
The emotion model's 7 FER classes map one to one onto ``hri_msgs/Expression`` names (:data:`EXPRESSIONS`);
``confidence`` is that class's probability. ``valence`` / ``arousal`` are left 0.0: the model is categorical,
and a fixed class -> (valence, arousal) table has no validated source for these 7 classes; a consumer that
needs them should run a dimensional model. A 0.0 there therefore means "not estimated", not "neutral".
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: (ROS4HRI landmark index, hri_msgs constant, mesh vertices whose mean is the point); order = message order
LANDMARKS: tuple[tuple[int, str, tuple[int, ...]], ...] = (
    (0, "RIGHT_EAR", (127,)), (1, "RIGHT_PROFILE_1", (234,)), (2, "RIGHT_PROFILE_2", (132,)),
    (3, "RIGHT_PROFILE_3", (58,)), (4, "RIGHT_PROFILE_4", (172,)), (5, "RIGHT_PROFILE_5", (136,)),
    (6, "RIGHT_PROFILE_6", (149,)), (7, "RIGHT_PROFILE_7", (176,)), (8, "MENTON", (152,)),
    (9, "LEFT_PROFILE_7", (400,)), (10, "LEFT_PROFILE_6", (378,)), (11, "LEFT_PROFILE_5", (365,)),
    (12, "LEFT_PROFILE_4", (397,)), (13, "LEFT_PROFILE_3", (288,)), (14, "LEFT_PROFILE_2", (361,)),
    (15, "LEFT_PROFILE_1", (454,)), (16, "LEFT_EAR", (356,)),
    (17, "RIGHT_EYEBROW_OUTSIDE", (70,)), (18, "RIGHT_EYEBROW_1", (63,)), (19, "RIGHT_EYEBROW_2", (105,)),
    (20, "RIGHT_EYEBROW_3", (66,)), (21, "RIGHT_EYEBROW_INSIDE", (107,)),
    (22, "LEFT_EYEBROW_INSIDE", (336,)), (23, "LEFT_EYEBROW_3", (296,)), (24, "LEFT_EYEBROW_2", (334,)),
    (25, "LEFT_EYEBROW_1", (293,)), (26, "LEFT_EYEBROW_OUTSIDE", (300,)),
    (27, "SELLION", (168,)), (28, "NOSE_1", (197,)), (29, "NOSE_2", (5,)), (30, "NOSE", (1,)),
    (31, "NOSTRIL_1", (98,)), (32, "NOSTRIL_2", (97,)), (33, "NOSTRIL_3", (2,)), (34, "NOSTRIL_4", (326,)),
    (35, "NOSTRIL_5", (327,)),
    (36, "RIGHT_EYE_OUTSIDE", (33,)), (37, "RIGHT_EYE_TOP_1", (160,)), (38, "RIGHT_EYE_TOP_2", (158,)),
    (39, "RIGHT_EYE_INSIDE", (133,)), (40, "RIGHT_EYE_BOTTOM_2", (153,)), (41, "RIGHT_EYE_BOTTOM_1", (144,)),
    (42, "LEFT_EYE_INSIDE", (362,)), (43, "LEFT_EYE_TOP_2", (385,)), (44, "LEFT_EYE_TOP_1", (387,)),
    (45, "LEFT_EYE_OUTSIDE", (263,)), (46, "LEFT_EYE_BOTTOM_1", (373,)), (47, "LEFT_EYE_BOTTOM_2", (380,)),
    (48, "MOUTH_OUTER_RIGHT", (61,)), (49, "MOUTH_OUTER_TOP_1", (39,)), (50, "MOUTH_OUTER_TOP_2", (37,)),
    (51, "MOUTH_OUTER_TOP_3", (0,)), (52, "MOUTH_OUTER_TOP_4", (267,)), (53, "MOUTH_OUTER_TOP_5", (269,)),
    (54, "MOUTH_OUTER_LEFT", (291,)), (55, "MOUTH_OUTER_BOTTOM_5", (321,)), (56, "MOUTH_OUTER_BOTTOM_4", (314,)),
    (57, "MOUTH_OUTER_BOTTOM_3", (17,)), (58, "MOUTH_OUTER_BOTTOM_2", (84,)), (59, "MOUTH_OUTER_BOTTOM_1", (91,)),
    (60, "MOUTH_INNER_RIGHT", (78,)), (61, "MOUTH_INNER_TOP_1", (81,)), (62, "MOUTH_INNER_TOP_2", (13,)),
    (63, "MOUTH_INNER_TOP_3", (311,)), (64, "MOUTH_INNER_LEFT", (308,)), (65, "MOUTH_INNER_BOTTOM_3", (402,)),
    (66, "MOUTH_INNER_BOTTOM_2", (14,)), (67, "MOUTH_INNER_BOTTOM_1", (178,)),
    # eyelid contours rightEyeUpper0 + rightEyeLower0 (and left): the centre of the eye opening
    (68, "RIGHT_PUPIL", (246, 161, 160, 159, 158, 157, 173, 33, 7, 163, 144, 145, 153, 154, 155, 133)),
    (69, "LEFT_PUPIL", (466, 388, 387, 386, 385, 384, 398, 263, 249, 390, 373, 374, 380, 381, 382, 362)),
)
NUM_LANDMARKS = 70
MESH_POINTS = 468


def _averaging_matrix() -> np.ndarray:
    w = np.zeros((NUM_LANDMARKS, MESH_POINTS), np.float32)
    for index, _name, vertices in LANDMARKS:
        w[index, list(vertices)] = 1.0 / len(vertices)
    return w


#: [70, 468]: landmarks = MESH_TO_LANDMARKS @ mesh_xy (one matrix product for all 70 points)
MESH_TO_LANDMARKS = _averaging_matrix()

#: FER class (the emotion model's labels) -> hri_msgs/Expression constant value
EXPRESSIONS: dict[str, str] = {
    "angry": "angry",        # Expression.ANGRY
    "disgust": "disgusted",  # Expression.DISGUSTED
    "fear": "scared",        # Expression.SCARED
    "happy": "happy",        # Expression.HAPPY
    "sad": "sad",            # Expression.SAD
    "surprise": "surprised", # Expression.SURPRISED
    "neutral": "neutral",    # Expression.NEUTRAL
}


def landmarks_px(mesh: np.ndarray) -> np.ndarray:
    """[70, 2] ROS4HRI landmarks in image pixels from a [468, >=2] mesh in image pixels."""
    return MESH_TO_LANDMARKS @ np.asarray(mesh, np.float32)[:, :2]


def normalized_landmarks(mesh: np.ndarray, width: int, height: int) -> np.ndarray:
    """[70, 2] landmarks divided by the image size and clipped to [0, 1] (the message requires that range)."""
    return np.clip(landmarks_px(mesh) / np.array([width, height], np.float32), 0.0, 1.0)


def normalized_roi(box: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of an x1,y1,x2,y2 pixel box, divided by the image size, clipped to [0, 1]."""
    x1, y1, x2, y2 = np.clip(np.asarray(box, np.float64) / [width, height, width, height], 0.0, 1.0)
    return float(x1), float(y1), float(x2), float(y2)


def expression(label: str, scores: dict[str, float]) -> tuple[str, float]:
    """(hri_msgs/Expression name, confidence) of the emotion model's top class."""
    return EXPRESSIONS[label], float(scores[label])


# ------------------------------------------------------------------------------- cropped / aligned faces
def _fit(box: np.ndarray, size: tuple[int, int]) -> tuple[float, float, float]:
    """(scale, centre x, centre y): the scale that fits the box into ``size`` (w, h) with its aspect kept."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return min(size[0] / max(x2 - x1, 1.0), size[1] / max(y2 - y1, 1.0)), (x1 + x2) / 2, (y1 + y2) / 2


def crop_transform(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """2x3 affine: the face box scaled to fit ``size`` (w, h), centred, aspect kept (letterbox)."""
    s, cx, cy = _fit(box, size)
    return np.array([[s, 0.0, size[0] / 2 - s * cx], [0.0, s, size[1] / 2 - s * cy]], np.float64)


def align_transform(box: np.ndarray, right_eye: np.ndarray, left_eye: np.ndarray,
                    size: tuple[int, int]) -> np.ndarray:
    """2x3 affine: the face turned about its box centre so that the eyes are level, then scaled like
    :func:`crop_transform`. ``right_eye`` is the subject's right (image left on a frontal face)."""
    dx, dy = (np.asarray(left_eye, np.float64) - np.asarray(right_eye, np.float64))[:2]
    angle = math.degrees(math.atan2(dy, dx))  # cv2: positive = counter-clockwise on screen, undoing the tilt
    s, cx, cy = _fit(box, size)
    m = cv2.getRotationMatrix2D((cx, cy), angle, s)
    m[:, 2] += (size[0] / 2 - cx, size[1] / 2 - cy)
    return m


def eye_centres(mesh: np.ndarray | None, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, left) eye centres for alignment: the mesh's pupils (68, 69) when there is a mesh, else the
    detector's eye keypoints. The mesh is the better choice: on the astronaut photo turned 20 degrees the
    detector's eyes are 7 degrees off, the mesh's 0.3 (the aligned face is level to 0.3 degrees instead of 7)."""
    if mesh is None:
        return np.asarray(keypoints[0]), np.asarray(keypoints[1])
    pupils = MESH_TO_LANDMARKS[68:70] @ np.asarray(mesh, np.float32)[:, :2]
    return pupils[0], pupils[1]


def warp_face(image: np.ndarray, transform: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The ``size`` (w, h) face image under ``transform``; only output pixels are computed (cheap for 4K)."""
    return cv2.warpAffine(image, transform, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
