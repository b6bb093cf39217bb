"""`edge-infer bench bag`: a short bag through the real face pipeline node gives a consistent report; the
peak-rate search, stamp patching and run aggregation on their own."""

from __future__ import annotations

import json
import struct

import pytest

from edge_infer.bags.cdr import set_header_stamp
from edge_infer.bench.bag import BagBenchConfig, ProbeResult, aggregate, peak_search
from edge_infer.ros.bag_bench import run_bench_bag
from edge_infer.bags.write import photo_frames, write_image_bag


def test_short_bag_report_is_consistent(ros, models_dir, tmp_path):
    bag = tmp_path / "faces"
    write_image_bag(bag, photo_frames(models_dir, 20, (640, 360)), 10.0, storage="mcap")
    config = BagBenchConfig(rates=[10.0], runs=1, frames=20, peak=False, warmup=2,
                         launch_arguments={"models_dir": str(models_dir)})
    report = run_bench_bag(bag, config, tmp_path / "out", progress=False, echo=lambda s: None)
    on_disk = json.loads((tmp_path / "out" / "bench_bag.json").read_text())
    assert on_disk["schema"] == "edge_infer/bench_bag" and on_disk["bag"]["sha256"] == report["bag"]["sha256"]
    assert len(report["bag"]["sha256"]) == 64 and report["bag"]["messages"] == 20
    (agg,) = report["fixed_rates"]
    (run,) = agg["per_run"]
    assert run["sent"] == 20
    assert run["missed"] + run["received"] == run["sent"]
    assert run["unmatched_outputs"] == 0  # every output matched to an input by stamp
    assert run["latency_ms"]["count"] == run["received"] > 0
    lat = run["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
    assert run["input_rate_hz"] == pytest.approx(10.0, rel=0.1)
    assert {"detector", "end_to_end"} <= set(run["stages_ms"])
    assert run["cpu_process_percent"] > 0
    assert report["machine"]["cpu_count"] and report["config"]["rates"] == [10.0]
    for key in ("latency_hist", "rate_sweep"):
        assert (tmp_path / "out" / f"{key}.png").read_bytes()[:4] == b"\x89PNG"


def test_set_header_stamp_patches_the_header_only():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    m = Image(height=1, width=2, encoding="mono8", step=2, data=bytes([7, 9]))
    m.header.frame_id = "cam"
    out = deserialize_message(set_header_stamp(serialize_message(m), 12_345_678_901), Image)
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (12, 345_678_901)
    assert out.header.frame_id == "cam" and bytes(out.data) == bytes([7, 9])
    assert struct.unpack_from("<iI", set_header_stamp(serialize_message(m), 5), 4) == (0, 5)


def _probe(rate, passed, mean=10.0):
    return ProbeResult(rate, 10, 10 if passed else 5, 0 if passed else 5, 0, rate, rate if passed else rate / 2,
                       {"count": 10, "min": mean, "mean": mean, "p50": mean, "p90": mean, "p99": mean, "max": mean},
                       0.0, 50.0, None, {}, None, passed)


def test_peak_search_binary_then_linear():
    true_peak = 47.0
    asked = []

    def run(rate):
        asked.append(rate)
        return _probe(rate, rate <= true_peak)

    best, probes = peak_search(run, 5.0, 120.0)
    assert best is not None and true_peak - 5 < best <= true_peak
    assert len(probes) == len(asked)
    # after the binary phase the window is <= 10 Hz, then +5 Hz steps until a failure
    assert asked[-1] > true_peak and asked[-1] - asked[-2] == pytest.approx(5.0)
    assert peak_search(lambda r: _probe(r, False), 5.0, 120.0)[0] is None
    assert peak_search(lambda r: _probe(r, r <= 130), 5.0, 120.0, max_rate=130)[0] == 130


def test_aggregate_drops_best_and_worst():
    runs = [_probe(10, True, m) for m in (5.0, 20.0, 11.0, 13.0, 100.0)]
    agg = aggregate(runs)
    assert sorted(agg["kept_runs"]) == [1, 2, 3] and agg["latency_ms"]["mean"] == pytest.approx(44 / 3, abs=1e-3)
    assert agg["sent"] == 30 and agg["missed"] + agg["received"] == agg["sent"]


def test_bag_played_from_a_camera_process(ros, models_dir, tmp_path):
    """The same bench with the bag's frames published by `python -m edge_infer.ros.camera_player`."""
    bag = tmp_path / "small"
    write_image_bag(bag, photo_frames(models_dir, 10, (320, 180)), 10.0)
    config = BagBenchConfig(rates=[10.0], runs=1, frames=10, peak=False, warmup=1, camera="subprocess",
                            launch_arguments={"models_dir": str(models_dir)})
    report = run_bench_bag(bag, config, None, progress=False, echo=lambda s: None)
    (run,) = report["fixed_rates"][0]["per_run"]
    assert report["pipeline"]["camera"] == "subprocess" and report["bag"]["messages"] == 10
    assert run["sent"] == 10 and run["unmatched_outputs"] == 0 and run["received"] > 0
    assert run["missed"] + run["received"] == run["sent"]
