"""rosbag2 bags with rosbags: write/read round trip (sqlite3, mcap), rosbag2 metadata fields, audio and video
sources, calibration frames, and playback timing through real rclpy."""

from __future__ import annotations

import threading
import time
import wave

import cv2
import numpy as np
import pytest
import yaml

from edge_infer.errors import BagError
from edge_infer.bags.read import bag_info, calibration_frames_from_bag, iter_messages, load_raw, stamp_ns
from edge_infer.bags.write import DEFAULT_START_NS, photo_frames, write_audio_bag, write_image_bag


def _frames(n, w=160, h=96):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("version", [8, 9])
def test_image_round_trip_and_metadata(tmp_path, storage, version):
    frames = _frames(6)
    bag = tmp_path / "bag"
    s = write_image_bag(bag, frames, 20.0, storage=storage, version=version, encoding="bgr8")
    assert s.topics == {"/image": {"type": "sensor_msgs/msg/Image", "count": 6}}
    got = list(iter_messages(bag))
    assert len(got) == 6
    for i, (raw, msg) in enumerate(got):
        assert raw.t_ns == DEFAULT_START_NS + i * 50_000_000 == stamp_ns(msg)
        assert (msg.width, msg.height, msg.encoding, msg.step) == (160, 96, "bgr8", 480)
        assert np.array_equal(np.asarray(msg.data).reshape(96, 160, 3), frames[i])
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == version and meta["storage_identifier"] == storage
    assert meta["message_count"] == 6 and meta["duration"]["nanoseconds"] == 250_000_000
    assert meta["starting_time"]["nanoseconds_since_epoch"] == DEFAULT_START_NS
    for rel in meta["relative_file_paths"]:
        assert (bag / rel).is_file()
    assert [f["path"] for f in meta["files"]] == meta["relative_file_paths"]
    assert isinstance(meta["custom_data"], dict)  # rosbag2 decodes it as a map; null breaks `ros2 bag info`
    (t,) = meta["topics_with_message_count"]
    tm = t["topic_metadata"]
    assert t["message_count"] == 6 and tm["name"] == "/image" and tm["type"] == "sensor_msgs/msg/Image"
    assert tm["serialization_format"] == "cdr" and tm["type_description_hash"].startswith("RIHS01_")
    qos = tm["offered_qos_profiles"]
    qos = yaml.safe_load(qos) if isinstance(qos, str) else qos
    assert qos[0]["reliability"] in (2, "best_effort")
    assert bag_info(bag)["topics"]["/image"]["count"] == 6


def test_cdr_deserializes_into_rclpy_messages(tmp_path):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage, Image

    frames = _frames(2)
    write_image_bag(tmp_path / "raw", frames, 10.0, encoding="rgb8")
    write_image_bag(tmp_path / "jpg", frames, 10.0, compressed=True, storage="mcap", topic="/image/compressed")
    m = deserialize_message(load_raw(tmp_path / "raw")[1].data, Image)
    assert (m.header.stamp.sec, m.header.stamp.nanosec) == divmod(DEFAULT_START_NS + 100_000_000, 1_000_000_000)
    assert m.header.frame_id == "camera"
    rgb = np.frombuffer(m.data, np.uint8).reshape(96, 160, 3)
    assert np.array_equal(rgb, frames[1][:, :, ::-1])
    c = deserialize_message(load_raw(tmp_path / "jpg")[0].data, CompressedImage)
    assert c.format == "jpeg"
    assert cv2.imdecode(np.frombuffer(c.data, np.uint8), cv2.IMREAD_COLOR).shape == (96, 160, 3)


def test_audio_bag_chunks_and_timing(tmp_path):
    sr = 16000
    samples = (np.sin(np.arange(sr) * 2 * np.pi * 440 / sr) * 8000).astype(np.int16)
    wav = tmp_path / "a.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(samples.tobytes())
    s = write_audio_bag(tmp_path / "audio", wav, chunk=512, storage="mcap")
    n = -(-sr // 512)
    assert s.topics["/audio"]["count"] == n and s.topics["/audio"]["type"] == "std_msgs/msg/Int16MultiArray"
    got = list(iter_messages(tmp_path / "audio"))
    assert np.array_equal(np.concatenate([np.asarray(m.data) for _, m in got])[:sr], samples)
    assert got[1][0].t_ns - got[0][0].t_ns == 32_000_000  # 512 samples at 16 kHz


def test_video_and_photo_sources_and_calibration(tmp_path, models_dir):
    video = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (128, 96))
    for f in _frames(8, 128, 96):
        vw.write(f)
    vw.release()
    from edge_infer.bags.write import video_frames, video_rate

    assert video_rate(video) == pytest.approx(15.0)
    s = write_image_bag(tmp_path / "vid", video_frames(video), video_rate(video), compressed=True, topic="/cam/c")
    assert s.topics["/cam/c"]["count"] == 8
    write_image_bag(tmp_path / "photos", photo_frames(models_dir, 6, (320, 180)), 30.0)
    frames = calibration_frames_from_bag(tmp_path / "photos", "/image", max_frames=3)
    assert len(frames) == 3 and frames[0].shape == (180, 320, 3) and frames[0].dtype == np.uint8
    assert len(calibration_frames_from_bag(tmp_path / "vid", "/cam/c", 100)) == 8
    with pytest.raises(BagError):
        calibration_frames_from_bag(tmp_path / "vid", "/nope", 3)


def test_existing_bag_is_not_overwritten(tmp_path):
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        write_image_bag(tmp_path / "b", _frames(1), 10.0)


def _receive(ros, topic, run_player):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    sub_node = Node("bag_play_test_sub")
    arrivals: list[tuple[float, int]] = []
    sub_node.create_subscription(Image, topic, lambda m: arrivals.append((time.monotonic(), stamp_ns(m))),
                                 qos_profile_sensor_data)
    ex = SingleThreadedExecutor()
    ex.add_node(sub_node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    player = Node("bag_play_test_player")
    try:
        stats = run_player(player)
        time.sleep(0.3)
    finally:
        ex.shutdown()
        th.join(timeout=5)
        sub_node.destroy_node()
        player.destroy_node()
    return stats, arrivals


@pytest.mark.parametrize("rate", [1.0, 2.0])
def test_playback_rate_within_10_percent(ros, tmp_path, rate):
    from edge_infer.ros.bag_play import play

    bag = tmp_path / "bag"
    write_image_bag(bag, _frames(20), 20.0)
    stats, arrivals = _receive(ros, "/play_test/image", lambda node: play(
        node, bag, rate=rate, remap={"/image": "/play_test/image"}, wait_for_subscribers_s=5.0))
    assert stats.published == 20
    assert len(arrivals) >= 19, f"only {len(arrivals)} of 20 arrived"
    want = 20.0 * rate
    got = (len(arrivals) - 1) / (arrivals[-1][0] - arrivals[0][0])
    assert abs(got - want) / want < 0.10, f"played at {got:.1f} Hz, asked {want:.1f} Hz"
    assert abs(stats.wall_s - 0.95 / rate) / (0.95 / rate) < 0.10
    assert [s for _, s in arrivals] == sorted(s for _, s in arrivals)  # original stamps, in order


def test_playback_fast_and_loop(ros, tmp_path):
    from edge_infer.ros.bag_play import play

    bag = tmp_path / "bag"
    write_image_bag(bag, _frames(5), 2.0)  # 2 s of bag time
    stats, arrivals = _receive(ros, "/play_fast/image", lambda node: play(
        node, bag, rate=None, loop=True, max_loops=3, remap={"/image": "/play_fast/image"}, qos="reliable",
        wait_for_subscribers_s=5.0))
    assert stats.published == 15 and stats.loops == 3 and stats.wall_s < 1.0


def test_quantize_calibrates_int8_from_a_bag(tmp_path, models_dir, capsys):
    import json

    from edge_infer.cli import main

    bag = tmp_path / "calib_bag"
    assert main(["bag", "make", "--photos", "--frames", "6", "--rate", "10", "--models-dir", str(models_dir), str(bag)]) == 0
    out = tmp_path / "emotion_int8.onnx"
    capsys.readouterr()
    rc = main(["quantize", str(models_dir / "emotion.onnx"), str(out), "--mode", "int8", "--name", "emotion",
               "--calib-bag", str(bag), "--topic", "/image", "--models-dir", str(models_dir), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and out.is_file() and report["calibration"].startswith(f"{bag}:/image")
    assert report["calibration_samples"] > 0 and report["size_bytes"] < report["size_before"]


def test_restamp_shift_keeps_stamps_increasing_across_loops() -> None:
    """`bag play --loop` (issue 20, 4): pass k of a bag moves its header stamps by k bag lengths (`loop`), so a
    node's stale-stamp check sees time go forward; `now` starts the stamps at the wall clock; `none` repeats."""
    from edge_infer.bags.cdr import header_stamp, restamp_shift_ns, set_header_stamp

    recorded = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(5)]  # 10 Hz, recorded in 2023
    span = recorded[-1] - recorded[0] + 100_000_000
    played = [t + restamp_shift_ns("loop", k, span, recorded[0], 0) for k in range(3) for t in recorded]
    assert played[:5] == recorded and all(b > a for a, b in zip(played, played[1:]))
    assert all(b - a == 100_000_000 for a, b in zip(played, played[1:]))  # the period holds across passes
    wall = 1_800_000_000_000_000_000
    assert recorded[0] + restamp_shift_ns("now", 0, span, recorded[0], wall) == wall
    assert restamp_shift_ns("none", 3, span, recorded[0], wall) == 0
    cdr = b"\x00\x01\x00\x00" + (1700000000).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"rest"
    assert header_stamp(cdr) == 1_700_000_000_000_000_005
    assert header_stamp(set_header_stamp(cdr, wall)) == wall
    with pytest.raises(ValueError):
        restamp_shift_ns("sometimes", 0, span, None, 0)
