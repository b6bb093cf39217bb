"""`edge-infer bench bag`: benchmark playback of a bag through the running face pipeline (ros2_benchmark method).

1. The bag's image messages are loaded into memory (raw CDR; no disk I/O while measuring).
2. They are published at fixed rates, cycling through the buffer; before each publish the header stamp in
   the CDR bytes is set to the current ROS time, unique per frame, so each ``~/faces`` output is matched to
   exactly one input through its stamp (true end-to-end latency: send -> result received).
3. Peak-rate search: binary search between bounds until the window is <= 10 Hz, then a linear scan upward in
   5 Hz steps. A probe passes when output rate >= input rate - tolerance and missed <= 5 %.
4. Several runs per rate; with 3 or more the best and worst (by mean latency) are dropped and the rest
   averaged.
The pipeline under test is started in this process from the launch description (same YAML as
``ros2 launch``), or with ``external=True`` one already running elsewhere is measured.
"""

from __future__ import annotations

from edge_infer.errors import BagError
import json
import os
import platform
import resource
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_infer.pipeline.latency import latency_stats
from edge_infer.bags import COMPRESSED, IMAGE
from edge_infer.bags.read import RawMessage, load_raw

SCHEMA = "edge_infer/bench_bag"
VERSION = 1


@dataclass
class BenchConfig:
    topic: str | None = None                 # image topic in the bag (None = the only image topic)
    rates: list[float] = field(default_factory=lambda: [10.0, 30.0])
    runs: int = 3                            # runs per fixed rate (best and worst dropped when >= 3)
    frames: int | None = None                # frames per probe (None = probe_seconds * rate, at least 20)
    probe_seconds: float = 5.0
    peak: bool = True
    peak_bounds: tuple[float, float] = (5.0, 120.0)
    tolerance_hz: float = 1.0                # probe passes: output rate >= input rate - tolerance ...
    max_missed: float = 0.05                 # ... and missed / sent <= this
    peak_runs: int = 1
    warmup: int = 3
    drain_s: float = 1.5                     # wait after the last send for the last outputs
    external: bool = False                   # measure a pipeline already running (not started here)
    namespace: str = ""
    launch_arguments: dict[str, str] = field(default_factory=dict)  # for the in-process pipeline

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def set_stamp(cdr: bytes, stamp_ns: int) -> bytes:
    """Copy of a serialized message whose first field is std_msgs/Header with the stamp replaced."""
    if cdr[1] not in (0, 1):
        raise ValueError("not a CDR message")
    fmt = "<iI" if cdr[1] == 1 else ">iI"
    b = bytearray(cdr)
    struct.pack_into(fmt, b, 4, stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
    return bytes(b)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _system_cpu() -> tuple[float, float] | None:
    try:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle
    except OSError:
        return None


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"hostname": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu": cpu, "cpu_count": os.cpu_count(), "loadavg_at_start": list(os.getloadavg()),
            "rmw": os.environ.get("RMW_IMPLEMENTATION", "default"), "ros_distro": os.environ.get("ROS_DISTRO", "")}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def bag_sha256(path: Path) -> str:
    """sha256 over the bag directory's files (names and contents, sorted), or the file itself."""
    import hashlib

    from edge_infer.fileio import sha256_file

    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode() + b"\n")
    return h.hexdigest()


def select_image_messages(path: Path, topic: str | None) -> tuple[str, str, list[RawMessage]]:
    from edge_infer.bags.read import bag_info

    info = bag_info(path)
    images = {t: v["type"] for t, v in info["topics"].items() if v["type"] in (IMAGE, COMPRESSED)}
    if topic is None:
        if len(images) != 1:
            raise BagError(f"bag {path} has image topics {sorted(images)}: pick one with --topic")
        topic = next(iter(images))
    if topic not in images:
        raise BagError(f"{topic} is not an image topic of {path} (image topics: {sorted(images)})")
    msgs = load_raw(path, [topic])
    if not msgs:
        raise BagError(f"{topic} in {path} has no messages")
    return topic, images[topic], msgs


# ------------------------------------------------------------------------------------------ the probe
@dataclass
class ProbeResult:
    rate_hz: float
    sent: int
    received: int
    missed: int
    unmatched_outputs: int
    input_rate_hz: float
    output_rate_hz: float
    latency_ms: dict
    jitter_ms: float
    cpu_process_percent: float
    cpu_system_percent: float | None
    stages_ms: dict
    dropped_stale: int | None
    passed: bool
    latencies: list[float] = field(default_factory=list, repr=False)

    def as_dict(self, with_samples: bool = False) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "latencies"}
        if with_samples:
            d["latencies"] = [round(x, 3) for x in self.latencies]
        return d


class Harness:
    """The graph under test (in-process face node, or external) plus the bench client node."""

    def __init__(self, config: BenchConfig, msgtype: str) -> None:
        import rclpy
        from edge_infer.ros.runner import make_executor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from std_msgs.msg import String

        from edge_infer.ros.bag_play import message_class

        self.config = config
        self.own_init = not rclpy.ok()
        if self.own_init:
            rclpy.init()
        self.nodes = []
        try:
            if not config.external:
                from edge_infer.ros.one_process import build_nodes

                args = {"enable_audio": "false", "enable_face": "true", "namespace": config.namespace,
                        **config.launch_arguments}
                self.nodes = build_nodes(args)
            self.client = Node("edge_infer_bench_bag")
        except BaseException:
            for n in self.nodes:
                n.destroy_node()
            if self.own_init:
                rclpy.try_shutdown()
            raise
        ns = "/" + config.namespace.strip("/") if config.namespace.strip("/") else ""
        image_topic = f"{ns}/image" if msgtype == IMAGE else f"{ns}/image/compressed"
        if not config.external and config.launch_arguments.get("camera_topic"):
            cam = config.launch_arguments["camera_topic"]
            image_topic = cam if msgtype == IMAGE else cam + "/compressed"
        self.image_topic = image_topic
        self.faces_topic = f"{ns}/face_pipeline/faces"
        self.pub = self.client.create_publisher(message_class(msgtype), image_topic, qos_profile_sensor_data)
        self._lock = threading.Lock()
        self._outputs: list[tuple[int, float, dict]] = []
        self.client.create_subscription(String, self.faces_topic, self._on_faces, 1000)
        self.executor = make_executor()
        for n in [*self.nodes, self.client]:
            self.executor.add_node(n)
        self._spin = threading.Thread(target=self.executor.spin, name="bench_bag_executor", daemon=True)
        self._spin.start()

    def _on_faces(self, msg) -> None:
        t = time.monotonic()
        doc = json.loads(msg.data)
        s = doc["header"]["stamp"]
        with self._lock:
            self._outputs.append((s["sec"] * 1_000_000_000 + s["nanosec"], t, doc.get("latency_ms", {})))

    def take_outputs(self) -> list[tuple[int, float, dict]]:
        with self._lock:
            out, self._outputs = self._outputs, []
        return out

    def wait_connected(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while (self.pub.get_subscription_count() == 0 or self.client.count_publishers(self.faces_topic) == 0) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.pub.get_subscription_count() == 0:
            raise RuntimeError(f"no subscriber on {self.image_topic}: is the face pipeline running?")

    def now_ns(self) -> int:
        return self.client.get_clock().now().nanoseconds

    def dropped_stale(self) -> int | None:
        for n in self.nodes:
            stats = getattr(n, "stats", None)
            if stats is not None and hasattr(stats, "dropped"):
                return int(stats.dropped)
        return None

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self._spin.join(timeout=10)
        for n in self.nodes:
            n.destroy_node()
        self.client.destroy_node()
        if self.own_init:
            rclpy.try_shutdown()


def warm_up(h: Harness, messages: list[RawMessage], n: int, timeout: float = 20.0) -> None:
    """Send ``n`` frames one at a time (model first-run costs, DDS discovery), then discard their outputs."""
    for i in range(n):
        stamp = h.now_ns()
        h.pub.publish(set_stamp(messages[i % len(messages)].data, stamp))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(o[0] == stamp for o in list(h._outputs)):
            time.sleep(0.005)
    time.sleep(0.2)
    h.take_outputs()


def probe(h: Harness, messages: list[RawMessage], rate_hz: float, n_frames: int, config: BenchConfig,
          progress: Callable[[int], None] | None = None) -> ProbeResult:
    """Publish ``n_frames`` at ``rate_hz`` (cycling the buffer) and match the outputs by stamp."""
    h.take_outputs()
    period = 1.0 / rate_hz
    sent: dict[int, float] = {}
    send_times: list[float] = []
    dropped0 = h.dropped_stale()
    cpu0, sys0, wall0 = _cpu_seconds(), _system_cpu(), time.monotonic()
    last_stamp = 0
    t_start = time.monotonic()
    for i in range(n_frames):
        target = t_start + i * period
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp = max(h.now_ns(), last_stamp + 1)  # unique, increasing
        last_stamp = stamp
        data = set_stamp(messages[i % len(messages)].data, stamp)
        t = time.monotonic()
        h.pub.publish(data)
        sent[stamp] = t
        send_times.append(t)
        if progress:
            progress(1)
    # wait for the tail: until every frame is answered, or no output for drain_s
    deadline = time.monotonic() + config.drain_s
    seen = 0
    while time.monotonic() < deadline:
        with h._lock:
            got = len(h._outputs)
        if got >= n_frames:
            break
        if got != seen:
            seen, deadline = got, time.monotonic() + config.drain_s
        time.sleep(0.01)
    cpu1, sys1, wall1 = _cpu_seconds(), _system_cpu(), time.monotonic()
    outputs = h.take_outputs()
    matched = [(stamp, t, lat) for stamp, t, lat in outputs if stamp in sent]
    unmatched = len(outputs) - len(matched)
    received = len({s for s, _, _ in matched})
    latencies = [(t - sent[s]) * 1e3 for s, t, _ in matched]
    recv_times = sorted(t for _, t, _ in matched)
    in_rate = (len(send_times) - 1) / (send_times[-1] - send_times[0]) if len(send_times) > 1 else 0.0
    # output rate over the same kind of window: (received - 1) intervals between first and last output
    out_rate = (len(recv_times) - 1) / (recv_times[-1] - recv_times[0]) if len(recv_times) > 1 else 0.0
    gaps = np.diff(recv_times) * 1e3 if len(recv_times) > 2 else np.zeros(0)
    stages: dict[str, dict] = {}
    for name in sorted({k for _, _, lat in matched for k in lat}):
        vals = [lat[name] for _, _, lat in matched if name in lat]
        s = latency_stats(vals)
        stages[name] = {"mean": round(s.mean, 3), "p50": round(s.p50, 3), "p99": round(s.p99, 3)}
    stats = latency_stats(latencies)
    sys_pct = None
    if sys0 and sys1 and sys1[0] > sys0[0]:
        sys_pct = round(100.0 * (1 - (sys1[1] - sys0[1]) / (sys1[0] - sys0[0])), 1)
    missed = n_frames - received
    dropped1 = h.dropped_stale()
    passed = out_rate >= in_rate - config.tolerance_hz and missed <= config.max_missed * n_frames
    return ProbeResult(
        rate_hz=rate_hz, sent=n_frames, received=received, missed=missed, unmatched_outputs=unmatched,
        input_rate_hz=round(in_rate, 3), output_rate_hz=round(out_rate, 3),
        latency_ms={k: stats.as_dict()[k] for k in ("count", "min", "mean", "p50", "p90", "p99", "max")},
        jitter_ms=round(float(np.std(gaps)), 3) if gaps.size else 0.0,
        cpu_process_percent=round(100.0 * (cpu1 - cpu0) / max(1e-9, wall1 - wall0), 1),
        cpu_system_percent=sys_pct, stages_ms=stages,
        dropped_stale=None if dropped0 is None or dropped1 is None else dropped1 - dropped0,
        passed=bool(passed), latencies=latencies)


def aggregate(runs: list[ProbeResult]) -> dict:
    """ros2_benchmark style: with >= 3 runs drop the best and worst (mean latency), average the rest."""
    order = sorted(range(len(runs)), key=lambda i: (np.inf if np.isnan(runs[i].latency_ms["mean"])
                                                    else runs[i].latency_ms["mean"]))
    kept_idx = order[1:-1] if len(runs) >= 3 else order
    kept = [runs[i] for i in kept_idx]

    def avg(vals):
        vals = [v for v in vals if v is not None and not (isinstance(v, float) and np.isnan(v))]
        return round(float(np.mean(vals)), 3) if vals else None

    return {
        "runs": len(runs), "kept_runs": sorted(kept_idx), "rate_hz": runs[0].rate_hz,
        "sent": int(sum(r.sent for r in kept)), "received": int(sum(r.received for r in kept)),
        "missed": int(sum(r.missed for r in kept)), "unmatched_outputs": int(sum(r.unmatched_outputs for r in kept)),
        "input_rate_hz": avg([r.input_rate_hz for r in kept]), "output_rate_hz": avg([r.output_rate_hz for r in kept]),
        "latency_ms": {k: avg([r.latency_ms[k] for r in kept]) for k in ("min", "mean", "p50", "p90", "p99", "max")},
        "jitter_ms": avg([r.jitter_ms for r in kept]),
        "cpu_process_percent": avg([r.cpu_process_percent for r in kept]),
        "cpu_system_percent": avg([r.cpu_system_percent for r in kept]),
        "dropped_stale": None if any(r.dropped_stale is None for r in kept) else int(sum(r.dropped_stale for r in kept)),
        "stages_ms": {k: {s: avg([r.stages_ms[k][s] for r in kept if k in r.stages_ms]) for s in ("mean", "p50", "p99")}
                      for k in sorted({k for r in kept for k in r.stages_ms})},
        "passed": all(r.passed for r in kept),
        "latencies_ms": [round(x, 3) for r in kept for x in r.latencies],
        "per_run": [r.as_dict() for r in runs],
    }


def peak_search(run_probe: Callable[[float], ProbeResult], lo: float, hi: float, window_hz: float = 10.0,
                step_hz: float = 5.0, max_rate: float | None = None) -> tuple[float | None, list[ProbeResult]]:
    """Binary search between ``lo`` and ``hi`` until ``hi - lo <= window_hz``, then scan up in ``step_hz``.

    Returns the highest passing rate (None if even ``lo`` fails) and every probe in order.
    """
    probes: list[ProbeResult] = []

    def ok(rate: float) -> bool:
        r = run_probe(rate)
        probes.append(r)
        return r.passed

    if not ok(lo):
        return None, probes
    best = lo
    if ok(hi):
        best, lo = hi, hi
    else:
        while hi - lo > window_hz:
            mid = round((lo + hi) / 2, 3)
            if ok(mid):
                lo = best = mid
            else:
                hi = mid
    cap = max_rate if max_rate is not None else float("inf")
    rate = best + step_hz
    while rate <= cap and ok(rate):
        best = rate
        rate += step_hz
    return best, probes


def _frames_for(config: BenchConfig, rate: float) -> int:
    return config.frames if config.frames else max(20, int(round(config.probe_seconds * rate)))


def run_bench_bag(bag: Path, config: BenchConfig, out_dir: Path | None = None, progress: bool = True,
                  echo: Callable[[str], None] = print) -> dict:
    """The whole benchmark; returns the report (also written to ``out_dir``/bench_bag.json with plots)."""
    bag = Path(bag)
    topic, msgtype, messages = select_image_messages(bag, config.topic)
    echo(f"bench bag: {len(messages)} {msgtype} messages from {topic} loaded into memory")
    started = time.time()
    machine = machine_info()
    harness = Harness(config, msgtype)
    bar = None
    try:
        harness.wait_connected()
        warm_up(harness, messages, config.warmup)
        total = sum(_frames_for(config, r) * config.runs for r in config.rates)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="bench bag", unit="frame")
        tick = bar.update if bar is not None else None
        fixed = []
        for rate in config.rates:
            runs = [probe(harness, messages, rate, _frames_for(config, rate), config, tick) for _ in range(config.runs)]
            agg = aggregate(runs)
            fixed.append(agg)
            echo(f"  {rate:g} Hz: out {agg['output_rate_hz']} Hz, received {agg['received']}/{agg['sent']}, "
                 f"latency p50 {agg['latency_ms']['p50']} ms p99 {agg['latency_ms']['p99']} ms")
        peak = None
        if config.peak:
            if bar is not None:
                bar.set_description("bench bag: peak search")

            def run_probe(rate: float) -> ProbeResult:
                if bar is not None:
                    bar.total += _frames_for(config, rate) * config.peak_runs
                runs = [probe(harness, messages, rate, _frames_for(config, rate), config, tick)
                        for _ in range(config.peak_runs)]
                agg = aggregate(runs)
                r = runs[0] if len(runs) == 1 else runs[sorted(range(len(runs)),
                                                                key=lambda i: runs[i].latency_ms["mean"])[len(runs) // 2]]
                r.passed = agg["passed"]
                echo(f"  probe {rate:g} Hz: out {r.output_rate_hz} Hz, missed {r.missed}/{r.sent} -> "
                     f"{'pass' if r.passed else 'fail'}")
                return r

            lo, hi = config.peak_bounds
            best, probes = peak_search(run_probe, lo, hi)
            peak = {"peak_rate_hz": best, "bounds_hz": [lo, hi], "tolerance_hz": config.tolerance_hz,
                    "max_missed": config.max_missed,
                    "probes": [p.as_dict() for p in probes]}
            echo(f"  peak rate: {best} Hz" if best is not None else f"  peak rate: below {lo} Hz")
    finally:
        if bar is not None:
            bar.close()
        harness.close()
    report = {
        "schema": SCHEMA, "version": VERSION,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 2),
        "bag": {"path": str(bag.resolve()), "sha256": bag_sha256(bag), "topic": topic, "type": msgtype,
                "messages": len(messages)},
        "pipeline": {"external": config.external, "image_topic": harness.image_topic, "faces_topic": harness.faces_topic},
        "config": config.as_dict(), "machine": machine,
        "fixed_rates": fixed, "peak": peak,
        "method": "ros2_benchmark-style: messages preloaded; fixed-rate probes; peak = binary search to a 10 Hz "
                  "window then +5 Hz linear scan; pass = output rate >= input rate - tolerance and missed <= 5%; "
                  "latency = publish -> ~/faces received, matched by unique header stamp",
    }
    if out_dir is not None:
        report["files"] = write_report(report, fixed, Path(out_dir))
    return report


def write_report(report: dict, fixed: list[dict], out_dir: Path) -> dict:
    """bench_bag.json (atomic) + latency histogram and rate sweep PNGs (matplotlib Agg)."""
    from edge_infer.fileio import atomic_save_figure, atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out_dir / "bench_bag.json")}
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for agg in fixed:
            lat = agg.get("latencies_ms", [])
            ax.hist(lat or [0], bins=40, alpha=0.6, label=f"{agg['rate_hz']:g} Hz")
        ax.set_xlabel("end-to-end latency (ms)")
        ax.set_ylabel("frames")
        ax.set_title("face pipeline end-to-end latency")
        ax.legend()
        fig.tight_layout()
        hist = out_dir / "latency_hist.png"
        atomic_save_figure(fig, hist)
        files["latency_hist"] = str(hist)

        points = [(a["rate_hz"], a["output_rate_hz"], a["latency_ms"]["p50"], a["latency_ms"]["p99"], a["passed"])
                  for a in fixed]
        if report.get("peak"):
            points += [(p["rate_hz"], p["output_rate_hz"], p["latency_ms"]["p50"], p["latency_ms"]["p99"], p["passed"])
                       for p in report["peak"]["probes"]]
        points.sort()
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        if points:
            r = [p[0] for p in points]
            a1.plot(r, r, "k--", lw=0.8, label="input = output")
            a1.scatter(r, [p[1] for p in points], c=["tab:green" if p[4] else "tab:red" for p in points], label="output")
            a2.plot(r, [p[2] for p in points], "o-", label="p50")
            a2.plot(r, [p[3] for p in points], "s-", label="p99")
        peak = (report.get("peak") or {}).get("peak_rate_hz")
        if peak:
            a1.axvline(peak, color="tab:blue", lw=0.8, label=f"peak {peak:g} Hz")
        a1.set_xlabel("input rate (Hz)")
        a1.set_ylabel("output rate (Hz)")
        a1.legend()
        a2.set_xlabel("input rate (Hz)")
        a2.set_ylabel("end-to-end latency (ms)")
        a2.legend()
        fig.suptitle("rate sweep (green = pass, red = fail)")
        fig.tight_layout()
        sweep = out_dir / "rate_sweep.png"
        atomic_save_figure(fig, sweep)
        files["rate_sweep"] = str(sweep)
    except ImportError as e:  # matplotlib optional on a robot
        files["plots_error"] = f"matplotlib not installed: {e}"
    report["files"] = files
    atomic_write_json(out_dir / "bench_bag.json", report)
    return files
