"""Several cameras on one face node, ROS-free parts: camera names, the fair one-frame slots, and the models run
once over the frames of several cameras (edge_infer.pipeline.cameras, edge_infer.pipeline.face_batch).

The node-level checks (camera processes, topics, ROS4HRI graph, live camera changes) are in test_face_cameras.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_infer.errors import ConfigError
from edge_infer.pipeline.cameras import ACTIVE_WINDOW_S, CameraSlots, camera_topic, check_camera_names


# ------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("names, why", [([], "at least one"), (["a"] * 2, "more than once"),
                                        (["", "head"], "cannot be mixed"), (["1cam"], "name token"),
                                        (["head/left"], "name token"), (["../x"], "name token"),
                                        ([f"c{i}" for i in range(9)], "at most 8")])
def test_bad_camera_lists_are_refused_with_the_reason(names, why):
    with pytest.raises(ConfigError, match=why):
        check_camera_names(names)


def test_camera_topics_keep_the_single_camera_names():
    assert check_camera_names([""]) == [""] and check_camera_names(["head", "left_2"]) == ["head", "left_2"]
    assert camera_topic("", "image") == "image" and camera_topic("", "detections", True) == "~/detections"
    assert camera_topic("head", "image") == "head/image"
    assert camera_topic("head", "detections", True) == "~/head/detections"


# ------------------------------------------------------------------------------------------ slots
def _take(slots: CameraSlots, *args, **kwargs) -> list:
    """A worker's round: take, then done (the cameras may be taken again)."""
    got = slots.take(*args, **kwargs)
    slots.done(n for n, _ in got or [])
    return got


def _slots(*names: str) -> CameraSlots:
    slots = CameraSlots()
    slots.set_cameras(names)
    slots.start()
    return slots


def test_a_newer_frame_replaces_the_waiting_one_and_is_reported_dropped():
    slots = _slots("a")
    assert slots.offer("a", 1) is False
    assert slots.offer("a", 2) is True  # the caller counts the replaced frame as dropped
    assert _take(slots, batch=True) == [("a", 2)]
    assert slots.offer("gone", 3) is False and slots.waiting() == []  # not a camera of the node: not kept


def test_a_fast_camera_cannot_starve_a_slow_one():
    """Round robin without batching: camera 'fast' offers 3 frames for every one of 'slow'; each round takes one
    camera, least recently served first, so 'slow' is served every time it has a frame."""
    slots = _slots("fast", "slow")
    served = {"fast": 0, "slow": 0}
    offered_slow = 0
    for i in range(30):
        for _ in range(3):
            slots.offer("fast", i)
        if i % 2 == 0:
            slots.offer("slow", i)
            offered_slow += 1
        (name, _), = _take(slots, batch=False)
        served[name] += 1
        if "slow" in slots.waiting() and i % 2 == 0:  # 'slow' waited one round at most
            (name, _), = _take(slots, batch=False)
            served[name] += 1
    assert served["slow"] == offered_slow
    assert served["fast"] >= 15


def test_a_batched_round_takes_one_frame_of_every_waiting_camera_oldest_served_first():
    slots = _slots("a", "b", "c")
    slots.offer("c", "c1")
    slots.offer("a", "a1")
    assert [n for n, _ in _take(slots, batch=True)] == ["a", "c"]  # never served: camera order
    slots.offer("b", "b1")
    slots.offer("a", "a2")
    assert [n for n, _ in _take(slots, batch=True)] == ["b", "a"]  # b never served comes first


def test_batch_timeout_waits_only_for_cameras_that_are_sending():
    slots = _slots("a", "b", "idle")
    slots.offer("b", "b0")
    _take(slots, batch=True)  # b is now known to be sending; 'idle' never sent
    slots.offer("a", "a1")
    threading.Timer(0.05, lambda: slots.offer("b", "b1")).start()
    t0 = time.monotonic()
    got = _take(slots, batch=True, batch_timeout_s=2.0)
    assert sorted(n for n, _ in got) == ["a", "b"], got  # waited for b, returned when it came (not for 'idle')
    assert time.monotonic() - t0 < 1.5
    # timeout 0: latency first, take what is there
    slots.offer("a", "a2")
    assert [n for n, _ in _take(slots, batch=True, batch_timeout_s=0.0)] == ["a"]


def test_batch_timeout_bounds_the_wait_for_a_camera_that_stopped():
    slots = _slots("a", "b")
    slots.offer("b", "b0")
    _take(slots, batch=True)
    slots.offer("a", "a1")
    t0 = time.monotonic()
    got = _take(slots, batch=True, batch_timeout_s=0.2)
    waited = time.monotonic() - t0
    assert [n for n, _ in got] == ["a"] and 0.15 <= waited < ACTIVE_WINDOW_S + 1.0


def test_a_camera_in_a_workers_hands_is_not_taken_by_another():
    """Two workers: camera a's next frame waits until the first worker is done with a (its tracking state is used
    by one worker at a time), while b's frame goes to the second worker at once."""
    slots = _slots("a", "b")
    slots.offer("a", "a1")
    assert slots.take(batch=False) == [("a", "a1")]
    slots.offer("a", "a2")
    slots.offer("b", "b1")
    assert slots.take(batch=True) == [("b", "b1")]  # a2 is not handed out while a1 is processed
    assert slots.take(batch=True, idle_timeout_s=0.05) == []
    slots.done(["a"])
    assert slots.take(batch=True) == [("a", "a2")]


def test_live_changes_wait_for_rounds_in_flight_and_hold_new_ones():
    from edge_infer.pipeline.cameras import RoundGate

    gate, events = RoundGate(), []
    entered = threading.Event()

    def worker() -> None:
        with gate.round():
            entered.set()
            time.sleep(0.2)
            events.append("round done")

    def change() -> None:
        with gate.change():
            events.append("change")

    t = threading.Thread(target=worker)
    t.start()
    entered.wait(5)
    c = threading.Thread(target=change)
    c.start()
    c.join(5)
    t.join(5)
    assert events == ["round done", "change"]


def test_stop_wakes_the_worker_and_removed_cameras_lose_their_frame():
    slots = _slots("a", "b")
    slots.offer("a", 1)
    slots.offer("b", 2)
    assert slots.set_cameras(["a"]) == ["b"] and slots.waiting() == ["a"]
    result = []
    worker = threading.Thread(target=lambda: result.append((slots.take(True), slots.take(True, idle_timeout_s=30))))
    worker.start()
    time.sleep(0.1)
    slots.stop()
    worker.join(5)
    assert not worker.is_alive() and result == [([("a", 1)], None)]
    assert slots.take(True, idle_timeout_s=0.01) is None


# ------------------------------------------------------------------------------------------ batched models
@pytest.fixture(scope="module")
def base_pipeline(models_dir):
    from edge_infer.pipeline.face_pipeline import FacePipeline

    return FacePipeline.from_models_dir(models_dir, backend="onnxruntime")


@pytest.fixture(scope="module")
def camera_frames(models_dir):
    """Three cameras of real photos: 1, 2 and 4 moving faces, different sizes."""
    from edge_infer.pipeline.frames import Frame
    from edge_infer.samples.scenes import load_samples, scene

    samples = load_samples(models_dir)
    sizes, faces = [(1280, 720), (960, 540), (1280, 720)], [1, 2, 4]
    return [[Frame(scene(samples, i * 4 + 13 * c, faces[c], size=sizes[c]), "rgb8") for c in range(3)]
            for i in range(14)]


def _iou(a, b) -> float:
    from edge_infer.pipeline.face_pipeline import _iou

    return _iou(np.asarray(a), np.asarray(b))


def test_batched_cameras_equal_each_camera_alone(base_pipeline, camera_frames):
    """Each camera's results through one batched run per round equal the same camera run alone on the same
    frames (same faces, boxes IoU >= 0.99), ids are unique across cameras, and the calls were batched."""
    from edge_infer.pipeline.face_batch import BatchStats, process_frames
    from edge_infer.pipeline.latency import FrameTimer

    together = [base_pipeline.for_camera() for _ in range(3)]
    alone = [base_pipeline.for_camera() for _ in range(3)]
    stats = BatchStats()
    ids: list[set[str]] = [set(), set(), set()]
    worst, detector_rounds = 1.0, 0
    for frames in camera_frames:
        results = process_frames([(p, f, FrameTimer()) for p, f in zip(together, frames)], stats)
        for c, (result, frame) in enumerate(zip(results, frames)):
            assert not isinstance(result, BaseException), result
            reference = alone[c].process(frame)
            assert len(result.faces) == len(reference.faces) == [1, 2, 4][c]
            assert result.detector_ran == reference.detector_ran
            for got, want in zip(result.faces, reference.faces):
                worst = min(worst, _iou(got.box, want.box))
                assert got.mesh is not None and got.emotion == want.emotion
            ids[c] |= {f.id for f in result.faces}
            assert {"detector", "mesh", "emotion"} & set(result.timer.stages)
        detector_rounds += results[0].detector_ran
    assert worst >= 0.99, worst
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]), ids
    assert stats.batched_calls > 0 and stats.frames_in_batches >= 2 * stats.batched_calls
    assert stats.calls < 3 * len(camera_frames) * 2  # fewer calls than three cameras run one by one
    assert detector_rounds >= 2  # the detector batch ran, not only the tracked mesh


class _NoBatchBackend:
    """A backend that refuses more than one image per call (as a TensorRT engine whose profile allows batch 1)."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name

    def run(self, feeds, output_names=None):
        if next(iter(feeds.values())).shape[0] > 1:
            from edge_infer.backends import BackendError

            raise BackendError("profile max batch 1")
        return self.inner.run(feeds, output_names)


def test_a_batch_the_backend_refuses_runs_frame_by_frame(base_pipeline, camera_frames):
    from edge_infer.pipeline.face_batch import BatchStats, process_frames
    from edge_infer.pipeline.face_pipeline import FacePipeline
    from edge_infer.pipeline.latency import FrameTimer

    detector = _NoBatchBackend(base_pipeline.detector)
    pipes = [FacePipeline(detector, base_pipeline.emotion, base_pipeline.mesh, ids=base_pipeline.ids) for _ in range(2)]
    stats = BatchStats()
    results = process_frames([(p, f, FrameTimer()) for p, f in zip(pipes, camera_frames[0][:2])], stats)
    assert [len(r.faces) for r in results] == [1, 2]
    assert stats.fallbacks == 1  # the detector batch; the mesh and emotion batches ran


def test_one_cameras_failure_does_not_touch_the_others(base_pipeline, camera_frames):
    from edge_infer.pipeline.face_batch import process_frames
    from edge_infer.pipeline.frames import Frame
    from edge_infer.pipeline.latency import FrameTimer

    broken = Frame(np.zeros((4, 4, 3), np.uint8), "no_such_encoding")
    pipes = [base_pipeline.for_camera() for _ in range(3)]
    frames = [camera_frames[0][0], broken, camera_frames[0][2]]
    results = process_frames([(p, f, FrameTimer()) for p, f in zip(pipes, frames)])
    assert isinstance(results[1], Exception)
    assert [len(results[0].faces), len(results[2].faces)] == [1, 4]


def test_tensorrt_profiles_grow_with_the_cameras():
    from edge_infer.models.spec import load_zoo
    from edge_infer.pipeline.face_pipeline import batch_profile

    zoo = load_zoo()
    detector = zoo.model("face_detector").profile
    four = batch_profile(detector, 4)
    assert four["max"][0] == 4 * detector["max"][0] and four["max"][1:] == detector["max"][1:]
    assert four["min"] == detector["min"] and batch_profile(detector, 1) == detector
    nested = batch_profile({"x": {"min": [1, 2], "opt": [1, 2], "max": [8, 2]}}, 3)
    assert nested == {"x": {"min": [1, 2], "opt": [1, 2], "max": [24, 2]}}
