"""Live parameters through the real parameter services (`ros2 param set`), called from another node:
every parameter that is not read-only applies from the next frame/chunk; read-only ones and bad values are
refused with a reason."""

from __future__ import annotations

import json
import time

import pytest

from remote_publisher import RemotePublishers, driver_env

from ros_clients import get_parameters, set_parameter, set_parameters, wait_for

FACE = "/live_test/face_pipeline"
AUDIO = "/live_test/audio_node"


@pytest.fixture(scope="module")
def graph(ros, models_dir):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from edge_infer.ros.audio_node import AudioNode
    from edge_infer.ros.face_node import FacePipelineNode
    from edge_infer.ros.runner import spinning

    models = Parameter("models_dir", value=str(models_dir))
    face = FacePipelineNode(namespace="live_test", parameter_overrides=[models])
    audio = AudioNode(namespace="live_test", parameter_overrides=[models])
    client = Node("live_params_client")
    g = {"face": face, "audio": audio, "client": client, "faces": [], "wake": []}
    client.create_subscription(String, f"{FACE}/faces", lambda m: g["faces"].append(json.loads(m.data)), 10)
    client.create_subscription(String, f"{AUDIO}/wake_word", lambda m: g["wake"].append(json.loads(m.data)), 10)
    # camera and microphone drivers in another process
    with spinning(face, audio, client), RemotePublishers({"/live_test/image": ("sensor_msgs/msg/Image", "sensor"),
                                                          "/live_test/audio": ("std_msgs/msg/Int16MultiArray",
                                                                               "reliable")}, depth=200, env=driver_env()) as drivers:
        g["image_pub"], g["audio_pub"] = drivers["/live_test/image"], drivers["/live_test/audio"]
        yield g


def _faces_in_next_frame(g, astronaut_rgb) -> int:
    from edge_infer.ros.image_conversion import image_to_msg

    n = len(g["faces"])
    g["image_pub"].publish(image_to_msg(astronaut_rgb, "rgb8", "cam", g["client"].get_clock().now().to_msg()))
    assert wait_for(lambda: len(g["faces"]) > n, timeout=20), "no ~/faces result"
    return len(g["faces"][-1]["faces"])


def _set(g, node: str, name: str, value) -> None:
    result = set_parameter(g["client"], node, name, value)
    assert result.successful, result.reason


def test_score_threshold_applies_from_the_next_frame(graph, astronaut_rgb):
    assert _faces_in_next_frame(graph, astronaut_rgb) == 1
    _set(graph, FACE, "score_threshold", 0.99999)  # tracking is on: the detector re-runs with the new value
    assert _faces_in_next_frame(graph, astronaut_rgb) == 0
    _set(graph, FACE, "score_threshold", 0.6)
    assert _faces_in_next_frame(graph, astronaut_rgb) == 1
    assert get_parameters(graph["client"], FACE, ["score_threshold"]) == {"score_threshold": 0.6}


def test_detector_size_changes_the_letterbox_of_the_next_frame(graph, astronaut_rgb):
    """A 64x64 letterbox makes the astronaut's face too small to find; 640x384 finds it again."""
    result = set_parameters(graph["client"], FACE, {"detector_width": 64, "detector_height": 64})
    assert result.successful, result.reason
    assert graph["face"].pipeline.config.detector_size == (64, 64)
    assert _faces_in_next_frame(graph, astronaut_rgb) == 0
    assert set_parameters(graph["client"], FACE, {"detector_width": 640, "detector_height": 384}).successful
    assert _faces_in_next_frame(graph, astronaut_rgb) == 1


def test_read_only_parameters_and_bad_values_are_refused_with_a_reason(graph):
    from edge_infer.ros.param_table import AUDIO_PARAMS, FACE_PARAMS

    for node, table in ((FACE, FACE_PARAMS), (AUDIO, AUDIO_PARAMS)):
        for p in table:
            if p.read_only:
                result = set_parameter(graph["client"], node, p.name, p.default)
                assert not result.successful and "read-only" in result.reason, (node, p.name, result.reason)
    for name, value, why in (("score_threshold", 1.5, "out of range"), ("max_faces", 0, "out of range"),
                             ("score_threshold", "high", "type")):
        result = set_parameter(graph["client"], FACE, name, value)
        assert not result.successful and result.reason, (name, value)
        assert name in result.reason or why in result.reason.lower() or "expecting" in result.reason, result.reason
    assert graph["face"].pipeline.config.score_threshold == 0.6 and graph["face"].values["max_faces"] == 8
    # one bad value in an atomic request: nothing of it applies
    result = set_parameters(graph["client"], FACE, {"nms_threshold": 0.3, "score_threshold": 2.0})
    assert not result.successful and graph["face"].pipeline.config.nms_threshold == 0.4


def _new_values(p) -> list:
    """Values in range other than the default, for every kind of live parameter: the first one the node accepts
    is used (a parameter checked against another, e.g. fatigue.blink_min_s <= blink_max_s, may refuse one side)."""
    if isinstance(p.default, bool):
        return [not p.default]
    if isinstance(p.default, int):
        return [v for v in (p.default + 1, p.default - 1) if p.int_range[0] <= v <= p.int_range[1]]
    if isinstance(p.default, float):
        return [(p.default + p.float_range[1]) / 2, (p.default + p.float_range[0]) / 2]  # halfway up, down
    if p.choices:
        return [c for c in p.choices if c != p.default]
    if p.name == "cameras":  # the one camera on the node's topics -> two named cameras (and back at the end)
        return [["live_a", "live_b"]]
    raise AssertionError(f"{p.name}: add a value for {type(p.default).__name__}")


def test_every_live_parameter_takes_effect(graph):
    """Each parameter that is not read-only changes what the node does (the config it runs with and its own
    settings equal what the table builds from the new values); then all go back to the defaults."""
    from edge_infer.ros.param_table import (AUDIO_PARAMS, FACE_PARAMS, audio_config, defaults, face_config,
                                            fatigue_config, health_bounds)

    face, audio = graph["face"], graph["audio"]

    def face_effective() -> tuple:
        return (face.pipeline.config, face.bounds, face.debug_enabled, face.max_lag_ns, face.publish_tf,
                face.signals.fatigue.config, tuple(face.cameras), tuple(face.slots.cameras), face.batching,
                face.batch_timeout_s)

    def audio_effective() -> tuple:
        seg = audio.pipeline.segmenter
        return (audio.pipeline.config, seg.config, seg.min_speech, seg.min_silence, seg.pad, audio.max_rtf,
                audio.max_loss_ratio)

    for node_name, node, table, effective in ((FACE, face, FACE_PARAMS, face_effective),
                                              (AUDIO, audio, AUDIO_PARAMS, audio_effective)):
        live = [p for p in table if not p.read_only]
        assert live, node_name
        applied = {}
        for p in live:
            before = effective()
            for value in _new_values(p):
                result = set_parameter(graph["client"], node_name, p.name, value)
                if result.successful:
                    applied[p.name] = value
                    break
                assert effective() == before, f"{node_name} {p.name}: a refused value changed something"
            assert p.name in applied, f"{node_name} {p.name}: no value accepted ({result.reason})"
            assert effective() != before, f"{node_name} {p.name}: the change had no effect"
        assert node.values == {**defaults(node.get_name()), **applied, "models_dir": node.values["models_dir"]}
        assert set_parameters(graph["client"], node_name, {p.name: p.default for p in live}).successful
    v = face.values
    assert face_effective() == (face_config(v), health_bounds(v), v["publish_debug_image"],
                                int(v["max_stamp_lag_s"] * 1e9), v["publish_tf"], fatigue_config(v),
                                tuple(v["cameras"]), tuple(v["cameras"]), v["batching"],
                                v["batch_timeout_ms"] / 1e3)
    assert audio.pipeline.config == audio_config(audio.values)


def test_wake_threshold_applies_from_the_next_chunk(graph):
    from std_msgs.msg import Int16MultiArray

    from audio_clips import clip, padded, to_int16

    def wake_words_in(samples) -> int:
        n = len(graph["wake"])
        stats = graph["audio"].pipeline.stream.stats
        chunks = stats.chunks
        for i in range(0, len(samples), 1600):
            graph["audio_pub"].publish(Int16MultiArray(data=to_int16(samples[i:i + 1600]).tolist()))
            time.sleep(0.002)
        assert wait_for(lambda: stats.chunks >= chunks + len(samples) // 1600, timeout=30)
        time.sleep(0.3)
        return len(graph["wake"]) - n

    speech = padded(clip("hey jarvis", "flite", "awb"), 1.0, 1.5)
    _set(graph, AUDIO, "wake_threshold", 0.99999)
    assert wake_words_in(speech) == 0
    _set(graph, AUDIO, "wake_threshold", 0.5)
    assert wake_words_in(speech) == 1
