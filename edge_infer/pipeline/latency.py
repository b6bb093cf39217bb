"""The one latency accounting type used by pipelines, nodes, diagnostics and benchmarks.

A :class:`FrameTimer` times the stages of one frame (or audio chunk); a :class:`LatencyTracker` keeps a
bounded window of those timings per stage so nodes can publish p50/p99 without unbounded memory.
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np


@dataclass
class FrameTimer:
    """Stage durations (ms) of one unit of work, in the order the stages ran."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - t0) * 1e3)

    def add(self, name: str, ms: float) -> None:
        # A stage may run more than once per frame (e.g. detector on two scales): durations add up.
        self.stages[name] = self.stages.get(name, 0.0) + ms

    @property
    def total_ms(self) -> float:
        return sum(self.stages.values())


@dataclass(frozen=True)
class LatencyStats:
    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def latency_stats(values_ms: "np.ndarray | list[float]") -> LatencyStats:
    """Summary statistics of a list of durations; the same definition everywhere (bench, diagnostics)."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        nan = float("nan")
        return LatencyStats(0, nan, nan, nan, nan, nan, nan)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return LatencyStats(int(a.size), float(a.mean()), float(p50), float(p90), float(p99), float(a.min()), float(a.max()))


class LatencyTracker:
    """Bounded per-stage windows of durations (ms)."""

    def __init__(self, window: int = 300) -> None:
        self.window = window
        self._values: dict[str, deque[float]] = {}

    def add(self, name: str, ms: float) -> None:
        q = self._values.get(name)
        if q is None:
            q = self._values[name] = deque(maxlen=self.window)
        q.append(float(ms))

    def add_frame(self, timer: FrameTimer, total_name: str | None = "total") -> None:
        for name, ms in timer.stages.items():
            self.add(name, ms)
        if total_name:
            self.add(total_name, timer.total_ms)

    def stages(self) -> list[str]:
        return list(self._values)

    def stats(self, name: str) -> LatencyStats:
        return latency_stats(list(self._values.get(name, ())))

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: self.stats(name).as_dict() for name in self._values}

    def clear(self) -> None:
        self._values.clear()
