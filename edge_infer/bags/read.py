"""Read rosbag2 bags (sqlite3 / mcap, metadata v4-v9, as written by rosbag2 or by `bag make`) with rosbags.

Also the INT8 calibration source: :func:`calibration_frames_from_bag` (``edge-infer quantize --calib-bag``).
"""

from __future__ import annotations

from edge_infer.errors import BagError
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edge_infer.bags import COMPRESSED, IMAGE


@dataclass
class RawMessage:
    topic: str
    msgtype: str
    t_ns: int          # bag receive time
    data: bytes        # CDR, exactly as recorded


def _typestore_for(reader):
    """Humble's types plus any type the bag defines itself (message definitions stored in the bag)."""
    from rosbags.typesys import Stores, get_typestore
    from rosbags.typesys.msg import get_types_from_msg

    ts = get_typestore(Stores.ROS2_HUMBLE)
    extra = {}
    for c in reader.connections:
        if c.msgtype not in ts.types and c.msgdef and c.msgdef.data:
            try:
                extra.update(get_types_from_msg(c.msgdef.data, c.msgtype))
            except Exception:  # IDL definitions or unparsable: such topics are played raw, never decoded
                pass
    if extra:
        ts.register(extra)
    return ts


def bag_info(path: Path) -> dict:
    """What ``ros2 bag info`` shows: storage, duration, start/end, topics with type, count and QoS."""
    from rosbags.rosbag2 import Reader

    import yaml

    path = Path(path)
    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    with Reader(path) as r:
        topics = {}
        for c in r.connections:
            t = topics.setdefault(c.topic, {"type": c.msgtype, "count": 0,
                                            "serialization_format": c.ext.serialization_format})
            t["count"] += c.msgcount
        return {"path": str(path), "version": meta.get("version"),
                "storage": meta.get("storage_identifier"), "messages": r.message_count,
                "duration_s": r.duration / 1e9, "start_ns": r.start_time, "end_ns": r.end_time,
                "ros_distro": meta.get("ros_distro", ""), "topics": topics}


def iter_raw(path: Path, topics: list[str] | None = None) -> Iterator[RawMessage]:
    """Every message (optionally only ``topics``) in receive-time order, as raw CDR."""
    from rosbags.rosbag2 import Reader

    with Reader(Path(path)) as r:
        conns = [c for c in r.connections if topics is None or c.topic in topics]
        if topics:
            missing = set(topics) - {c.topic for c in conns}
            if missing:
                raise BagError(f"topics {sorted(missing)} not in bag {path}; it has {sorted({c.topic for c in r.connections})}")
        for c, t, data in r.messages(connections=conns):
            yield RawMessage(c.topic, c.msgtype, t, bytes(data))


def load_raw(path: Path, topics: list[str] | None = None, max_messages: int | None = None) -> list[RawMessage]:
    out = []
    for m in iter_raw(path, topics):
        out.append(m)
        if max_messages is not None and len(out) >= max_messages:
            break
    return out


def iter_messages(path: Path, topics: list[str] | None = None) -> Iterator[tuple[RawMessage, object]]:
    """Raw message plus the rosbags-deserialized message (numpy arrays for data fields)."""
    from rosbags.rosbag2 import Reader

    with Reader(Path(path)) as r:
        ts = _typestore_for(r)
        conns = [c for c in r.connections if topics is None or c.topic in topics]
        for c, t, data in r.messages(connections=conns):
            yield RawMessage(c.topic, c.msgtype, t, bytes(data)), ts.deserialize_cdr(data, c.msgtype)


def decode_image(msgtype: str, msg) -> np.ndarray:
    """An Image / CompressedImage (rosbags-deserialized) as a BGR uint8 array, via the one frame decoder."""
    from edge_infer.pipeline.frames import decode_compressed, decode_raw

    if msgtype == IMAGE:
        frame = decode_raw(msg.data, msg.width, msg.height, msg.step, msg.encoding, msg.is_bigendian)
    elif msgtype == COMPRESSED:
        frame = decode_compressed(msg.data, msg.format)
    else:
        raise BagError(f"{msgtype} is not an image type ({IMAGE}, {COMPRESSED})")
    return np.ascontiguousarray(frame.bgr())


def image_topic(path: Path, topic: str | None = None) -> tuple[str, str]:
    """(topic, msgtype) of one Image / CompressedImage topic; ``topic`` None: the bag's only image topic.

    BagError if the topic is not an image topic, or if the bag has several or no image topics to choose from.
    """
    images = {t: v["type"] for t, v in bag_info(path)["topics"].items() if v["type"] in (IMAGE, COMPRESSED)}
    if topic is None:
        if len(images) != 1:
            raise BagError(f"bag {path} has image topics {sorted(images)}: pick one with --topic")
        topic = next(iter(images))
    if topic not in images:
        raise BagError(f"{topic} is not an image topic of {path} (image topics: {sorted(images)})")
    return topic, images[topic]


def load_image_topic(path: Path, topic: str | None = None) -> tuple[str, str, list[RawMessage]]:
    """(topic, msgtype, messages) of one image topic (see :func:`image_topic`), loaded into memory."""
    topic, msgtype = image_topic(path, topic)
    msgs = load_raw(path, [topic])
    if not msgs:
        raise BagError(f"{topic} in {path} has no messages")
    return topic, msgtype, msgs


def stamp_ns(msg) -> int | None:
    h = getattr(msg, "header", None)
    return None if h is None else h.stamp.sec * 1_000_000_000 + h.stamp.nanosec


def calibration_frames_from_bag(bag: str | Path, topic: str, max_frames: int = 100) -> list[np.ndarray]:
    """Up to ``max_frames`` BGR frames from an Image / CompressedImage ``topic``, spread evenly over the bag.

    For ``edge-infer quantize --calib-bag BAG --topic T``: INT8 calibration on what the robot's camera sees.
    """
    from rosbags.rosbag2 import Reader

    bag = Path(bag)
    if max_frames <= 0:
        return []
    with Reader(bag) as r:
        conns = [c for c in r.connections if c.topic == topic]
        if not conns:
            raise BagError(f"topic {topic} not in bag {bag}; topics: {sorted({c.topic for c in r.connections})}")
        if conns[0].msgtype not in (IMAGE, COMPRESSED):
            raise BagError(f"{topic} is {conns[0].msgtype}, not {IMAGE} or {COMPRESSED}")
        total = sum(c.msgcount for c in conns)
        if total == 0:
            raise BagError(f"topic {topic} in {bag} has no messages")
        step = max(1, total // max_frames)
        ts = _typestore_for(r)
        frames: list[np.ndarray] = []
        for i, (c, _t, data) in enumerate(r.messages(connections=conns)):
            if i % step:
                continue
            frames.append(decode_image(c.msgtype, ts.deserialize_cdr(data, c.msgtype)))
            if len(frames) >= max_frames:
                break
    return frames
