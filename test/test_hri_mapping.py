"""ROS4HRI mapping (edge_infer.pipeline.hri_mapping): the 468 -> 70 landmark table against the message's own
constants and against the geometry of a real face mesh, the expression names, and the face image transforms."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge_infer.pipeline import hri_mapping as hm
from edge_infer.pipeline.face_pipeline import FaceConfig, FacePipeline
from edge_infer.pipeline.frames import Frame
from edge_infer.samples.scenes import load_samples

from conftest import require_ros_module


@pytest.fixture(scope="module")
def pipeline(models_dir):
    return FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=False))


@pytest.fixture(scope="module")
def astronaut(models_dir):
    return load_samples(models_dir)["astronaut.png"]


@pytest.fixture(scope="module")
def face(pipeline, astronaut):
    faces = pipeline.process(Frame(astronaut, "bgr8")).faces
    assert len(faces) == 1 and faces[0].mesh is not None
    return faces[0]


def test_table_covers_the_70_landmarks_once_with_hri_msgs_names():
    require_ros_module("hri_msgs")
    from hri_msgs.msg import FacialLandmarks

    assert [row[0] for row in hm.LANDMARKS] == list(range(70))
    for index, name, vertices in hm.LANDMARKS:
        assert getattr(FacialLandmarks, name) == index, name
        assert vertices and all(0 <= v < 468 for v in vertices)
    assert np.allclose(hm.MESH_TO_LANDMARKS.sum(axis=1), 1.0)


def test_expressions_are_hri_msgs_constants_for_every_fer_class():
    require_ros_module("hri_msgs")
    from hri_msgs.msg import Expression

    from edge_infer.models.emotion import EMOTION_LABELS

    constants = {v for k, v in vars(Expression).items() if k.isupper() and isinstance(v, str)}
    assert set(hm.EXPRESSIONS) == set(EMOTION_LABELS)
    assert set(hm.EXPRESSIONS.values()) <= constants and len(set(hm.EXPRESSIONS.values())) == 7
    assert hm.expression("fear", {"fear": 0.75, "happy": 0.25}) == ("scared", 0.75)


def _cyclic_order_is(points: np.ndarray) -> bool:
    """True if the points, in the given order, go round their centroid once (a contour in drawing order)."""
    c = points.mean(axis=0)
    angles = np.unwrap(np.arctan2(points[:, 1] - c[1], points[:, 0] - c[0]))
    steps = np.diff(np.append(angles, angles[0] + 2 * np.pi * np.sign(angles[-1] - angles[0])))
    return bool((np.sign(steps) == np.sign(steps[0])).all()) and abs(abs(angles[-1] - angles[0]) - 2 * np.pi) < 1.2


@pytest.mark.parametrize("contour", [range(48, 60), range(60, 68), range(36, 42), range(42, 48)],
                         ids=["outer_lips", "inner_lips", "right_eye", "left_eye"])
def test_closed_contours_run_in_drawing_order(face, contour):
    """A mirrored half (e.g. lower lip 55-59 on the wrong side) makes the contour cross itself: this fails."""
    pts = hm.landmarks_px(face.mesh)[list(contour)]
    assert _cyclic_order_is(pts)


def test_landmarks_sit_where_their_names_say(face):
    lm = hm.landmarks_px(face.mesh)
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    assert ((lm[:, 0] > x1 - 0.1 * w) & (lm[:, 0] < x2 + 0.1 * w) & (lm[:, 1] > y1 - 0.1 * h) & (lm[:, 1] < y2 + 0.15 * h)).all()
    mid_x = lm[[8, 27, 30, 33, 51, 57, 62, 66], 0]
    assert np.ptp(mid_x) < 0.06 * w  # the midline points are on the midline (frontal face)
    # subject's right = image left: every RIGHT_* point is left of the midline and mirrors its LEFT_* point
    names = {name: i for i, name, _ in hm.LANDMARKS}
    for name, i in names.items():
        if name.startswith("RIGHT_"):
            j = names["LEFT_" + name[len("RIGHT_"):]]
            assert lm[i, 0] < mid_x.mean() < lm[j, 0], name
            assert abs(lm[i, 1] - lm[j, 1]) < 0.06 * h, name
    jaw_y = lm[0:17, 1]
    assert (np.diff(jaw_y[:9]) > 0).all() and (np.diff(jaw_y[8:]) < 0).all()  # ear -> chin -> ear
    assert lm[8, 1] == lm[:, 1].max()  # the menton is the lowest point
    # the jaw starts at eye height (as dlib's does) and the nose runs down from between the eyes
    eye_y = lm[[36, 39, 42, 45], 1].mean()
    assert abs(lm[0, 1] - eye_y) < 0.05 * h and abs(lm[16, 1] - eye_y) < 0.05 * h
    assert lm[27, 1] < lm[28, 1] < lm[29, 1] < lm[30, 1] < lm[33, 1] < lm[51, 1] < lm[62, 1] < lm[66, 1] < lm[57, 1]
    for pupil, eye in ((68, range(36, 42)), (69, range(42, 48))):
        assert cv2.pointPolygonTest(lm[list(eye)].astype(np.float32), tuple(map(float, lm[pupil])), False) > 0


def test_normalised_values_stay_in_the_unit_square(face):
    n = hm.normalized_landmarks(face.mesh, 512, 512)
    assert n.shape == (70, 2) and n.min() >= 0 and n.max() <= 1
    assert np.allclose(n * 512, hm.landmarks_px(face.mesh), atol=1e-3)
    shifted = face.mesh.copy()
    shifted[:, 0] -= 300  # half the face off the left edge: clipped, never negative
    assert hm.normalized_landmarks(shifted, 512, 512).min() == 0.0
    assert hm.normalized_roi(np.array([-10, 20, 700, 300]), 640, 480) == (0.0, 20 / 480, 1.0, 300 / 480)


def _apply(m: np.ndarray, p) -> np.ndarray:
    return m[:, :2] @ np.asarray(p, np.float64) + m[:, 2]


@pytest.mark.parametrize("tilt_deg", [-35.0, 0.0, 20.0])
def test_align_transform_levels_the_eyes_and_crop_centres_the_box(tilt_deg):
    box = np.array([100.0, 50.0, 200.0, 170.0])
    c = np.array([150.0, 100.0])
    d = 25 * np.array([math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))])
    right_eye, left_eye = c - d, c + d
    m = hm.align_transform(box, right_eye, left_eye, (128, 128))
    r, l = _apply(m, right_eye), _apply(m, left_eye)
    assert abs(r[1] - l[1]) < 1e-6 and l[0] > r[0]  # level, and not turned upside down
    assert np.allclose(_apply(m, box.reshape(2, 2).mean(axis=0)), (64, 64))
    crop = hm.crop_transform(box, (128, 128))
    assert np.allclose(_apply(crop, box[:2]), (64 - 100 * 128 / 120 / 2, 0)) and np.allclose(_apply(crop, box[2:]), (64 + 100 * 128 / 120 / 2, 128))


@pytest.mark.parametrize("tilt_deg", [20, -30])
def test_aligned_face_of_a_tilted_photo_is_upright(pipeline, astronaut, tilt_deg):
    """End to end on a real face: tilt the photo, align, and the face mesh sees level eyes in the result."""
    h, w = astronaut.shape[:2]
    tilted = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((w / 2, h / 2), tilt_deg, 1.0), (w, h))
    face = pipeline.process(Frame(tilted, "bgr8")).faces[0]

    def eye_angle(f) -> float:
        right, left = hm.eye_centres(f.mesh, f.keypoints)
        return math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))

    assert abs(eye_angle(face)) > abs(tilt_deg) - 5  # the photo is 2.5 degrees off level to begin with
    right, left = hm.eye_centres(face.mesh, face.keypoints)
    chip = hm.warp_face(tilted, hm.align_transform(face.box, right, left, (256, 256)), (256, 256))
    canvas = np.zeros((512, 512, 3), np.uint8)
    canvas[128:384, 128:384] = chip
    again = pipeline.process(Frame(canvas, "bgr8")).faces
    assert len(again) == 1 and abs(eye_angle(again[0])) < 2


def test_eye_centres_fall_back_to_the_detector_keypoints():
    kps = np.array([[10, 20], [30, 22], [20, 30], [12, 40], [28, 40]], np.float32)
    right, left = hm.eye_centres(None, kps)
    assert right.tolist() == [10, 20] and left.tolist() == [30, 22]
