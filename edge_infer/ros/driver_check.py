"""Nodes and drivers as a robot runs them: the node in its own process (its console script, default
parameters), the camera or microphone in another process with its own QoS, this process only watching.

Used by ``edge-infer bench drivers`` (the transport table in the README) and by the tests. What it measures
per case: frames sent, frames answered on ``~/faces``, and what the node's ``/diagnostics`` counted
(received, dropped stale, lost in transport, bad), so a missing frame is either answered, counted, or a bug.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from edge_infer.launch_description import DDS_PROFILE_ENVS, LARGE_DATA_PROFILE, profile_env_names


def executable(name: str) -> list[str]:
    """The console script ``name`` next to this Python (the venv / install), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return [str(here)]
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (pip install -e . / colcon build)")
    return [found]


def _clean_env(profile: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DDS_PROFILE_ENVS}
    if profile:
        from edge_infer.paths import config_file

        env.update(dict.fromkeys(profile_env_names(env), str(config_file(LARGE_DATA_PROFILE))))
    return env


@contextmanager
def node_process(executable_name: str, params: dict[str, Any] | None = None, remaps: dict[str, str] | None = None,
                 profile: bool = False, log_path: Path | None = None) -> Iterator[subprocess.Popen]:
    """A node started by its console script, as ``ros2 run edge_infer <name> --ros-args -p k:=v`` does.

    Stopped with SIGINT (Ctrl-C) at the end; killed if it does not exit within 10 s.
    """
    cmd = executable(executable_name) + ["--ros-args"]
    for k, v in (params or {}).items():
        cmd += ["-p", f"{k}:={json.dumps(v) if not isinstance(v, str) else v}"]
    for a, b in (remaps or {}).items():
        cmd += ["-r", f"{a}:={b}"]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=_clean_env(profile), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_path:
            log.close()


@dataclass
class CameraCase:
    """One camera driver: frame size, rate, its QoS, and whether its process uses the shipped DDS profile."""

    width: int = 1280
    height: int = 720
    rate_hz: float = 10.0
    frames: int = 40
    qos: str = "reliable"  # reliable | best_effort | sensor (best effort, depth 5)
    profile: bool = False
    encoding: str = "rgb8"
    faces: int = 1

    @property
    def label(self) -> str:
        return (f"{self.qos} {self.width}x{self.height} {self.encoding} @ {self.rate_hz:g} Hz, "
                f"publisher {'with' if self.profile else 'without'} profile")


@dataclass
class CaseResult:
    case: CameraCase
    sent: int
    answered: int
    received: int  # what the node's diagnostics say it received (inputs)
    lost_in_transport: int
    dropped_stale: int
    bad: int
    input_qos: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def answered_ratio(self) -> float:
        return self.answered / self.sent if self.sent else 0.0

    @property
    def accounted(self) -> int:
        """Frames the node answered or counted (stale, lost, bad): ideally every frame sent."""
        return self.answered + self.dropped_stale + self.lost_in_transport + self.bad

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(answered_ratio=round(self.answered_ratio, 3), accounted=self.accounted, label=self.case.label)
        return d


class FaceNodeObserver:
    """Watches a face node from this process: answered stamps on ``~/faces`` and its latest diagnostics."""

    def __init__(self, node_name: str = "face_pipeline") -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from std_msgs.msg import String

        self.node = Node("edge_infer_driver_check")
        self.stamps: set[int] = set()
        self.diag: dict[str, str] = {}
        self._lock = threading.Lock()
        self.node.create_subscription(String, f"/{node_name}/faces", self._on_faces, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.node_name = node_name

    def _on_faces(self, msg) -> None:
        h = json.loads(msg.data)["header"]["stamp"]
        with self._lock:
            self.stamps.add(h["sec"] * 1_000_000_000 + h["nanosec"])

    def _on_diag(self, msg) -> None:
        for s in msg.status:
            if s.hardware_id.endswith(f"/{self.node_name}"):
                with self._lock:
                    self.diag = {kv.key: kv.value for kv in s.values}

    def wait_node(self, timeout_s: float = 60.0) -> bool:
        """Until the node publishes ~/faces and diagnostics (models loaded, subscriptions up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.node.count_publishers(f"/{self.node_name}/faces") and self.diag:
                return True
            time.sleep(0.1)
        return False

    def snapshot(self) -> tuple[int, dict[str, str]]:
        with self._lock:
            return len(self.stamps), dict(self.diag)

    def counter(self, diag: dict[str, str], key: str) -> int:
        return int(float(diag.get(key, 0) or 0))


def play_camera(case: CameraCase, models_dir: Path, topic: str = "/image", timeout_s: float = 120.0,
                observer: FaceNodeObserver | None = None) -> dict:
    """Run the camera driver process for one case; returns its report (frames published) and, with an
    observer, the node's input QoS seen while the camera ran."""
    cmd = executable("camera_player") + [
        "--models-dir", str(models_dir), "--frames", str(min(case.frames, 20)), "--faces", str(case.faces),
        "--size", f"{case.width}x{case.height}", "--encoding", case.encoding, "--rate", str(case.rate_hz),
        "--count", str(case.frames), "--qos", case.qos, "--topic", topic, "--wait-subscribers", "20"]
    proc = subprocess.Popen(cmd, env=_clean_env(case.profile), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    qos_seen = ""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if observer is not None:
            qos_seen = observer.snapshot()[1].get("input_qos", qos_seen)
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"camera process failed ({proc.returncode}): {err[-2000:]}")
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return {**(lines[-1] if lines else {}), "input_qos": qos_seen}


def run_camera_case(observer: FaceNodeObserver, case: CameraCase, models_dir: Path, settle_s: float = 2.5) -> CaseResult:
    """One camera run against the running node; counts are the differences over this run."""
    n0, d0 = observer.snapshot()
    t0 = time.monotonic()
    report = play_camera(case, models_dir, observer=observer)
    time.sleep(settle_s)  # the last frames' answers and at least one more diagnostics period
    n1, d1 = observer.snapshot()
    c = observer.counter
    return CaseResult(case=case, sent=int(report.get("published", case.frames)), answered=n1 - n0,
                      received=c(d1, "inputs") - c(d0, "inputs"),
                      lost_in_transport=c(d1, "lost_in_transport") - c(d0, "lost_in_transport"),
                      dropped_stale=c(d1, "dropped_stale") - c(d0, "dropped_stale"),
                      bad=c(d1, "bad_messages") - c(d0, "bad_messages"), input_qos=report.get("input_qos") or "?",
                      seconds=round(time.monotonic() - t0, 2))


def run_driver_matrix(models_dir: Path, cases: list[CameraCase], node_params: dict[str, Any] | None = None,
                      node_profile: bool = False, log_path: Path | None = None) -> list[CaseResult]:
    """Start the face node (its console script, in its own process), then each camera case in turn."""
    from edge_infer.ros.runner import Spinner, rclpy_session

    params = {"models_dir": str(models_dir), **(node_params or {})}
    results = []
    with rclpy_session(), node_process("face_pipeline_node", params, profile=node_profile, log_path=log_path) as proc:
        observer = FaceNodeObserver()
        with Spinner(observer.node):
            if not observer.wait_node():
                raise RuntimeError(f"face_pipeline_node did not come up (exit code {proc.poll()}; log {log_path})")
            for case in cases:
                results.append(run_camera_case(observer, case, models_dir))
    return results


def format_table(results: list[CaseResult]) -> str:
    rows = [f"{'camera driver':<66} {'sent':>5} {'answered':>9} {'lost':>5} {'stale':>6} {'bad':>4}  node QoS"]
    for r in results:
        rows.append(f"{r.case.label:<66} {r.sent:>5} {r.answered:>4} {r.answered_ratio:>4.0%} {r.lost_in_transport:>5} "
                     f"{r.dropped_stale:>6} {r.bad:>4}  {r.input_qos}")
    return "\n".join(rows)


def speech_bag(out_dir: Path, texts: tuple[str, ...] = ("please open the door", "hey jarvis"),
               msgtype: str = "std_msgs/msg/Int16MultiArray", chunk: int = 1600) -> Path:
    """A bag of real synthesized speech (flite) with a second of silence around each phrase: the microphone."""
    import wave

    import numpy as np

    from edge_infer.bags.write import write_audio_bag
    from edge_infer.samples.speech import speech_16k, to_int16

    silence = np.zeros(16000, np.float32)
    parts = [silence]
    for t in texts:
        parts += [speech_16k(t), silence]
    audio = to_int16(np.concatenate(parts + [silence]) * 0.7)
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.tobytes())
    bag = out_dir / "microphone_bag"
    if bag.exists():
        shutil.rmtree(bag)
    write_audio_bag(bag, wav, msgtype=msgtype, chunk=chunk)
    return bag


def play_bag_process(bag: Path, qos: str = "sensor", profile: bool = False, wait_subscribers_s: float = 20.0,
                     timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    """``edge-infer bag play`` in its own process: a driver with its own QoS (sensor = best effort)."""
    cmd = executable("edge-infer") + ["bag", "play", str(bag), "--qos", qos, "--wait-subscribers",
                                      str(wait_subscribers_s)]
    return subprocess.run(cmd, env=_clean_env(profile), capture_output=True, text=True, timeout=timeout_s)
