"""A helper process spoken to in JSON lines over stdin/stdout: the benchmark camera player and the mediapipe
peer both run this way (a driver / a peer in its own process, as on a robot or in its own venv).

One place for the protocol: ``request`` writes one command and waits for the reply event; an ``error`` event
becomes the caller's error type; lines that are not JSON (a library printing to stdout) are skipped; ``close``
asks the process to quit and makes sure it is gone.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from typing import Sequence


class JsonLinesProcess:
    """``cmd`` started with pipes; ``error`` (an EdgeInferError subclass) carries every failure's message."""

    def __init__(self, cmd: Sequence[str], name: str, error: type[Exception], env: dict[str, str] | None = None,
                 quiet_stderr: bool = False) -> None:
        self.name, self.error = name, error
        self.proc = subprocess.Popen(list(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     stderr=subprocess.DEVNULL if quiet_stderr else None)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"{name}_stdout", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, event: str, timeout_s: float) -> dict:
        """The next reply whose ``event`` is ``event`` (within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise self.error(f"{self.name}: no '{event}' within {timeout_s:.0f} s") from None
            if line is None:
                raise self.error(f"{self.name} exited (code {self.proc.wait()}) before '{event}'; "
                                 "its error is printed above")
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # not ours (a library printing to stdout)
            if msg.get("event") == "error":
                raise self.error(f"{self.name}: {msg.get('message')}")
            if msg.get("event") == event:
                return msg

    def request(self, cmd: dict, event: str, timeout_s: float) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.expect(event, timeout_s)

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
