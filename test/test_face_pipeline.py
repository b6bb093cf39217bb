"""Face pipeline core (ROS-free) on real models and real photos."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.pipeline.face_pipeline import FaceConfig, FacePipeline
from edge_infer.pipeline.frames import BadFrame, Frame, decode_compressed, decode_raw
from edge_infer.samples.scenes import load_samples, scene

ASTRONAUT_FACE = (170, 50, 280, 190)  # generous region around the face in astronaut.png (checked by eye)


class CountingBackend:
    """Wraps a real backend and counts calls/batch sizes (instrumentation, the model still runs)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.name = inner.name

    def run(self, feeds, output_names=None):
        self.calls.append(next(iter(feeds.values())).shape[0])
        return self.inner.run(feeds, output_names)


@pytest.fixture(scope="module")
def samples(models_dir):
    return load_samples(models_dir)


#: the accuracy tests hold for ONNX Runtime and for whatever `auto` picks (here: LiteRT for the face mesh)
BACKENDS = ("onnxruntime", "auto")


@pytest.fixture(scope="module", params=BACKENDS)
def pipeline(models_dir, request):
    return FacePipeline.from_models_dir(models_dir, request.param, config=FaceConfig(tracking=False))


def _inside(box, region, tol=0):
    return box[0] >= region[0] - tol and box[1] >= region[1] - tol and box[2] <= region[2] + tol and box[3] <= region[3] + tol


def test_astronaut_one_face_with_emotion_and_mesh(pipeline, samples):
    result = pipeline.process(Frame(samples["astronaut.png"], "bgr8"))
    assert len(result.faces) == 1
    f = result.faces[0]
    assert _inside(f.box, ASTRONAUT_FACE) and f.score > 0.9
    assert f.emotion in f.emotion_scores and abs(sum(f.emotion_scores.values()) - 1) < 1e-3
    x1, y1, x2, y2 = f.box
    w, h = x2 - x1, y2 - y1
    inside = (f.mesh[:, 0] >= x1 - 0.1 * w) & (f.mesh[:, 0] <= x2 + 0.1 * w) & (f.mesh[:, 1] >= y1 - 0.1 * h) & (f.mesh[:, 1] <= y2 + 0.1 * h)
    assert f.mesh.shape == (468, 3) and inside.mean() > 0.95 and f.mesh_confidence > 0.9


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (640, 640)])
def test_any_input_size_maps_back_to_image_pixels(pipeline, samples, size):
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    canvas[40:552, 60:572] = samples["astronaut.png"]
    faces = pipeline.process(Frame(canvas, "bgr8")).faces
    assert len(faces) == 1
    ref = pipeline.process(Frame(samples["astronaut.png"], "bgr8")).faces[0].box + np.array([60, 40, 60, 40])
    # a 1080p frame shrinks this 100 px face to ~35 network px, so compare relative to the face size
    assert np.abs(faces[0].box - ref).max() < 0.1 * (ref[2] - ref[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_batched_call_per_model_for_all_faces(models_dir, samples, backend):
    p = FacePipeline.from_models_dir(models_dir, backend, config=FaceConfig(tracking=False))
    p.detector, p.emotion, p.mesh = CountingBackend(p.detector), CountingBackend(p.emotion), CountingBackend(p.mesh)
    result = p.process(Frame(scene(samples, 0, n_faces=6), "bgr8"))
    assert len(result.faces) == 6
    assert p.detector.calls == [1] and p.mesh.calls == [6] and p.emotion.calls == [6]
    boxes = np.stack([f.box for f in result.faces])
    assert (boxes[:, 2] > boxes[:, 0]).all() and len({tuple(np.round(b[:2] / 50)) for b in boxes}) == 6


def test_black_and_faceless_frames_are_valid_and_empty(pipeline):
    assert pipeline.process(Frame(np.zeros((720, 1280, 3), np.uint8), "rgb8")).faces == []
    noise = np.random.default_rng(0).integers(0, 255, (480, 640), dtype=np.uint8)
    assert pipeline.process(Frame(noise, "mono8")).faces == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_tracking_skips_detector_and_stays_as_good_as_detection(models_dir, samples, backend):
    tracked = FacePipeline.from_models_dir(models_dir, backend, config=FaceConfig(tracking=True, detect_every=10))
    tracked.detector = CountingBackend(tracked.detector)
    every = FacePipeline.from_models_dir(models_dir, backend, config=FaceConfig(tracking=False))
    ious, mesh_err = [], []
    for i in range(20):
        frame = Frame(scene(samples, i * 3), "bgr8")
        a, b = tracked.process(frame), every.process(frame)
        assert len(a.faces) == len(b.faces) == 1
        fa, fb = a.faces[0], b.faces[0]
        ix = np.maximum(0, np.minimum(fa.box[2:], fb.box[2:]) - np.maximum(fa.box[:2], fb.box[:2]))
        inter = ix[0] * ix[1]
        area = lambda bx: (bx[2] - bx[0]) * (bx[3] - bx[1])  # noqa: E731
        ious.append(inter / (area(fa.box) + area(fb.box) - inter))
        mesh_err.append(np.linalg.norm(fa.mesh[:, :2] - fb.mesh[:, :2], axis=1).mean() / (fb.box[2] - fb.box[0]))
        assert fa.emotion == fb.emotion
    assert len(tracked.detector.calls) == 2  # frames 0 and 10
    assert min(ious) > 0.8, ious  # detector-vs-detector jitter on neighbouring frames is of the same order
    assert max(mesh_err) < 0.03, mesh_err


def test_auto_runs_the_tflite_mesh_under_litert_and_agrees_with_onnxruntime(models_dir, samples):
    """`auto` on a CPU: LiteRT for the model that came from TFLite (its zoo file), ONNX Runtime for the rest;
    same faces, emotion labels and mesh as the ONNX Runtime pipeline within the mesh test's tolerance."""
    auto = FacePipeline.from_models_dir(models_dir, "auto", config=FaceConfig(tracking=False))
    ort = FacePipeline.from_models_dir(models_dir, "onnxruntime", config=FaceConfig(tracking=False))
    assert auto.mesh.name.startswith("litert[") and auto.detector.name.startswith("onnxruntime")
    assert auto.emotion.name.startswith("onnxruntime") and "litert[" in auto.backend_name
    assert ort.backend_name == ort.detector.name  # one runtime: the name is unchanged
    frame = Frame(scene(samples, 0, n_faces=6), "bgr8")
    a, b = auto.process(frame).faces, ort.process(frame).faces
    assert len(a) == len(b) == 6
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(fa.box, fb.box)  # same detector, same input
        assert fa.emotion == fb.emotion
        size = fb.box[2] - fb.box[0]
        assert np.linalg.norm(fa.mesh[:, :2] - fb.mesh[:, :2], axis=1).max() < 0.01 * size
        assert abs(fa.mesh_confidence - fb.mesh_confidence) < 1e-3


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "yuv422_yuy2"])
def test_colour_order_is_handled_per_crop_not_per_frame(models_dir, samples, encoding):
    """A bgr8 frame is never converted whole (each model's crop converts itself): the results equal those of
    the same picture sent as rgb8, and other encodings still give the face."""
    import cv2

    p = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=False))
    bgr = scene(samples, 3)
    ref = p.process(Frame(bgr, "bgr8")).faces
    if encoding == "rgb8":
        other = p.process(Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "rgb8")).faces
        assert len(other) == len(ref) == 1
        np.testing.assert_array_equal(other[0].box, ref[0].box)
        np.testing.assert_array_equal(other[0].mesh, ref[0].mesh)
        assert other[0].emotion_scores == ref[0].emotion_scores
    elif encoding == "mono8":
        other = p.process(Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), "mono8")).faces
        assert len(other) == 1 and _inside(other[0].box, ref[0].box, tol=10)
    else:
        yuyv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUY2) if hasattr(cv2, "COLOR_BGR2YUV_YUY2") else None
        if yuyv is None:
            pytest.skip("this OpenCV cannot pack YUY2")
        other = p.process(Frame(yuyv, encoding)).faces
        assert len(other) == 1 and _inside(other[0].box, ref[0].box, tol=10)


def test_frame_size_change_keeps_the_reused_detector_input_right(models_dir, samples):
    """The detector's input memory is reused frame to frame; a frame of another size must not leave stale
    pixels in the letterbox padding (same faces as a fresh pipeline on that frame)."""
    p = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=False))
    big = scene(samples, 0, size=(1280, 720))
    tall = np.ascontiguousarray(scene(samples, 0, size=(720, 1280)))
    for frame in (big, tall, big):
        fresh = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=False))
        a, b = p.process(Frame(frame, "bgr8")).faces, fresh.process(Frame(frame, "bgr8")).faces
        assert len(a) == len(b) == 1
        np.testing.assert_array_equal(a[0].box, b[0].box)


class InputWidths:
    """Wraps the real detector and records the width of each input it gets (the model still runs)."""

    def __init__(self, inner):
        self.inner, self.widths, self.name = inner, [], inner.name

    def run(self, feeds, output_names=None):
        self.widths.append(int(next(iter(feeds.values())).shape[3]))
        return self.inner.run(feeds, output_names)


def _paste(canvas, photo, scale, x, y):
    import cv2

    p = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas[y:y + p.shape[0], x:x + p.shape[1]] = p


def test_scheduled_small_passes_keep_far_faces_and_find_near_ones(models_dir, samples):
    """Tracked stream, detect_every 5: the scheduled re-detections run at 320x192 twice, then at 640x384. A far
    face (box ~55 px: found at 640x384, too small at 320x192) stays tracked with its id through the small passes;
    a near face that walks in is found by the next small pass; the full pass finds both and keeps both ids."""
    p = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=True, detect_every=5,
                                                                   redetect_size=(320, 192), full_detect_every=3))
    p.detector = InputWidths(p.detector)
    photo = samples["astronaut.png"]  # its face box is ~120 px tall at this size
    far_only = np.full((720, 1280, 3), 40, np.uint8)
    _paste(far_only, photo, 0.46, 100, 200)
    both = far_only.copy()
    _paste(both, photo, 1.0, 700, 150)
    results = [p.process(Frame(far_only if i < 6 else both, "bgr8")) for i in range(16)]
    counts = [len(r.faces) for r in results]
    assert [i for i, r in enumerate(results) if r.detector_ran] == [0, 5, 10, 15]
    assert p.detector.widths == [640, 320, 320, 640]
    assert counts[:10] == [1] * 10 and counts[10:] == [2] * 6, counts  # the near face from the small pass at 10
    far_id = results[0].faces[0].id
    assert results[5].faces[0].id == far_id and results[5].faces[0].tracked  # kept through the small pass
    near = [f for f in results[10].faces if f.id != far_id]
    assert len(near) == 1 and not near[0].tracked and near[0].box[0] > 640
    assert {f.id for f in results[15].faces} == {far_id, near[0].id}  # the full pass continues both ids
    assert all(f.mesh_confidence > 0.5 and f.emotion for r in results for f in r.faces)


def test_small_passes_off(models_dir, samples):
    """redetect_size None (or full_detect_every 1): every scheduled detection runs at the full size."""
    for config in (FaceConfig(tracking=True, detect_every=3, redetect_size=None),
                   FaceConfig(tracking=True, detect_every=3, full_detect_every=1)):
        p = FacePipeline.from_models_dir(models_dir, config=config)
        p.detector = InputWidths(p.detector)
        for i in range(7):
            p.process(Frame(scene(samples, i), "bgr8"))
        assert p.detector.widths == [640, 640, 640]


class FixedSizeDetector(InputWidths):
    """Test double of a TensorRT detector engine built for one input size (the zoo's profile, 640x384): other
    sizes raise BackendError as the TensorRT backend's profile check does. The real detector still runs."""

    def run(self, feeds, output_names=None):
        from edge_infer.backends import BackendError

        shape = next(iter(feeds.values())).shape
        if tuple(shape[2:]) != (384, 640):
            raise BackendError(f"input shape {tuple(shape)} outside the optimization profile min (1, 3, 384, 640) "
                               "max (1, 3, 384, 640)")
        return super().run(feeds, output_names)


def test_small_passes_switch_off_when_the_detector_takes_one_size(models_dir, samples, caplog):
    p = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=True, detect_every=3))
    p.detector = FixedSizeDetector(p.detector)
    with caplog.at_level("WARNING"):
        results = [p.process(Frame(scene(samples, i), "bgr8")) for i in range(10)]
    assert [len(r.faces) for r in results] == [1] * 10  # the full-size detection ran instead, nothing lost
    assert p.detector.widths == [640, 640, 640, 640]
    assert sum("stay at the full detector size" in r.message for r in caplog.records) == 1  # said once


def test_lost_face_triggers_detection_at_once(models_dir, samples):
    p = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=True, detect_every=100))
    assert len(p.process(Frame(scene(samples, 0), "bgr8")).faces) == 1
    empty = p.process(Frame(np.full((720, 1280, 3), 40, np.uint8), "bgr8"))
    assert empty.detector_ran and empty.faces == []


@pytest.mark.parametrize("args,reason", [
    ((b"\x00" * 10, 4, 4, 12, "32FC1"), "unsupported_encoding"),
    ((b"\x00" * 47, 4, 4, 12, "rgb8"), "bad_length"),
    ((b"", 0, 0, 0, "rgb8"), "zero_size"),
    ((b"\x00" * 40, 4, 4, 10, "rgb8"), "bad_step"),
])
def test_bad_raw_frames_are_rejected_with_a_reason(args, reason):
    with pytest.raises(BadFrame) as e:
        decode_raw(*args)
    assert e.value.reason == reason


def test_corrupt_jpeg_is_rejected():
    with pytest.raises(BadFrame) as e:
        decode_compressed(b"\xff\xd8\xff\xe0garbage", "jpeg")
    assert e.value.reason == "corrupt_compressed"


def test_padded_rows_are_viewed_without_copy():
    rows = np.arange(4 * 16, dtype=np.uint8).reshape(4, 16)  # step 16, 4 px of rgb8 = 12 bytes + 4 padding
    frame = decode_raw(rows.tobytes(), 4, 4, 16, "rgb8")
    assert frame.array.shape == (4, 4, 3) and frame.array[1, 0, 0] == 16


def test_faces_json_is_the_same_text_with_orjson_and_json(models_dir, samples, monkeypatch):
    """The ~/faces text comes from orjson when it is installed (pinned here) and from json otherwise (a robot's apt
    Python): byte for byte the same on a real 6-face result with meshes, and valid against the schema."""
    import json

    import jsonschema

    from edge_infer.pipeline import face_results

    p = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=False))
    r = p.process(Frame(scene(samples, 0, n_faces=6), "bgr8"))
    args = (r, 1, 2, "camera", "backend", dict(r.timer.stages))
    assert face_results.orjson is not None  # the pinned fast path is what make test installs
    fast = face_results.face_result_to_json(*args)
    monkeypatch.setattr(face_results, "orjson", None)
    plain = face_results.face_result_to_json(*args)
    assert fast == plain and len(fast) > 40_000
    doc = json.loads(fast)
    jsonschema.validate(doc, face_results.JSON_SCHEMA)
    assert len(doc["faces"]) == 6 and len(doc["faces"][0]["mesh"]["points"]) == 468
