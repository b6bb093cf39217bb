"""Test helper: run the real `ros2` command line tools (ros2cli 0.32.2, installed in each venv) the way a user
types them, in subprocesses of their own process group, with the isolated test domain.

    cli = Ros2Cli(cli_environment(launch_env, models_dir, log_dir))
    cli("param", "get", "/face_pipeline", "score_threshold").out        # one call, output captured
    cli.until("lifecycle", "get", "/face_pipeline", ok=lambda r: r.out.startswith("active"))  # a query, repeated
    hz = cli.start("topic", "hz", "/face_pipeline/detections")          # a tool that runs until stopped
    hz.wait_for(r"average rate: ([\\d.]+)"); hz.stop()

Why this shape: the tools talk to the graph through discovery (the daemon's cache or a fresh participant), so a
query made right after a change may still see the old graph; a query is repeated until it says what is expected,
within a generous timeout (the machine is loaded: each call costs 1-3 s of start-up), never judged on a fixed
sleep. Commands that change something (`param set`, `lifecycle set`) are sent once, and again only when the tool
said it could not find the node (then nothing was sent). Every process runs in a new session and is stopped by
signalling its whole group, as a terminal's Ctrl-C does (on Jazzy `ros2 run` does not forward a SIGINT sent to
its own pid only).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

BIN = Path(sys.prefix) / "bin"
NOT_FOUND = ("Node not found", "Wait for service timed out")


def cli_environment(launch_env: Mapping[str, str], models_dir: Path, log_dir: Path) -> dict[str, str]:
    """A user's shell after `source install/setup.bash`: edge_infer and the venv on AMENT_PREFIX_PATH (the
    `launch_env` fixture), the test's domain, the zoo; no DDS profile (the launch file sets it for the nodes),
    plain (uncoloured) log lines, unbuffered Python output, logs under ``log_dir``."""
    from edge_infer.launch_description import DDS_PROFILE_ENVS

    env = {k: v for k, v in launch_env.items() if k not in DDS_PROFILE_ENVS}
    env.update(EDGE_INFER_MODELS=str(models_dir), PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0",
               ROS_LOG_DIR=str(log_dir), ROS_DOMAIN_ID=str(own_domain_id(launch_env)))
    return env


def own_domain_id(env: Mapping[str, str]) -> int:
    """A domain of the module's own, next to the session's (conftest picks 30-99): these tests check that nodes
    appear and disappear in `ros2 node list` by name, so a node another test module left on the session's domain
    (seen once in CI: a /face_pipeline that outlived the launch's) must not be able to answer for ours."""
    return 100 + (int(env.get("ROS_DOMAIN_ID", "0")) % 70) + 1


def driver_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A camera driver's environment: ``env`` plus the shipped Fast DDS profile, as the README asks."""
    from edge_infer.launch_description import node_environment

    return {**env, **node_environment({}, dict(env))}


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def pid_environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (/proc/<pid>/environ)."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = [item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode() for k, v in items}


@dataclass
class Result:
    """One finished command: its arguments, exit status and output."""

    args: Sequence[str]
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        return f"$ {' '.join(self.args)}  (exit {self.rc})\n{self.out}{self.err}"


class Background:
    """A command that runs until stopped (`ros2 launch`, `ros2 run`, `ros2 topic hz|delay|echo`, a driver); its
    stdout and stderr are collected line by line from a reader thread."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(self.args, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, what: str | Callable[[str], object], timeout: float = 60.0, since: int = 0):
        """Wait until the output (from line ``since`` on) matches the regex ``what`` (-> the last match) or
        ``what(output)`` is truthy (-> its value); fails the test with the output after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.running
            if exited:
                self._reader.join(5)  # the last lines of a process that exited
            text = "".join(self.lines[since:])
            if callable(what):
                value = what(text)
            else:
                matches = list(re.finditer(what, text))
                value = matches[-1] if matches else None
            if value:
                return value
            if exited or time.monotonic() > deadline:
                raise AssertionError(f"{' '.join(self.args)}: nothing matching {what!r} within {timeout} s "
                                     f"(exited: {exited}, status {self.proc.returncode}):\n{self.output}")
            time.sleep(0.1)

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def group_alive(self) -> bool:
        """Whether any process of the group (the command and anything it started) is still running."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(") ", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == self.proc.pid:  # state, ppid, pgrp
                return True
        return False

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> tuple[int | None, float]:
        """Ctrl-C in its terminal: ``sig`` to the whole group; SIGKILL to the group if it is still there after
        ``timeout``. Returns (exit status, or None when it had to be killed; seconds until it exited)."""
        t0 = time.monotonic()
        if self.running:
            self.signal_group(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait(10)
                self._reader.join(5)
                return None, time.monotonic() - t0
        elapsed = time.monotonic() - t0
        self._reader.join(5)
        return self.proc.returncode, elapsed

    def kill(self) -> None:
        """Teardown: nothing of the group may outlive the test."""
        self.signal_group(signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)


class Ros2Cli:
    """The `ros2` (and other console scripts) of this venv, run with ``env``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.started: list[Background] = []

    def command(self, args: Sequence[str], exe: str = "ros2") -> list[str]:
        return [str(BIN / exe), *args]

    def __call__(self, *args: str, timeout: float = 60.0, retry_not_found: bool = True) -> Result:
        """Run ``ros2 <args>`` once and return its result; again (until ``timeout``) only while the tool says it
        did not find the node. A run that outlives ``timeout`` is killed and fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            result = self._run(args, max(5.0, deadline - time.monotonic()))
            if result is None:
                raise AssertionError(f"$ ros2 {' '.join(args)}: no answer within {timeout} s")
            if not (retry_not_found and any(m in result.text for m in NOT_FOUND)) or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def until(self, *args: str, ok: Callable[[Result], object], timeout: float = 90.0, what: str = "",
              per_call_s: float = 30.0) -> Result:
        """A query repeated until ``ok(result)`` holds (eventual consistency of the graph); fails the test with
        the last output after ``timeout``."""
        deadline = time.monotonic() + timeout
        last: Result | str = "(no answer yet)"
        while time.monotonic() < deadline:
            result = self._run(args, min(per_call_s, max(5.0, deadline - time.monotonic())))
            if result is not None:
                if ok(result):
                    return result
                last = result
            time.sleep(0.3)
        raise AssertionError(f"{what or 'condition'} not reached within {timeout} s; last answer:\n{last}")

    def _run(self, args: Sequence[str], timeout: float) -> Result | None:
        cmd = self.command(args)
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            return None
        return Result(["ros2", *args], proc.returncode, out, err)

    def start(self, *args: str, exe: str = "ros2", env: Mapping[str, str] | None = None) -> Background:
        """Start ``<exe> <args>`` in its own process group (stopped by :meth:`close` at the latest)."""
        run = Background(self.command(args, exe), self.env if env is None else env)
        self.started.append(run)
        return run

    def close(self) -> None:
        """Kill whatever is still running and stop the ros2 daemon of this domain (started by the first call)."""
        for run in self.started:
            run.kill()
        self._run(["daemon", "stop"], 30.0)


# ---------------------------------------------------------------------------------------------- parsing output
PER_FACE_TOPIC = re.compile(r"/humans/faces/(f\d+)/(\w+)")


def per_face_publishers(node_info: str) -> dict[str, set[str]]:
    """`ros2 node info` -> {face id: {roi, landmarks, ...}} of the /humans/faces/<id>/... publishers listed."""
    section = node_info.split("Publishers:", 1)[-1].split("Service Servers:", 1)[0]
    faces: dict[str, set[str]] = {}
    for m in PER_FACE_TOPIC.finditer(section):
        faces.setdefault(m.group(1), set()).add(m.group(2))
    return faces


def echoed_messages(text: str) -> list[dict]:
    """`ros2 topic echo` output -> the messages as dicts (YAML documents separated by ``---``); an incomplete
    last document (still being printed) is left out."""
    import yaml

    messages = []
    for part in text.split("\n---\n")[:-1]:  # each message ends with "---"; the last piece is still printing
        try:
            doc = yaml.safe_load(part)
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict):
            messages.append(doc)
    return messages


def numbers(pattern: str, text: str) -> list[float]:
    """Every number captured by ``pattern`` (one group) in ``text``, in order."""
    return [float(m.group(1)) for m in re.finditer(pattern, text)]
