"""The one bench harness: a camera publishes frames into the face pipeline, ``~/faces`` results are collected
and matched to their frames by header stamp, giving per-frame end-to-end latency (send -> result received).

Used by `edge-infer demo`, `bench pipeline` (node end to end) and `bench bag`. The camera runs in this
process (``camera="in_process"``) or in its own (``camera="subprocess"``: ``python -m
edge_infer.ros.camera_player --serve``, as a real driver is a separate process); the API is the same. The
pipeline under test runs in this process (``nodes_under_test``) or elsewhere (nothing given: an
external pipeline, e.g. ``ros2 launch``). Matching and rates are ROS-free: :mod:`edge_infer.bench.stamp_matching`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import ExitStack
from typing import Callable, Sequence

import numpy as np

from edge_infer.bench.camera_feed import CameraFeed
from edge_infer.bench.worker_process import JsonLinesProcess
from edge_infer.bench.stamp_matching import Received, Sent, StampMatch, match_by_stamp
from edge_infer.errors import EdgeInferError

CAMERA_MODES = ("in_process", "subprocess")


class PipelineNotFound(EdgeInferError, RuntimeError):
    """Nothing subscribes to the camera topic or publishes ``~/faces``: the face pipeline is not running."""


class CameraPlayerError(EdgeInferError, RuntimeError):
    """The camera player process stopped or did not answer (its own error is on stderr above)."""


class _InProcessCamera:
    """The camera player on the harness's own node."""

    def __init__(self, node, feed: CameraFeed, topic: str, qos: str) -> None:
        from edge_infer.ros.camera_player import CameraPlayer

        msgtype, messages = feed.load()
        self.player = CameraPlayer(node, topic, msgtype, messages, qos)
        self.msgtype, self.frames = msgtype, len(messages)

    def wait_matched(self, timeout_s: float) -> bool:
        return self.player.wait_for_subscriber(timeout_s)

    def play(self, count: int, rate_hz: float | None, progress: Callable[[int], None] | None) -> list[Sent]:
        return self.player.play(count, rate_hz, progress)

    def close(self) -> None:
        pass  # the publisher goes with the harness node


class _SubprocessCamera:
    """``python -m edge_infer.ros.camera_player --serve`` driven over stdin/stdout JSON lines."""

    def __init__(self, feed: CameraFeed, topic: str, qos: str, env: dict[str, str] | None,
                 start_timeout_s: float = 120.0) -> None:
        cmd = [sys.executable, "-m", "edge_infer.ros.camera_player", *feed.argv(), "--topic", topic, "--qos", qos,
               "--serve"]
        if env is None:  # a camera driver on a robot with edge_infer's large-data DDS profile (README)
            from edge_infer.launch_description import node_environment

            env = {**os.environ, **node_environment({})}
        self.worker = JsonLinesProcess(cmd, "camera_player", CameraPlayerError, env=env)
        try:
            ready = self.worker.expect("ready", start_timeout_s)
        except BaseException:
            self.close()
            raise
        self.msgtype, self.frames = ready["msgtype"], int(ready["frames"])

    def wait_matched(self, timeout_s: float) -> bool:
        return bool(self.worker.request({"cmd": "wait", "timeout_s": timeout_s}, "waited", timeout_s + 30)["matched"])

    def play(self, count: int, rate_hz: float | None, progress: Callable[[int], None] | None) -> list[Sent]:
        budget = 60.0 + (count / rate_hz if rate_hz else count)
        reply = self.worker.request({"cmd": "play", "count": count, "rate_hz": rate_hz}, "played", budget)
        sent = [Sent(int(a), int(b)) for a, b in reply["sent"]]
        if progress is not None:
            progress(len(sent))
        return sent

    def close(self) -> None:
        self.worker.close()


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


class FaceBenchHarness:
    """Camera -> face pipeline -> ``~/faces``, measured frame by frame.

    ``nodes_under_test``: builds the pipeline's nodes in this process (called after rclpy.init; the harness
    spins and destroys them); None: measure a pipeline running elsewhere. ``on_output`` is called for each
    result as it arrives (from the executor thread). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, feed: CameraFeed, *, nodes_under_test: Callable[[], Sequence] | None = None,
                 image_topic: str = "/image", faces_topic: str = "/face_pipeline/faces", camera: str = "subprocess",
                 qos: str = "sensor", camera_env: dict[str, str] | None = None,
                 on_output: Callable[[Received], None] | None = None, node_name: str = "edge_infer_bench") -> None:
        if camera not in CAMERA_MODES:
            raise ValueError(f"camera must be one of {CAMERA_MODES}, got {camera!r}")
        from rclpy.node import Node
        from std_msgs.msg import String

        from edge_infer.ros.runner import Spinner, rclpy_session

        self.image_topic, self.faces_topic = _absolute(image_topic), _absolute(faces_topic)
        self.camera_mode = camera
        self._on_output = on_output
        self._lock = threading.Lock()
        self._outputs: list[Received] = []
        self._stack = ExitStack()
        try:
            self._stack.enter_context(rclpy_session())
            self.nodes_under_test = list(nodes_under_test()) if nodes_under_test is not None else []
            self._spinner = self._stack.enter_context(Spinner(*self.nodes_under_test, name="bench_harness_executor"))
            self.node = self._spinner.add(Node(node_name))
            self.node.create_subscription(String, self.faces_topic, self._on_faces, 1000)
            self.camera = (_InProcessCamera(self.node, feed, self.image_topic, qos) if camera == "in_process" else
                           _SubprocessCamera(feed, self.image_topic, qos, camera_env))
            self._stack.callback(self.camera.close)
        except BaseException:
            self._stack.close()
            raise

    @property
    def msgtype(self) -> str:
        return self.camera.msgtype

    def _on_faces(self, msg) -> None:
        t = time.time_ns()
        doc = json.loads(msg.data)
        s = doc["header"]["stamp"]
        out = Received(s["sec"] * 1_000_000_000 + s["nanosec"], t, doc)
        with self._lock:
            self._outputs.append(out)
        if self._on_output is not None:
            self._on_output(out)

    # ---- connection and outputs
    def wait_connected(self, timeout_s: float = 15.0) -> None:
        """Until the pipeline subscribes to the camera and publishes ``~/faces``; PipelineNotFound if it never does."""
        deadline = time.monotonic() + timeout_s
        matched = self.camera.wait_matched(timeout_s)
        while self.node.count_publishers(self.faces_topic) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if not matched or self.node.count_publishers(self.faces_topic) == 0:
            raise PipelineNotFound(f"no face pipeline on {self.image_topic} -> {self.faces_topic} after "
                                   f"{timeout_s:g} s: is it running (edge-infer run / ros2 launch)?")

    def output_count(self) -> int:
        with self._lock:
            return len(self._outputs)

    def take_outputs(self) -> list[Received]:
        """Results received since the last take, in arrival order."""
        with self._lock:
            out, self._outputs = self._outputs, []
        return out

    def wait_outputs(self, count: int, drain_s: float) -> None:
        """Until ``count`` results are waiting, or none arrived for ``drain_s``."""
        deadline, seen = time.monotonic() + drain_s, -1
        while time.monotonic() < deadline:
            got = self.output_count()
            if got >= count:
                return
            if got != seen:
                seen, deadline = got, time.monotonic() + drain_s
            time.sleep(0.01)

    # ---- sending
    def send_and_wait(self, timeout_s: float = 5.0) -> Received | None:
        """One frame, then wait for its result (latency without queueing); the result stays in the outputs.

        The frame goes on a schedule (published at its stamp, see ``CameraPlayer.send``), so the latency starts
        when the camera hands it to the middleware, not before its own copy."""
        (sent,) = self.camera.play(1, SINGLE_FRAME_RATE_HZ, None)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for out in reversed(self._outputs):
                    if out.stamp_ns == sent.stamp_ns:
                        return out
            time.sleep(0.002)
        return None

    def warm_up(self, frames: int, timeout_s: float = 20.0) -> None:
        """Frames one at a time (first-run model costs, DDS discovery), then their results are discarded."""
        for _ in range(frames):
            self.send_and_wait(timeout_s)
        time.sleep(0.2)
        self.take_outputs()

    def run(self, count: int, rate_hz: float | None, drain_s: float = 1.5,
            progress: Callable[[int], None] | None = None) -> StampMatch:
        """Send ``count`` frames at ``rate_hz`` (cycling the feed), wait for the tail, match results by stamp."""
        self.take_outputs()
        sent = self.camera.play(count, rate_hz, progress)
        self.wait_outputs(len(sent), drain_s)
        return match_by_stamp(sent, self.take_outputs())

    def dropped_stale(self) -> int | None:
        """Frames the in-process face node dropped as stale (None: pipeline not in this process)."""
        for n in self.nodes_under_test:
            stats = getattr(n, "stats", None)
            if stats is not None and hasattr(stats, "dropped"):
                return int(stats.dropped)
        return None

    def close(self) -> None:
        """Camera first (its publisher leaves), then executor joined and nodes destroyed, then rclpy if ours."""
        self._stack.close()

    def __enter__(self) -> "FaceBenchHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SINGLE_FRAME_RATE_HZ = 50.0  # a scheduled single frame is due one period (20 ms) after the request


def node_end_to_end(models_dir, frames: int, camera: str = "in_process", node: str = "in_process") -> dict:
    """`bench pipeline`'s node column: end to end through the real face node (publish -> ``~/faces``) against
    the raw model time of the same frames. Frames go one at a time (the next after the result), so the number
    is latency, not queueing; the first frame warms up and is not counted.

    ``node`` "subprocess": the face node runs in its own process, started by its console script with the
    shipped DDS profile, as on a robot (``ros2 run edge_infer face_pipeline_node``); its executor then serves it
    alone, not this harness's client as well. "in_process": built here (no console script needed)."""
    from contextlib import ExitStack

    from rclpy.parameter import Parameter

    from edge_infer.ros.face_node import FacePipelineNode

    def face_node():
        return [FacePipelineNode(parameter_overrides=[Parameter("models_dir", value=str(models_dir)),
                                                      Parameter("tracking", value=False)])]

    feed = CameraFeed(models_dir=str(models_dir), frames=frames, faces=1)
    with ExitStack() as stack:
        if node == "subprocess":
            from edge_infer.ros.driver_check import node_process

            stack.enter_context(node_process("face_pipeline_node", {"models_dir": str(models_dir), "tracking": False},
                                             profile=True))
        h = stack.enter_context(FaceBenchHarness(feed, nodes_under_test=face_node if node == "in_process" else None,
                                                 camera=camera, node_name="bench_pipeline_client"))
        h.wait_connected(60.0 if node == "subprocess" else 15.0)  # a node process loads its models first
        got = [r.doc for r in (h.send_and_wait() for _ in range(frames)) if r is not None]
    lat = [g["latency_ms"] for g in got[1:]]
    stages = dict.fromkeys(k for x in lat for k in x)  # where the time goes: the node's own stage timings
    return {"frames": len(got), "node": "own process (console script)" if node == "subprocess" else "this process",
            "end_to_end_p50_ms": float(np.median([x["end_to_end"] for x in lat])),
            "raw_models_p50_ms": float(np.median([x["detector"] + x.get("mesh", 0) + x.get("emotion", 0) for x in lat])),
            "stages_p50_ms": {k: round(float(np.median([x.get(k, 0.0) for x in lat])), 3) for k in stages},
            # stamp -> the worker starting the frame: transport, callback, hand-off to the worker
            "before_processing_p50_ms": float(np.median([x["end_to_end"] - x["processing"] for x in lat])),
            "minus_raw_split_p50_ms": _minus_raw_split(lat)}


def _minus_raw_split(lat: list[dict[str, float]]) -> dict[str, float]:
    """Where end to end minus the models goes, per frame then p50: transport (stamp -> the node's callback:
    the middleware and rclpy's take), queued (callback -> worker), glue (the pipeline's non-model stages),
    rest (after the last stage until the end-to-end stamp). The four p50s need not add up to the total's p50."""
    models = ("detector", "mesh", "emotion")
    parts = {"transport": [x.get("transport", 0.0) for x in lat], "queued": [x.get("queued", 0.0) for x in lat],
             "glue": [x["processing"] - sum(x.get(m, 0.0) for m in models) for x in lat],
             "rest": [x["end_to_end"] - x.get("transport", 0.0) - x.get("queued", 0.0) - x["processing"] for x in lat]}
    return {k: round(float(np.median(v)), 3) for k, v in parts.items()}
