"""Head pose (6D) of a face from its 468-point mesh: ``cv2.solvePnP`` against a metric 3D face model.

What ROS4HRI (REP-155, "Face and Gaze Frames") asks of a face node, computed here without ROS: the pose of a
``face_<id>`` frame in the camera's optical frame, and the ``gaze_<id>`` frame collocated with it. The node
turns :class:`HeadPose` into TF transforms; this module knows nothing of messages.

Frames
------
- **camera optical frame** (REP-103 optical): x right, y down, z forward along the optical axis; the parent
  of ``face_<id>``, i.e. the ``frame_id`` of the image and its ``camera_info``.
- **face frame** (REP-155 ``face_<id>``): origin at the sellion (the deepest point of the nose bridge
  between the eyes; mesh vertex 168, MediaPipe's ``midwayBetweenEyes``), x forward out of the face, y to the
  person's left, z up towards the scalp (REP-103 body convention). :attr:`HeadPose.translation` is the
  sellion in the camera frame in metres, :attr:`HeadPose.rotation` the face frame's orientation there.
- **gaze frame** (REP-155 ``gaze_<id>``): collocated with the face frame, in the *optical* convention: z
  along the gaze (here the head's forward axis: the mesh has no iris, so gaze = head orientation, the case
  REP-155 allows: "z colinear with the face's x"), x to the person's right, y down. It is the face frame
  rotated by :data:`GAZE_IN_FACE` (hri_face_detect's ``quaternion_from_euler(-pi/2, 0, -pi/2)``), so a
  consumer can project points into the person's "view" exactly as into a camera image.

Angles
------
:attr:`HeadPose.roll` / ``pitch`` / ``yaw`` (degrees) are the face frame's rotation relative to a *frontal*
face: one whose forward axis points straight back along the camera's optical axis, upright in the image
(face x = -z_optical, y = +x_optical, z = -y_optical). They are REP-103 fixed-axis roll, pitch, yaw
(R = Rz(yaw) Ry(pitch) Rx(roll), the order of tf2's ``setRPY``) about the frontal face's axes:

- yaw > 0: the head turns to the person's left (the nose moves to the image's right);
- pitch > 0: the head nods down (nose down; REP-103: positive about the left-pointing y axis);
- roll > 0: the head tilts to the person's right shoulder, i.e. it rotates counter-clockwise on screen.

They are measured against the optical axis, not against the line of sight to the face: a face at the
image's edge that looks straight at the camera has a yaw of about the angle at which the camera sees it.

3D face model
-------------
The points are vertices of MediaPipe's canonical face model (``mediapipe/modules/face_geometry/data/
canonical_face_model.obj``, Apache-2.0, in centimetres): the metric model the 468-point mesh topology was
made on and that MediaPipe's own face-geometry module fits for metric pose. So every model point is the
*same* anatomical point as the mesh vertex it is paired with (a generic 6-point model, e.g. learnopencv's,
has to guess where its "nose tip" or "chin" falls on the mesh), and the scale is a real adult face's
(outer eye corners 89 mm apart, nose tip 22 mm in front of the sellion and 44 mm below it; hri_face_detect's
mm model puts its nose at 21 mm / 48 mm). Only vertices on the rigid part of the face are used
(:data:`MODEL_POINTS`): eye corners, nose and face contour at the ears move with the skull, while the
chin and mouth corners move with the jaw and the lips (a yawn, which the fatigue signals look for, drops
the chin by centimetres and would read as a nod). Measured on the smiling astronaut photo looking at the
camera (tracked mesh): this set gives pitch +0.7 degrees and a 1.4 px RMS reprojection error; the common
6-point set (nose tip, chin, outer eye corners, mouth corners, as learnopencv's) on the same mesh reads
+20 degrees of pitch (the smile lifts the mouth corners) with 5.6 px RMS. With these points the label-free
checks of test/test_head_pose.py measure: roll follows an in-plane rotation within 0.62 degrees (-30..+30),
yaw follows a camera pan within 1.2 degrees (-20..+20), pitch a camera tilt within 2.0 degrees (-15..+15),
a mirrored image gives yaw -yaw within 3.9 degrees (the mesh model is not exactly mirror-symmetric), and a
face at half size is twice as far within 0.6% of the geometric expectation.

Distances follow from the model's size: a face 10% smaller than the model reads 10% farther away. The
mesh's own z (relative depth) is not used: it has no metric scale.

Intrinsics
----------
From a ``camera_info``: :func:`intrinsics_from_camera_info` (its K and D as plain lists, no ROS types).
Without one, :func:`default_intrinsics`: fx = fy = image width (a horizontal field of view of 53 degrees,
typical of USB and laptop cameras), principal point at the image centre, no distortion, flagged
``assumed=True`` so that the node can warn: distances then scale with the true focal length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from edge_infer.errors import EdgeInferError

#: the mesh's vertex count (models/face_mesh.py NUM_LANDMARKS; not imported: only the shape is checked)
MESH_POINTS = 468
FACE_FRAME_PREFIX = "face_"  # REP-155: face_<faceID>, child of the camera's optical frame
GAZE_FRAME_PREFIX = "gaze_"  # REP-155: gaze_<faceID>, collocated with face_<faceID>

#: vertices of MediaPipe's canonical_face_model.obj as written there (read from a copy of google/mediapipe at
#: d8b0992): cm, x = image right for a face looking at the camera (the person's left), y up, z out of the face.
#: 168 is the face frame's origin.
_CANONICAL_CM: dict[int, tuple[float, float, float]] = {
    168: (0.000000, 3.271027, 5.236015),     # sellion (midwayBetweenEyes)
    1: (0.000000, -1.126865, 7.475604),      # nose tip
    2: (0.000000, -2.089024, 6.058267),      # subnasale (noseBottom)
    33: (-4.445859, 2.663991, 3.173422),     # right eye, outer corner (image left)
    133: (-1.856432, 2.585245, 3.757904),    # right eye, inner corner
    362: (1.856432, 2.585245, 3.757904),     # left eye, inner corner
    263: (4.445859, 2.663991, 3.173422),     # left eye, outer corner (image right)
    234: (-7.664182, 0.673132, -2.435867),   # right face contour at ear height (near the tragion)
    454: (7.664182, 0.673132, -2.435867),    # left face contour at ear height
    152: (0.000000, -9.403378, 4.264492),    # chin (menton): moves with the jaw
    61: (-2.456206, -4.342621, 4.283884),    # mouth corner, right: moves with the lips
    291: (2.456206, -4.342621, 4.283884),    # mouth corner, left
}
_ORIGIN = 168
#: mesh vertices the pose is fitted to: the rigid ones of _CANONICAL_CM (see the module docstring)
MODEL_POINTS: tuple[int, ...] = (168, 1, 2, 33, 133, 362, 263, 234, 454)


def _face_frame_mm(index: int) -> tuple[float, float, float]:
    """A canonical vertex in the face frame, mm: x forward (= canonical z), y left (= x), z up (= y)."""
    x, y, z = (a - b for a, b in zip(_CANONICAL_CM[index], _CANONICAL_CM[_ORIGIN]))
    return 10.0 * z, 10.0 * x, 10.0 * y


#: [N, 3] model points of MODEL_POINTS in the face frame, millimetres
MODEL_MM = np.array([_face_frame_mm(i) for i in MODEL_POINTS], np.float64)

#: rotation of a frontal face (see "Angles") in the optical frame: columns are the face's x, y, z axes
FRONTAL = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])
#: rotation of the gaze frame in the face frame: gaze x = -face y, gaze y = -face z, gaze z = face x
GAZE_IN_FACE_MATRIX = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
_PNP_DISTORTION_LENGTHS = (0, 4, 5, 8, 12, 14)  # what cv2.solvePnP takes


class CameraInfoError(EdgeInferError, ValueError):
    """A camera_info's K / D cannot describe a pinhole camera; the message says which value."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in OpenCV's pixel convention (the centre of pixel i is at i), as camera_info has them.

    ``distortion``: camera_info's D for ``model`` (plumb_bob: k1 k2 p1 p2 k3; rational_polynomial: 8 values;
    equidistant: the 4 fisheye coefficients). ``assumed``: no camera_info, the values are
    :func:`default_intrinsics`' guess (distances are then only as right as the guessed focal length).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = ()
    model: str = "plumb_bob"
    assumed: bool = False

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def default_intrinsics(width: int, height: int) -> CameraIntrinsics:
    """Intrinsics when there is no camera_info: fx = fy = ``width``, principal point at the image centre.

    Why these: a horizontal field of view of 2*atan(1/2) = 53 degrees is what most USB / laptop cameras
    and many robot head cameras have (50-70 degrees), and the centre is where a calibrated principal point
    usually is within a few percent. Flagged ``assumed=True``.
    """
    if width <= 0 or height <= 0:
        raise CameraInfoError(f"image size must be positive, not {width}x{height}")
    return CameraIntrinsics(float(width), float(width), (width - 1) / 2.0, (height - 1) / 2.0, assumed=True)


def intrinsics_from_camera_info(k: Sequence[float], d: Sequence[float] = (), distortion_model: str = "plumb_bob",
                                width: int = 0, height: int = 0) -> CameraIntrinsics:
    """Intrinsics from a ``sensor_msgs/CameraInfo``'s K (9 values, row-major) and D.

    An all-zero K is sensor_msgs' "uncalibrated camera": then :func:`default_intrinsics` for ``width`` x
    ``height`` (``assumed=True``). For a rectified image (``image_rect``) pass the left 3x3 of P as ``k`` and
    no ``d``: P is the camera matrix of the rectified image. Raises :class:`CameraInfoError` for a K that is
    not a pinhole matrix (non-finite, non-positive focal lengths, skew or a last row other than 0 0 1), an
    unknown distortion model, or a D that model cannot have.
    """
    values = [float(v) for v in k]
    if len(values) != 9:
        raise CameraInfoError(f"camera_info K must have 9 values (row-major 3x3), not {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise CameraInfoError(f"camera_info K has non-finite values: {values}")
    if not any(values):
        return default_intrinsics(width, height)
    fx, skew, cx, zero_a, fy, cy, zero_b, zero_c, one = values
    if fx <= 0 or fy <= 0:
        raise CameraInfoError(f"camera_info K has non-positive focal lengths fx={fx}, fy={fy}")
    if skew != 0 or zero_a != 0 or (zero_b, zero_c, one) != (0, 0, 1):
        raise CameraInfoError(f"camera_info K is not a pinhole matrix [fx 0 cx; 0 fy cy; 0 0 1]: {values}")
    coefficients = tuple(float(v) for v in d)
    if not all(math.isfinite(v) for v in coefficients):
        raise CameraInfoError(f"camera_info D has non-finite values: {coefficients}")
    model = distortion_model or "plumb_bob"  # an empty model with an empty D: no distortion
    if model not in DISTORTION_MODELS:
        raise CameraInfoError(f"camera_info distortion_model {model!r} is not supported: {DISTORTION_MODELS}")
    if model == "equidistant" and len(coefficients) not in (0, 4):
        raise CameraInfoError(f"equidistant D must have 4 values, not {len(coefficients)}")
    if model != "equidistant" and len(coefficients) not in _PNP_DISTORTION_LENGTHS:
        raise CameraInfoError(f"{model} D must have one of {_PNP_DISTORTION_LENGTHS} values, not {len(coefficients)}")
    if not any(coefficients):
        coefficients = ()
    return CameraIntrinsics(fx, fy, cx, cy, coefficients, model)


@dataclass(frozen=True)
class HeadPose:
    """One face's pose in the camera's optical frame (see the module docstring for frames and angles)."""

    translation: tuple[float, float, float]  # the sellion in the camera optical frame, metres
    rotation: tuple[float, float, float, float]  # face frame in the camera frame, quaternion (x, y, z, w)
    roll: float  # degrees, relative to a frontal face
    pitch: float
    yaw: float
    gaze_rotation: tuple[float, float, float, float]  # gaze frame in the camera frame, quaternion (x, y, z, w)
    reprojection_error: float  # RMS over the model points, pixels: how well the rigid model fits this mesh
    assumed_intrinsics: bool  # the intrinsics were default_intrinsics' guess

    @property
    def distance(self) -> float:
        """Metres from the camera centre to the sellion."""
        return math.sqrt(sum(v * v for v in self.translation))


def quaternion_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a 3x3 rotation matrix, w >= 0 (Shepperd's method: stable for every rotation)."""
    m = np.asarray(r, np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s
    norm = math.sqrt(sum(v * v for v in q))
    sign = -1.0 if q[3] < 0 else 1.0
    return tuple(float(sign * v / norm) for v in q)  # type: ignore[return-value]


def matrix_from_quaternion(q: Sequence[float]) -> np.ndarray:
    """3x3 rotation matrix of a quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rpy_from_matrix(r: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in degrees of R = Rz(yaw) Ry(pitch) Rx(roll) (REP-103 fixed axes)."""
    m = np.asarray(r, np.float64)
    pitch = math.asin(max(-1.0, min(1.0, -m[2, 0])))
    roll = math.atan2(m[2, 1], m[2, 2])
    yaw = math.atan2(m[1, 0], m[0, 0])
    return math.degrees(roll), math.degrees(pitch), math.degrees(yaw)


def matrix_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll) from degrees (the inverse of :func:`rpy_from_matrix`)."""
    a, b, c = (math.radians(v) for v in (roll, pitch, yaw))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


#: the gaze frame's rotation in the face frame (constant), quaternion (x, y, z, w): the face_<id> -> gaze_<id>
#: transform (zero translation)
GAZE_IN_FACE: tuple[float, float, float, float] = quaternion_from_matrix(GAZE_IN_FACE_MATRIX)


def face_rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """The face frame's rotation in the camera optical frame for head angles in degrees (see "Angles")."""
    return FRONTAL @ matrix_from_rpy(roll, pitch, yaw)


def _image_points(mesh: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(model points' image coordinates in OpenCV's pixel-index convention, distortion for solvePnP).

    The mesh uses continuous pixel coordinates (pixel i spans [i, i+1), models/face_mesh.py); camera_info's
    K uses pixel centres (the centre of pixel i is i): hence the half-pixel shift. Equidistant (fisheye)
    distortion is not a solvePnP model: those points are undistorted first (back into pixels through K).
    """
    points = np.ascontiguousarray(mesh[list(MODEL_POINTS), :2], np.float64) - 0.5
    if intrinsics.model == "equidistant" and intrinsics.distortion:
        k = intrinsics.matrix()
        undistorted = cv2.fisheye.undistortPoints(points.reshape(-1, 1, 2), k,
                                                  np.array(intrinsics.distortion, np.float64), P=k)
        return undistorted.reshape(-1, 2), np.zeros(0)
    return points, np.array(intrinsics.distortion, np.float64)


def estimate_head_pose(mesh: np.ndarray, intrinsics: CameraIntrinsics) -> HeadPose | None:
    """The pose of the face whose [468, 2|3] mesh (image pixels, as ``Face.mesh``) is given; None when the
    mesh has non-finite points or no pose puts the face in front of the camera.

    Solver: SQPnP (globally optimal for any number of points, no initial guess, so no flips between frames
    from a bad start; ~0.1 ms, the whole call ~0.25 ms per face on the 2-core dev machine). Not refined
    further with Levenberg-Marquardt on the reprojection error: measured on a mesh with 1 px noise, that
    lowers the RMS error by 0.1% and moves the face by 0.2% of its distance, for 0.13 ms more per face
    (0.47 ms on noise-free points).
    """
    pts = np.asarray(mesh, np.float64)
    if pts.ndim != 2 or pts.shape[0] != MESH_POINTS or pts.shape[1] < 2:
        raise ValueError(f"mesh must be [{MESH_POINTS}, 2|3] image pixels, not {list(pts.shape)}")
    image, distortion = _image_points(pts, intrinsics)
    if not np.isfinite(image).all():
        return None
    k = intrinsics.matrix()
    ok, rvec, tvec = cv2.solvePnP(MODEL_MM, image, k, distortion, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return None
    translation = tvec.reshape(3) / 1000.0
    if not np.isfinite(translation).all() or translation[2] <= 0:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    projected, _ = cv2.projectPoints(MODEL_MM, rvec, tvec, k, distortion)  # where the fit was made
    rms = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - image) ** 2, axis=1))))
    roll, pitch, yaw = rpy_from_matrix(FRONTAL.T @ rotation)
    return HeadPose(
        translation=(float(translation[0]), float(translation[1]), float(translation[2])),
        rotation=quaternion_from_matrix(rotation),
        roll=roll, pitch=pitch, yaw=yaw,
        gaze_rotation=quaternion_from_matrix(rotation @ GAZE_IN_FACE_MATRIX),
        reprojection_error=rms,
        assumed_intrinsics=intrinsics.assumed,
    )


def estimate_head_poses(meshes: Sequence[np.ndarray | None], intrinsics: CameraIntrinsics) -> list[HeadPose | None]:
    """:func:`estimate_head_pose` for each face's mesh (None where a face has no mesh)."""
    return [None if m is None else estimate_head_pose(m, intrinsics) for m in meshes]
