"""``edge-infer bench cameras``: N cameras served by ONE face node (``cameras:=[cam0, cam1, ...]``) against the
same load served by N separate face nodes side by side, in one run (issue 22, "Several cameras on one face node").

Everything runs as on a robot: each camera is its own process (``python -m edge_infer.ros.camera_player
--serve``, 1280x720 moving faces, 15 Hz, frame_id ``cam<i>_optical``, on ``/cam<i>/image``) and each node is
its console script (``face_pipeline_node``) in its own process, all with the shipped large-data DDS profile;
this process only plays the cameras and watches the results. The two cases of one N run one after the other
(never at the same time) on the same camera processes, so they see the same frames at the same rates.

Per camera: frames sent and answered (results matched to frames by header stamp), output rate, end-to-end
latency (send -> result received here) p50/p95/p99, and the face ids seen; per case: aggregate results/s and
the resident memory of the node process(es) while the cameras play. :func:`evaluate_goals` turns a run into
the issue's "done means" ratios; a goal that fails is reported as FAIL, not raised.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_infer.bench.camera_feed import CameraFeed
from edge_infer.bench.stamp_matching import Received, Sent, StampMatch, match_by_stamp
from edge_infer.errors import EdgeInferError
from edge_infer.ros.bench_harness import _SubprocessCamera
from edge_infer.ros.driver_check import _clean_env, node_process

CASES = ("one_node", "separate_nodes")
CASE_LABELS = {"one_node": "one node", "separate_nodes": "N nodes"}
NODE_EXECUTABLE = "face_pipeline_node"
ONE_NODE_NAME = "face_pipeline"

# the "done means", as ratios measured in one run
RSS_RATIO_MAX = 1.3        # RSS(one node, N cameras) / RSS(one node, 1 camera)
AGGREGATE_RATIO_MIN = 1.0  # results/s of the N-camera node / of N separate nodes
FAIR_SHARE_MIN = 0.9       # each camera's output rate / min(its input rate, aggregate / N)
P95_RATIO_MAX = 1.15       # per-camera p95 end to end, one node / separate nodes (same N)


class CameraBenchError(EdgeInferError, RuntimeError):
    """A node did not start, or a camera got no result at all: that case could not be measured."""


@dataclass
class CamerasBenchConfig:
    """One run: which camera counts, how long each case measures, what the cameras send, the node's settings."""

    ns: tuple[int, ...] = (1, 2, 4)
    seconds: float = 20.0
    rate_hz: float = 15.0
    size: tuple[int, int] = (1280, 720)
    qos: str = "reliable"           # the cameras' publisher QoS (camera_player --qos)
    faces: int = 1                  # faces per frame (CameraFeed.faces; 0 = the demo sequence of 1, 2 and 4)
    frames: int = 30                # distinct frames each camera cycles through
    backend: str | None = None      # None: the node's default (YAML: auto)
    params: dict[str, Any] = field(default_factory=dict)  # more node parameters, e.g. batch_cameras: false
    cases: tuple[str, ...] = CASES
    start_timeout_s: float = 120.0  # a node loading its models; N nodes load theirs at the same time
    warmup_timeout_s: float = 120.0  # until every camera has a result
    warmup_extra_s: float = 2.0     # played after the first results, before measuring (first-run costs)
    rss_period_s: float = 0.5

    def node_params(self, models_dir: Path) -> dict[str, Any]:
        out: dict[str, Any] = {"models_dir": str(models_dir)}
        if self.backend:
            out["backend"] = self.backend
        return {**out, **self.params}


# ---- cameras -------------------------------------------------------------------------------------------------

def camera_name(i: int) -> str:
    return f"cam{i}"


class CameraSet:
    """``count`` camera processes, ``/cam<i>/image`` each, played together (one thread per camera)."""

    def __init__(self, count: int, models_dir: Path, config: CamerasBenchConfig) -> None:
        env = _clean_env(profile=True)

        def start(i: int) -> _SubprocessCamera:
            feed = CameraFeed(models_dir=str(models_dir), frames=config.frames, faces=config.faces, size=config.size,
                              frame_id=f"{camera_name(i)}_optical")
            return _SubprocessCamera(feed, f"/{camera_name(i)}/image", config.qos, env)

        self.cameras: list[_SubprocessCamera] = []
        with ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(start, i) for i in range(count)]
            errors = []
            for f in futures:
                try:
                    self.cameras.append(f.result())
                except Exception as e:  # noqa: BLE001 - collected, the started ones are closed below
                    errors.append(e)
        if errors:
            self.close()
            raise errors[0]

    def play(self, n: int, count: int, rate_hz: float) -> list[list[Sent]]:
        """``count`` frames at ``rate_hz`` on cameras 0..n-1 at the same time; the frames each one sent."""
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda cam: cam.play(count, rate_hz, None), self.cameras[:n]))

    def close(self) -> None:
        for cam in self.cameras:
            cam.close()


# ---- results and memory --------------------------------------------------------------------------------------

class ResultCollector:
    """This process's node: the ``faces`` JSON of each camera, with the time each result arrived."""

    def __init__(self, topics: list[str], name: str) -> None:
        from rclpy.node import Node
        from std_msgs.msg import String

        self.node = Node(name)
        self.topics = topics
        self._lock = threading.Lock()
        self._results: list[list[Received]] = [[] for _ in topics]
        self._ids: list[set[str]] = [set() for _ in topics]
        for i, topic in enumerate(topics):
            self.node.create_subscription(String, topic, lambda msg, i=i: self._on_faces(i, msg), 1000)

    def _on_faces(self, i: int, msg) -> None:
        t = time.time_ns()
        doc = json.loads(msg.data)
        s = doc["header"]["stamp"]
        ids = {str(f["id"]) for f in doc.get("faces", ()) if f.get("id")}
        # the stamp and the face ids are all the bench keeps of a result (the meshes would add up)
        slim = {"frame_id": doc["header"].get("frame_id"), "faces": len(doc.get("faces", ())),
                "camera": doc.get("camera")}
        with self._lock:
            self._results[i].append(Received(s["sec"] * 1_000_000_000 + s["nanosec"], t, slim))
            self._ids[i] |= ids

    def publishers_up(self) -> bool:
        return all(self.node.count_publishers(t) for t in self.topics)

    def counts(self) -> list[int]:
        with self._lock:
            return [len(r) for r in self._results]

    def take(self) -> tuple[list[list[Received]], list[set[str]]]:
        """Results and ids since the last take, per camera."""
        with self._lock:
            out, ids = self._results, self._ids
            self._results, self._ids = [[] for _ in self.topics], [set() for _ in self.topics]
        return out, ids

    def wait_quiet(self, quiet_s: float = 1.5, max_s: float = 15.0) -> None:
        """Until no result arrived for ``quiet_s`` (the tail of the frames in flight), at most ``max_s``."""
        end, last, seen = time.monotonic() + max_s, time.monotonic(), self.counts()
        while time.monotonic() < end and time.monotonic() - last < quiet_s:
            time.sleep(0.05)
            now = self.counts()
            if now != seen:
                seen, last = now, time.monotonic()


def _tree_memory_and_cpu(pids: list[int], full: bool) -> tuple[int, int, float]:
    """Resident bytes, unique bytes (USS, ``full`` only: it reads smaps) and CPU seconds of the processes and
    their children, summed. RSS counts the DDS shared-memory segments a node has mapped (each camera's large-data
    transport), USS only what the process alone holds (its models, buffers, Python)."""
    import psutil

    rss, uss, cpu = 0, 0, 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                if full:
                    m = p.memory_full_info()
                    rss, uss = rss + m.rss, uss + m.uss
                else:
                    rss += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system
        except psutil.Error:
            continue  # gone between the listing and the reading: counted as nothing
    return rss, uss, cpu


USS_EVERY = 4  # every 4th sample also reads USS (smaps: ~10 ms a process, too slow for every sample)


class MemorySampler:
    """Samples the node processes' RSS every ``period_s`` while the cameras play (steady state)."""

    def __init__(self, pids: list[int], period_s: float, tick: Callable[[float], None] | None = None) -> None:
        self.pids, self.period_s, self.tick = pids, period_s, tick
        self.samples: list[int] = []
        self.uss_samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera_bench_rss", daemon=True)
        self.cpu_s = 0.0
        self.wall_s = 0.0

    def _run(self) -> None:
        t0, (_, _, cpu0) = time.monotonic(), _tree_memory_and_cpu(self.pids, False)
        last, i = t0, 0
        while not self._stop.wait(self.period_s):
            i += 1
            rss, uss, cpu = _tree_memory_and_cpu(self.pids, full=i % USS_EVERY == 1)
            if rss:
                self.samples.append(rss)
            if uss:
                self.uss_samples.append(uss)
            now = time.monotonic()
            if self.tick is not None:
                self.tick(now - last)
            last = now
            self.cpu_s, self.wall_s = cpu - cpu0, now - t0

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any]:
        mib, uss = [s / 2**20 for s in self.samples], [s / 2**20 for s in self.uss_samples]
        return {"median_mib": round(statistics.median(mib), 1) if mib else 0.0,
                "max_mib": round(max(mib), 1) if mib else 0.0, "samples": len(mib),
                "uss_median_mib": round(statistics.median(uss), 1) if uss else 0.0,
                "cpu_percent": round(100 * self.cpu_s / self.wall_s, 1) if self.wall_s else 0.0}


# ---- one case ------------------------------------------------------------------------------------------------

def case_layout(case: str, n: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The node processes of a case (their extra parameters and remaps) and each camera's results topic."""
    names = [camera_name(i) for i in range(n)]
    if case == "one_node":
        # named cameras subscribe <name>/image under the node's namespace: /cam<i>/image, no remap needed
        return [{"params": {"cameras": names}, "remaps": {}}], [f"/{ONE_NODE_NAME}/{c}/faces" for c in names]
    if case == "separate_nodes":
        nodes = [{"params": {}, "remaps": {"__node": f"{ONE_NODE_NAME}_{i}", "image": f"/{c}/image",
                                           "camera_info": f"/{c}/camera_info"}} for i, c in enumerate(names)]
        return nodes, [f"/{ONE_NODE_NAME}_{i}/faces" for i in range(n)]
    raise ValueError(f"case must be one of {CASES}, got {case!r}")


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    p = np.percentile(np.asarray(values), [50, 95, 99])
    return {"p50": round(float(p[0]), 1), "p95": round(float(p[1]), 1), "p99": round(float(p[2]), 1)}


def camera_stats(name: str, match: StampMatch, ids: set[str]) -> dict[str, Any]:
    """One camera of a case: frames sent and answered, rates, end-to-end latency, the face ids it saw."""
    return {"camera": name, "sent": len(match.sent), "answered": match.received,
            "answered_ratio": round(match.received / len(match.sent), 3) if match.sent else 0.0,
            "unmatched_results": match.unmatched_outputs, "input_rate_hz": round(match.input_rate_hz, 2),
            "output_rate_hz": round(match.output_rate_hz, 2), "e2e_ms": _percentiles(match.latencies_ms),
            "frame_ids": sorted({str(r.doc.get("frame_id")) for _, r in match.pairs}), "face_ids": sorted(ids)}


def shared_ids(cameras: list[dict[str, Any]]) -> list[str]:
    """Face ids seen on more than one camera."""
    seen: dict[str, int] = {}
    for c in cameras:
        for fid in c["face_ids"]:
            seen[fid] = seen.get(fid, 0) + 1
    return sorted(k for k, v in seen.items() if v > 1)


def _wait_nodes_up(collector: ResultCollector, procs: list, timeout_s: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = [(p, log) for p, log in zip(procs, logs) if p.poll() is not None]
        if dead:
            raise CameraBenchError(f"{NODE_EXECUTABLE} exited with code {dead[0][0].returncode} while starting "
                                   f"(log {dead[0][1]}):\n{_tail(dead[0][1])}")
        if collector.publishers_up():
            return
        time.sleep(0.1)
    raise CameraBenchError(f"no publisher on {collector.topics} after {timeout_s:g} s (logs {[str(x) for x in logs]})")


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _warm_up(cameras: CameraSet, n: int, collector: ResultCollector, config: CamerasBenchConfig,
             procs: list, logs: list[Path]) -> None:
    """Play one-second rounds until every camera has a result, then ``warmup_extra_s`` more."""
    deadline = time.monotonic() + config.warmup_timeout_s
    per_round = max(1, round(config.rate_hz))
    while min(collector.counts()) == 0:
        if time.monotonic() > deadline:
            missing = [t for t, c in zip(collector.topics, collector.counts()) if c == 0]
            raise CameraBenchError(f"no result on {missing} within {config.warmup_timeout_s:g} s of playing "
                                   f"(node logs {[str(x) for x in logs]})")
        if any(p.poll() is not None for p in procs):
            raise CameraBenchError(f"a {NODE_EXECUTABLE} exited while warming up (logs {[str(x) for x in logs]})")
        cameras.play(n, per_round, config.rate_hz)
        collector.wait_quiet(0.3, 2.0)
    if config.warmup_extra_s > 0:
        cameras.play(n, max(1, round(config.rate_hz * config.warmup_extra_s)), config.rate_hz)
    collector.wait_quiet()


def run_case(case: str, n: int, cameras: CameraSet, models_dir: Path, config: CamerasBenchConfig, log_dir: Path,
             echo: Callable[[str], None], tick: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Start the case's node process(es), warm up, play ``config.seconds`` on every camera, measure, stop."""
    from edge_infer.ros.runner import Spinner

    layout, topics = case_layout(case, n)
    names = [camera_name(i) for i in range(n)]
    logs = [log_dir / f"n{n}_{case}_{i}.log" for i in range(len(layout))]
    result: dict[str, Any] = {"n": n, "case": case, "nodes": len(layout), "topics": topics}
    t0 = time.monotonic()
    with ExitStack() as stack:
        procs = [stack.enter_context(node_process(NODE_EXECUTABLE, {**config.node_params(models_dir), **node["params"]},
                                                  node["remaps"], profile=True, log_path=log))
                 for node, log in zip(layout, logs)]
        collector = ResultCollector(topics, f"edge_infer_camera_bench_n{n}_{case}")
        stack.enter_context(Spinner(collector.node, name="camera_bench_executor"))
        echo(f"N={n} {CASE_LABELS[case]}: starting {len(procs)} {NODE_EXECUTABLE} process(es)")
        _wait_nodes_up(collector, procs, config.start_timeout_s, logs)
        echo(f"N={n} {CASE_LABELS[case]}: warming up (until every camera has a result)")
        _warm_up(cameras, n, collector, config, procs, logs)
        collector.take()
        echo(f"N={n} {CASE_LABELS[case]}: measuring {config.seconds:g} s at {config.rate_hz:g} Hz per camera")
        count = max(2, round(config.seconds * config.rate_hz))
        with MemorySampler([p.pid for p in procs], config.rss_period_s, tick) as memory:
            sent = cameras.play(n, count, config.rate_hz)
        collector.wait_quiet()
        outputs, ids = collector.take()
        alive = all(p.poll() is None for p in procs)
    stats = [camera_stats(name, match_by_stamp(s, o), i) for name, s, o, i in zip(names, sent, outputs, ids)]
    aggregate = sum(c["output_rate_hz"] for c in stats)
    result.update(cameras=stats, aggregate_results_hz=round(aggregate, 2), rss=memory.summary(),
                  e2e_ms=_percentiles([(r.received_ns - s.sent_ns) / 1e6 for ss, oo in zip(sent, outputs)
                                       for s, r in match_by_stamp(ss, oo).pairs]),
                  shared_ids=shared_ids(stats), nodes_alive_at_end=alive, seconds=round(time.monotonic() - t0, 1),
                  logs=[str(x) for x in logs])
    return result


# ---- the run -------------------------------------------------------------------------------------------------

def run_cameras_bench(models_dir: Path, config: CamerasBenchConfig, log_dir: Path | None = None,
                      progress: bool = True, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every N of ``config.ns``, each case in turn, on one set of camera processes; returns the report.

    A case that cannot be measured (a node that does not start, a camera without results) is kept in the
    report with its ``error``; the other cases still run."""
    from edge_infer.ros.runner import rclpy_session

    ns = sorted(set(config.ns))
    if not ns or ns[0] < 1:
        raise ValueError(f"camera counts must be >= 1, got {config.ns}")
    log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="edge_infer_bench_cameras_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round(len(ns) * len(config.cases) * config.seconds), desc="bench cameras", unit="s",
                   file=sys.stderr, leave=False, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s measured")
    say = echo or ((lambda s: bar.write(s, file=sys.stderr)) if bar is not None else
                   (lambda s: print(s, file=sys.stderr)))
    tick = (lambda dt: bar.update(dt)) if bar is not None else None
    started = time.time()
    runs: list[dict[str, Any]] = []
    try:
        with rclpy_session():
            say(f"bench cameras: starting {ns[-1]} camera process(es) ({config.size[0]}x{config.size[1]}, "
                f"{config.rate_hz:g} Hz, {config.qos}); node logs in {log_dir}")
            cameras = CameraSet(ns[-1], models_dir, config)
            try:
                for n in ns:
                    for case in config.cases:
                        try:
                            runs.append(run_case(case, n, cameras, models_dir, config, log_dir, say, tick))
                        except CameraBenchError as e:
                            say(f"N={n} {CASE_LABELS[case]}: FAILED: {e}")
                            runs.append({"n": n, "case": case, "error": str(e)})
            finally:
                cameras.close()
    finally:
        if bar is not None:
            bar.close()
    report = {"config": {**asdict(config), "node_params": config.node_params(models_dir)},
              "machine": {"cpus": os.cpu_count()}, "started": started, "seconds": round(time.time() - started, 1),
              "runs": runs}
    report["goals"] = evaluate_goals(runs)
    return report


# ---- goals and table (plain values) --------------------------------------------------------------------------

def _find(runs: list[dict[str, Any]], n: int, case: str) -> dict[str, Any] | None:
    for r in runs:
        if r["n"] == n and r["case"] == case and "error" not in r:
            return r
    return None


def _goal(n: int, name: str, value: float | None, op: str, limit: float, detail: str) -> dict[str, Any]:
    ok = None if value is None else (value <= limit if op == "<=" else value >= limit)
    return {"n": n, "goal": name, "value": None if value is None else round(value, 3), "op": op, "limit": limit,
            "passed": ok, "detail": detail}


def _ratio(run: dict[str, Any] | None, base: dict[str, Any] | None, key: str) -> str:
    """A memory figure of ``run`` over the same figure of ``base``, for a goal's detail ("n/a": not measured)."""
    if not run or not base or not base["rss"].get(key):
        return "n/a"
    return f"{run['rss'].get(key, 0) / base['rss'][key]:.2f}"


def cpu_ms_per_result(run: dict[str, Any] | None) -> float | None:
    """The node process(es)' CPU time per answered frame: what a result costs, whoever gets the CPU.

    Why next to the rates: on a saturated machine the aggregate rate also depends on how much CPU the node
    processes win against the camera processes (4 processes with their own threads win more than one), while
    this says whether one node serves a frame more or less cheaply than N nodes."""
    if not run or not run.get("aggregate_results_hz"):
        return None
    return 10 * run["rss"]["cpu_percent"] / run["aggregate_results_hz"]


def evaluate_goals(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals for every N >= 2 of the run (N = 1 alone: fairness and ids only); ``passed`` None:
    not measurable (a case missing or failed)."""
    ns = sorted({r["n"] for r in runs})
    base = _find(runs, 1, "one_node")
    goals = []
    for n in [x for x in ns if x >= 2] or ns:
        one, sep = _find(runs, n, "one_node"), _find(runs, n, "separate_nodes")
        if n >= 2:
            b = base["rss"]["median_mib"] if base else 0
            rss = one["rss"]["median_mib"] / b if one and b else None
            goals.append(_goal(n, "rss_ratio", rss, "<=", RSS_RATIO_MAX,
                               f"RSS one node N={n} / one node N=1 (separate nodes: {_ratio(sep, base, 'median_mib')}; "
                               f"USS: one node {_ratio(one, base, 'uss_median_mib')}, "
                               f"separate nodes {_ratio(sep, base, 'uss_median_mib')})"))
            agg = one["aggregate_results_hz"] / sep["aggregate_results_hz"] if one and sep and sep[
                "aggregate_results_hz"] else None
            cost = [cpu_ms_per_result(r) for r in (one, sep)]
            goals.append(_goal(n, "aggregate_ratio", agg, ">=", AGGREGATE_RATIO_MIN,
                               "aggregate results/s, one node / separate nodes (CPU ms per result: one node "
                               + ", separate nodes ".join("n/a" if c is None else f"{c:.1f}" for c in cost) + ")"))
        fair, share = None, None
        if one:
            share = [min(c["input_rate_hz"], one["aggregate_results_hz"] / n) for c in one["cameras"]]
            fair = min(c["output_rate_hz"] / s if s else 0.0 for c, s in zip(one["cameras"], share))
        goals.append(_goal(n, "fair_share", fair, ">=", FAIR_SHARE_MIN,
                           "min over cameras of output rate / fair share min(input rate, aggregate/N)"
                           + (f" (fair share {min(share):.1f} Hz)" if share else "")))
        if n >= 2:
            p95 = None
            if one and sep:
                ratios = [a["e2e_ms"]["p95"] / b["e2e_ms"]["p95"] for a, b in zip(one["cameras"], sep["cameras"])
                          if a["e2e_ms"]["p95"] and b["e2e_ms"]["p95"]]
                p95 = max(ratios) if len(ratios) == n else None
            goals.append(_goal(n, "p95_ratio", p95, "<=", P95_RATIO_MAX,
                               "per-camera p95 end to end, one node / separate nodes, worst camera"))
        shared = len(one["shared_ids"]) if one else None
        goals.append(_goal(n, "shared_ids", shared, "<=", 0, "face ids seen on two cameras, one node"
                           + (f" (separate nodes: {len(sep['shared_ids'])})" if sep else "")))
    return goals


def format_report(report: dict[str, Any]) -> str:
    """The table (one row per N and case) and the goal lines, PASS / FAIL / n/a."""
    rows = [f"{'N':>2} {'case':<9} {'per-camera out Hz':<26} {'aggr/s':>6} {'e2e p50/p95/p99 ms':>20} "
            f"{'answered':>8} {'RSS MiB':>8} {'USS MiB':>8} {'CPU %':>6} {'CPU ms/result':>13}"]
    for r in report["runs"]:
        label = CASE_LABELS[r["case"]]
        if "error" in r:
            rows.append(f"{r['n']:>2} {label:<9} FAILED: {r['error'].splitlines()[0][:100]}")
            continue
        rates = " ".join(f"{c['output_rate_hz']:.1f}" for c in r["cameras"])
        e = r["e2e_ms"]
        lat = "/".join("-" if e[k] is None else f"{e[k]:.0f}" for k in ("p50", "p95", "p99"))
        answered = sum(c["answered"] for c in r["cameras"]) / max(1, sum(c["sent"] for c in r["cameras"]))
        rows.append(f"{r['n']:>2} {label:<9} {rates:<26} {r['aggregate_results_hz']:>6.1f} {lat:>20} "
                    f"{answered:>8.0%} {r['rss']['median_mib']:>8.0f} {r['rss'].get('uss_median_mib', 0):>8.0f} "
                    f"{r['rss']['cpu_percent']:>6.0f} {cpu_ms_per_result(r) or 0:>13.1f}")
    rows.append("")
    for g in report["goals"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[g["passed"]]
        value = "-" if g["value"] is None else f"{g['value']:g}"
        rows.append(f"{verdict}  N={g['n']} {g['goal']:<15} {value:>7} {g['op']} {g['limit']:g}   {g['detail']}")
    return "\n".join(rows)
