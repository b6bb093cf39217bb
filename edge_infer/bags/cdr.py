"""Serialized (CDR) messages as recorded in a bag or handed to a publisher: the header stamp, patched in the
bytes without decoding, so a benchmark camera can give every frame a fresh, unique stamp at send time."""

from __future__ import annotations

import struct

#: how `bag play` stamps the headers of what it publishes (``--restamp``)
RESTAMP_MODES = ("loop", "now", "none")


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


def header_stamp(cdr: bytes) -> int | None:
    """The header stamp (ns) of a serialized message whose first field is std_msgs/Header; None if too short."""
    if len(cdr) < 12 or cdr[1] not in (0, 1):
        return None
    sec, nanosec = struct.unpack_from("<iI" if cdr[1] == 1 else ">iI", cdr, 4)
    return sec * 1_000_000_000 + nanosec


def restamp_shift_ns(mode: str, pass_index: int, pass_span_ns: int, first_stamp_ns: int | None,
                     start_wall_ns: int) -> int:
    """What to add to every recorded header stamp in pass ``pass_index`` (0 = the first) of a played bag.

    Why: a looping player that republishes recorded stamps sends time backwards at every pass, and a node that
    drops stale stamps (the face node's ``max_stamp_lag_s``) rejects nearly the whole second pass. ``loop``
    (the default) keeps the first pass as recorded and moves pass k by k bag lengths, so stamps only increase
    and the topics of one bag stay in sync with each other (message_filters); ``now`` also moves the first pass
    so that the first stamp is the moment play started (``ros2 topic delay`` then shows transport delay, not
    the bag's age); ``none`` publishes the recorded stamps unchanged in every pass.
    """
    if mode not in RESTAMP_MODES:
        raise ValueError(f"restamp mode '{mode}' is not one of {RESTAMP_MODES}")
    if mode == "none":
        return 0
    shift = pass_index * pass_span_ns
    if mode == "now" and first_stamp_ns is not None:
        shift += start_wall_ns - first_stamp_ns
    return shift
