"""Crafted images for the hostile-message suites (test_hostile_messages.py, test_hostile_node.py): real PNG/JPEG
bytes from the sample photos, with their size fields rewritten, and valid decompression bombs built the way an
attacker would (a 250 KB PNG that really is 16000x16000 pixels of zeros)."""

from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@functools.lru_cache(maxsize=None)
def png_bomb(width: int = 16000, height: int = 16000) -> bytes:
    """A valid grayscale PNG of zeros: 16000x16000 is ~250 KB of file and 256 Mpx decoded (cv2: 768 MB BGR)."""
    block = b"\x00" * (width + 1) * 500  # 500 rows of filter byte + pixels
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(block) for _ in range(height // 500))
    data += comp.compress(b"\x00" * (width + 1) * (height % 500)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def set_png_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR width/height rewritten (CRC fixed, so libpng accepts the chunk)."""
    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + _png_chunk(b"IHDR", ihdr) + png[33:]


def sof_offset(jpeg: bytes) -> int:
    """Offset of the first SOF segment's length field (walks the segments; encoders put it before the scan)."""
    pos = 2
    while True:
        assert jpeg[pos] == 0xFF, f"no marker at {pos}"
        marker = jpeg[pos + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            return pos + 2
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")


def set_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF) claiming ``width`` x ``height`` (each at most 65535)."""
    i = sof_offset(jpeg)
    b = bytearray(jpeg)
    b[i + 3:i + 5] = struct.pack(">H", height)
    b[i + 5:i + 7] = struct.pack(">H", width)
    return bytes(b)


def encode(bgr: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, bgr, list(params))
    assert ok, ext
    return buf.tobytes()


def jpeg_with_extra_scans(bgr: np.ndarray, extra: int) -> bytes:
    """A progressive JPEG whose last scan is repeated ``extra`` times: libjpeg decodes it (with a warning), one
    whole-image pass per scan; 300 extra scans make a 512x512 decode 70x slower."""
    jpeg = encode(bgr, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    last, eoi = jpeg.rfind(b"\xff\xda"), jpeg.rfind(b"\xff\xd9")
    return jpeg[:eoi] + jpeg[last:eoi] * extra + b"\xff\xd9"


def with_exif_orientation(jpeg: bytes, orientation: int = 6) -> bytes:
    """The JPEG with an EXIF APP1 segment saying ``orientation`` (6: rotate 90: OpenCV swaps width/height)."""
    tiff = (b"MM\x00*\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
            + b"\x00\x00\x00\x00")
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def sample_bgr(samples_dir: Path, name: str = "astronaut.png", size: tuple[int, int] | None = None) -> np.ndarray:
    img = cv2.imread(str(samples_dir / name), cv2.IMREAD_COLOR)
    assert img is not None, name
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA) if size else img
