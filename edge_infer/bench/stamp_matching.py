"""Frames sent and results received, matched by header stamp: per-frame end-to-end latency (ROS-free half
of the bench harness, :mod:`edge_infer.ros.bench_harness`).

Every frame the camera sends carries a unique stamp, and every ``~/faces`` result copies its input's
stamp, so each result maps to exactly one send. Times are wall-clock nanoseconds (``time.time_ns()``) on
both sides, so the camera may run in another process on the same machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass(frozen=True)
class Sent:
    stamp_ns: int   # header stamp given to the frame
    sent_ns: int    # wall clock right before publish


@dataclass(frozen=True)
class Received:
    stamp_ns: int      # header stamp of the result (= its input's)
    received_ns: int   # wall clock when the result arrived
    doc: dict = field(compare=False, repr=False)   # the parsed ``~/faces`` JSON


def rate_hz(times_ns: Sequence[int]) -> float:
    """Events per second over the span of ``times_ns``: (n - 1) intervals between first and last."""
    if len(times_ns) < 2:
        return 0.0
    t = sorted(times_ns)
    return (len(t) - 1) / max((t[-1] - t[0]) / 1e9, 1e-9)


@dataclass
class StampMatch:
    """Outputs matched to the frames sent; ``pairs`` holds every output whose stamp was sent."""

    sent: list[Sent]
    pairs: list[tuple[Sent, Received]]
    unmatched_outputs: int  # outputs whose stamp was never sent (another publisher, an earlier run)

    @property
    def received(self) -> int:
        """Distinct frames answered."""
        return len({s.stamp_ns for s, _ in self.pairs})

    @property
    def missed(self) -> int:
        return len(self.sent) - self.received

    @property
    def latencies_ms(self) -> list[float]:
        """Send -> result received, per matched output."""
        return [(r.received_ns - s.sent_ns) / 1e6 for s, r in self.pairs]

    @property
    def receive_times_ns(self) -> list[int]:
        return sorted(r.received_ns for _, r in self.pairs)

    @property
    def input_rate_hz(self) -> float:
        return rate_hz([s.sent_ns for s in self.sent])

    @property
    def output_rate_hz(self) -> float:
        return rate_hz(self.receive_times_ns)


def match_by_stamp(sent: Sequence[Sent], outputs: Sequence[Received]) -> StampMatch:
    by_stamp = {s.stamp_ns: s for s in sent}
    pairs = [(by_stamp[r.stamp_ns], r) for r in outputs if r.stamp_ns in by_stamp]
    return StampMatch(list(sent), pairs, len(outputs) - len(pairs))
