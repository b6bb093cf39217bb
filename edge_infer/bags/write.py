"""`edge-infer bag make`: rosbag2 bags (sqlite3 or mcap) from the sample photos, a video file or a WAV.

rosbags' Writer writes rosbag2 ``metadata.yaml`` (version 8 by default: readable by Jazzy and newer, and
``ros2 bag info`` on Iron; version 9 is Kilted's) and the storage file; messages are CDR-serialized by
rosbags' typestore (Humble definitions: Image, CompressedImage and the *MultiArray types are unchanged since).
Every message's header stamp equals its bag receive time, starting at ``start_ns``.
"""

from __future__ import annotations

from edge_infer.errors import BagError, MissingFileError
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edge_infer.bags import AUDIO_TYPES, COMPRESSED, IMAGE, STORAGES

DEFAULT_START_NS = 1_700_000_000_000_000_000


class BagExistsError(BagError, FileExistsError):
    """`bag make` never writes into or over an existing path (one error line, not a traceback)."""


@dataclass
class BagSummary:
    path: str
    storage: str
    version: int
    topics: dict[str, dict] = field(default_factory=dict)
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _qos(reliable: bool):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=10 if reliable else 5,
               reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.VOLATILE, deadline=zero, lifespan=zero,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


def _header(ts, stamp_ns: int, frame_id: str):
    T = ts.types
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000,
                                                                         nanosec=stamp_ns % 1_000_000_000),
                                    frame_id=frame_id)


def image_cdr(ts, bgr: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8") -> bytes:
    """A BGR frame as a serialized sensor_msgs/Image in any supported camera encoding (little endian)."""
    from edge_infer.pipeline.frames import BadFrame, encode_raw, from_bgr

    try:
        img, w, h, step = encode_raw(from_bgr(bgr, encoding), encoding)
    except BadFrame as e:
        raise BagError(f"cannot write a {encoding} image: {e}") from None
    msg = ts.types[IMAGE](header=_header(ts, stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                          is_bigendian=0, step=step, data=img.reshape(-1).view(np.uint8))
    return bytes(ts.serialize_cdr(msg, IMAGE))


def compressed_cdr(ts, bgr: np.ndarray, stamp_ns: int, frame_id: str, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BagError("JPEG encoding failed")
    msg = ts.types[COMPRESSED](header=_header(ts, stamp_ns, frame_id), format="jpeg",
                               data=np.frombuffer(buf.tobytes(), np.uint8))
    return bytes(ts.serialize_cdr(msg, COMPRESSED))


def audio_cdr(ts, chunk: np.ndarray, msgtype: str) -> bytes:
    """One audio chunk (int16 samples) as a *MultiArray (Float32 scaled to [-1, 1], UInt8 = raw S16LE bytes)."""
    T = ts.types
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    if msgtype == "std_msgs/msg/Int16MultiArray":
        data = chunk.astype(np.int16)
    elif msgtype == "std_msgs/msg/Float32MultiArray":
        data = (chunk.astype(np.float32) / 32768.0).astype(np.float32)
    elif msgtype == "std_msgs/msg/UInt8MultiArray":
        data = np.frombuffer(chunk.astype("<i2").tobytes(), np.uint8)
    else:
        raise BagError(f"audio type {msgtype} not one of {AUDIO_TYPES}")
    return bytes(ts.serialize_cdr(T[msgtype](layout=layout, data=data), msgtype))


# ------------------------------------------------------------------------------------------------ sources
def photo_frames(models_dir: Path, n: int, size: tuple[int, int] = (1280, 720)) -> Iterator[np.ndarray]:
    """The demo stream made from the zoo's sample photos (1-4 moving faces)."""
    from edge_infer.samples.scenes import demo_sequence, load_samples

    yield from demo_sequence(load_samples(models_dir), n, size=size)


def video_frames(path: Path, n: int | None = None, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MissingFileError(f"cannot open video {path}")
    try:
        i = 0
        while n is None or i < n:
            ok, frame = cap.read()
            if not ok:
                break
            yield cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if size else frame
            i += 1
    finally:
        cap.release()


def video_rate(path: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    cap.release()
    return float(fps) if fps and fps > 0 else 30.0


def read_wav_mono16(path: Path) -> tuple[np.ndarray, int]:
    """int16 mono samples and sample rate (channels averaged; 8/16/32-bit PCM)."""
    with wave.open(str(path), "rb") as w:
        sr, ch, sw, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(n)
    if sw == 2:
        a = np.frombuffer(raw, "<i2").astype(np.int32)
    elif sw == 1:
        a = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif sw == 4:
        a = np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    else:
        raise BagError(f"{path}: unsupported sample width {sw}")
    a = a.reshape(-1, ch).mean(axis=1)
    return np.clip(a, -32768, 32767).astype(np.int16), sr


# ------------------------------------------------------------------------------------------------ writer
class BagWriter:
    """Context manager over rosbags' Writer: add topics, write CDR bytes with a receive time."""

    def __init__(self, path: Path, storage: str = "sqlite3", version: int = 8) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"storage {storage} not one of {STORAGES}")
        path = Path(path)
        if path.exists():
            raise BagExistsError(f"{path} exists (rosbag2 bags are directories; remove it or pick another name)")
        self.path, self.storage, self.version = path, storage, version
        plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
        self.writer = Writer(path, version=version, storage_plugin=plugin)
        self.ts = _typestore()
        self.connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self.types: dict[str, str] = {}
        self.first_ns: int | None = None
        self.last_ns = 0

    def __enter__(self) -> "BagWriter":
        self.writer.open()
        # rosbag2 (Iron and newer) reads custom_data as a map: an empty one is written as null, so add one entry.
        self.writer.set_custom_data("edge_infer.writer", "edge-infer bag make")
        return self

    def add_topic(self, topic: str, msgtype: str, reliable: bool = False) -> None:
        self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.ts,
                                                             offered_qos_profiles=[_qos(reliable)])
        self.counts[topic] = 0
        self.types[topic] = msgtype

    def write(self, topic: str, t_ns: int, data: bytes) -> None:
        self.writer.write(self.connections[topic], t_ns, data)
        self.counts[topic] += 1
        self.first_ns = t_ns if self.first_ns is None else min(self.first_ns, t_ns)
        self.last_ns = max(self.last_ns, t_ns)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.writer.close()
        if exc_type is not None:  # do not leave a half-written bag that looks valid
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)

    def summary(self) -> BagSummary:
        return BagSummary(str(self.path), self.storage, self.version,
                          {t: {"type": self.types[t], "count": c} for t, c in self.counts.items()},
                          ((self.last_ns - (self.first_ns or 0)) / 1e9) if self.first_ns is not None else 0.0)


def image_messages(frames: Iterable[np.ndarray], *, compressed: bool = False, encoding: str = "rgb8",
                   frame_id: str = "camera") -> list[bytes]:
    """BGR frames as serialized Image (or CompressedImage JPEG) messages with a zero stamp (set at send time)."""
    ts = _typestore()
    return [compressed_cdr(ts, bgr, 0, frame_id) if compressed else image_cdr(ts, bgr, 0, frame_id, encoding)
            for bgr in frames]


def write_image_bag(path: Path, frames: Iterable[np.ndarray], rate_hz: float, *, topic: str = "/image",
                    compressed: bool = False, encoding: str = "rgb8", frame_id: str = "camera",
                    storage: str = "sqlite3", version: int = 8, start_ns: int = DEFAULT_START_NS,
                    progress: bool = False) -> BagSummary:
    """Frames as Image (or CompressedImage JPEG) at ``rate_hz``; header stamp = bag time."""
    if rate_hz <= 0:
        raise BagError("rate must be > 0")
    period = int(round(1e9 / rate_hz))
    writer = BagWriter(path, storage, version)  # refuses an existing path before any progress output
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="bag make", unit="frame")
    with writer as w:
        w.add_topic(topic, COMPRESSED if compressed else IMAGE)
        for i, bgr in enumerate(frames):
            t = start_ns + i * period
            data = compressed_cdr(w.ts, bgr, t, frame_id) if compressed else image_cdr(w.ts, bgr, t, frame_id, encoding)
            w.write(topic, t, data)
    return w.summary()


def write_audio_bag(path: Path, wav: Path, *, topic: str = "/audio", msgtype: str = "std_msgs/msg/Int16MultiArray",
                    chunk: int = 512, storage: str = "sqlite3", version: int = 8,
                    start_ns: int = DEFAULT_START_NS) -> BagSummary:
    """A WAV as consecutive ``chunk``-sample messages, timed at the audio rate (chunk / sample rate apart).

    *MultiArray messages have no header: the bag receive time carries the timing.
    """
    samples, sr = read_wav_mono16(wav)
    with BagWriter(path, storage, version) as w:
        w.add_topic(topic, msgtype, reliable=True)
        for i, k in enumerate(range(0, len(samples), chunk)):
            block = samples[k:k + chunk]
            if len(block) < chunk:
                block = np.pad(block, (0, chunk - len(block)))
            w.write(topic, start_ns + int(round(i * chunk * 1e9 / sr)), audio_cdr(w.ts, block, msgtype))
    s = w.summary()
    s.topics[topic]["sample_rate"] = sr
    s.topics[topic]["chunk"] = chunk
    return s
