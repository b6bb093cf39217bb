"""Serialized (CDR) messages as recorded in a bag or handed to a publisher: the header stamp, patched in the
bytes without decoding, so a benchmark camera can give every frame a fresh, unique stamp at send time."""

from __future__ import annotations

import struct


def set_header_stamp(cdr: bytes, stamp_ns: int) -> bytes:
    """Copy of a serialized message whose first field is std_msgs/Header with the stamp replaced.

    CDR layout: 4-byte encapsulation header (byte 1: 0 big endian, 1 little endian), then the Header's
    ``stamp.sec`` (int32) and ``stamp.nanosec`` (uint32).
    """
    if len(cdr) < 12 or cdr[1] not in (0, 1):
        raise ValueError("not a CDR message with a header")
    fmt = "<iI" if cdr[1] == 1 else ">iI"
    b = bytearray(cdr)
    struct.pack_into(fmt, b, 4, stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
    return bytes(b)
