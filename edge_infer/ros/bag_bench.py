"""`edge-infer bench bag`, ROS half: play a bag's image topic through the face pipeline with the bench
harness, probe fixed rates and search the peak rate. The method, numbers and report are ROS-free:
:mod:`edge_infer.bench.bag`.

The pipeline under test is started in this process from the launch description (same YAML as
``ros2 launch``), or with ``external=True`` one already running elsewhere is measured.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from edge_infer.bags import IMAGE
from edge_infer.bags.read import image_topic
from edge_infer.bench.bag import (BagBenchConfig, CpuMeter, ProbeResult, aggregate, build_report, machine_info,
                                  median_run, peak_search, probe_result, write_report)
from edge_infer.bench.camera_feed import CameraFeed
from edge_infer.ros.bench_harness import FaceBenchHarness


def pipeline_topics(config: BagBenchConfig, msgtype: str) -> tuple[str, str]:
    """(camera topic, faces topic) of the pipeline under test, from its namespace and launch arguments."""
    ns = "/" + config.namespace.strip("/") if config.namespace.strip("/") else ""
    camera = f"{ns}/image"
    if not config.external and config.launch_arguments.get("camera_topic"):
        camera = config.launch_arguments["camera_topic"]
    return (camera if msgtype == IMAGE else camera + "/compressed"), f"{ns}/face_pipeline/faces"


def open_harness(bag: Path, config: BagBenchConfig, msgtype: str) -> FaceBenchHarness:
    """The bench harness over the bag's image topic, with the face pipeline in this process unless external."""
    make_nodes = None
    if not config.external:
        from edge_infer.ros.one_process import build_nodes

        args = {"enable_audio": "false", "enable_face": "true", "namespace": config.namespace,
                **config.launch_arguments}

        def make_nodes():
            return build_nodes(args)
    camera_topic, faces_topic = pipeline_topics(config, msgtype)
    return FaceBenchHarness(CameraFeed(source="bag", bag=str(bag), topic=config.topic), nodes_under_test=make_nodes,
                            image_topic=camera_topic, faces_topic=faces_topic, camera=config.camera,
                            node_name="edge_infer_bench_bag")


def probe(h: FaceBenchHarness, rate_hz: float, n_frames: int, config: BagBenchConfig,
          progress: Callable[[int], None] | None = None) -> ProbeResult:
    """Publish ``n_frames`` at ``rate_hz`` (cycling the bag) and measure the stamp-matched outputs."""
    dropped0 = h.dropped_stale()
    cpu = CpuMeter()
    match = h.run(n_frames, rate_hz, drain_s=config.drain_s, progress=progress)
    usage = cpu.stop()
    dropped1 = h.dropped_stale()
    dropped = None if dropped0 is None or dropped1 is None else dropped1 - dropped0
    return probe_result(rate_hz, match, config, usage, dropped)


def run_bench_bag(bag: Path, config: BagBenchConfig, out_dir: Path | None = None, progress: bool = True,
                  echo: Callable[[str], None] = print) -> dict:
    """The whole benchmark; returns the report (also written to ``out_dir``/bench_bag.json with plots)."""
    bag = Path(bag)
    topic, msgtype = image_topic(bag, config.topic)
    started = time.time()
    machine = machine_info()
    harness = open_harness(bag, config, msgtype)
    echo(f"bench bag: {harness.camera.frames} {msgtype} messages from {topic} loaded into memory")
    bar = None
    try:
        harness.wait_connected()
        harness.warm_up(config.warmup)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(config.frames_for(r) * config.runs for r in config.rates), desc="bench bag",
                       unit="frame")
        tick = bar.update if bar is not None else None
        fixed = []
        for rate in config.rates:
            agg = aggregate([probe(harness, rate, config.frames_for(rate), config, tick) for _ in range(config.runs)])
            fixed.append(agg)
            echo(f"  {rate:g} Hz: out {agg['output_rate_hz']} Hz, received {agg['received']}/{agg['sent']}, "
                 f"latency p50 {agg['latency_ms']['p50']} ms p99 {agg['latency_ms']['p99']} ms")
        peak = None
        if config.peak:
            if bar is not None:
                bar.set_description("bench bag: peak search")

            def run_probe(rate: float) -> ProbeResult:
                if bar is not None:
                    bar.total += config.frames_for(rate) * config.peak_runs
                r = median_run([probe(harness, rate, config.frames_for(rate), config, tick)
                                for _ in range(config.peak_runs)])
                echo(f"  probe {rate:g} Hz: out {r.output_rate_hz} Hz, missed {r.missed}/{r.sent} -> "
                     f"{'pass' if r.passed else 'fail'}")
                return r

            lo, hi = config.peak_bounds
            best, probes = peak_search(run_probe, lo, hi)
            peak = {"peak_rate_hz": best, "bounds_hz": [lo, hi], "tolerance_hz": config.tolerance_hz,
                    "max_missed": config.max_missed, "probes": [p.as_dict() for p in probes]}
            echo(f"  peak rate: {best} Hz" if best is not None else f"  peak rate: below {lo} Hz")
    finally:
        if bar is not None:
            bar.close()
        harness.close()
    report = build_report(bag=bag, topic=topic, msgtype=msgtype, messages=harness.camera.frames, config=config,
                          machine=machine, started=started, image_topic=harness.image_topic,
                          faces_topic=harness.faces_topic, fixed=fixed, peak=peak)
    if out_dir is not None:
        write_report(report, Path(out_dir))
    return report
