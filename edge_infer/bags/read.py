"""Read rosbag2 bags (sqlite3 / mcap, metadata v4-v9, as written by rosbag2 or by `bag make`) with rosbags.

Also the INT8 calibration source: :func:`calibration_frames_from_bag` (``edge-infer quantize --calib-bag``).

A bag may come from anywhere (a robot, a colleague, a download), so every way in goes through
:func:`open_bag`: ``metadata.yaml`` is checked before rosbags sees it (a mapping, the keys and types rosbags
needs, storage files that are plain files inside the bag directory: no absolute path, no ``..``, no symlink out),
compressed rosbag2 bags are refused (a decompression bomb would be inflated whole, in memory or in /tmp), mcap
chunks are inflated with a bound, and whatever rosbags or its storage libraries raise on a damaged file becomes
one :class:`BagError` naming the bag. Messages whose CDR does not decode as their type are skipped and counted
by the readers that decode (or check) them; a reader that is left with nothing raises BagError.
"""

from __future__ import annotations

from edge_infer.errors import BagError
import contextlib
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edge_infer.bags import COMPRESSED, IMAGE, STORAGES
from edge_infer.fileio import read_yaml
from edge_infer.paths import OutsidePathError, inside, relative_name

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 16 << 20   # metadata.yaml: a few KB in practice; bigger is not read into memory
MAX_CHUNK_BYTES = 128 << 20     # an mcap chunk, uncompressed (rosbag2 writes ~1 MB; one 8K rgb8 frame is 100 MB)
MAX_INFLATION = 50              # mcap chunks may declare at most this many times their file's size, uncompressed
STORAGE_SUFFIXES = {".db3": "sqlite3", ".mcap": "mcap"}


@dataclass
class RawMessage:
    topic: str
    msgtype: str
    t_ns: int          # bag receive time
    data: bytes        # CDR, exactly as recorded


# ------------------------------------------------------------------------------------- checked opening
def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _reader_errors() -> tuple[type[BaseException], ...]:
    """What rosbags 0.11 and the libraries under it raise on a damaged bag: its ReaderError; OSError, struct,
    EOF and value errors from its parsers; KeyError/TypeError/IndexError/AttributeError from unexpected record
    contents; sqlite3 / apsw errors from a garbage database; zstd and lz4 (RuntimeError) from bad chunks;
    rosbags' own type-system and serde errors. Caught only around rosbags calls, never around our own code."""
    from rosbags.rosbag2 import ReaderError

    errors: list[type[BaseException]] = [ReaderError, OSError, EOFError, ValueError, KeyError, TypeError, IndexError,
                                         AttributeError, RuntimeError, RecursionError, struct.error]
    import sqlite3

    errors.append(sqlite3.Error)
    for module, name in (("apsw", "Error"), ("backports.zstd", "ZstdError"), ("compression.zstd", "ZstdError"),
                         ("rosbags.typesys", "TypesysError"), ("rosbags.serde", "SerdeError")):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _mapping(value: Any, what: str, path: Path) -> dict:
    if value is None:
        raise BagError(f"bag {path}: {what} is missing; not a rosbag2 bag (re-record it, or write one with "
                       "`edge-infer bag make`)")
    if not isinstance(value, dict):
        raise BagError(f"bag {path}: {what} must be a mapping, got {type(value).__name__}; not a rosbag2 bag "
                       "(re-record it, or write one with `edge-infer bag make`)")
    return value


def _typed(info: dict, key: str, kind: type | tuple[type, ...], path: Path, where: str = "") -> Any:
    if key not in info:
        raise BagError(f"bag {path}: metadata.yaml has no '{where}{key}'; not a complete rosbag2 metadata file")
    value = info[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise BagError(f"bag {path}: metadata.yaml '{where}{key}' must be {names}, got {type(value).__name__}")
    return value


def storage_files(path: Path, info: dict) -> list[Path]:
    """The storage files ``metadata.yaml`` names, each a plain file inside the bag directory.

    rosbags opens ``<bag>/<name of the entry>`` (older rosbag2 wrote ``bagname/file.db3``), so that is what is
    checked: an entry that is absolute or climbs out with ``..`` is refused outright, and the file opened must
    resolve (through any symlink) inside the bag and be a regular file.
    """
    rels = _typed(info, "relative_file_paths", list, path)
    if not rels:
        raise BagError(f"bag {path}: metadata.yaml lists no storage files (relative_file_paths is empty)")
    files = []
    for rel in rels:
        what = f"bag {path}: metadata.yaml relative_file_paths entry"
        try:
            name = relative_name(rel, what).name
            f = inside(path, name, what)
        except OutsidePathError as e:
            raise BagError(str(e)) from None
        if not f.is_file():
            raise BagError(f"bag {path}: storage file {name} (metadata.yaml relative_file_paths) is missing or not "
                           "a regular file")
        files.append(f)
    return files


def read_metadata(path: str | Path) -> dict | None:
    """``rosbag2_bagfile_information`` of a bag directory, checked (see the module docstring); None for a bare
    ``.db3`` / ``.mcap`` file (rosbags reads those without metadata). BagError names the bag and the problem."""
    path = Path(path)
    if path.is_file() and path.suffix in STORAGE_SUFFIXES:
        return None
    if not path.is_dir():
        raise BagError(f"{'not a bag' if path.exists() else 'bag not found'}: {path} (a rosbag2 directory with "
                       "metadata.yaml, or a .db3 / .mcap file)")
    try:
        meta_file = inside(path, "metadata.yaml", f"bag {path}")
    except OutsidePathError as e:
        raise BagError(str(e)) from None
    if not meta_file.exists():
        raise BagError(f"bag {path}: no metadata.yaml (not a rosbag2 bag directory)")
    if not meta_file.is_file():
        raise BagError(f"bag {path}: metadata.yaml is not a regular file")
    doc = read_yaml(meta_file, f"bag {path}: metadata.yaml", MAX_METADATA_BYTES, BagError,
                    "MAX_METADATA_BYTES in edge_infer.bags.read")
    info = _mapping(_mapping(doc, "metadata.yaml", path).get("rosbag2_bagfile_information"),
                    "metadata.yaml 'rosbag2_bagfile_information'", path)
    version = _typed(info, "version", int, path)
    storage = _typed(info, "storage_identifier", str, path)
    if storage not in STORAGES:
        raise BagError(f"bag {path}: storage '{storage}' is not supported ({', '.join(STORAGES)})")
    mode = str(info.get("compression_mode") or "").lower()
    if mode not in ("", "none"):
        raise BagError(f"bag {path}: compressed rosbag2 bags (compression_mode: {mode}) are not read here: their "
                       "contents would be inflated whole, unchecked; decompress it first (`ros2 bag convert`) or "
                       "record with mcap chunk compression")
    _typed(info, "message_count", int, path)
    _typed(_mapping(info.get("duration"), "metadata.yaml 'duration'", path), "nanoseconds", int, path, "duration.")
    _typed(_mapping(info.get("starting_time"), "metadata.yaml 'starting_time'", path), "nanoseconds_since_epoch",
           int, path, "starting_time.")
    for i, t in enumerate(_typed(info, "topics_with_message_count", list, path)):
        where = f"topics_with_message_count[{i}]."
        t = _mapping(t, f"metadata.yaml '{where[:-1]}'", path)
        _typed(t, "message_count", int, path, where)
        tm = _mapping(t.get("topic_metadata"), f"metadata.yaml '{where}topic_metadata'", path)
        for key in ("name", "type", "serialization_format"):
            _typed(tm, key, str, path, where + "topic_metadata.")
        if "offered_qos_profiles" in tm:
            _typed(tm, "offered_qos_profiles", (str, list), path, where + "topic_metadata.")
    storage_files(path, info)
    if version < 1:
        raise BagError(f"bag {path}: metadata version {version} is not a rosbag2 version")
    return info


def _bound_mcap_chunks() -> None:
    """Make rosbags inflate mcap chunks with a bound: at most the size the chunk declares, and at most
    MAX_CHUNK_BYTES. rosbags calls ``zstd.decompress(data)`` / ``lz4.frame.decompress(data)`` on the whole
    chunk, which inflates a 1 MB chunk of zeros to whatever it holds, before comparing with the declared size.
    Same results for every well-formed bag; done once per process, in rosbags' decompressor table."""
    from rosbags.rosbag2 import ReaderError, storage_mcap

    if getattr(storage_mcap, "_edge_infer_bounded", False):
        return

    def bounded(make_decompressor):
        def inflate(data: bytes, size: int) -> bytes:
            if size > MAX_CHUNK_BYTES:
                raise ReaderError(f"an mcap chunk declares {size} bytes uncompressed, over the limit of "
                                  f"{MAX_CHUNK_BYTES} (MAX_CHUNK_BYTES in edge_infer.bags.read)")
            out = make_decompressor().decompress(data, max_length=size + 1)
            if len(out) > size:
                raise ReaderError(f"an mcap chunk inflates to more than the {size} bytes it declares")
            return out
        return inflate

    import lz4.frame

    table = storage_mcap.DECOMPRESSORS
    table["zstd"] = bounded(storage_mcap.zstd.ZstdDecompressor)
    table["lz4"] = bounded(lz4.frame.LZ4FrameDecompressor)
    storage_mcap._edge_infer_bounded = True


@contextlib.contextmanager
def open_bag(path: str | Path) -> Iterator[Any]:
    """A checked, open rosbags ``Reader`` (see the module docstring); BagError for anything malformed."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    read_metadata(path)
    _bound_mcap_chunks()
    errors = _reader_errors()
    try:
        reader = Reader(path)
        reader.open()
    except errors as e:
        raise BagError(f"cannot read bag {path}: {_one_line(e)}") from None
    try:
        _check_inflation(reader, path)
        yield reader
    finally:
        with contextlib.suppress(*errors):
            reader.close()


def _check_inflation(reader: Any, path: Path) -> None:
    """Refuse an mcap whose chunks declare far more bytes than the file holds: each chunk is inflated with a
    bound (:func:`_bound_mcap_chunks`), but players hold every message in memory, so a small file of
    compressed zeros would still fill it. Camera data compresses 1-3x; MAX_INFLATION leaves ample room."""
    storage = reader.storage
    for sub in getattr(storage, "storages", None) or [storage]:
        chunks = getattr(sub, "chunks", None)
        if not chunks:
            continue
        declared = sum(c.uncompressed_size for c in chunks)
        on_disk = Path(sub.path).stat().st_size
        if declared > MAX_INFLATION * on_disk + MAX_CHUNK_BYTES:
            raise BagError(f"cannot read bag {path}: {Path(sub.path).name} ({on_disk} bytes) declares {declared} "
                           f"bytes of messages, over {MAX_INFLATION}x its size (MAX_INFLATION in "
                           "edge_infer.bags.read): a decompression bomb, or a recording of blank frames")


def messages(reader: Any, path: Path, connections: Iterable[Any] = ()) -> Iterator[tuple[Any, int, bytes]]:
    """``reader.messages(connections)`` with storage errors met on the way (a damaged chunk or page) as BagError."""
    errors = _reader_errors()
    it = reader.messages(connections=list(connections))
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except errors as e:
            raise BagError(f"cannot read bag {path}: a damaged message record: {_one_line(e)}") from None
        yield item


def _typestore_for(reader):
    """Humble's types plus any type the bag defines itself (message definitions stored in the bag)."""
    from rosbags.typesys import Stores, get_typestore
    from rosbags.typesys.msg import get_types_from_msg

    ts = get_typestore(Stores.ROS2_HUMBLE)
    for c in reader.connections:
        if c.msgtype not in ts.types and c.msgdef and c.msgdef.data:
            try:  # one at a time: a bad or conflicting definition only leaves its own topic undecoded
                ts.register(get_types_from_msg(c.msgdef.data, c.msgtype))
            except Exception:  # IDL definitions or unparsable: such topics are played raw, never decoded
                pass
    return ts


def _decode(ts, msgtype: str, data: bytes):
    """The deserialized message, or None when its CDR does not decode as ``msgtype``."""
    from rosbags.serde import SerdeError

    try:
        return ts.deserialize_cdr(data, msgtype)
    except (SerdeError, ValueError, struct.error, IndexError, KeyError, TypeError, UnicodeDecodeError):
        return None


@dataclass
class Loaded:
    """Messages loaded for playing, and per topic how many were left out because their CDR does not decode."""

    messages: list[RawMessage]
    undecodable: dict[str, int] = field(default_factory=dict)


def bag_info(path: Path) -> dict:
    """What ``ros2 bag info`` shows: storage, duration, start/end, topics with type, count and QoS."""
    path = Path(path)
    meta = read_metadata(path) or {"storage_identifier": STORAGE_SUFFIXES[path.suffix]}
    with open_bag(path) as r:
        topics = {}
        for c in r.connections:
            t = topics.setdefault(c.topic, {"type": c.msgtype, "count": 0,
                                            "serialization_format": c.ext.serialization_format})
            t["count"] += c.msgcount
        return {"path": str(path), "version": meta.get("version"),
                "storage": meta.get("storage_identifier"), "messages": r.message_count,
                "duration_s": r.duration / 1e9, "start_ns": r.start_time, "end_ns": r.end_time,
                "ros_distro": meta.get("ros_distro", ""), "topics": topics}


def _connections(r, path: Path, topics: list[str] | None) -> list:
    conns = [c for c in r.connections if topics is None or c.topic in topics]
    if topics:
        missing = set(topics) - {c.topic for c in conns}
        if missing:
            raise BagError(f"topics {sorted(missing)} not in bag {path}; it has {sorted({c.topic for c in r.connections})}")
    return conns


def iter_raw(path: Path, topics: list[str] | None = None) -> Iterator[RawMessage]:
    """Every message (optionally only ``topics``) in receive-time order, as raw CDR."""
    with open_bag(path) as r:
        for c, t, data in messages(r, Path(path), _connections(r, Path(path), topics)):
            yield RawMessage(c.topic, c.msgtype, t, bytes(data))


def load_raw(path: Path, topics: list[str] | None = None, max_messages: int | None = None) -> list[RawMessage]:
    out = []
    for m in iter_raw(path, topics):
        out.append(m)
        if max_messages is not None and len(out) >= max_messages:
            break
    return out


def load_checked(path: Path, topics: list[str] | None = None) -> Loaded:
    """Raw messages of ``topics`` whose CDR decodes as their type (types the bag and Humble do not define are
    kept unchecked): what a player may publish. The others are counted per topic in ``undecodable``."""
    path = Path(path)
    out = Loaded([])
    with open_bag(path) as r:
        ts = _typestore_for(r)
        for c, t, data in messages(r, path, _connections(r, path, topics)):
            if c.msgtype in ts.types and _decode(ts, c.msgtype, data) is None:
                out.undecodable[c.topic] = out.undecodable.get(c.topic, 0) + 1
                continue
            out.messages.append(RawMessage(c.topic, c.msgtype, t, bytes(data)))
    if out.undecodable:
        log.warning("bag %s: skipped messages whose CDR does not decode as their type: %s", path,
                    ", ".join(f"{n} on {t}" for t, n in sorted(out.undecodable.items())))
    return out


def iter_messages(path: Path, topics: list[str] | None = None) -> Iterator[tuple[RawMessage, object]]:
    """Raw message plus the rosbags-deserialized message (numpy arrays for data fields).

    A message whose CDR does not decode is skipped and counted (one warning at the end), never a traceback.
    """
    path = Path(path)
    skipped = 0
    with open_bag(path) as r:
        ts = _typestore_for(r)
        for c, t, data in messages(r, path, _connections(r, path, topics)):
            msg = _decode(ts, c.msgtype, data)
            if msg is None:
                skipped += 1
                continue
            yield RawMessage(c.topic, c.msgtype, t, bytes(data)), msg
    if skipped:
        log.warning("bag %s: skipped %d messages whose CDR does not decode as their type", path, skipped)


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
    """(topic, msgtype, messages) of one image topic (see :func:`image_topic`), loaded into memory.

    Only messages whose CDR decodes as the image type (:func:`load_checked`): a benchmark camera patches each
    header stamp in place, which needs a real header."""
    topic, msgtype = image_topic(path, topic)
    loaded = load_checked(path, [topic])
    if not loaded.messages:
        bad = loaded.undecodable.get(topic, 0)
        raise BagError(f"{topic} in {path} has no messages" + (f" that decode ({bad} do not)" if bad else ""))
    return topic, msgtype, loaded.messages


def stamp_ns(msg) -> int | None:
    h = getattr(msg, "header", None)
    return None if h is None else h.stamp.sec * 1_000_000_000 + h.stamp.nanosec


def calibration_frames_from_bag(bag: str | Path, topic: str, max_frames: int = 100) -> list[np.ndarray]:
    """Up to ``max_frames`` BGR frames from an Image / CompressedImage ``topic``, spread evenly over the bag.

    For ``edge-infer quantize --calib-bag BAG --topic T``: INT8 calibration on what the robot's camera sees.
    Messages that do not decode (garbage CDR, an image the frame decoder refuses) are skipped and counted;
    BagError when none is left.
    """
    from edge_infer.pipeline.frames import BadFrame

    bag = Path(bag)
    if max_frames <= 0:
        return []
    with open_bag(bag) as r:
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
        bad: dict[str, int] = {}
        for i, (c, _t, data) in enumerate(messages(r, bag, conns)):
            if i % step:
                continue
            msg = _decode(ts, c.msgtype, data)
            reason = "undecodable_cdr" if msg is None else None
            if msg is not None:
                try:
                    frames.append(decode_image(c.msgtype, msg))
                except BadFrame as e:
                    reason = e.reason
            if reason:
                bad[reason] = bad.get(reason, 0) + 1
                continue
            if len(frames) >= max_frames:
                break
    counts = ", ".join(f"{n} {reason}" for reason, n in sorted(bad.items()))
    if not frames:
        raise BagError(f"topic {topic} in {bag}: no message decodes as an image ({counts or 'none read'})")
    if bad:
        log.warning("bag %s: %s: skipped %s messages", bag, topic, counts)
    return frames
