"""Camera frames from raw bytes: the ROS-free half of the one image-message <-> numpy converter.

Decoding views the message buffer without copying whenever rows are contiguous; colour conversions are
made lazily and cached, because the detector wants BGR, the mesh RGB and emotion grayscale of the same frame.

Messages come from anyone on the DDS domain, so nothing here allocates from a size a message claims before
checking it: raw images are bounded by ``max_pixels`` (width*height) and their byte count, compressed images
are accepted only as PNG or JPEG and their header (PNG IHDR, JPEG SOF) is read and bounded *before* OpenCV
decodes them (a 250 KB PNG can claim 16000x16000 and make ``cv2.imdecode`` allocate 1.4 GB). Every refusal
is a :class:`BadFrame` whose ``reason`` the nodes count as ``bad_<reason>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from edge_infer import OPENCV_PIXEL_CEILING
from edge_infer.errors import EdgeInferError

#: default bound on width*height of any frame, raw or compressed: 8K UHD (the face node's ``max_image_pixels``)
MAX_IMAGE_PIXELS = 7680 * 4320
#: the largest ``max_pixels`` a caller may choose (16384x16384); also OpenCV's own decode ceiling, set for the
#: whole package in edge_infer/__init__.py before anything imports cv2
PIXEL_CEILING = OPENCV_PIXEL_CEILING
#: bytes per pixel a raw image's ``step*height`` may reach: rgb16 needs 6, the rest is room for row padding
MAX_BYTES_PER_PIXEL = 8
#: scans of one JPEG: each progressive scan is a pass over the whole image, so a small file with hundreds of
#: scans keeps the decoder busy for minutes at 8K; encoders write 1 (baseline) or about 10 (progressive:
#: libjpeg's script, which image_transport's jpeg_progressive uses)
MAX_JPEG_SCANS = 32
#: markers before a JPEG's first scan (real files have tens): bounds the header walk of a garbage message
_MAX_JPEG_HEADER_MARKERS = 1000


import cv2  # OPENCV_IO_MAX_IMAGE_PIXELS is set by the package's __init__, before this import

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


def _check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """Refuse a frame of more than ``max_pixels`` pixels (the caller has not allocated anything for it yet)."""
    if width * height > max_pixels:
        raise BadFrame("too_large", f"{what} of {width}x{height} = {width * height} pixels is over the limit of "
                                    f"{max_pixels} (parameter max_image_pixels)")


def decode_raw(data, width: int, height: int, step: int, encoding: str, is_bigendian: int = 0,
               max_pixels: int = MAX_IMAGE_PIXELS) -> Frame:
    """View raw image bytes (``sensor_msgs/Image`` fields) as a :class:`Frame`, without copying rows.

    Every field comes from the sender: sizes are checked against ``max_pixels`` and the data's real length
    before anything is viewed or converted (colour views allocate width*height*3 later)."""
    if encoding not in ENCODINGS:
        raise BadFrame("unsupported_encoding", f"encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
    channels, dtype = ENCODINGS[encoding]
    if width <= 0 or height <= 0:
        raise BadFrame("zero_size", f"{width}x{height}")
    _check_pixels(width, height, max_pixels, "raw image")
    if encoding in _PAIRED_COLUMNS and width % 2:
        raise BadFrame("odd_width", f"{encoding} packs two pixels per chroma pair: width {width} must be even")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise BadFrame("bad_step", f"step {step} < width*channels {row_bytes}")
    if step * height > max_pixels * MAX_BYTES_PER_PIXEL:
        raise BadFrame("too_large", f"step*height = {step * height} bytes is over {MAX_BYTES_PER_PIXEL} bytes per "
                                    f"pixel of the limit of {max_pixels} pixels (parameter max_image_pixels)")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise BadFrame("bad_length", f"data has {buf.size} bytes, step*height = {step * height}")
    rows = buf.reshape(height, step)[:, :row_bytes]  # a view; padding bytes (step > row) are skipped
    if dtype != "uint8":  # view the bytes as 16-bit samples in the message's byte order (needs whole rows)
        order = ">" if is_bigendian else "<"
        rows = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order))
    shape = (height, width) if channels == 1 else (height, width, channels)
    return Frame(rows.reshape(shape), encoding)


@dataclass(frozen=True)
class CompressedHeader:
    """What a compressed image's header says, read without decoding: ``png`` or ``jpeg``, and its size."""

    format: str
    width: int
    height: int


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
# SOFn markers (frame headers): C0-CF except DHT (C4), JPG (C8) and DAC (CC); all share one layout
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# the end of a run of 0xFF fill bytes (a plain character class: linear, where a pattern like ``\xff+(.)``
# backtracks quadratically over a long run of 0xFF without an end: 27 s for 40 KB)
_NOT_FF = re.compile(rb"[^\xff]")


def _corrupt(fmt: str, detail: str) -> BadFrame:
    return BadFrame("corrupt_compressed", f"{fmt}: {detail}")


def _png_header(head: bytes) -> CompressedHeader:
    """PNG: the IHDR chunk must come first (libpng refuses anything else); its width and height are what
    libpng allocates for."""
    if len(head) < 24 or head[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise _corrupt("png", "no IHDR chunk after the signature")
    return CompressedHeader("png", int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))


def _jpeg_header(raw: bytes) -> tuple[CompressedHeader, int]:
    """JPEG: walk the markers the way libjpeg does (skip garbage and fill bytes, skip each segment by its
    length) up to the first scan; the first SOF is the frame size libjpeg uses (it refuses a second one).
    A SOF-like byte pair inside an APP segment (an EXIF thumbnail is a whole JPEG) is skipped with its
    segment, not mistaken for the frame header. -> (header, offset of the first scan)."""
    pos, sof = 2, None
    for _ in range(_MAX_JPEG_HEADER_MARKERS):
        # libjpeg's marker reader: skip bytes that are not 0xFF, then the 0xFF fill bytes; the next is the marker
        ff = raw.find(b"\xff", pos)
        m = _NOT_FF.search(raw, ff + 1) if ff >= 0 else None
        if m is None:
            raise _corrupt("jpeg", "ends before its first scan" if sof else "no frame header (SOF)")
        marker, pos = raw[m.start()], m.start() + 1
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stuffed zero, RSTn, TEM: no segment
            continue
        if marker in (0xD8, 0xD9):
            raise _corrupt("jpeg", "second start of image" if marker == 0xD8 else "end of image before a scan")
        if pos + 2 > len(raw):
            raise _corrupt("jpeg", f"truncated marker 0x{marker:02X}")
        length = int.from_bytes(raw[pos:pos + 2], "big")
        if length < 2 or pos + length > len(raw):
            raise _corrupt("jpeg", f"segment 0x{marker:02X} of length {length} does not fit the data")
        if marker in _JPEG_SOF:
            if sof is not None:
                raise _corrupt("jpeg", "two frame headers (SOF)")
            if length < 8:
                raise _corrupt("jpeg", f"frame header of length {length}")
            height, width = int.from_bytes(raw[pos + 3:pos + 5], "big"), int.from_bytes(raw[pos + 5:pos + 7], "big")
            components = raw[pos + 7]
            if components not in (1, 3, 4):  # gray, YCbCr/RGB, CMYK/YCCK: what OpenCV converts to BGR
                raise BadFrame("unsupported_format", f"jpeg with {components} colour components")
            sof = CompressedHeader("jpeg", width, height)
        elif marker == 0xDA:  # start of scan: the header is over
            if sof is None:
                raise _corrupt("jpeg", "scan before the frame header")
            return sof, pos
        pos += length
    raise _corrupt("jpeg", f"more than {_MAX_JPEG_HEADER_MARKERS} markers before the first scan")


def read_compressed_header(data, max_pixels: int = MAX_IMAGE_PIXELS) -> CompressedHeader:
    """Check a compressed image (``sensor_msgs/CompressedImage.data``) without decoding it: PNG or JPEG
    only, header well formed, width*height within ``max_pixels``, at most :data:`MAX_JPEG_SCANS` scans.

    Why a whitelist: compressed image_transport publishes jpeg and png; OpenCV would also decode BMP, TIFF,
    WebP, JPEG 2000, PNM, HDR, ... each a parser of its own with its own bugs and size fields, and nobody
    sends those to a camera topic. The format is taken from the bytes (what OpenCV does), not from the
    message's ``format`` string, which the sender writes too."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise BadFrame("zero_size", "empty compressed image")
    head = buf[:64].tobytes()
    raw, first_scan = b"", 0
    if head.startswith(_PNG_SIGNATURE):
        header = _png_header(head)
    elif head.startswith(_JPEG_SOI):
        raw = data if isinstance(data, bytes) else buf.tobytes()  # one copy of the compressed bytes at most
        header, first_scan = _jpeg_header(raw)
    else:
        raise BadFrame("unsupported_format", f"compressed image starting {head[:8].hex()} is neither PNG nor JPEG")
    if header.width == 0 or header.height == 0:
        raise BadFrame("zero_size", f"{header.format} header says {header.width}x{header.height}")
    _check_pixels(header.width, header.height, max_pixels, f"{header.format} header")
    if raw:
        scans = 1 + raw.count(b"\xff\xda", first_scan)  # after the first scan, 0xFF is always a marker or stuffed
        if scans > MAX_JPEG_SCANS:
            raise BadFrame("too_many_scans", f"jpeg with {scans} scans (at most {MAX_JPEG_SCANS})")
    return header


def decode_compressed(data, fmt: str = "", max_pixels: int = MAX_IMAGE_PIXELS,
                      header: CompressedHeader | None = None) -> Frame:
    """Decode JPEG/PNG bytes (``sensor_msgs/CompressedImage``) into a BGR frame, after
    :func:`read_compressed_header` has bounded what the decoder will allocate; a decoded size that differs
    from the header's (OpenCV read the file differently from us) is refused as ``size_mismatch``. ``header``:
    the result of that check when the caller already made it for these bytes (the face node checks on arrival;
    the walk of a 1080p JPEG's markers costs ~0.8 ms, not worth doing twice)."""
    header = header or read_compressed_header(data, max_pixels)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:  # OpenCV's own ceiling (OPENCV_IO_MAX_IMAGE_PIXELS) or a decoder assertion
        raise BadFrame("corrupt_compressed", f"{header.format}: OpenCV refused it: {str(e).strip().splitlines()[-1]}")
    if img is None:
        raise BadFrame("corrupt_compressed", f"could not decode {buf.size} bytes of {header.format} "
                                             f"(message format '{fmt or 'unknown'}')")
    h, w = img.shape[:2]
    if (w, h) not in ((header.width, header.height), (header.height, header.width)):  # EXIF rotation swaps
        raise BadFrame("size_mismatch", f"{header.format} header says {header.width}x{header.height}, "
                                        f"decoded {w}x{h}")
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
