"""Camera frames from raw bytes: the ROS-free half of the one image-message <-> numpy converter.

Decoding views the message buffer without copying whenever rows are contiguous; colour conversions are
made lazily and cached, because the detector wants BGR, the mesh RGB and emotion grayscale of the same frame.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
from dataclasses import dataclass, field

import cv2
import numpy as np

# encoding -> (channels of the array, dtype). The names are sensor_msgs/image_encodings.h's (ROS 2 Humble+).
ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "uint8"),
    "bgr8": (3, "uint8"),
    "rgba8": (4, "uint8"),
    "bgra8": (4, "uint8"),
    "mono8": (1, "uint8"),
    "8UC1": (1, "uint8"),
    "8UC3": (3, "uint8"),  # treated as bgr8, OpenCV's convention
    # packed 4:2:2 from USB webcams: 2 bytes per pixel, one chroma pair per two pixels
    "yuv422": (2, "uint8"),  # U Y V Y (what ROS calls yuv422; alias uyvy)
    "uyvy": (2, "uint8"),
    "yuv422_yuy2": (2, "uint8"),  # Y U Y V (v4l2_camera's YUYV default; alias yuyv)
    "yuyv": (2, "uint8"),
    # raw Bayer mosaics (machine-vision cameras); demosaiced by OpenCV
    "bayer_rggb8": (1, "uint8"),
    "bayer_bggr8": (1, "uint8"),
    "bayer_gbrg8": (1, "uint8"),
    "bayer_grbg8": (1, "uint8"),
    # 16-bit: scaled to 8 bits (value / 256, as cv_bridge does) before the models see them
    "mono16": (1, "uint16"),
    "16UC1": (1, "uint16"),
    "rgb16": (3, "uint16"),
    "bgr16": (3, "uint16"),
}
_EIGHT_BIT = {"mono16": "mono8", "16UC1": "mono8", "rgb16": "rgb8", "bgr16": "bgr8"}
_PAIRED_COLUMNS = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")  # width must be even


class BadFrame(EdgeInferError, ValueError):
    """An input that cannot be a valid frame; ``reason`` is a short stable key counted in diagnostics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# OpenCV conversion codes per source encoding. OpenCV names Bayer patterns after the second row's first two
# pixels, so ROS bayer_rggb8 is OpenCV's BayerBG (the same table as cv_bridge).
_TO_RGB = {"bgr8": cv2.COLOR_BGR2RGB, "8UC3": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
           "bgra8": cv2.COLOR_BGRA2RGB, "mono8": cv2.COLOR_GRAY2RGB, "8UC1": cv2.COLOR_GRAY2RGB,
           "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
           "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
           "bayer_rggb8": cv2.COLOR_BayerBG2RGB, "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
           "bayer_gbrg8": cv2.COLOR_BayerGR2RGB, "bayer_grbg8": cv2.COLOR_BayerGB2RGB}
_TO_BGR = {"rgb8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGBA2BGR, "bgra8": cv2.COLOR_BGRA2BGR,
           "mono8": cv2.COLOR_GRAY2BGR, "8UC1": cv2.COLOR_GRAY2BGR,
           "yuv422": cv2.COLOR_YUV2BGR_UYVY, "uyvy": cv2.COLOR_YUV2BGR_UYVY,
           "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2, "yuyv": cv2.COLOR_YUV2BGR_YUY2,
           "bayer_rggb8": cv2.COLOR_BayerBG2BGR, "bayer_bggr8": cv2.COLOR_BayerRG2BGR,
           "bayer_gbrg8": cv2.COLOR_BayerGR2BGR, "bayer_grbg8": cv2.COLOR_BayerGB2BGR}
_TO_GRAY = {"rgb8": cv2.COLOR_RGB2GRAY, "bgr8": cv2.COLOR_BGR2GRAY, "8UC3": cv2.COLOR_BGR2GRAY,
            "rgba8": cv2.COLOR_RGBA2GRAY, "bgra8": cv2.COLOR_BGRA2GRAY,
            "yuv422": cv2.COLOR_YUV2GRAY_UYVY, "uyvy": cv2.COLOR_YUV2GRAY_UYVY,
            "yuv422_yuy2": cv2.COLOR_YUV2GRAY_YUY2, "yuyv": cv2.COLOR_YUV2GRAY_YUY2,
            "bayer_rggb8": cv2.COLOR_BayerBG2GRAY, "bayer_bggr8": cv2.COLOR_BayerRG2GRAY,
            "bayer_gbrg8": cv2.COLOR_BayerGR2GRAY, "bayer_grbg8": cv2.COLOR_BayerGB2GRAY}


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

    def _eight_bit(self) -> tuple[np.ndarray, str]:
        """The 8-bit array and its encoding (16-bit frames scaled once, like cv_bridge: value / 256)."""
        if self.encoding not in _EIGHT_BIT:
            return self.array, self.encoding
        if "8bit" not in self._cache:
            self._cache["8bit"] = (self.array >> 8).astype(np.uint8)
        return self._cache["8bit"], _EIGHT_BIT[self.encoding]

    def _as(self, target: str, table: dict[str, int]) -> np.ndarray:
        array, encoding = self._eight_bit()
        if encoding == target or (target == "bgr8" and encoding == "8UC3") or (
                target == "mono8" and encoding == "8UC1"):
            return array
        if target not in self._cache:
            self._cache[target] = cv2.cvtColor(np.ascontiguousarray(array), table[encoding])
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
    if encoding in _PAIRED_COLUMNS and width % 2:
        raise BadFrame("odd_width", f"{encoding} packs two pixels per chroma pair: width {width} must be even")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise BadFrame("bad_step", f"step {step} < width*channels {row_bytes}")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise BadFrame("bad_length", f"data has {buf.size} bytes, step*height = {step * height}")
    rows = buf.reshape(height, step)[:, :row_bytes]  # a view; padding bytes (step > row) are skipped
    if dtype != "uint8":  # view the bytes as 16-bit samples in the message's byte order (needs whole rows)
        order = ">" if is_bigendian else "<"
        rows = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order))
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


def encode_raw(image: np.ndarray, encoding: str) -> tuple[np.ndarray, int, int, int]:
    """(little-endian data, width, height, step) for an HxW(xC) array in ``encoding``; validates channels."""
    if encoding not in ENCODINGS:
        raise BadFrame("unsupported_encoding", encoding)
    channels, dtype = ENCODINGS[encoding]
    img = np.ascontiguousarray(image, dtype=np.dtype(dtype).newbyteorder("<"))
    got = 1 if img.ndim == 2 else img.shape[2]
    if got != channels:
        raise BadFrame("bad_channels", f"{encoding} needs {channels} channels, array has {got}")
    h, w = img.shape[:2]
    return img, w, h, w * channels * img.itemsize


_BAYER_CHANNEL = {"r": 2, "g": 1, "b": 0}  # index into BGR


def from_bgr(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """A BGR image as the array a camera driver would send in ``encoding`` (the inverse of :class:`Frame`'s
    views): what simulated cameras, bags and tests publish. Packed 4:2:2 needs an even width."""
    if encoding in ("bgr8", "8UC3"):
        return bgr
    if encoding in ("rgb8", "rgba8", "bgra8", "mono8", "8UC1"):
        code = {"rgb8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_BGR2RGBA, "bgra8": cv2.COLOR_BGR2BGRA,
                "mono8": cv2.COLOR_BGR2GRAY, "8UC1": cv2.COLOR_BGR2GRAY}[encoding]
        return cv2.cvtColor(bgr, code)
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_UYVY)
    if encoding in ("yuv422_yuy2", "yuyv"):
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUY2)
    if encoding.startswith("bayer_"):
        pattern = encoding[len("bayer_"):-1]
        out = np.empty(bgr.shape[:2], np.uint8)
        for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            out[dy::2, dx::2] = bgr[dy::2, dx::2, _BAYER_CHANNEL[pattern[k]]]
        return out
    if encoding in _EIGHT_BIT:
        return from_bgr(bgr, _EIGHT_BIT[encoding]).astype(np.uint16) * 257
    raise BadFrame("unsupported_encoding", f"encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
