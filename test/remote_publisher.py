"""A driver in another process for the node tests: publishers live in a child process (as a camera or
microphone driver does on a robot), the test hands it messages one by one.

    with RemotePublishers({"image": ("sensor_msgs/msg/Image", "sensor"), ...}) as pubs:
        pubs["image"].publish(msg)             # serialized here, published there

Run as ``python test/remote_publisher.py`` it is the child: JSON lines on stdin
(``{"topic": ..., "type": ..., "qos": ...}`` to create a publisher and wait for a subscriber,
``{"topic": ..., "cdr": <hex>}`` to publish), one JSON line answered per command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path


def driver_env() -> dict[str, str]:
    """A driver process's environment with the shipped DDS profile, as the README asks of camera drivers
    (without it, best-effort images over ~0.5 MB are mostly lost between processes)."""
    import os

    from edge_infer.launch_description import DDS_PROFILE_ENVS, node_environment

    env = {k: v for k, v in os.environ.items() if k not in DDS_PROFILE_ENVS}
    return {**env, **node_environment({}, env)}


class _Remote:
    def __init__(self, owner: "RemotePublishers", topic: str) -> None:
        self.owner, self.topic = owner, topic

    def publish(self, msg) -> None:
        from rclpy.serialization import serialize_message

        self.owner._send({"topic": self.topic, "cdr": serialize_message(msg).hex()})


class RemotePublishers:
    """Publishers in a child process; ``topics``: name -> (type string, qos kind of bag_play.qos_profile)."""

    def __init__(self, topics: dict[str, tuple[str, str]], env: dict[str, str] | None = None,
                 match_timeout_s: float = 20.0, depth: int = 10) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self._lock = threading.Lock()
        self.pubs = {}
        for topic, (msgtype, qos) in topics.items():
            answer = self._send({"topic": topic, "type": msgtype, "qos": qos, "wait_s": match_timeout_s,
                                 "depth": depth})
            assert answer.get("matched"), f"no subscriber matched {topic} from the driver process: {answer}"
            self.pubs[topic] = _Remote(self, topic)

    def _send(self, cmd: dict) -> dict:
        with self._lock:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"driver process exited ({self.proc.poll()})")
        return json.loads(line)

    def __getitem__(self, topic: str) -> _Remote:
        return self.pubs[topic]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> "RemotePublishers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _child() -> None:
    import rclpy
    from rclpy.node import Node

    from edge_infer.ros.bag_play import message_class, qos_profile
    from edge_infer.ros.runner import Spinner, wait_for_subscriber

    rclpy.init()
    node = Node("edge_infer_test_driver")
    pubs = {}
    with Spinner(node):
        for line in sys.stdin:
            cmd = json.loads(line)
            if "cdr" in cmd:
                pubs[cmd["topic"]].publish(bytes.fromhex(cmd["cdr"]))
                answer = {"ok": True}
            else:
                qos = qos_profile(cmd["qos"], int(cmd.get("depth", 10)))
                pub = node.create_publisher(message_class(cmd["type"]), cmd["topic"], qos)
                pubs[cmd["topic"]] = pub
                answer = {"matched": wait_for_subscriber(pub, float(cmd.get("wait_s", 20.0)))}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    rclpy.try_shutdown()


if __name__ == "__main__":
    _child()
