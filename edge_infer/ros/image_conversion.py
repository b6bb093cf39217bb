"""sensor_msgs <-> numpy, thin over :mod:`edge_infer.pipeline.frames` (no cv_bridge needed)."""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from edge_infer.pipeline.frames import (MAX_IMAGE_PIXELS, CompressedHeader, Frame, decode_compressed, decode_raw,
                                        encode_raw, read_compressed_header)


def msg_to_image(msg: Image, max_pixels: int = MAX_IMAGE_PIXELS) -> Frame:
    """Zero-copy view of ``msg.data`` (an array('B') in rclpy) as a Frame; raises BadFrame on bad input
    (also when width*height is over ``max_pixels``)."""
    return decode_raw(msg.data, msg.width, msg.height, msg.step, msg.encoding, msg.is_bigendian, max_pixels)


def check_compressed(msg: CompressedImage, max_pixels: int = MAX_IMAGE_PIXELS) -> CompressedHeader:
    """The checks of :func:`compressed_to_image` without the decode (cheap: header only); raises BadFrame."""
    return read_compressed_header(msg.data, max_pixels)


def compressed_to_image(msg: CompressedImage, max_pixels: int = MAX_IMAGE_PIXELS,
                        header: CompressedHeader | None = None) -> Frame:
    """Decode a CompressedImage (PNG or JPEG, header checked against ``max_pixels`` first, unless ``header``
    is that check's result for this message); raises BadFrame."""
    return decode_compressed(msg.data, msg.format, max_pixels, header)


def image_to_msg(image: np.ndarray, encoding: str, frame_id: str = "", stamp=None) -> Image:
    """Build an Image; ``array.frombytes`` is the fastest legal fill of ``msg.data`` (see docs/ARCHITECTURE.md)."""
    img, w, h, step = encode_raw(image, encoding)
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian = h, w, step, encoding, 0
    data = array.array("B")
    data.frombytes(img.tobytes() if not img.flags.c_contiguous else memoryview(img).cast("B"))
    msg.data = data
    return msg


def image_to_compressed_msg(image_bgr: np.ndarray, fmt: str = "jpeg", frame_id: str = "", stamp=None,
                            quality: int = 90) -> CompressedImage:
    import cv2

    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else f".{fmt}", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode image as {fmt}")
    msg = CompressedImage()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = buf.tobytes()
    return msg
