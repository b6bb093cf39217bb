"""Fatigue signals (edge_infer/pipeline/fatigue.py) on the face mesh's own geometry and on real photos.

What is measured here: (a) a real mesh (the real face pipeline on astronaut.png) with its eyelids moved shut and
its mouth moved open over time -> EAR / MAR, blinks, PERCLOS and yawns follow; scale and roll leave EAR
unchanged (synthetic: to float precision; real photos rolled and scaled: within the printed tolerance);
(b) every face on the real sample photos is open-eyed -> no closure, no blink, PERCLOS 0 (EARs printed);
(c) memory stays bounded. What is NOT measured: accuracy against labelled drowsiness or blink data (none here),
nor how low the real mesh's EAR goes on a real closed eye.
"""

from __future__ import annotations

import json
import math

import cv2
import jsonschema
import numpy as np
import pytest

from edge_infer.pipeline.face_pipeline import Face, FaceConfig, FacePipeline
from edge_infer.pipeline.fatigue import (JSON_SCHEMA, LEFT_EYE, MOUTH_CORNERS, MOUTH_PAIRS, RIGHT_EYE,
                                         FatigueConfig, FatigueTracker, eye_aspect_ratios, mouth_aspect_ratio)
from edge_infer.pipeline.frames import Frame
from edge_infer.samples.scenes import load_samples, scene

# Google's face-mesh contour annotations (tfjs face-landmarks-detection MESH_ANNOTATIONS / MediaPipe's
# face_mesh_connections): the whole upper eyelid and its lower-lid counterpart vertex by vertex (corners left
# out), and the lower lip. The synthetic eye closes by moving every upper-lid vertex onto the lower lid, not only
# the points EAR reads.
UPPER_LID = {"right": (246, 161, 160, 159, 158, 157, 173), "left": (466, 388, 387, 386, 385, 384, 398)}
LOWER_LID = {"right": (7, 163, 144, 145, 153, 154, 155), "left": (249, 390, 373, 374, 380, 381, 382)}
LOWER_LIP = (95, 88, 178, 87, 14, 317, 402, 318, 324,  # lipsLowerInner without the corners
             146, 91, 181, 84, 17, 314, 405, 321, 375)  # lipsLowerOuter without the corners


@pytest.fixture(scope="module")
def samples(models_dir):
    return load_samples(models_dir)


@pytest.fixture(scope="module")
def pipeline(models_dir):
    return FacePipeline.from_models_dir(models_dir, "onnxruntime",
                                        config=FaceConfig(tracking=False, enable_emotion=False))


@pytest.fixture(scope="module")
def mesh(pipeline, samples) -> np.ndarray:
    faces = pipeline.process(Frame(samples["astronaut.png"], "bgr8")).faces
    assert len(faces) == 1 and faces[0].mesh_confidence > 0.9
    return faces[0].mesh.astype(np.float64)


def _face_frame(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, rotation image->face, eye distance): x along the eye line (33 -> 263), y down the face."""
    a, b = mesh[33, :2], mesh[263, :2]
    u = (b - a) / np.linalg.norm(b - a)
    return a, np.array([u, [-u[1], u[0]]]), float(np.linalg.norm(b - a))


def closing_eyes(mesh: np.ndarray, f: float) -> np.ndarray:
    """Both upper eyelids moved the fraction ``f`` of the way onto the lower lid (1: shut)."""
    out = mesh.copy()
    for side in ("right", "left"):
        up, low = np.array(UPPER_LID[side]), np.array(LOWER_LID[side])
        out[up] = mesh[up] + f * (mesh[low] - mesh[up])
    return out


def opening_mouth(mesh: np.ndarray, mar: float) -> np.ndarray:
    """The lower lip moved down the face until the inner-lip MAR is ``mar``."""
    _, rot, _ = _face_frame(mesh)
    down = np.zeros(mesh.shape[1])
    down[:2] = rot[1]
    width = np.linalg.norm(mesh[MOUTH_CORNERS[0], :2] - mesh[MOUTH_CORNERS[1], :2])
    gap0 = mouth_aspect_ratio(mesh) * width
    out = mesh.copy()
    out[list(LOWER_LIP)] += (mar * width - gap0) * down
    return out


def _face(mesh: np.ndarray, face_id: str = "f00001", confidence: float = 0.99) -> Face:
    return Face(np.zeros(4, np.float32), 0.9, np.zeros((5, 2), np.float32), mesh=mesh, mesh_confidence=confidence,
                id=face_id)


def _stamps(duration: float, rate_hz: float | tuple[float, float], seed: int = 0) -> np.ndarray:
    """Frame stamps over ``duration`` s at a fixed rate, or at a rate varying at random between two rates."""
    if isinstance(rate_hz, tuple):
        dt = np.random.default_rng(seed).uniform(1 / rate_hz[1], 1 / rate_hz[0], int(duration * rate_hz[1]) + 2)
        t = 100.0 + np.concatenate([[0], np.cumsum(dt)])
        return t[t < 100.0 + duration]
    return 100.0 + np.arange(0, duration, 1 / rate_hz)


def _blink(t: float, start: float, closed_s: float = 0.1, close_s: float = 0.08, open_s: float = 0.12) -> float:
    """Closure fraction of a blink starting at ``start``: lid down in close_s, shut closed_s, up in open_s."""
    x = t - start
    if x < 0 or x > close_s + closed_s + open_s:
        return 0.0
    if x < close_s:
        return x / close_s
    if x < close_s + closed_s:
        return 1.0
    return 1.0 - (x - close_s - closed_s) / open_s


def _run(tracker: FatigueTracker, stamps: np.ndarray, mesh_at) -> list:
    return [tracker.update(float(t), [_face(mesh_at(float(t) - 100.0))])["f00001"] for t in stamps]


# ------------------------------------------------------------------------------------------ (a) geometry
def test_indices_are_the_eyelids_and_lips_of_a_real_mesh(mesh):
    """On the real mesh: p1/p4 are the ends of each eye, p2/p3 on the upper lid above p6/p5 on the lower lid, each
    pair across the eye at one position along it; the inner-lip pairs are upper over lower. Same vertices as the
    dlib eye points of hri_mapping (36-47)."""
    from edge_infer.pipeline.hri_mapping import LANDMARKS

    origin, rot, eye_dist = _face_frame(mesh)
    local = (mesh[:, :2] - origin) @ rot.T / eye_dist  # face frame, eye distance = 1
    for name, (p1, p2, p3, p4, p5, p6) in (("right", RIGHT_EYE), ("left", LEFT_EYE)):
        x0, x1 = local[p1, 0], local[p4, 0]
        width = x1 - x0
        assert width > 0.2, (name, width)  # corners in eye-line order, an eye's width apart
        for up, low in ((p2, p6), (p3, p5)):
            assert x0 < local[up, 0] < x1 and x0 < local[low, 0] < x1, (name, up, low)
            assert local[up, 1] < local[low, 1], (name, up, low)  # upper lid above (y down the face)
            assert abs(local[up, 0] - local[low, 0]) < 0.15 * width, (name, up, low)  # across the eye
        assert local[p2, 0] < local[p3, 0] and local[p6, 0] < local[p5, 0]  # p2,p6 nearer p1
        print(f"{name} eye (face frame, eye distance 1): corners x {x0:.3f}..{x1:.3f}; lid pairs "
              + ", ".join(f"{u}/{lo} dx {local[u, 0] - local[lo, 0]:+.3f} gap {local[lo, 1] - local[u, 1]:.3f}"
                          for u, lo in ((p2, p6), (p3, p5))))
    assert local[RIGHT_EYE[3], 0] < local[LEFT_EYE[0], 0]  # subject's right eye on the image's left
    for up, low in MOUTH_PAIRS:
        assert local[up, 1] <= local[low, 1] + 0.01
        assert local[MOUTH_CORNERS[0], 0] < local[up, 0] < local[MOUTH_CORNERS[1], 0]
    dlib_eyes = {index: vertices[0] for index, _, vertices in LANDMARKS if 36 <= index <= 47}
    assert (dlib_eyes[36], dlib_eyes[37], dlib_eyes[38], dlib_eyes[39], dlib_eyes[40], dlib_eyes[41]) == RIGHT_EYE
    assert (dlib_eyes[42], dlib_eyes[43], dlib_eyes[44], dlib_eyes[45], dlib_eyes[46], dlib_eyes[47]) == LEFT_EYE


def test_closing_eye_lowers_ear_monotonically_to_zero(mesh):
    fractions = np.linspace(0, 1, 21)
    ears = np.array([eye_aspect_ratios(closing_eyes(mesh, f)) for f in fractions])
    print("EAR (right, left) while closing:", np.round(ears[::5], 4).tolist())
    assert (np.diff(ears, axis=0) < 0).all()
    assert ears[0].min() > 0.2 and np.abs(ears[-1]).max() < 1e-9
    # the closure fraction maps linearly onto EAR (the lid moves straight): the P80 threshold is 80 % closed
    np.testing.assert_allclose(ears, np.outer(1 - fractions, ears[0]), atol=1e-9)


def test_ear_and_mar_unchanged_by_scale_roll_and_translation(mesh):
    """Synthetic: the same mesh scaled, rolled about its centre and moved; the measured worst difference is float
    rounding (printed)."""
    base = np.array([*eye_aspect_ratios(mesh), mouth_aspect_ratio(opening_mouth(mesh, 0.5))])
    centre = mesh.mean(axis=0)
    worst = 0.0
    for scale in (0.1, 0.5, 2.0, 8.0):
        for deg in (-90, -45, -10, 7, 30, 60, 180):
            r = math.radians(deg)
            rot = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
            moved = (mesh - centre) @ rot.T * scale + centre + [313.0, -41.0, 5.0]
            got = np.array([*eye_aspect_ratios(moved), mouth_aspect_ratio(opening_mouth(moved, 0.5))])
            worst = max(worst, float(np.abs(got - base).max()))
    print(f"synthetic scale x0.1..x8, roll -90..180 deg: worst EAR/MAR difference {worst:.2e}")
    assert worst < 1e-9


def test_blinks_counted_once_per_close_open_cycle_by_stamps_at_any_rate(mesh):
    """5 blinks (~0.24 s below the threshold each) and one 1.5 s closure over 20 s, at 15 Hz, 60 Hz and at a rate
    varying at random between 12 and 60 Hz: the same counts (durations come from the stamps, not frame counts)."""
    blink_starts = (2.0, 5.0, 8.0, 11.0, 14.0)

    def shape(t):
        f = max(_blink(t, s) for s in blink_starts)
        if 16.0 <= t < 17.5:
            f = 1.0
        return closing_eyes(mesh, f)

    for rate in (15.0, 60.0, (12.0, 60.0)):
        out = _run(FatigueTracker(), _stamps(20.0, rate), shape)
        blinks = [s.blinks for s in out]
        assert blinks[-1] == 5 and out[-1].long_closures == 1, (rate, blinks[-1], out[-1].long_closures)
        assert all(b - a in (0, 1) for a, b in zip(blinks, blinks[1:]))  # one at a time, once per cycle
        assert max(s.closed_s for s in out) == pytest.approx(1.5, abs=0.1)  # the long closure, timed by stamps
        assert out[-1].blink_rate_per_min == pytest.approx(5 * 60 / out[-1].observed_s, rel=1e-6)
        assert not out[-1].eyes_closed and out[-1].yawns == 0
        print(f"rate {rate} Hz: {len(out)} frames, blinks {blinks[-1]}, long closures {out[-1].long_closures}, "
              f"rate {out[-1].blink_rate_per_min:.1f}/min over {out[-1].observed_s:.2f} s")


def test_single_noisy_frame_is_not_a_blink(mesh):
    """One 30 Hz frame (33 ms < blink_min_s) below the threshold is mesh noise, not a blink."""
    out = _run(FatigueTracker(), _stamps(3.0, 30.0), lambda t: closing_eyes(mesh, 1.0 if 0.99 <= t < 1.02 else 0.0))
    assert any(s.eyes_closed for s in out) and out[-1].blinks == 0 and out[-1].long_closures == 0


@pytest.mark.parametrize("depth, counts", [(1.0, True), (0.9, True), (0.7, False)])
def test_perclos_rises_with_the_closed_fraction(mesh, depth, counts):
    """60 s at a varying rate; the eyes shut (``depth`` of the way) for a fraction p of every 10 s. P80: lids
    at least 80 % closed count, so 70 % closures do not (though they are below the blink threshold)."""
    got = []
    for p in (0.0, 0.1, 0.25, 0.5):
        out = _run(FatigueTracker(), _stamps(61.0, (12.0, 60.0), seed=int(p * 100)),
                   lambda t, p=p: closing_eyes(mesh, depth if (t % 10.0) < 10.0 * p else 0.0))
        got.append(out[-1].perclos)
        assert out[-1].perclos == pytest.approx(p if counts else 0.0, abs=0.01), (p, out[-1].perclos)
        assert out[-1].ear_open == pytest.approx(np.mean(eye_aspect_ratios(mesh)), abs=0.006)
    print(f"lids {depth:.0%} closed for 0/10/25/50 % of 60 s: PERCLOS {got}")
    if counts:
        assert got == sorted(got) and got[-1] > got[0]


def test_perclos_and_rate_need_min_observed_time(mesh):
    out = _run(FatigueTracker(), _stamps(12.0, 30.0), lambda t: mesh)
    early = [s for s in out if s.observed_s < 10.0]
    assert early and all(s.perclos is None and s.blink_rate_per_min is None for s in early)
    assert out[-1].perclos == 0.0 and out[-1].blink_rate_per_min == 0.0


def test_yawn_after_minimum_duration_none_before(mesh):
    """Mouth wide open (MAR 0.9) for 0.8 s: no yawn; for 2.5 s: one yawn, counted when it has lasted 1 s."""
    closed_mar = mouth_aspect_ratio(mesh)

    def shape(t):
        if 2.0 <= t < 2.8 or 4.0 <= t < 6.5:
            return opening_mouth(mesh, 0.9)
        return mesh

    stamps = _stamps(8.0, (12.0, 60.0), seed=3)
    out = _run(FatigueTracker(), stamps, shape)
    t = stamps - 100.0
    first_open = t[t >= 4.0][0]
    assert all(s.yawns == 0 and not s.yawning for s, ti in zip(out, t) if ti < first_open + 1.0)
    assert all(s.yawns == 1 and s.yawning for s, ti in zip(out, t) if first_open + 1.0 <= ti < 6.5)
    assert out[-1].yawns == 1 and not out[-1].yawning
    assert closed_mar < 0.2 and max(s.mar for s in out) == pytest.approx(0.9, abs=0.05)
    assert out[-1].blinks == 0 and not any(s.eyes_closed for s in out)  # the eyes did not move
    counted_at = [ti for s, ti in zip(out, t) if s.yawns][0] - first_open
    print(f"closed-mouth MAR {closed_mar:.4f}; yawn counted {counted_at:.3f} s after the mouth opened")


def test_stream_gap_and_clock_going_back(mesh):
    """A gap longer than max_gap_s ends a closure uncounted and is not observed time; a stamp earlier than the
    last starts the face again (a bag played in a loop, a reset sim clock)."""
    tracker = FatigueTracker()
    tracker.update(100.0, [_face(mesh)])
    tracker.update(100.1, [_face(closing_eyes(mesh, 1.0))])
    s = tracker.update(103.0, [_face(mesh)])  # 2.9 s without frames, eyes "closed" before
    assert s["f00001"].blinks == 0 and s["f00001"].long_closures == 0
    assert s["f00001"].observed_s == pytest.approx(0.1 + tracker.config.max_gap_s)
    s = tracker.update(50.0, [_face(mesh)])
    assert s["f00001"].observed_s == 0.0 and len(tracker) == 1


def test_signals_json_and_config_checks(mesh):
    tracker = FatigueTracker()
    out = _run(tracker, _stamps(11.0, 30.0), lambda t: closing_eyes(mesh, 1.0) if t > 10.9 else mesh)
    low = tracker.update(112.0, [_face(mesh, confidence=0.2), _face(mesh, face_id=""), _face(None, "f00002")])
    for s in (out[0], out[-1], *low.values()):
        doc = json.loads(json.dumps(s.as_dict(), allow_nan=False))
        jsonschema.validate(doc, JSON_SCHEMA)
    assert set(low) == {"f00001", "f00002"}  # no id: skipped
    assert not low["f00001"].measured and low["f00001"].ear is None and low["f00001"].observed_s > 10.0
    assert out[-1].eyes_closed and out[-1].as_dict()["ear"] == 0.0
    with pytest.raises(ValueError, match="blink_closure.*blink_min_s"):
        FatigueTracker(FatigueConfig(blink_closure=-1.0, blink_min_s=2.0, blink_max_s=1.0))
    for f in FatigueConfig.__dataclass_fields__.values():  # what the node's parameter table will read
        assert f.metadata["description"] and len(f.metadata["range"]) == 2


# ------------------------------------------------------------------------------------------ (b) real photos
def test_real_photos_every_face_open_eyed_no_closure(models_dir, samples):
    """All faces the pipeline finds on astronaut.png, camera.png and the 6-face scene (11.6 s of the moving scene,
    tracked, ids kept): eyes open (closure far under the blink threshold), no blink, no long closure, PERCLOS 0,
    no yawn. A single photo has no history: its closure is against the open-EAR floor."""
    config = FatigueConfig()
    pipe = FacePipeline.from_models_dir(models_dir, "onnxruntime", config=FaceConfig(enable_emotion=False))
    report = []
    for name in ("astronaut.png", "camera.png"):
        pipe.reset()
        faces = pipe.process(Frame(samples[name], "bgr8")).faces
        signals = FatigueTracker(config).update(100.0, faces)
        report += [(name, f, signals[f.id]) for f in faces]
    tracker, out, closures = FatigueTracker(config), {}, []
    pipe.reset()
    for i in range(30):  # 30 real frames, stamps 0.4 s apart: 11.6 s, more than min_observed_s
        faces = pipe.process(Frame(scene(samples, i * 4, n_faces=6), "bgr8")).faces
        assert len(faces) == 6
        out = tracker.update(100.0 + 0.4 * i, faces)
        closures += [s.eye_closure for s in out.values()]
        assert not any(s.eyes_closed for s in out.values())
        if i == 0:
            report += [("scene (6 faces)", f, out[f.id]) for f in faces]
    print("\nphoto, face, EAR right, EAR left, MAR, mesh confidence, eye closure")
    for name, f, s in report:
        print(f"  {name:16s} {f.id} {s.ear_right:.3f} {s.ear_left:.3f} {s.mar:.3f} {f.mesh_confidence:.3f} "
              f"{s.eye_closure:.3f}")
    ears = np.array([eye_aspect_ratios(f.mesh) for f in faces])
    print(f"6-face scene, 30 frames: last frame's EAR {ears.min():.3f}..{ears.max():.3f}; eye closure against each "
          f"face's own open EAR: max {max(closures):.3f} (blink threshold {config.blink_closure})")
    assert len(report) >= 7 and all(not s.eyes_closed and s.eye_closure == 0.0 for _, _, s in report)
    assert all(min(s.ear_right, s.ear_left) > config.ear_open_floor for _, _, s in report)
    assert max(closures) < config.blink_closure - config.closure_hysteresis
    assert len(out) == 6 and len(tracker) == 6
    for s in out.values():
        assert s.observed_s > config.min_observed_s, s
        assert (s.perclos, s.blinks, s.long_closures, s.yawns, s.eyes_closed) == (0.0, 0, 0, 0, False), s


def test_real_photo_rolled_and_scaled_keeps_ear(pipeline, samples):
    """The whole chain on real pixels: astronaut.png rolled in the image plane and scaled; EAR of each eye stays
    within the printed tolerance of the upright photo's (mesh noise on a re-rendered face, not the formula's)."""
    photo = samples["astronaut.png"]
    base = eye_aspect_ratios(pipeline.process(Frame(photo, "bgr8")).faces[0].mesh)
    h, w = photo.shape[:2]
    rows = []
    for deg, scale in ((-30, 1.0), (-15, 1.0), (15, 1.0), (30, 1.0), (0, 0.6), (0, 1.5), (20, 0.75)):
        size = int(max(h, w) * max(scale, 1.0)) + 200
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, scale)
        m[:, 2] += (size / 2 - w / 2, size / 2 - h / 2)
        image = cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        faces = pipeline.process(Frame(image, "bgr8")).faces
        big = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        rows.append((deg, scale, *eye_aspect_ratios(big.mesh)))
    diffs = np.abs(np.array([r[2:] for r in rows]) - base)
    print(f"\nupright EAR right/left {base[0]:.3f}/{base[1]:.3f}")
    for (deg, scale, r, left), d in zip(rows, diffs):
        print(f"  roll {deg:+3d} deg scale {scale:.2f}: {r:.3f}/{left:.3f} (diff {d.max():.3f})")
    print(f"worst difference {diffs.max():.3f} ({diffs.max() / min(base):.1%} of the upright EAR)")
    assert diffs.max() < 0.06


# ------------------------------------------------------------------------------------------ (c) memory
def test_memory_bounded_over_10k_face_ids_and_long_streams(mesh):
    config = FatigueConfig()
    tracker = FatigueTracker(config)
    closed = closing_eyes(mesh, 0.5)
    for frame in range(1000):  # 10k distinct ids, 10 per frame, each seen in one frame only
        t = 100.0 + frame / 30.0
        ids = range(frame * 10, frame * 10 + 10)
        tracker.update(t, [_face(mesh if k % 3 else closed, f"f{k:05d}") for k in ids])
        assert len(tracker) <= config.max_faces
    assert len(tracker) == config.max_faces and tracker.face_ids[-1] == "f09999"  # the most recent kept
    tracker.update(t + config.forget_after_s + 1.0, [])
    assert len(tracker) == 0  # not seen for forget_after_s: forgotten
    # one face, EAR different on every frame (nothing to merge), 30 s at 100 Hz: samples stop at the cap
    small = FatigueTracker(FatigueConfig(max_samples=256))
    rng = np.random.default_rng(0)
    for i in range(3000):
        small.update(100.0 + i / 100.0, [_face(closing_eyes(mesh, float(rng.uniform(0, 0.6))))])
    assert small.samples() <= 256 and small.events() <= 3 * 256
    # a steady eye merges: 60 s of one EAR is one stored interval, however many frames
    steady = FatigueTracker()
    for i in range(1800):
        steady.update(100.0 + i / 30.0, [_face(mesh)])
    assert steady.samples() <= 2


def test_retain_drops_faces_that_left_at_once(mesh):
    """The face node's ids are never reused: a face gone from the frame is dropped in that frame (retain), not
    forget_after_s later; the faces that stay keep their history."""
    tracker = FatigueTracker()
    for i in range(30):
        tracker.update(100.0 + i / 30.0, [_face(mesh, "f00001"), _face(mesh, "f00002")])
    observed = tracker.update(101.0, [_face(mesh, "f00002")])["f00002"].observed_s
    tracker.retain(["f00002"])
    assert tracker.face_ids == ["f00002"] and observed > 0.9
    assert tracker.update(101.1, [_face(mesh, "f00002")])["f00002"].observed_s > observed
    tracker.retain([])
    assert len(tracker) == 0 and tracker.samples() == 0
