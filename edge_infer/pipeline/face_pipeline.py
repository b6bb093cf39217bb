"""Face pipeline: detection -> face mesh + emotion on every face, with MediaPipe-style tracking.

Per frame, each model runs at most once, batched over all faces (dynamic batch): the cost of N faces is
one detector call plus two batched calls, not 2N calls.

Tracking (``FaceConfig.tracking``): between detector runs each face's mesh ROI comes from its previous
468 points (as MediaPipe's face mesh does), so a steady stream costs mesh + emotion only. The detector
runs every ``detect_every`` frames, and at once when a tracked face's mesh confidence drops below
``mesh_min_confidence`` (face lost), so a tracked frame is never worse than one the tracker could not explain.
Those scheduled runs use the small ``redetect_size`` input (near faces, ~4x cheaper) except every
``full_detect_every``-th, which uses ``detector_size``; a tracked face a small run does not find stays tracked
(same id, the mesh runs over detected and kept faces in one batch). A detection after a lost face is full size.
Tracked faces keep the detector's box/keypoint convention: at each detection the offset between the
detector's box/keypoints and the mesh's is recorded and reapplied to the tracked mesh.

Face ids (``Face.id``, e.g. ``f00007``): a tracked face keeps its track's id; a detected face takes the id of
the previous frame's face it overlaps most (IoU >= ``ID_MATCH_IOU``, each id at most once), else a new id. A
face that leaves the image (or is missed for one frame) comes back with a new id, as ROS4HRI expects of ids.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Generator, TypeVar

import numpy as np

from edge_infer.backends import Backend, BackendError, create_backend
from edge_infer.errors import MissingFileError
from edge_infer.models import emotion as emotion_model
from edge_infer.models import face_mesh, retinaface
from edge_infer.pipeline.frames import Frame
from edge_infer.pipeline.latency import FrameTimer

if TYPE_CHECKING:  # annotations only: face_signals.py fills these in after process()
    from edge_infer.pipeline.fatigue import FatigueSignals
    from edge_infer.pipeline.head_pose import HeadPose

log = logging.getLogger(__name__)

#: mesh indices standing for RetinaFace's 5 keypoints (right eye, left eye, nose, mouth right, mouth left)
MESH_KEYPOINTS = ((33, 133), (362, 263), (1,), (61,), (291,))
#: a detected face continues the id of a previous-frame face whose box overlaps it at least this much
ID_MATCH_IOU = 0.3


@dataclass
class FaceConfig:
    detector_size: tuple[int, int] = retinaface.DEFAULT_INPUT_SIZE  # (width, height)
    score_threshold: float = 0.6
    nms_threshold: float = 0.4
    max_faces: int = 8
    enable_emotion: bool = True
    enable_mesh: bool = True
    tracking: bool = True
    detect_every: int = 10
    mesh_min_confidence: float = 0.5
    # Scheduled re-detections on a tracked stream run at this smaller input (None: at detector_size), except every
    # full_detect_every-th, which runs at detector_size. Why: a detection frame costs 17.5 ms at 640x384 against
    # 2.8 ms for a tracked one (docs/PERFORMANCE.md); at 320x192 the detector takes 3.6 ms and finds faces from
    # ~76 px tall (44 px at 640x384), i.e. the people near the robot, who are the ones that come and go. Faces
    # already tracked and not found by the small pass (farther ones) are kept: tracked on from their mesh, same id.
    # A face lost by the tracker still triggers a full-size detection at once.
    redetect_size: tuple[int, int] | None = (320, 192)
    full_detect_every: int = 3


@dataclass
class Face:
    box: np.ndarray  # [4] x1,y1,x2,y2 in image pixels
    score: float  # detector score (of the last detection for tracked faces)
    keypoints: np.ndarray  # [5,2] image pixels
    tracked: bool = False  # True: box/keypoints derived from the tracked mesh, detector skipped
    emotion: str | None = None
    emotion_scores: dict[str, float] | None = None
    mesh: np.ndarray | None = None  # [468,3] image pixels (z in x's unit)
    mesh_confidence: float | None = None
    id: str = ""  # stable while the face is tracked; a valid ROS name token (ROS4HRI topic names use it)
    # set by edge_infer.pipeline.face_signals.FaceSignals (the node's worker, after process()); None: not computed
    head_pose: "HeadPose | None" = None  # in the camera's optical frame (needs the mesh and intrinsics)
    fatigue: "FatigueSignals | None" = None  # this face's eye / mouth signals at this frame's stamp


@dataclass
class FaceFrameResult:
    faces: list[Face]
    width: int
    height: int
    timer: FrameTimer
    detector_ran: bool


@dataclass
class _Track:
    roi: face_mesh.Roi  # next frame's mesh ROI
    score: float
    box_offset: np.ndarray  # detector box relative to the mesh bbox, in units of mesh bbox size
    kp_offset: np.ndarray  # detector keypoints minus mesh keypoints, in units of mesh bbox size
    face_id: str = ""


def _mesh_bbox(points: np.ndarray) -> np.ndarray:
    xy = points[:, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def _keypoint_weights() -> np.ndarray:
    """[5, points used]: each keypoint the mean of its mesh points, as one matrix product per face (a tracked
    frame computes them on every frame: 2 us instead of 90 us for five fancy-indexed means)."""
    weights = np.zeros((len(MESH_KEYPOINTS), sum(map(len, MESH_KEYPOINTS))), np.float32)
    col = 0
    for row, idx in enumerate(MESH_KEYPOINTS):
        weights[row, col:col + len(idx)] = 1.0 / len(idx)
        col += len(idx)
    return weights


_KEYPOINT_INDEX = np.array([i for idx in MESH_KEYPOINTS for i in idx])
_KEYPOINT_WEIGHTS = _keypoint_weights()


def _mesh_keypoints(points: np.ndarray) -> np.ndarray:
    return _KEYPOINT_WEIGHTS @ points[_KEYPOINT_INDEX, :2]


def _bbox_scale(bbox: np.ndarray) -> np.ndarray:
    return np.maximum(bbox[2:] - bbox[:2], 1.0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w, h = np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2])
    inter = max(float(w), 0.0) * max(float(h), 0.0)
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


_BGR_ENCODINGS = ("bgr8", "8UC3", "bgr16")
_GRAY_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1")


def _tracked_face(track: "_Track", points: np.ndarray, confidence: float) -> Face:
    """A face from a track's mesh this frame: box and keypoints in the detector's convention (its offsets)."""
    bbox = _mesh_bbox(points)
    scale = _bbox_scale(bbox)
    box = bbox + track.box_offset * np.tile(scale, 2)
    kps = _mesh_keypoints(points) + track.kp_offset * scale
    return Face(box.astype(np.float32), track.score, kps.astype(np.float32), True, mesh=points,
                mesh_confidence=confidence, id=track.face_id)


def colour_view(frame: Frame) -> tuple[np.ndarray, str]:
    """(image, channel order) that every model's preprocessing reads: the frame converted at most once.

    A bgr8 or rgb8 camera frame is used as it is (the detector wants BGR, the mesh RGB, emotion gray: each
    converts only its own small crop or letterbox, never the 720p frame); mono frames stay 2-D gray; other
    encodings (YUV, Bayer, BGRA...) become RGB once (cached by the Frame). Measured on a 720p bgr8 frame: the
    full-frame RGB and gray conversions this replaces cost 0.3 ms of a 2.4 ms tracked frame (docs/PERFORMANCE.md).
    """
    if frame.encoding in _BGR_ENCODINGS:
        return frame.bgr(), "bgr"
    if frame.encoding in _GRAY_ENCODINGS:
        return frame.gray(), "rgb"  # 2-D: the order does not apply
    return frame.rgb(), "rgb"


#: the detector outputs every stage reads (box offsets, scores, keypoints)
DETECTOR_OUTPUTS = [retinaface.LOC, retinaface.CONF, retinaface.LANDMARKS]
T = TypeVar("T")
#: a stage of a frame: yields the model calls it needs, is sent their outputs, returns its value
Steps = Generator["ModelCall", dict, T]


@dataclass
class ModelCall:
    """One model run a frame's stage asks for; whoever drives the stage runs it and sends back the outputs.

    Why the stages ask instead of calling the backend: one face node serves several cameras, and the calls of
    their frames for the same model (the detector, or the mesh over all faces of all cameras) run as one batch
    (:mod:`edge_infer.pipeline.face_batch`). ``stage`` is the latency stage the run's time goes to.
    """

    stage: str  # "detector" | "mesh" | "emotion"
    backend: Backend
    feeds: dict[str, np.ndarray]  # batch axis first
    output_names: list[str] | None = None

    @property
    def batch(self) -> int:
        return int(next(iter(self.feeds.values())).shape[0])


def run_steps(steps: "Steps[T]", timer: FrameTimer) -> T:
    """Drive one frame's stages alone: each model call runs as it comes (its time on ``timer``)."""
    try:
        call = next(steps)
        while True:
            t0 = time.perf_counter()
            try:
                out = call.backend.run(call.feeds, call.output_names)
            except Exception as e:  # the stage may handle it (a detector that does not take the small size)
                timer.add(call.stage, (time.perf_counter() - t0) * 1e3)
                call = steps.throw(e)
                continue
            timer.add(call.stage, (time.perf_counter() - t0) * 1e3)
            call = steps.send(out)
    except StopIteration as done:
        return done.value


def batch_profile(profile: dict, cameras: int) -> dict:
    """A zoo TensorRT profile whose largest batch (dim 0 of ``max``) is ``cameras`` times the zoo's: one engine
    takes every camera's frames (detector) or faces (mesh, emotion) in one call. Both profile forms: {min, opt,
    max} and {input: {min, opt, max}}."""
    if cameras <= 1:
        return profile

    def scaled(p: dict) -> dict:
        return {**p, "max": [int(p["max"][0]) * cameras, *p["max"][1:]]}

    if all(k in profile for k in ("min", "opt", "max")):
        return scaled(profile)
    return {name: scaled(p) if isinstance(p, dict) and "max" in p else p for name, p in profile.items()}


class FaceIds:
    """Issues face ids (``f00001``, ``f00002``, ...) that are never reused by their owner.

    Why a separate object: a node replaces its pipeline on ``cleanup`` -> ``configure`` and on
    ``~/rebuild_engines``; ROS4HRI consumers key a person's state by face id, so a new pipeline must continue
    the count of the node's earlier ones instead of starting again at f00001. The node keeps one for its life.
    """

    def __init__(self) -> None:
        self.issued = 0
        self._lock = threading.Lock()  # the face node's workers (one per core) draw from one counter

    def next(self) -> str:
        with self._lock:
            self.issued += 1
            return f"f{self.issued:05d}"


class FacePipeline:
    """Runs the three face models on frames; stateful only for tracking (call :meth:`reset` between streams)."""

    def __init__(self, detector: Backend, emotion: Backend | None = None, mesh: Backend | None = None,
                 config: FaceConfig | None = None, ids: FaceIds | None = None) -> None:
        self.detector, self.emotion, self.mesh = detector, emotion, mesh
        self._detector_input = retinaface.InputBuffers()  # reused frame to frame (measured: -2 ms per detection)
        self.config = config or FaceConfig()
        self._tracks: list[_Track] = []
        self._since_detect = 0
        self._small_passes = 0  # scheduled re-detections at redetect_size since the last full-size one
        self._small_input = retinaface.InputBuffers()  # its own memory: sizes alternating would reallocate
        self._small_pass_off = ""  # why small passes are off for this pipeline's detector ("" = they are not)
        self._previous: list[tuple[str, np.ndarray]] = []  # (id, box) of the last frame's faces
        self.ids = ids or FaceIds()  # never reset: an id is not reused for another face (pass the node's own)

    @classmethod
    def from_models_dir(cls, models_dir: str | Path, backend: str = "onnxruntime", config: FaceConfig | None = None,
                        ids: FaceIds | None = None, cameras: int = 1, **backend_options) -> "FacePipeline":
        """The three models from the zoo's files. ``cameras``: how many cameras' frames one call may carry
        (TensorRT engines get that many times the zoo profile's largest batch, built once)."""
        from edge_infer.models.spec import load_zoo

        config = config or FaceConfig()
        zoo = load_zoo()

        def load(name: str) -> Backend:
            spec = zoo.model(name)
            path = spec.path(Path(models_dir))
            if not path.is_file():
                raise MissingFileError(f"model '{name}' not found at {path}: run `edge-infer zoo fetch`")
            options = dict(backend_options)
            if backend in ("tensorrt", "auto") and spec.profile:  # engine optimization profile from the zoo
                options.setdefault("spec_profile", batch_profile(spec.profile, cameras))
            if backend == "auto" and spec.litert is not None:  # TFLite origin: LiteRT when auto finds no GPU
                options.update(litert_model=str(spec.litert.path(Path(models_dir))), litert_names=spec.litert.names)
            return create_backend(backend, str(path), **options)

        return cls(load("face_detector"), load("emotion") if config.enable_emotion else None,
                   load("face_mesh") if config.enable_mesh else None, config, ids)

    def for_camera(self) -> "FacePipeline":
        """A pipeline for another camera of the same node: the same models (one copy in memory, one engine each),
        the same config values and the same id counter (ids unique across cameras), its own tracking state."""
        return FacePipeline(self.detector, self.emotion, self.mesh, replace(self.config), self.ids)

    def backends(self) -> dict[str, str]:
        """model -> runtime of every loaded model (what ``~/rebuild_engines`` and diagnostics report)."""
        loaded = {"face_detector": self.detector, "emotion": self.emotion, "face_mesh": self.mesh}
        return {name: b.name for name, b in loaded.items() if b is not None}

    @property
    def backend_name(self) -> str:
        """The detector's runtime, plus any other runtime ``auto`` picked for a model (LiteRT for the mesh)."""
        others = sorted({b.name for b in (self.emotion, self.mesh) if b is not None} - {self.detector.name})
        return ", ".join([self.detector.name, *others])

    def reset(self) -> None:
        self._tracks = []
        self._since_detect = 0
        self._small_passes = 0
        self._previous = []

    # ------------------------------------------------------------------------------------------ stages
    # Each stage is a generator: it prepares its inputs, yields one ModelCall and receives that model's outputs
    # (see edge_infer.pipeline.face_batch, which runs the calls of several cameras' frames as one batch).
    def _detect(self, frame: Frame, timer: FrameTimer, small: bool = False) -> "Steps[retinaface.Detections]":
        c = self.config
        size, buffers = (c.redetect_size, self._small_input) if small else (c.detector_size, self._detector_input)
        with timer.stage("preprocess"):
            image, order = colour_view(frame)
            tensor, lb = retinaface.prepare_input(image, size, order, buffers)
        out = yield ModelCall("detector", self.detector, {retinaface.INPUT_NAME: tensor}, DETECTOR_OUTPUTS)
        with timer.stage("postprocess"):
            return retinaface.decode(out[retinaface.LOC], out[retinaface.CONF], out[retinaface.LANDMARKS],
                                     retinaface.anchors_for(lb.input_size), c.score_threshold, c.nms_threshold,
                                     c.max_faces, lb)

    def _run_mesh(self, frame: Frame, rois: list[face_mesh.Roi], timer: FrameTimer) -> "Steps[tuple[np.ndarray, np.ndarray]]":
        with timer.stage("preprocess"):
            image, order = colour_view(frame)
            crops = face_mesh.crop_batch(image, rois, channel_order=order)
        out = yield ModelCall("mesh", self.mesh, {face_mesh.INPUT_NAME: crops})
        with timer.stage("postprocess"):
            return face_mesh.decode(out[face_mesh.LANDMARKS], out[face_mesh.FACE_FLAG], rois)

    def _run_emotion(self, frame: Frame, faces: list[Face], timer: FrameTimer) -> "Steps[None]":
        with timer.stage("preprocess"):
            image, order = colour_view(frame)
            crops = emotion_model.crop_faces(image, np.stack([f.box for f in faces]), order)
        out = yield ModelCall("emotion", self.emotion, {emotion_model.INPUT_NAME: crops})
        with timer.stage("postprocess"):
            for face, (label, probs) in zip(faces, emotion_model.decode(out[emotion_model.OUTPUT_NAME])):
                face.emotion, face.emotion_scores = label, probs

    # ------------------------------------------------------------------------------------------ frame
    def _track(self, frame: Frame, timer: FrameTimer) -> "Steps[list[Face] | None]":
        """Faces from the tracked ROIs, or None when a face was lost (the caller then detects)."""
        points, conf = yield from self._run_mesh(frame, [t.roi for t in self._tracks], timer)
        if (conf < self.config.mesh_min_confidence).any():
            return None
        return [_tracked_face(t, pts, float(cf)) for t, pts, cf in zip(self._tracks, points, conf)]

    def _small_pass(self, frame: Frame, timer: FrameTimer) -> "Steps[tuple[list[Face], list[_Track | None]] | None]":
        """A scheduled re-detection at ``redetect_size``: detected faces (ids continued by overlap) plus the
        tracked faces it did not find, tracked on; the mesh runs once over both. None when a kept face was lost
        (the caller then detects at full size). Returns the faces and, per face, the track it continues
        untouched (None: made from this detection)."""
        try:
            dets = yield from self._detect(frame, timer, small=True)
        except BackendError as e:  # e.g. a TensorRT engine built for the full size only
            self._small_pass_off = f"the detector does not take {self.config.redetect_size}: {e}"
            log.warning("scheduled re-detections stay at the full detector size: %s", self._small_pass_off)
            return None
        detected = [Face(b, float(s), k) for b, s, k in zip(dets.boxes, dets.scores, dets.keypoints)]
        self._assign_ids(detected)
        found = {f.id for f in detected}
        kept = [t for t in self._tracks if t.face_id not in found]
        rois = [face_mesh.roi_from_detection(f.box, f.keypoints) for f in detected] + [t.roi for t in kept]
        if not rois:
            return [], []
        points, conf = yield from self._run_mesh(frame, rois, timer)
        if (conf[len(detected):] < self.config.mesh_min_confidence).any():
            return None
        for f, pts, cf in zip(detected, points, conf):
            f.mesh, f.mesh_confidence = pts, float(cf)
        tracked = [_tracked_face(t, pts, float(cf)) for t, pts, cf in zip(kept, points[len(detected):],
                                                                          conf[len(detected):])]
        return detected + tracked, [None] * len(detected) + kept

    def _detect_faces(self, frame: Frame, timer: FrameTimer) -> "Steps[list[Face]]":
        dets = yield from self._detect(frame, timer)
        faces = [Face(b, float(s), k) for b, s, k in zip(dets.boxes, dets.scores, dets.keypoints)]
        if self.mesh is not None and faces:
            rois = [face_mesh.roi_from_detection(f.box, f.keypoints) for f in faces]
            points, conf = yield from self._run_mesh(frame, rois, timer)
            for f, pts, cf in zip(faces, points, conf):
                f.mesh, f.mesh_confidence = pts, float(cf)
        return faces

    def _update_tracks(self, faces: list[Face], sources: "list[_Track | None]") -> None:
        """Next frame's tracks. ``sources[i]``: the track face i continues untouched (its detector offsets are
        kept), or None for a face made from a detection in this frame (offsets measured now)."""
        tracks = []
        for f, source in zip(faces, sources):
            if f.mesh is None or f.mesh_confidence < self.config.mesh_min_confidence:
                continue
            if source is None:
                bbox = _mesh_bbox(f.mesh)
                scale = _bbox_scale(bbox)
                box_offset = (f.box - bbox) / np.tile(scale, 2)
                kp_offset = (f.keypoints - _mesh_keypoints(f.mesh)) / scale
            else:
                box_offset, kp_offset = source.box_offset, source.kp_offset
            tracks.append(_Track(face_mesh.roi_from_landmarks(f.mesh), f.score, box_offset, kp_offset, f.id))
        self._tracks = tracks

    def _assign_ids(self, faces: list[Face]) -> None:
        """Detected faces continue the previous frame's ids by box overlap (greedy, best pairs first), else new."""
        pairs = sorted(((_iou(f.box, box), i, fid) for i, f in enumerate(faces) for fid, box in self._previous),
                       key=lambda p: -p[0])
        taken: set[str] = set()
        for iou, i, fid in pairs:
            if iou >= ID_MATCH_IOU and not faces[i].id and fid not in taken:
                faces[i].id = fid
                taken.add(fid)
        for f in faces:
            if not f.id:
                f.id = self.ids.next()

    def process(self, frame: Frame, timer: FrameTimer | None = None) -> FaceFrameResult:
        """Faces of one frame in original image pixels; ``timer`` may already hold the node's decode time."""
        timer = timer or FrameTimer()
        return run_steps(self.steps(frame, timer), timer)

    def steps(self, frame: Frame, timer: FrameTimer) -> "Steps[FaceFrameResult]":
        """:meth:`process` as a generator of the model calls it needs (yields :class:`ModelCall`, is sent each
        call's outputs, returns the result): the one implementation of a frame, run alone by :meth:`process` or
        batched with other cameras' frames by :func:`edge_infer.pipeline.face_batch.process_frames`."""
        c = self.config
        faces: list[Face] | None = None
        sources: list[_Track | None] = []
        detector_ran = False
        if c.tracking and self.mesh is not None and self._tracks:
            if self._since_detect < c.detect_every - 1:
                faces = yield from self._track(frame, timer)
                sources = list(self._tracks)
            elif self._small_pass_due():
                detector_ran = True
                small = yield from self._small_pass(frame, timer)
                if small is not None:
                    faces, sources = small
                    self._small_passes += 1
                    self._since_detect = -1  # the next schedule counts from this detection
        if faces is None:
            faces = yield from self._detect_faces(frame, timer)
            sources = [None] * len(faces)
            self._assign_ids(faces)
            self._since_detect, self._small_passes, detector_ran = -1, 0, True
        self._since_detect += 1
        if self.emotion is not None and faces:
            yield from self._run_emotion(frame, faces, timer)
        if c.tracking:
            self._update_tracks(faces, sources)
        self._previous = [(f.id, f.box) for f in faces]
        return FaceFrameResult(faces, frame.width, frame.height, timer, detector_ran)

    def _small_pass_due(self) -> bool:
        c = self.config
        return (c.redetect_size is not None and tuple(c.redetect_size) != tuple(c.detector_size)
                and self._small_passes < c.full_detect_every - 1 and not self._small_pass_off)
