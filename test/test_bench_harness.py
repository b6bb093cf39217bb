"""The one spin/teardown helper, the camera player (in this process and in its own) and the bench harness's
stamp matching."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge_infer.bench.camera_feed import CameraFeed
from edge_infer.bench.stamp_matching import Received, Sent, match_by_stamp, rate_hz
from edge_infer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- ROS-free halves
def test_match_by_stamp_latency_missed_unmatched_and_rates():
    sent = [Sent(100 + i, 1_000_000_000 + i * 100_000_000) for i in range(5)]  # 10 Hz
    outputs = [Received(100, 1_020_000_000, {}), Received(102, 1_230_000_000, {}), Received(102, 1_240_000_000, {}),
               Received(999, 1_300_000_000, {})]
    m = match_by_stamp(sent, outputs)
    assert m.received == 2 and m.missed == 3 and m.unmatched_outputs == 1
    assert m.latencies_ms == pytest.approx([20.0, 30.0, 40.0])
    assert m.input_rate_hz == pytest.approx(10.0)
    assert rate_hz([0, 500_000_000, 1_000_000_000]) == pytest.approx(2.0) and rate_hz([5]) == 0.0


def test_camera_feed_survives_the_command_line():
    p = argparse.ArgumentParser()
    CameraFeed.add_arguments(p)
    for feed in (CameraFeed(models_dir="/m", frames=7, faces=2, size=(320, 180), encoding="bgr8", compressed=True),
                 CameraFeed(source="bag", bag="/b", topic="/cam/image", frame_id="cam")):
        assert CameraFeed.from_args(p.parse_args(feed.argv())) == feed
    with pytest.raises(ConfigError):
        CameraFeed(source="bag")
    with pytest.raises(ConfigError):
        CameraFeed(source="webcam", models_dir="/m")


# ------------------------------------------------------------------------------------- runner
def test_spinner_joins_then_destroys_and_leaves_a_foreign_session_running(ros):
    from rclpy.node import Node

    from edge_infer.ros.runner import Spinner, rclpy_session

    with rclpy_session() as owned:
        assert owned is False  # the test session initialised rclpy: not ours to shut down
        spinner = Spinner(Node("spinner_test_a")).start()
        node_b = spinner.add(Node("spinner_test_b"))
        assert spinner.alive
        spinner.close()
        assert not spinner.alive and spinner.nodes == []
        with pytest.raises(Exception):
            node_b.get_fully_qualified_name()  # destroyed
    assert ros.ok()


def test_run_until_stopped_restores_sigterm_handler(ros):
    from rclpy.node import Node

    from edge_infer.ros.runner import run_until_stopped

    def mine(*_):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        stop = threading.Event()
        seen = {}

        def started(nodes):
            seen["handler"] = signal.getsignal(signal.SIGTERM)
            stop.set()

        assert run_until_stopped(lambda: [Node("run_until_stopped_test")], stop=stop, on_started=started) == 1
        assert seen["handler"] is not mine  # SIGTERM stops the run while it spins ...
        assert signal.getsignal(signal.SIGTERM) is mine  # ... and the caller's handler is back after
        assert run_until_stopped(lambda: [], stop=threading.Event()) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ros.ok()


# ------------------------------------------------------------------------------------- camera player
def test_camera_player_in_its_own_process(ros, models_dir):
    """`python -m edge_infer.ros.camera_player`: a separate camera process, unique increasing stamps at the rate."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from edge_infer.ros.runner import spinning

    got: list[tuple[float, int, int]] = []
    sub_node = Node("camera_player_test_sub")
    sub_node.create_subscription(
        Image, "/player_test/image",
        lambda m: got.append((time.monotonic(), m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, m.width)),
        QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    with spinning(sub_node):
        out = subprocess.run([sys.executable, "-m", "edge_infer.ros.camera_player", "--models-dir", str(models_dir),
                              "--frames", "5", "--count", "12", "--size", "160x90", "--rate", "20", "--qos", "reliable",
                              "--topic", "/player_test/image"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        deadline = time.monotonic() + 5
        while len(got) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["published"] == 12 and summary["rate_hz"] == pytest.approx(20.0, rel=0.1)
    assert len(got) == 12 and {w for _, _, w in got} == {160}
    stamps = [s for _, s, _ in got]
    assert stamps == sorted(set(stamps))  # unique and increasing although the 5 frames repeat


def test_camera_player_publishes_scheduled_frames_at_their_stamps(ros, models_dir):
    """On a schedule each 720p frame carries its due time and is published then, after its stamped copy was made:
    the camera's own 2.7 MB copy (~2 ms) is no longer charged to the receiver's latency. Back to back, the
    stamp is taken first and the copy comes after it."""
    from rclpy.node import Node

    from edge_infer.ros.camera_player import CameraPlayer

    msgtype, messages = CameraFeed(models_dir=str(models_dir), frames=2, faces=1, size=(1280, 720)).load()
    node = Node("camera_player_schedule_test")
    try:
        player = CameraPlayer(node, "/schedule_test/image", msgtype, messages)
        sent = player.play(6, 50.0)
        period = 20_000_000
        assert [s.stamp_ns - sent[0].stamp_ns for s in sent] == [k * period for k in range(6)]
        assert all(s.sent_ns >= s.stamp_ns for s in sent)  # never published before its stamp
        back_to_back = player.play(3, None)
        assert all(b.sent_ns >= b.stamp_ns for b in back_to_back)
        assert back_to_back[0].stamp_ns > sent[-1].stamp_ns  # still unique and increasing
    finally:
        node.destroy_node()


def test_harness_with_the_camera_in_another_process(ros, models_dir):
    from rclpy.parameter import Parameter

    from edge_infer.ros.bench_harness import FaceBenchHarness
    from edge_infer.ros.face_node import FacePipelineNode

    def face_node():
        return [FacePipelineNode(parameter_overrides=[Parameter("models_dir", value=str(models_dir)),
                                                      Parameter("tracking", value=False)])]

    feed = CameraFeed(models_dir=str(models_dir), frames=4, faces=1, size=(320, 180))
    with FaceBenchHarness(feed, nodes_under_test=face_node, camera="subprocess", image_topic="/image") as h:
        assert h.msgtype == "sensor_msgs/msg/Image" and h.camera.frames == 4
        h.wait_connected()
        first = h.send_and_wait(timeout_s=20)
        assert first is not None and first.doc["image"] == {"width": 320, "height": 180}
        match = h.run(10, 10.0)
    assert len(match.sent) == 10 and match.unmatched_outputs == 0 and match.received > 0
    assert all(0 < ms < 5000 for ms in match.latencies_ms)
    assert match.input_rate_hz == pytest.approx(10.0, rel=0.1)


def test_a_camera_process_that_fails_is_reported_and_cleaned_up(ros, tmp_path):
    from edge_infer.errors import EdgeInferError
    from edge_infer.ros.bench_harness import CameraPlayerError, FaceBenchHarness

    t0 = time.monotonic()
    with pytest.raises(CameraPlayerError, match="exited") as e:
        FaceBenchHarness(CameraFeed(source="bag", bag=str(tmp_path / "no_such_bag")), camera="subprocess")
    assert isinstance(e.value, EdgeInferError) and time.monotonic() - t0 < 60
    assert ros.ok()  # the harness did not shut down a session it did not start


def test_sigterm_sets_stop_even_when_repeated_during_a_wait():
    """The players' SIGTERM handler: the event is set, and a burst of signals while the main thread sits in
    stop.wait() neither deadlocks nor escapes the block."""
    import os
    import signal
    import threading

    from edge_infer.ros.runner import sigterm_sets

    stop = threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_sets(stop):
        killer = threading.Thread(target=lambda: [os.kill(os.getpid(), signal.SIGTERM) for _ in range(50)])
        killer.start()
        assert stop.wait(10), "SIGTERM did not set the stop event"
        killer.join(10)
    assert signal.getsignal(signal.SIGTERM) is before


def test_node_end_to_end_splits_what_is_not_the_models(ros, models_dir):
    """`bench pipeline`'s node column, for real, as the bench runs it: the face node started by its console
    script and the camera, each in its own process. The split of end to end minus the models has its four
    parts, each measured (>= 0 where it cannot be negative)."""
    from edge_infer.ros.bench_harness import node_end_to_end

    r = node_end_to_end(models_dir, 4, camera="subprocess", node="subprocess")
    assert r["frames"] == 4 and r["node"] == "own process (console script)" and r["end_to_end_p50_ms"] > r["raw_models_p50_ms"] > 0
    split = r["minus_raw_split_p50_ms"]
    assert set(split) == {"transport", "queued", "glue", "rest"}
    assert split["transport"] > 0 and split["queued"] >= 0 and split["glue"] > 0
    assert {"transport", "queued", "detector", "end_to_end"} <= set(r["stages_p50_ms"])
