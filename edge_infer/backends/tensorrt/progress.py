"""What is being built right now: a thread-safe registry the nodes read for ``/diagnostics`` (builds that
take minutes on a Jetson must not look hung), fed by TensorRT's progress monitor (TensorRT >= 10)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class BuildState:
    """One engine build in progress (or just finished)."""

    model: str
    precision: str
    engine: str
    started: float = field(default_factory=time.monotonic)
    phase: str = "preparing"
    done_steps: int = 0
    total_steps: int = 0
    finished: bool = False
    error: str | None = None

    @property
    def progress(self) -> float | None:
        """Fraction of the top-level phase's steps done (None before TensorRT reports any)."""
        return round(self.done_steps / self.total_steps, 3) if self.total_steps else None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "precision": self.precision, "engine": self.engine, "phase": self.phase,
                "elapsed_s": round(time.monotonic() - self.started, 1), "progress": self.progress,
                "finished": self.finished, "error": self.error}


class BuildRegistry:
    """The builds of this process; :meth:`active` is what a diagnostics publisher shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builds: list[BuildState] = []

    def start(self, model: str, precision: str, engine: str) -> BuildState:
        state = BuildState(model, precision, engine)
        with self._lock:
            self._builds.append(state)
        return state

    def finish(self, state: BuildState, error: str | None = None) -> None:
        with self._lock:
            state.finished, state.error = True, error
            if state in self._builds:
                self._builds.remove(state)

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b.as_dict() for b in self._builds]


BUILDS = BuildRegistry()


def progress_monitor(trt: Any, state: BuildState, echo: Callable[[str], None]) -> Any:
    """An ``IProgressMonitor`` (TensorRT >= 10) that updates ``state`` and echoes the top phases."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[name-defined, misc]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._depth: dict[str, int] = {}
            self._top: str | None = None

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._depth[phase_name] = depth
            if depth == 0:
                self._top = phase_name
                state.total_steps, state.done_steps = int(num_steps), 0
            if depth <= 1:  # deeper phases are per-tactic noise
                state.phase = phase_name
                echo(f"{'  ' * depth}[build] {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            if phase_name == self._top:
                state.done_steps = int(step) + 1
            return True  # returning False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            if self._depth.pop(phase_name, 2) == 0:
                echo(f"[build] {phase_name} done")

    return Monitor()
