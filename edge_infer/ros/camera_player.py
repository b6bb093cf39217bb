"""The benchmark camera: publishes a :class:`~edge_infer.bench.camera_feed.CameraFeed` with a fresh, unique
header stamp on every frame, at a fixed rate, cycling through the preloaded messages.

It runs in the harness's process (:class:`CameraPlayer`) or in a process of its own, as a real camera
driver does::

    python -m edge_infer.ros.camera_player --models-dir ~/.cache/edge_infer/models --frames 100 --rate 15 \\
        --qos reliable --topic /image                       # play 100 frames once, then exit
    python -m edge_infer.ros.camera_player ... --serve      # commands on stdin (the bench harness uses this)

``--serve`` speaks JSON lines: it prints ``{"event": "ready", ...}`` once, then answers each command on
stdin: ``{"cmd": "wait", "timeout_s": T}`` -> ``{"event": "waited", "matched": bool}``;
``{"cmd": "play", "count": N, "rate_hz": R}`` (R null: back to back) -> ``{"event": "played", "sent":
[[stamp_ns, sent_ns], ...]}``; ``{"cmd": "quit"}`` or end of input exits. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Callable, Sequence

from edge_infer.bags.cdr import set_header_stamp
from edge_infer.bench.camera_feed import CameraFeed
from edge_infer.bench.stamp_matching import Sent, rate_hz
from edge_infer.ros.bag_play import message_class, qos_profile
from edge_infer.ros.runner import wait_for_subscriber

QOS_CHOICES = ("sensor", "best_effort", "reliable")


class CameraPlayer:
    """Publisher of preloaded serialized frames; each send gets a stamp that is unique and increasing."""

    def __init__(self, node, topic: str, msgtype: str, messages: Sequence[bytes], qos: str = "sensor") -> None:
        if not messages:
            raise ValueError("a camera player needs at least one message")
        self.node = node
        self.msgtype = msgtype
        self.messages = list(messages)
        self.publisher = node.create_publisher(message_class(msgtype), topic, qos_profile(qos))
        self.topic = self.publisher.topic_name
        self._cursor = 0
        self._last_stamp = 0

    def wait_for_subscriber(self, timeout_s: float = 15.0) -> bool:
        return wait_for_subscriber(self.publisher, timeout_s)

    def send(self, at_ns: int | None = None) -> Sent:
        """Publish the next message (cycling) with a unique, increasing header stamp.

        ``at_ns`` None: stamped with the current ROS time, then copied and published (the copy is counted in the
        receiver's latency). ``at_ns`` given: stamped ``at_ns``, copied first, published once the clock reaches
        it, as a camera driver publishes at its capture stamp: the 2.7 MB copy that puts the stamp into a 720p
        message (~2 ms here, page faults included) is then not charged to the receiver, and a late publish is.
        """
        stamp = max(at_ns if at_ns is not None else self.node.get_clock().now().nanoseconds, self._last_stamp + 1)
        self._last_stamp = stamp
        data = set_header_stamp(self.messages[self._cursor % len(self.messages)], stamp)
        self._cursor += 1
        if at_ns is not None:
            _sleep_until_ns(stamp)
        sent_ns = time.time_ns()
        self.publisher.publish(data)
        return Sent(stamp, sent_ns)

    def play(self, count: int, rate_hz: float | None, progress: Callable[[int], None] | None = None,
             stop: threading.Event | None = None) -> list[Sent]:
        """Send ``count`` frames at ``rate_hz`` on a fixed schedule (None: back to back).

        On a schedule each frame is stamped with its due time and published then (see :meth:`send`); back to
        back, each is stamped when its turn comes.
        """
        stop = stop or threading.Event()
        sent: list[Sent] = []
        period_ns = int(1e9 / rate_hz) if rate_hz else 0
        # the first frame is due after one copy's worth of time, so that it too is published on its stamp
        t_start = time.time_ns() + max(period_ns, 10_000_000) if period_ns else 0
        for i in range(count):
            if stop.is_set():
                break
            if period_ns:
                due = t_start + i * period_ns
                wait_s = (due - time.time_ns()) / 1e9 - PREPARE_AHEAD_S
                if wait_s > 0 and stop.wait(wait_s):
                    break
                sent.append(self.send(at_ns=due))
            else:
                sent.append(self.send())
            if progress is not None:
                progress(1)
        return sent


PREPARE_AHEAD_S = 0.010  # the stamped copy of a frame is made this long before it is due (a 720p copy: ~2 ms)


def _sleep_until_ns(t_ns: int) -> None:
    """Sleep until the wall clock reaches ``t_ns``: coarse sleep, then a short spin (sleep overshoots ~0.1 ms)."""
    while True:
        left = (t_ns - time.time_ns()) / 1e9
        if left <= 0:
            return
        if left > 0.0005:
            time.sleep(left - 0.0004)


def _reply(event: str, **values) -> None:
    sys.stdout.write(json.dumps({"event": event, **values}) + "\n")
    sys.stdout.flush()


def _serve(player: CameraPlayer, stop: threading.Event) -> None:
    _reply("ready", msgtype=player.msgtype, frames=len(player.messages), topic=player.topic)
    for line in sys.stdin:
        if stop.is_set():
            break
        cmd = json.loads(line) if line.strip() else {}
        if cmd.get("cmd") == "quit":
            break
        if cmd.get("cmd") == "wait":
            _reply("waited", matched=player.wait_for_subscriber(float(cmd.get("timeout_s", 15.0))))
        elif cmd.get("cmd") == "play":
            sent = player.play(int(cmd["count"]), cmd.get("rate_hz"), stop=stop)
            _reply("played", sent=[[s.stamp_ns, s.sent_ns] for s in sent])
        elif cmd:
            _reply("error", message=f"unknown command {cmd}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge_infer.ros.camera_player", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    CameraFeed.add_arguments(p)
    p.add_argument("--topic", default="image", help="topic to publish on (default: image)")
    p.add_argument("--rate", type=float, default=15.0, help="frames per second (0: back to back)")
    p.add_argument("--count", type=int, default=None, help="frames to publish (default: each frame once)")
    p.add_argument("--qos", choices=QOS_CHOICES, default="sensor",
                   help="publisher QoS (sensor: best effort, keep last 5, like camera drivers)")
    p.add_argument("--wait-subscribers", type=float, default=10.0, help="seconds to wait for a subscriber first")
    p.add_argument("--serve", action="store_true", help="take commands on stdin (JSON lines) instead of playing once")
    p.add_argument("--node-name", default="edge_infer_camera")
    return p


def main(argv: list[str] | None = None) -> int:
    from rclpy.node import Node

    from edge_infer.ros.runner import Spinner, rclpy_session, sigterm_sets

    args, ros_args = build_parser().parse_known_args(argv)
    msgtype, messages = CameraFeed.from_args(args).load()  # before rclpy: loading can take seconds
    stop = threading.Event()
    with rclpy_session([sys.argv[0], *ros_args]), sigterm_sets(stop), Spinner(Node(args.node_name)) as spinner:
        player = CameraPlayer(spinner.nodes[0], args.topic, msgtype, messages, args.qos)
        if args.serve:
            _serve(player, stop)
            return 0
        player.wait_for_subscriber(args.wait_subscribers)
        try:
            sent = player.play(args.count or len(messages), args.rate or None, stop=stop)
        except KeyboardInterrupt:
            return 130
        _reply("played", published=len(sent), topic=player.topic, rate_hz=round(rate_hz([s.sent_ns for s in sent]), 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
