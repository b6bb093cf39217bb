"""`edge-infer bench bag`, ROS-free half: configuration, probe results, aggregation, peak-rate search, the
report (JSON + plots). The ROS half (:mod:`edge_infer.ros.bag_bench`) plays the bag through the bench
harness and hands each probe's stamp-matched results to :func:`probe_result`.

Method (ros2_benchmark's):
1. The bag's image messages are loaded into memory (raw CDR; no disk I/O while measuring).
2. They are published at fixed rates, cycling through the buffer; each frame gets the current ROS time as a
   unique header stamp, so each ``~/faces`` output is matched to exactly one input (true end-to-end latency:
   send -> result received).
3. Peak-rate search: binary search between bounds until the window is <= 10 Hz, then a linear scan upward in
   5 Hz steps. A probe passes when output rate >= input rate - tolerance and missed <= 5 %.
4. Several runs per rate; with 3 or more the best and worst (by mean latency) are dropped and the rest
   averaged.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_infer.bench.stamp_matching import StampMatch
from edge_infer.pipeline.latency import latency_stats

SCHEMA = "edge_infer/bench_bag"
VERSION = 1
METHOD = ("ros2_benchmark-style: messages preloaded; fixed-rate probes; peak = binary search to a 10 Hz "
          "window then +5 Hz linear scan; pass = output rate >= input rate - tolerance and missed <= 5%; "
          "latency = publish -> ~/faces received, matched by unique header stamp")


@dataclass
class BagBenchConfig:
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
    camera: str = "subprocess"               # the camera player in its own process (a driver); or "in_process"

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def frames_for(self, rate: float) -> int:
        return self.frames if self.frames else max(20, int(round(self.probe_seconds * rate)))


# ------------------------------------------------------------------------------------------ machine
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
    # regular files only, never through a symlink: a bag directory may come from anywhere, and what is hashed is
    # what the bag holds (its storage files are checked to be plain files inside it when it is read)
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode() + b"\n")
    return h.hexdigest()


def _system_cpu() -> tuple[float, float] | None:
    try:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle
    except OSError:
        return None


class CpuMeter:
    """CPU use of this process (percent of one core) and of the whole machine over one probe."""

    def __init__(self) -> None:
        self._proc0, self._sys0, self._wall0 = self._proc(), _system_cpu(), time.monotonic()

    @staticmethod
    def _proc() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def stop(self) -> tuple[float, float | None]:
        proc1, sys1, wall1 = self._proc(), _system_cpu(), time.monotonic()
        proc_pct = round(100.0 * (proc1 - self._proc0) / max(1e-9, wall1 - self._wall0), 1)
        sys_pct = None
        if self._sys0 and sys1 and sys1[0] > self._sys0[0]:
            sys_pct = round(100.0 * (1 - (sys1[1] - self._sys0[1]) / (sys1[0] - self._sys0[0])), 1)
        return proc_pct, sys_pct


# ------------------------------------------------------------------------------------------ one probe
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


def probe_result(rate_hz: float, match: StampMatch, config: BagBenchConfig, cpu: tuple[float, float | None],
                 dropped_stale: int | None) -> ProbeResult:
    """One probe's numbers from its stamp-matched outputs; pass/fail by the config's tolerances."""
    latencies = match.latencies_ms
    recv = match.receive_times_ns
    gaps = np.diff(np.asarray(recv, dtype=np.float64)) / 1e6 if len(recv) > 2 else np.zeros(0)
    docs = [r.doc.get("latency_ms", {}) for _, r in match.pairs]
    stages: dict[str, dict] = {}
    for name in sorted({k for lat in docs for k in lat}):
        s = latency_stats([lat[name] for lat in docs if name in lat])
        stages[name] = {"mean": round(s.mean, 3), "p50": round(s.p50, 3), "p99": round(s.p99, 3)}
    stats = latency_stats(latencies)
    n = len(match.sent)
    in_rate, out_rate = match.input_rate_hz, match.output_rate_hz
    passed = out_rate >= in_rate - config.tolerance_hz and match.missed <= config.max_missed * n
    return ProbeResult(
        rate_hz=rate_hz, sent=n, received=match.received, missed=match.missed,
        unmatched_outputs=match.unmatched_outputs, input_rate_hz=round(in_rate, 3), output_rate_hz=round(out_rate, 3),
        latency_ms={k: stats.as_dict()[k] for k in ("count", "min", "mean", "p50", "p90", "p99", "max")},
        jitter_ms=round(float(np.std(gaps)), 3) if gaps.size else 0.0,
        cpu_process_percent=cpu[0], cpu_system_percent=cpu[1], stages_ms=stages, dropped_stale=dropped_stale,
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


def median_run(runs: list[ProbeResult]) -> ProbeResult:
    """The peak search's representative of several runs at one rate: the median by mean latency, passing only
    if the runs pass together."""
    r = runs[0] if len(runs) == 1 else runs[sorted(range(len(runs)), key=lambda i: runs[i].latency_ms["mean"])[len(runs) // 2]]
    r.passed = aggregate(runs)["passed"]
    return r


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


# ------------------------------------------------------------------------------------------ the report
def build_report(*, bag: Path, topic: str, msgtype: str, messages: int, config: BagBenchConfig, machine: dict,
                 started: float, image_topic: str, faces_topic: str, fixed: list[dict], peak: dict | None) -> dict:
    return {
        "schema": SCHEMA, "version": VERSION,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 2),
        "bag": {"path": str(Path(bag).resolve()), "sha256": bag_sha256(bag), "topic": topic, "type": msgtype,
                "messages": messages},
        "pipeline": {"external": config.external, "image_topic": image_topic, "faces_topic": faces_topic,
                     "camera": config.camera},
        "config": config.as_dict(), "machine": machine,
        "fixed_rates": fixed, "peak": peak,
        "method": METHOD,
    }


def write_report(report: dict, out_dir: Path) -> dict:
    """bench_bag.json (atomic) + latency histogram and rate sweep PNGs (matplotlib Agg); returns the file paths."""
    from edge_infer.fileio import atomic_save_figure, atomic_write_json

    fixed = report["fixed_rates"]
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
