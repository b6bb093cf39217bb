"""`edge-infer bag play`: publish a bag's topics with rclpy, with the original timing, a rate multiplier or
as fast as possible, optionally looping. Messages are published as the recorded CDR bytes (rclpy's
``Publisher.publish`` accepts serialized bytes), so any type whose Python package is installed plays without
decoding. QoS follows the bag's offered QoS (best effort for camera topics, as recorded) unless overridden.

The bag is read through :mod:`edge_infer.bags.read` (checked metadata, one BagError for a damaged bag).
Messages whose CDR does not decode as their type are not published: they are counted per topic in
``PlayStats.undecodable`` and logged once (subscribers would drop them anyway: rmw cannot deserialize them).
A type name from the bag is imported only when it names an installed ROS interface package: importing
``<pkg>.msg`` runs ``<pkg>/__init__.py``, and a bag must not choose which installed module gets imported.
"""

from __future__ import annotations

from edge_infer.errors import BagError, ConfigError
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge_infer.ros import message_types
from edge_infer.bags.cdr import header_stamp, restamp_shift_ns, set_header_stamp
from edge_infer.bags.read import Loaded, RawMessage, load_checked, read_metadata

def message_class(msgtype: str):
    """``pkg/msg/Type`` -> the rclpy message class (:mod:`edge_infer.ros.message_types`); BagError otherwise."""
    return message_types.message_class(msgtype, BagError, "install it, or play only other --topics")


def _reliabilities(profiles: object) -> list:
    import yaml

    if isinstance(profiles, str):  # v8 and older: a YAML document inside the YAML
        try:
            profiles = yaml.safe_load(profiles)
        except (yaml.YAMLError, RecursionError):
            profiles = None
    return [p.get("reliability") for p in profiles if isinstance(p, dict)] if isinstance(profiles, list) else []


def bag_qos(path: Path) -> dict[str, str]:
    """Per-topic 'best_effort' / 'reliable' from the bag's offered QoS (v8 string or v9 list metadata); a bare
    storage file or unreadable QoS gives 'reliable'."""
    meta = read_metadata(path) or {}
    out = {}
    for t in meta.get("topics_with_message_count", []):
        tm = t["topic_metadata"]  # read_metadata checked the structure
        rel = _reliabilities(tm.get("offered_qos_profiles"))
        out[tm["name"]] = "best_effort" if any(r in (2, "best_effort") for r in rel) else "reliable"
    return out


def qos_profile(kind: str, depth: int = 10):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if kind == "sensor":
        return qos_profile_sensor_data
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT if kind == "best_effort" else ReliabilityPolicy.RELIABLE)


@dataclass
class PlayStats:
    published: int = 0
    loops: int = 0
    wall_s: float = 0.0
    bag_s: float = 0.0
    per_topic: dict[str, int] = field(default_factory=dict)
    undecodable: dict[str, int] = field(default_factory=dict)  # per topic: CDR that does not decode, not published

    @property
    def rate_hz(self) -> float:
        return self.published / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "rate_hz": round(self.rate_hz, 3)}


def schedule(messages: list[RawMessage], rate: float | None) -> list[float]:
    """Send offsets (s) from the start: bag time divided by ``rate``; ``None`` = as fast as possible (all 0)."""
    if not messages:
        return []
    t0 = messages[0].t_ns
    if rate is None:
        return [0.0] * len(messages)
    if rate <= 0:
        raise ConfigError("rate must be > 0 (or None for as fast as possible)")
    return [(m.t_ns - t0) / 1e9 / rate for m in messages]


def playable(path: Path, topics: list[str] | None = None) -> Loaded:
    """The bag's messages that can be published (see the module docstring); BagError for a damaged bag, a bag
    where nothing decodes, or a type that is not installed, all before any publisher exists."""
    loaded = load_checked(path, topics)
    if not loaded.messages and loaded.undecodable:
        raise BagError(f"nothing to play in {path}: no message decodes as its type ("
                       + ", ".join(f"{n} on {t}" for t, n in sorted(loaded.undecodable.items())) + ")")
    for msgtype in {m.msgtype for m in loaded.messages}:
        message_class(msgtype)
    return loaded


def _has_header(cls) -> bool:
    """Whether a message class starts with std_msgs/Header (its stamp sits at a fixed place in the CDR)."""
    fields = list(cls.get_fields_and_field_types().items()) if hasattr(cls, "get_fields_and_field_types") else []
    return bool(fields) and fields[0] == ("header", "std_msgs/Header")


def play(node, path: Path, *, rate: float | None = 1.0, loop: bool = False, topics: list[str] | None = None,
         remap: dict[str, str] | None = None, qos: str | None = None, stop: threading.Event | None = None,
         wait_for_subscribers_s: float = 0.0, max_loops: int | None = None, progress: bool = False,
         loaded: Loaded | None = None, restamp: str = "loop") -> PlayStats:
    """Publish ``path`` from ``node`` (which the caller spins or not: publishing needs no spinning).

    ``qos``: None = from the bag (best effort topics get the sensor-data profile), or
    'sensor' / 'best_effort' / 'reliable' for every topic. ``loaded``: the bag's messages when the caller
    has read them already (:func:`play_main` does, so a damaged bag fails before ROS starts). ``restamp``: how
    header stamps are published (:func:`edge_infer.bags.cdr.restamp_shift_ns`: ``loop``, ``now``, ``none``).
    """
    loaded = playable(path, topics) if loaded is None else loaded
    messages = loaded.messages
    stop = stop or threading.Event()
    remap = remap or {}
    recorded = bag_qos(path)
    types = {m.topic: m.msgtype for m in messages}  # in order of first appearance
    classes = {topic: message_class(msgtype) for topic, msgtype in types.items()}
    pubs = {}
    for topic, cls in classes.items():
        kind = qos or ("sensor" if recorded.get(topic) == "best_effort" else "reliable")
        pubs[topic] = node.create_publisher(cls, remap.get(topic, topic), qos_profile(kind))
    stats = PlayStats(per_topic={t: 0 for t in pubs}, undecodable=dict(loaded.undecodable))
    if wait_for_subscribers_s > 0:
        deadline = time.monotonic() + wait_for_subscribers_s
        while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
    offsets = schedule(messages, rate)
    stats.bag_s = (messages[-1].t_ns - messages[0].t_ns) / 1e9 if messages else 0.0
    stamped = {t for t, cls in classes.items() if _has_header(cls)}  # messages whose header stamps can move
    stamps = [header_stamp(m.data) for m in messages if m.topic in stamped]
    first_stamp = min((t for t in stamps if t is not None), default=None)
    span = messages[-1].t_ns - messages[0].t_ns if messages else 0
    pass_span = span + (span // (len(messages) - 1) if len(messages) > 1 else 1_000_000_000)  # + one period
    start_wall_ns = time.time_ns()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(messages), desc="bag play", unit="msg")
    start = time.monotonic()
    try:
        while not stop.is_set():
            t_loop = time.monotonic()
            for m, off in zip(messages, offsets):
                delay = t_loop + off - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                shift = restamp_shift_ns(restamp, stats.loops, pass_span, first_stamp, start_wall_ns)
                data = m.data
                if shift and m.topic in stamped and (t := header_stamp(data)) is not None:
                    data = set_header_stamp(data, max(0, t + shift))
                pubs[m.topic].publish(data)
                stats.published += 1
                stats.per_topic[m.topic] += 1
                if bar is not None:
                    bar.update(1)
            else:
                stats.loops += 1
                if loop and (max_loops is None or stats.loops < max_loops) and messages:
                    # keep the inter-message period across the loop boundary
                    if rate and len(messages) > 1:
                        stop.wait(offsets[-1] / max(1, len(messages) - 1))
                    if bar is not None:
                        bar.reset()
                    continue
            break
    finally:
        stats.wall_s = time.monotonic() - start
        if bar is not None:
            bar.close()
        for p in pubs.values():
            node.destroy_publisher(p)
    return stats


def play_main(path: Path, **kwargs) -> PlayStats:
    """Standalone player: its own node (and rclpy session if none is running); Ctrl-C or SIGTERM stops."""
    from rclpy.node import Node

    from edge_infer.ros.runner import Spinner, rclpy_session, sigterm_sets

    stop = threading.Event()
    loaded = playable(path, kwargs.get("topics"))  # a damaged bag is one error line, before ROS starts
    with rclpy_session(), sigterm_sets(stop), Spinner(Node("edge_infer_bag_player")) as spinner:
        try:
            return play(spinner.nodes[0], path, stop=stop, loaded=loaded, **kwargs)
        except KeyboardInterrupt:
            stop.set()
            raise
