"""The one real-input factory: model inputs made by each model's own preprocessing, for every tool.

Two shapes of input, one source: :func:`model_inputs` makes a *set* (dozens of samples, for validation and
INT8 calibration); :func:`frame_input` makes *one* batch-1 feed from a camera-sized frame with a timed
preprocessing closure (benchmarks, bundles' sample input, the TensorRT selftest). Faces are found by the zoo's
detector through :func:`edge_infer.models.retinaface.detect`, the pipeline's own call.

Vision: photos (the zoo's samples, or a user folder) -> RetinaFace letterbox tensors; faces found by the
zoo's detector -> fer-style emotion crops and MediaPipe rotated mesh crops, each with a few small geometric
variations (shift, scale, roll, mirror) so agreement is measured on dozens of inputs, not two. Audio: speech
said by espeak-ng ("hey jarvis", resampled to 16 kHz) -> silero chunks, openWakeWord mel frames, embedding
windows and keyword-head windows computed with the zoo's own front-end models. Only models of unknown task
get seeded random inputs, and the result says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edge_infer.backends.base import TensorInfo
from edge_infer.errors import MissingFileError, OfflineError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VISION_TASKS = ("face_detection", "emotion", "face_mesh")
SAMPLE_RATE = 16000
SPEECH_TEXT = "hey jarvis"
DEFAULT_RESOLUTION = (1280, 720)  # camera frame for frame_input (width, height)
CAMERA_PHOTO = "astronaut.png"


@dataclass
class Inputs:
    task: str
    feeds: list[dict[str, np.ndarray]]
    source: str  # human description: what the inputs were made from
    real: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of samples (batch rows summed over feeds)."""
        return sum(int(next(iter(f.values())).shape[0]) if next(iter(f.values())).ndim else 1 for f in self.feeds)


@dataclass
class ModelInput:
    """One batch-1 feed of a model, what it was made from, and its preprocessing as a callable (for timing)."""

    feeds: dict[str, np.ndarray]  # batch 1
    description: str
    preprocess: Callable[[], Any] | None = None  # one batch-1 preprocessing run

    def batch(self, n: int) -> dict[str, np.ndarray]:
        """The same input repeated ``n`` times along the batch axis (scalars stay scalars)."""
        return {k: np.ascontiguousarray(np.repeat(v, n, axis=0)) if v.ndim else v for k, v in self.feeds.items()}


# ------------------------------------------------------------------------------------------------ images
def load_images(source: str | Path | Sequence[str | Path], limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) for an image file, a folder of images or a list of files."""
    import cv2

    items = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    files: list[Path] = []
    for it in items:
        if it.is_dir():
            files += sorted(p for p in it.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif it.is_file():
            files.append(it)
        else:
            raise OfflineError(f"image file or folder not found: {it}")
    if not files:
        raise OfflineError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, items))}")
    out = []
    for f in files[:limit]:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OfflineError(f"cannot read image {f}")
        out.append((f.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


def default_image_dir(models_dir: Path) -> Path:
    return Path(models_dir) / "samples"


def camera_frame(models_dir: Path, resolution: tuple[int, int] = DEFAULT_RESOLUTION) -> np.ndarray:
    """An RGB uint8 frame of ``resolution`` (w, h): the astronaut photo scaled to the frame height, centred."""
    import cv2

    w, h = resolution
    path = default_image_dir(models_dir) / CAMERA_PHOTO
    photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if photo is None:
        raise MissingFileError(f"sample photo {path} missing: run `edge-infer zoo fetch`")
    frame = np.full((h, w, 3), 96, np.uint8)
    side = min(w, h)
    photo = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = (w - side) // 2, (h - side) // 2
    frame[y0:y0 + side, x0:x0 + side] = photo
    return frame


def _centre_face(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A plausible face box and keypoints in the middle of an image (when the detector finds none)."""
    h, w = img.shape[:2]
    s = min(h, w) * 0.6
    boxes = np.array([[w / 2 - s / 2, h / 2 - s / 2, w / 2 + s / 2, h / 2 + s / 2]], np.float32)
    kps = np.array([[[w / 2 - s / 5, h / 2 - s / 8], [w / 2 + s / 5, h / 2 - s / 8], [w / 2, h / 2],
                     [w / 2 - s / 6, h / 2 + s / 5], [w / 2 + s / 6, h / 2 + s / 5]]], np.float32)
    return boxes, kps


def detect_faces(images: list[tuple[str, np.ndarray]], models_dir: Path | None):
    """Per image: (boxes [K,4], keypoints [K,5,2]) from the zoo's RetinaFace; centre square if none found."""
    from edge_infer.models import retinaface as rf

    try:
        detector = rf.open_detector(models_dir) if models_dir is not None else None
    except MissingFileError as e:
        log.info("%s; faces will be centre crops", e)
        detector = None
    faces = []
    for name, img in images:
        det = rf.detect(detector, img) if detector is not None else rf.Detections()
        if len(det):
            faces.append((det.boxes, det.keypoints))
        else:
            log.info("%s: no face detected; using a centre crop", name)
            faces.append(_centre_face(img))
    return faces


def frame_face(models_dir: Path, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(box [4], keypoints [5,2]) of the best face in ``frame``, by the zoo detector; an error if there is none."""
    from edge_infer.models import retinaface as rf

    det = rf.detect(rf.open_detector(models_dir), frame)
    if len(det) == 0:
        raise OfflineError("the detector found no face in the frame; cannot make face crops")
    return det.boxes[0], det.keypoints[0]


def _jitters(box: np.ndarray) -> list[np.ndarray]:
    """The box plus small shifts and scalings (a detector's frame-to-frame wobble)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    out = []
    for dx, dy, s in [(0, 0, 1.0), (0.05, 0, 1.0), (-0.05, 0.03, 1.0), (0, -0.05, 1.0), (0, 0, 1.1), (0, 0, 0.92)]:
        cx, cy = (x1 + x2) / 2 + dx * w, (y1 + y2) / 2 + dy * h
        out.append(np.array([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2], np.float32))
    return out


def vision_inputs(task: str, input_name: str, images: list[tuple[str, np.ndarray]],
                  models_dir: Path | None, input_size: tuple[int, int] | None = None) -> Inputs:
    names = ", ".join(n for n, _ in images)
    if task == "face_detection":
        from edge_infer.models import retinaface as rf

        feeds = []
        for _, img in images:
            for im in (img, img[:, ::-1]):  # the photo and its mirror image
                tensor, _ = rf.prepare_input(im, input_size)
                feeds.append({input_name: tensor})
        return Inputs(task, feeds, f"{len(images)} photos ({names}) and their mirror images, letterboxed "
                                   f"to {input_size or rf.DEFAULT_INPUT_SIZE}")
    faces = detect_faces(images, models_dir)
    if task == "emotion":
        from edge_infer.models.emotion import crop_faces

        crops = []
        for (_, img), (boxes, _) in zip(images, faces):
            for box in boxes:
                jit = np.stack(_jitters(box))
                crops += [crop_faces(img, jit), crop_faces(np.ascontiguousarray(img[:, ::-1]),
                                                           _mirror_boxes(jit, img.shape[1]))]
        batch = np.concatenate(crops)
        return Inputs(task, [{input_name: batch}], f"{len(batch)} fer-style face crops (6 jitters x mirror) of "
                                                   f"{sum(len(b) for b, _ in faces)} faces in {names}")
    if task == "face_mesh":
        from edge_infer.models.face_mesh import Roi, crop_batch, roi_from_detection

        crops = []
        for (_, img), (boxes, kps) in zip(images, faces):
            for box, kp in zip(boxes, kps):
                base = roi_from_detection(box, kp)
                rois = [Roi(base.cx + dx * base.width, base.cy + dy * base.width, base.width * s, base.height * s,
                            base.rotation + r) for dx, dy, s, r in
                        [(0, 0, 1, 0), (0.04, 0, 1, 0), (0, -0.04, 1, 0), (0, 0, 1.1, 0), (0, 0, 0.92, 0),
                         (0, 0, 1, 0.2), (0, 0, 1, -0.2), (0.03, 0.03, 1.05, 0.1)]]
                crops.append(crop_batch(img, rois))
        batch = np.concatenate(crops)
        return Inputs(task, [{input_name: batch}], f"{len(batch)} MediaPipe rotated face crops (8 jitters) of "
                                                   f"{sum(len(b) for b, _ in faces)} faces in {names}")
    raise OfflineError(f"no image preprocessing for task '{task}' (have {VISION_TASKS})")


def _mirror_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    out = boxes.copy()
    out[:, 0], out[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return out


def frame_input(task: str, inputs: Sequence[TensorInfo], models_dir: Path,
                resolution: tuple[int, int] = DEFAULT_RESOLUTION, face: tuple[np.ndarray, np.ndarray] | None = None,
                shapes: Mapping[str, Sequence[int]] | None = None) -> ModelInput:
    """Batch-1 feeds for a model with ``inputs`` made by the real preprocessing of a camera frame.

    Vision tasks: the letterboxed frame (detector), fer-style crops or the rotated mesh crop of the face the
    detector finds (``face`` skips the detection). Other tasks: seeded synthetic feeds (``shapes`` overrides
    dynamic dims), described as such.
    """
    first = inputs[0].name
    w, h = resolution
    if task in VISION_TASKS:
        frame = camera_frame(models_dir, resolution)
        if task == "face_detection":
            from edge_infer.models import retinaface

            tensor, lb = retinaface.prepare_input(frame)
            return ModelInput({first: tensor}, f"{w}x{h} RGB frame letterboxed to {lb.input_size[0]}x{lb.input_size[1]} "
                              "(retinaface.prepare_input)", lambda: retinaface.prepare_input(frame))
        box, kps = face if face is not None else frame_face(models_dir, frame)
        if task == "emotion":
            from edge_infer.models import emotion

            crops = emotion.crop_faces(frame, [box], "rgb")
            return ModelInput({first: crops}, f"fer-style {emotion.INPUT_SIZE}x{emotion.INPUT_SIZE} gray crop of the "
                              f"detected face in a {w}x{h} frame (emotion.crop_faces)",
                              lambda: emotion.crop_faces(frame, [box], "rgb"))
        from edge_infer.models import face_mesh

        roi = face_mesh.roi_from_detection(box, kps)
        crops = face_mesh.crop_batch(frame, [roi])
        return ModelInput({first: crops}, f"{face_mesh.INPUT_SIZE}x{face_mesh.INPUT_SIZE} rotated ROI crop of the "
                          f"detected face in a {w}x{h} frame (face_mesh.crop_batch)",
                          lambda: face_mesh.crop_batch(frame, [roi]))
    feeds = random_feed(inputs, np.random.default_rng(0), shapes, scale=0.1)
    return ModelInput(feeds, "synthetic: " + ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items()))


# ------------------------------------------------------------------------------------------------ audio
def speech(text: str = SPEECH_TEXT, pad_s: float = 0.8) -> tuple[np.ndarray, str]:
    """16 kHz float32 speech in int16 scale (what openWakeWord feeds its front end) and its description.

    The speech itself comes from the one synthesizer (:mod:`edge_infer.samples.speech`, espeak-ng voice).
    """
    from edge_infer.samples.speech import SpeechSynthesisError, speech_16k

    try:
        x = speech_16k(text, engine="espeak-ng") * 32768.0
    except SpeechSynthesisError as e:
        raise OfflineError(f"real audio inputs need synthesized speech: {e}") from None
    pad = np.zeros(int(pad_s * SAMPLE_RATE), np.float32)
    noise = np.random.default_rng(0).normal(0, 30, len(x) + 2 * len(pad)).astype(np.float32)  # room noise
    return (np.concatenate([pad, x, pad]) + noise).astype(np.float32), f"espeak-ng '{text}' at 16 kHz with {pad_s}s padding"


def _wakeword_features(models_dir: Path):
    """openWakeWord's front end (mel spectrogram + embedding models of the zoo) as the wake-word model runs it."""
    from edge_infer.models.spec import zoo_model
    from edge_infer.models.wakeword import OwwFeatures

    return OwwFeatures(str(zoo_model("oww_melspectrogram").path(Path(models_dir))),
                       str(zoo_model("oww_embedding").path(Path(models_dir))))


def audio_inputs(model_name: str, task: str, inputs: Sequence[TensorInfo], models_dir: Path) -> Inputs:
    audio, desc = speech()
    names = [t.name for t in inputs]
    if task == "vad":
        ctx, chunk = 64, 512
        feeds = []
        for start in range(ctx, len(audio) - chunk, chunk * 3):
            x = audio[start - ctx:start + chunk] / 32768.0
            feeds.append({names[0]: x[None, :].astype(np.float32), names[1]: np.zeros((2, 1, 128), np.float32),
                          names[2]: np.array(SAMPLE_RATE, np.int64)})
        return Inputs(task, feeds, f"{len(feeds)} silero chunks (64 context + 512 samples, zero state) of {desc}")
    if model_name == "oww_melspectrogram":
        feeds = [{names[0]: audio[None, :]}] + [{names[0]: audio[None, s:s + 4 * 1280]} for s in range(0, len(audio) - 5120, 5120)]
        return Inputs(task, feeds, f"{desc}: the whole clip and 320 ms windows")
    features = _wakeword_features(models_dir)
    mel = features.melspectrogram(audio)
    windows = np.stack([mel[s:s + 76] for s in range(0, len(mel) - 76 + 1, 8)])[..., None]
    if model_name == "oww_embedding" or (names and tuple(inputs[0].shape[1:]) == (76, 32, 1)):
        return Inputs(task, [{names[0]: windows}], f"{len(windows)} mel windows (76x32) of {desc}")
    emb = features.embed(windows)
    n = inputs[0].shape[1] if isinstance(inputs[0].shape[1], int) else 16
    feeds = [{names[0]: emb[s:s + n][None].astype(np.float32)} for s in range(0, len(emb) - n + 1, 2)]
    if not feeds:
        raise OfflineError(f"speech clip too short for {n} embedding frames")
    return Inputs(task, feeds, f"{len(feeds)} windows of {n} speech embeddings of {desc}")


# ------------------------------------------------------------------------------------------------ any model
def random_feed(inputs: Sequence[TensorInfo], rng: np.random.Generator,
                shapes: Mapping[str, Sequence[int]] | None = None, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Seeded normal floats (times ``scale``) and zero integers; dynamic dims 1 unless ``shapes`` says."""
    feed = {}
    for t in inputs:
        shape = tuple((shapes or {}).get(t.name) or (d if isinstance(d, int) and d > 0 else 1 for d in t.shape))
        dtype = np.dtype(t.dtype if t.dtype != "other" else "float32")
        feed[t.name] = (rng.standard_normal(shape) * scale).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
    return feed


def random_inputs(inputs: Sequence[TensorInfo], count: int = 4, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    feeds = [random_feed(inputs, rng) for _ in range(count)]
    return Inputs("generic", feeds, f"{count} seeded random inputs (no real-input recipe for this model)", real=False)


def model_inputs(model_name: str | None, task: str | None, inputs: Sequence[TensorInfo], models_dir: Path | None,
                 images: str | Path | None = None) -> Inputs:
    """Real inputs for a model of ``task`` whose inputs are ``inputs`` (a Backend's ``inputs``)."""
    if task in VISION_TASKS:
        shape = inputs[0].shape
        size = (shape[3], shape[2]) if task == "face_detection" and all(isinstance(d, int) for d in shape[2:]) else None
        imgs = load_images(images or default_image_dir(models_dir or Path(".")))
        return vision_inputs(task, inputs[0].name, imgs, models_dir, size)
    if task in ("vad", "audio_features", "wake_word") and models_dir is not None:
        return audio_inputs(model_name or "", task, inputs, models_dir)
    return random_inputs(inputs)


def identify(path: str | Path, name: str | None = None):
    """The zoo entry a model file belongs to: by ``name``, else by file name ('emotion.fp16.onnx' -> emotion).

    Returns the ModelSpec or None (unknown models still validate, on random inputs).
    """
    from edge_infer.models.spec import installed_zoo

    zoo = installed_zoo()
    if name:
        return zoo.model(name)
    stem = Path(path).name.split(".")[0]
    for spec in zoo.models.values():
        if Path(spec.file).name.split(".")[0] == stem or spec.name == stem:
            return spec
    return None
