"""Emotion classifier I/O: fer's labels, fer's face-crop convention, and score decoding.

The classifier was trained on crops made a particular way (square box, 10 px margin, 40 px border filled
with the frame's bottom-row mean, grayscale, 64x64, (x/255-0.5)*2). Crops made any other way shift the
predictions, so this module mirrors fer==25.10.3 `FER.detect_emotions` step for step; the tests hold it to
a literal re-implementation of fer's code. Labels, tensor names and the crop size come from the zoo entry
``emotion`` in ``config/models.yaml``; the normalisation stays fer's literal formula (written as
mean/scale it would differ from fer in the last bit).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from edge_infer.models.spec import SpecError, zoo_model

_SPEC = zoo_model("emotion")
#: fer's class order (FER._get_labels); index i of the model output is EMOTION_LABELS[i]
EMOTION_LABELS: tuple[str, ...] = tuple(str(v) for v in _SPEC.extra.get("labels") or ())
if len(EMOTION_LABELS) != _SPEC.fixed_dim("outputs", 0, 1):
    raise SpecError(f"zoo model 'emotion': labels {list(EMOTION_LABELS)} do not match its output shape")
INPUT_NAME: str = _SPEC.io_names("inputs", 1)[0]
OUTPUT_NAME: str = _SPEC.io_names("outputs", 1)[0]
INPUT_SIZE: int = _SPEC.fixed_dim("inputs", 0, 2)
FER_PADDING = 40  # fer.fer.PADDING
FER_OFFSETS = (10, 10)  # FER(offsets=...) default


def fer_preprocess(gray: np.ndarray) -> np.ndarray:
    """uint8 gray -> float32 in [-1, 1], the scaling mini-Xception was trained with."""
    return (gray.astype(np.float32) / 255.0 - 0.5) * 2.0


def _to_gray(img: np.ndarray, channel_order: str) -> np.ndarray:
    if img.ndim == 2:
        return img
    code = {"rgb": cv2.COLOR_RGB2GRAY, "bgr": cv2.COLOR_BGR2GRAY}[channel_order]
    if img.strides[-1] != img.itemsize or img.strides[-2] != img.shape[-1] * img.itemsize:
        img = np.ascontiguousarray(img)  # cv2 takes a row-strided window as it is; other layouts need a copy
    return cv2.cvtColor(img, code)


def fer_square_box(box_xyxy: Sequence[float], offsets: tuple[int, int] = FER_OFFSETS) -> tuple[int, int, int, int]:
    """Detector box -> fer's crop window (x1, y1, x2, y2) in frame pixels, before padding/clipping.

    Mirrors fer: integer (x, y, w, h) as fer builds it from MTCNN boxes (int() truncation), elongate the
    shorter side to a square (FER.tosquare), then add the offsets on every side (FER.__apply_offsets).
    """
    x, y = int(box_xyxy[0]), int(box_xyxy[1])
    w, h = int(box_xyxy[2]) - x, int(box_xyxy[3]) - y
    if h > w:
        x -= (h - w) // 2
        w = h
    elif w > h:
        y -= (w - h) // 2
        h = w
    return x - offsets[0], y - offsets[1], x + w + offsets[0], y + h + offsets[1]


def crop_faces(
    image: np.ndarray,
    boxes_xyxy: np.ndarray | Sequence[Sequence[float]],
    channel_order: str = "rgb",
    offsets: tuple[int, int] = FER_OFFSETS,
    padding: int = FER_PADDING,
    size: int = INPUT_SIZE,
) -> np.ndarray:
    """Face crops ready for the classifier: float32 [N, 1, size, size], one per box, in box order.

    ``image`` is uint8 HxWx3 (``channel_order`` "rgb" or "bgr") or HxW gray. Same pixels as fer, but
    cheaper: fer converts and pads the whole frame; here only each crop window is converted and only the
    part of it outside the frame is filled with fer's border value, which gives identical crops.
    Raises ValueError for a box whose window lies wholly outside fer's padded frame (fer drops such
    faces; silently dropping would misalign results and boxes).
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"crop_faces expects a uint8 HxWx3 or HxW image, got {image.dtype} {image.shape}")
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', not {channel_order!r}")
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    out = np.empty((len(boxes), 1, size, size), dtype=np.float32)
    if len(boxes) == 0:
        return out
    H, W = image.shape[:2]
    # fer's border value: mean gray of the two bottom rows, rounded to uint8 as copyMakeBorder does
    border = int(np.clip(np.rint(cv2.mean(_to_gray(image[H - 2:], channel_order))[0]), 0, 255))
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = fer_square_box(box, offsets)
        # fer clamps only the top-left corner at the padded frame's origin; numpy slicing clips the rest
        x1, y1 = max(x1, -padding), max(y1, -padding)
        x2, y2 = min(x2, W + padding), min(y2, H + padding)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"face box {box.tolist()} lies outside the {W}x{H} image")
        ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, W), min(y2, H)
        if ix2 > ix1 and iy2 > iy1:
            gray = _to_gray(image[iy1:iy2, ix1:ix2], channel_order)
            crop = cv2.copyMakeBorder(gray, iy1 - y1, y2 - iy2, ix1 - x1, x2 - ix2, cv2.BORDER_CONSTANT, value=border)
        else:  # window entirely in the padding band
            crop = np.full((y2 - y1, x2 - x1), border, dtype=np.uint8)
        out[i, 0] = fer_preprocess(cv2.resize(crop, (size, size)))
    return out


def decode(scores: np.ndarray) -> list[tuple[str, dict[str, float]]]:
    """[N, 7] probabilities -> per face (top label, {label: probability}) in fer's label names."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2 or scores.shape[1] != len(EMOTION_LABELS):
        raise ValueError(f"emotion scores must be [N, {len(EMOTION_LABELS)}], got {scores.shape}")
    return [
        (EMOTION_LABELS[int(row.argmax())], {label: float(v) for label, v in zip(EMOTION_LABELS, row)})
        for row in scores
    ]
