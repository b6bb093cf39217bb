"""Health of one stream (rates, drops, bad inputs, latency) -> the key/values a diagnostics message carries.

ROS-free so the face and audio nodes, the benchmark and tests share one definition of "rate" and "dropped".
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from edge_infer.pipeline.latency import FrameTimer, LatencyTracker

OK, WARN, ERROR = 0, 1, 2


@dataclass
class HealthBounds:
    """Configured limits; leaving them raises the diagnostic level (0 disables a bound)."""

    min_output_rate_hz: float = 0.0
    max_latency_ms: float = 0.0  # end-to-end p99
    max_drop_ratio: float = 0.5  # dropped / input over the window
    max_loss_ratio: float = 0.1  # lost in transport / (received + lost) over the last diagnostics period


class StreamHealth:
    """Thread-safe counters + latency windows; the node's worker thread and timer both touch it."""

    def __init__(self, window_s: float = 5.0, latency_window: int = 300) -> None:
        self.window_s = window_s
        self.latency = LatencyTracker(latency_window)
        self.bad: Counter[str] = Counter()
        self.inputs = self.outputs = self.dropped = 0
        self.lost = 0  # messages the transport reported lost (DDS message_lost events)
        self._period_start = (0, 0)  # (inputs, lost) at the previous snapshot: the "last period"
        self._in_times: deque[float] = deque()
        self._out_times: deque[float] = deque()
        self._drop_times: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and now - q[0] > self.window_s:
            q.popleft()

    def on_input(self) -> None:
        with self._lock:
            self.inputs += 1
            self._in_times.append(time.monotonic())

    def on_drop(self) -> None:
        with self._lock:
            self.dropped += 1
            self._drop_times.append(time.monotonic())

    def on_lost(self, count: int) -> None:
        """``count`` more messages lost between the publisher and this subscriber (never received)."""
        with self._lock:
            self.lost += count

    def on_bad(self, reason: str) -> None:
        with self._lock:
            self.bad[reason] += 1

    def on_output(self, timer: FrameTimer, end_to_end_ms: float | None) -> None:
        with self._lock:
            self.outputs += 1
            self._out_times.append(time.monotonic())
            self.latency.add_frame(timer, total_name="processing")
            if end_to_end_ms is not None:
                self.latency.add("end_to_end", end_to_end_ms)

    def _rate(self, q: deque[float], now: float) -> float:
        self._trim(q, now)
        if len(q) < 2:
            return 0.0
        span = max(now - q[0], 1e-6)
        return len(q) / span if span >= 1.0 else (len(q) - 1) / max(q[-1] - q[0], 1e-6)

    def snapshot(self, bounds: HealthBounds | None = None) -> tuple[int, str, dict[str, str]]:
        """(level, message, key/values) for a DiagnosticStatus."""
        now = time.monotonic()
        with self._lock:
            in_hz, out_hz = self._rate(self._in_times, now), self._rate(self._out_times, now)
            self._trim(self._drop_times, now)
            recent_drops = len(self._drop_times)
            values: dict[str, str] = {
                "input_rate_hz": f"{in_hz:.2f}",
                "output_rate_hz": f"{out_hz:.2f}",
                "inputs": str(self.inputs),
                "outputs": str(self.outputs),
                "dropped_stale": str(self.dropped),
                "bad_messages": str(sum(self.bad.values())),
                "lost_in_transport": str(self.lost),
            }
            period_inputs, period_lost = self.inputs - self._period_start[0], self.lost - self._period_start[1]
            self._period_start = (self.inputs, self.lost)
            values["lost_in_transport_last_period"] = str(period_lost)
            loss_ratio = period_lost / (period_inputs + period_lost) if period_inputs + period_lost else 0.0
            values["loss_ratio_last_period"] = f"{loss_ratio:.3f}"
            for reason, n in sorted(self.bad.items()):
                values[f"bad_{reason}"] = str(n)
            e2e = self.latency.stats("end_to_end")
            for stage in self.latency.stages():
                s = self.latency.stats(stage)
                values[f"{stage}_p50_ms"] = f"{s.p50:.2f}"
                values[f"{stage}_p99_ms"] = f"{s.p99:.2f}"
            recent_inputs = len(self._in_times)
        level, problems = OK, []
        b = bounds or HealthBounds()
        if b.min_output_rate_hz and self.outputs and out_hz < b.min_output_rate_hz:
            level = WARN
            problems.append(f"output rate {out_hz:.1f} Hz < {b.min_output_rate_hz:g} Hz")
        if b.max_latency_ms and e2e.count and e2e.p99 > b.max_latency_ms:
            level = max(level, WARN if e2e.p99 < 2 * b.max_latency_ms else ERROR)
            problems.append(f"end-to-end p99 {e2e.p99:.0f} ms > {b.max_latency_ms:g} ms")
        if recent_inputs and b.max_drop_ratio and recent_drops / recent_inputs > b.max_drop_ratio:
            level = max(level, WARN)
            problems.append(f"dropping {recent_drops}/{recent_inputs} frames")
        if b.max_loss_ratio and loss_ratio > b.max_loss_ratio:
            level = max(level, WARN)
            problems.append(f"transport lost {period_lost}/{period_inputs + period_lost} messages "
                            f"(large best-effort images? see README: DDS profile)")
        if recent_inputs == 0 and self.inputs:
            level = max(level, WARN)
            problems.append("no input in the last window")
        return level, "; ".join(problems) or ("ok" if self.inputs else "waiting for input"), values
