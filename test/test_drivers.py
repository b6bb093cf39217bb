"""Drivers in other processes, as on a robot: the node started by its console script with default parameters,
the camera / microphone a process of its own with its own QoS, this test process only watching.

Done means (issue "Drivers in other processes"): reliable 720p at 10 Hz -> >= 90 % answered; best-effort
1080p with default DDS -> every missing frame counted in /diagnostics; best-effort 1080p with the shipped
profile on the publisher -> >= 90 %; a best-effort microphone -> the wake word once.
"""

from __future__ import annotations

import json
import time

import pytest

from edge_infer.ros.driver_check import CameraCase, format_table, node_process, play_bag_process, run_driver_matrix, speech_bag

CASES = {
    "reliable_720p": CameraCase(1280, 720, 10.0, 40, "reliable", profile=False),
    "best_effort_1080p_default_dds": CameraCase(1920, 1080, 10.0, 30, "best_effort", profile=False),
    "best_effort_1080p_profile": CameraCase(1920, 1080, 10.0, 30, "best_effort", profile=True),
    # 40 frames: a new stream's first frames can come as a burst (the driver's first large publishes are slow)
    # and the node keeps only the newest, so 1-3 are dropped as stale by design: of 20 that was already 10 %
    "best_effort_720p_profile_yuyv": CameraCase(1280, 720, 10.0, 40, "best_effort", profile=True,
                                                encoding="yuv422_yuy2"),
    "reliable_1080p_profile": CameraCase(1920, 1080, 10.0, 40, "reliable", profile=True),
    # last, so that its burst cannot spill into another case: best effort 1080p without the profile at 30 Hz.
    # On a machine loaded by other work the 10 Hz stream above was once delivered whole (29 of 30, nothing to
    # count); a faster stream makes a loss, what these cases exist to count, more likely
    "best_effort_1080p_default_dds_30hz": CameraCase(1920, 1080, 30.0, 30, "best_effort", profile=False),
}


@pytest.fixture(scope="module")
def results(ros, models_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("drivers") / "face_pipeline_node.log"
    res = run_driver_matrix(models_dir, list(CASES.values()), log_path=log)
    print("\n" + format_table(res))
    return dict(zip(CASES, res))


def test_reliable_camera_720p_is_answered(results):
    r = results["reliable_720p"]
    assert r.answered_ratio >= 0.9, r.as_dict()
    assert "reliable" in r.input_qos and "(auto)" in r.input_qos, "auto QoS must follow the reliable driver"


def test_reliable_camera_1080p_with_the_profile_is_answered(results):
    r = results["reliable_1080p_profile"]
    assert r.answered_ratio >= 0.9, r.as_dict()


def test_best_effort_1080p_without_profile_losses_are_counted(results):
    runs = [results["best_effort_1080p_default_dds"], results["best_effort_1080p_default_dds_30hz"]]
    for r in runs:
        assert "best_effort" in r.input_qos
        # every frame is answered or counted. DDS sees a best-effort loss only when a later frame arrives, so
        # losses among the last frames of a stream (those in flight when it stops) cannot be counted: allow 4
        assert r.accounted >= r.sent - 4, r.as_dict()
        assert r.accounted <= r.sent, "nothing is counted twice"
    if not any(r.lost_in_transport for r in runs):
        # default Fast DDS usually loses most of these frames (28 of 30 here when idle); whether it does is
        # the machine's, not ours: without a loss there is nothing whose counting this test could show
        pytest.skip("default Fast DDS lost no 1080p best-effort frame in either run on this machine, so no loss "
                    f"counting was exercised: {[r.as_dict() for r in runs]}")


def test_best_effort_1080p_with_the_shipped_profile_is_answered(results):
    r = results["best_effort_1080p_profile"]
    assert r.answered_ratio >= 0.9, r.as_dict()
    assert r.lost_in_transport == 0


def test_yuyv_webcam_frames_are_answered(results):
    r = results["best_effort_720p_profile_yuyv"]
    assert r.answered_ratio >= 0.9 and r.bad == 0, r.as_dict()


def test_best_effort_microphone_gives_the_wake_word_once(ros, models_dir, tmp_path):
    from rclpy.node import Node
    from std_msgs.msg import String

    from edge_infer.ros.runner import Spinner

    bag = speech_bag(tmp_path)
    wake: list[dict] = []
    diag: dict = {}
    watcher = Node("edge_infer_mic_watcher")
    watcher.create_subscription(String, "/audio_node/wake_word", lambda m: wake.append(json.loads(m.data)), 10)
    from hri_msgs.msg import LiveSpeech

    speech: list = []
    watcher.create_subscription(LiveSpeech, "/audio_node/wake_word/speech", speech.append, 10)

    def on_diag(msg):
        for s in msg.status:
            if s.hardware_id.endswith("/audio_node"):
                diag.update({kv.key: kv.value for kv in s.values})

    from diagnostic_msgs.msg import DiagnosticArray

    watcher.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    with Spinner(watcher), node_process("audio_node", {"models_dir": str(models_dir)},
                                        log_path=tmp_path / "audio_node.log"):
        deadline = time.monotonic() + 60
        while not (watcher.count_publishers("/audio_node/wake_word") and diag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert diag, "audio_node did not come up: " + (tmp_path / "audio_node.log").read_text()[-2000:]
        played = play_bag_process(bag, qos="sensor")  # best effort, like audio_capturer_node
        assert played.returncode == 0, played.stderr
        time.sleep(2.0)
    assert len(wake) == 1, wake
    assert wake[0]["keyword"].replace(" ", "_") == "hey_jarvis"
    assert "best_effort" in diag["input_qos"] and int(diag["chunks"]) > 0
    assert int(diag["lost_chunks"]) == 0
    # the same event typed, with a header (hri_msgs/LiveSpeech: final = the keyword, confidence = its score)
    assert len(speech) == 1 and speech[0].final == wake[0]["keyword"]
    assert speech[0].confidence == pytest.approx(wake[0]["score"], abs=1e-3) and speech[0].header.stamp.sec > 0
