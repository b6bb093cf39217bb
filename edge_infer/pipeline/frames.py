"""Camera frames from raw bytes: the ROS-free half of the one image-message <-> numpy converter.

Decoding views the message buffer without copying whenever rows are contiguous; colour conversions are
made lazily and cached, because the detector wants BGR, the mesh RGB and emotion grayscale of the same frame.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
from dataclasses import dataclass, field

import cv2
import numpy as np

# encoding -> (channels, dtype)
ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "uint8"),
    "bgr8": (3, "uint8"),
    "rgba8": (4, "uint8"),
    "bgra8": (4, "uint8"),
    "mono8": (1, "uint8"),
    "8UC1": (1, "uint8"),
    "8UC3": (3, "uint8"),  # treated as bgr8, OpenCV's convention
}


class BadFrame(EdgeInferError, ValueError):
    """An input that cannot be a valid frame; ``reason`` is a short stable key counted in diagnostics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


_TO_RGB = {"bgr8": cv2.COLOR_BGR2RGB, "8UC3": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
           "bgra8": cv2.COLOR_BGRA2RGB, "mono8": cv2.COLOR_GRAY2RGB, "8UC1": cv2.COLOR_GRAY2RGB}
_TO_BGR = {"rgb8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGBA2BGR, "bgra8": cv2.COLOR_BGRA2BGR,
           "mono8": cv2.COLOR_GRAY2BGR, "8UC1": cv2.COLOR_GRAY2BGR}
_TO_GRAY = {"rgb8": cv2.COLOR_RGB2GRAY, "bgr8": cv2.COLOR_BGR2GRAY, "8UC3": cv2.COLOR_BGR2GRAY,
            "rgba8": cv2.COLOR_RGBA2GRAY, "bgra8": cv2.COLOR_BGRA2GRAY}


@dataclass
class Frame:
    """An image as HxWxC uint8 (HxW for mono) plus its encoding; colour views are computed on demand."""

    array: np.ndarray
    encoding: str
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    def _as(self, target: str, table: dict[str, int]) -> np.ndarray:
        if self.encoding == target or (target == "bgr8" and self.encoding == "8UC3") or (
                target == "mono8" and self.encoding == "8UC1"):
            return self.array
        if target not in self._cache:
            self._cache[target] = cv2.cvtColor(np.ascontiguousarray(self.array), table[self.encoding])
        return self._cache[target]

    def rgb(self) -> np.ndarray:
        return self._as("rgb8", _TO_RGB)

    def bgr(self) -> np.ndarray:
        return self._as("bgr8", _TO_BGR)

    def gray(self) -> np.ndarray:
        return self._as("mono8", _TO_GRAY)


def decode_raw(data, width: int, height: int, step: int, encoding: str, is_bigendian: int = 0) -> Frame:
    """View raw image bytes (``sensor_msgs/Image`` fields) as a :class:`Frame`, without copying rows."""
    if encoding not in ENCODINGS:
        raise BadFrame("unsupported_encoding", f"encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
    channels, dtype = ENCODINGS[encoding]
    if width <= 0 or height <= 0:
        raise BadFrame("zero_size", f"{width}x{height}")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise BadFrame("bad_step", f"step {step} < width*channels {row_bytes}")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise BadFrame("bad_length", f"data has {buf.size} bytes, step*height = {step * height}")
    rows = buf.reshape(height, step)[:, :row_bytes]  # a view; padding bytes (step > row) are skipped
    shape = (height, width) if channels == 1 else (height, width, channels)
    return Frame(rows.reshape(shape), encoding)


def decode_compressed(data, fmt: str = "") -> Frame:
    """Decode JPEG/PNG bytes (``sensor_msgs/CompressedImage``) into a BGR frame."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise BadFrame("zero_size", "empty compressed image")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise BadFrame("corrupt_compressed", f"could not decode {buf.size} bytes of '{fmt or 'unknown format'}'")
    return Frame(img, "bgr8")


def encode_raw(image: np.ndarray, encoding: str) -> tuple[bytes | np.ndarray, int, int, int]:
    """(data, width, height, step) for an HxW(xC) uint8 array in ``encoding``; validates the channel count."""
    if encoding not in ENCODINGS:
        raise BadFrame("unsupported_encoding", encoding)
    channels, _ = ENCODINGS[encoding]
    img = np.ascontiguousarray(image, dtype=np.uint8)
    got = 1 if img.ndim == 2 else img.shape[2]
    if got != channels:
        raise BadFrame("bad_channels", f"{encoding} needs {channels} channels, array has {got}")
    h, w = img.shape[:2]
    return img, w, h, w * channels
