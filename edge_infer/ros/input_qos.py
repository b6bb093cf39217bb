"""Sensor-input subscriptions whose QoS follows the publishers, and that count what the transport lost.

Why: camera and microphone drivers are other processes with their own QoS. A reliable subscriber gets
nothing from a best-effort driver; a best-effort subscriber turns a reliable driver's connection best
effort (and large best-effort messages are mostly lost across processes with default Fast DDS). So with
``input_qos.reliability: auto`` (the default) the node does what ``ros2 bag record`` does: it asks the graph
for the publishers' offered QoS and subscribes reliable only when every publisher is reliable
(transient-local only when every publisher is). With no publisher yet it waits (polling the graph every
0.1 s) and subscribes when the first driver appears, with that driver's QoS, so no start-up switch loses
data; afterwards it re-checks every second, so a driver restarted with other QoS is matched too. History is always keep-last with a small depth: latency stays bounded.
Losses that DDS detects (sequence-number gaps) arrive as ``message_lost`` events and are counted.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

try:  # Iron and newer
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # pragma: no cover - Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

from edge_infer.ros.param_table import QOS_RELIABILITIES as RELIABILITY_CHOICES  # noqa: F401 - one list
OVERLAP_S = 0.5  # old and new subscription both live this long during a QoS switch


def _has_matched_event() -> bool:
    """rclpy Iron and newer report publisher (un)matching to a subscription; Humble does not."""
    import inspect

    return "matched" in inspect.signature(SubscriptionEventCallbacks.__init__).parameters


@dataclass(frozen=True)
class QosChoice:
    reliability: str  # "reliable" | "best_effort"
    durability: str  # "volatile" | "transient_local"
    reason: str


def choose_qos(requested: str, offered: Sequence[tuple[str, str]]) -> QosChoice:
    """The reliability/durability to subscribe with, given the parameter and the publishers' (rel, dur)."""
    if requested != "auto":
        return QosChoice(requested, "volatile", f"input_qos.reliability is {requested}")
    if not offered:
        return QosChoice("best_effort", "volatile", "no publisher: best effort receives from any driver")
    rel = "reliable" if all(r == "reliable" for r, _ in offered) else "best_effort"
    dur = "transient_local" if all(d == "transient_local" for _, d in offered) else "volatile"
    kinds = sorted({r for r, _ in offered})
    why = ("every publisher is reliable" if rel == "reliable"
           else "a best-effort publisher (a reliable subscriber would receive nothing from it)")
    return QosChoice(rel, dur, f"{len(offered)} publisher(s) offering {'/'.join(kinds)}: {why}")


def _names(qos: Any) -> tuple[str, str]:
    rel = "reliable" if qos.reliability == ReliabilityPolicy.RELIABLE else "best_effort"
    dur = "transient_local" if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL else "volatile"
    return rel, dur


class InputSubscription:
    """One input topic of a node: subscribed with QoS matched to its publishers, losses reported.

    ``on_lost(n)`` is called with each increment of the DDS lost-message count; ``log(text)`` with each
    QoS decision. Call :meth:`destroy` to unsubscribe (lifecycle deactivate).
    """

    def __init__(self, node: Node, msg_type: Any, topic: str, callback: Callable[[Any], None], reliability: str,
                 depth: int, on_lost: Callable[[int], None], log: Callable[[str], None],
                 recheck_period_s: float = 1.0) -> None:
        self.node, self.msg_type, self.topic, self.callback = node, msg_type, topic, callback
        self.requested, self.depth, self.on_lost, self.log = reliability, depth, on_lost, log
        self.sub = None
        self.choice: QosChoice | None = None
        self.lost_events_supported = True
        self._topic_name: str | None = None
        self._closed = False
        self._graph_changed = False
        self._recheck_until = 0.0
        self._overlap_until = 0.0
        self._recent: deque = deque(maxlen=16)
        self._retired: list[tuple[Any, float]] = []  # (old subscription, destroy after) during a QoS switch
        self._has_header = hasattr(msg_type, "get_fields_and_field_types") and \
            "header" in msg_type.get_fields_and_field_types()
        offered = self._offered() if reliability == "auto" else []
        if reliability != "auto" or offered:
            self._subscribe(choose_qos(reliability, offered))
        else:
            self.log(f"waiting for a publisher on {self.resolved_topic} to match its QoS (input_qos.reliability auto)")
        # auto: re-check every period, and within 0.1 s after a publisher (un)matches (Iron+ event)
        self._timers = ([node.create_timer(recheck_period_s, self.recheck),
                         node.create_timer(0.1, self._recheck_if_matched)] if reliability == "auto" else [])

    @property
    def resolved_topic(self) -> str:
        if self.sub is not None:
            return self.sub.topic_name
        if self._topic_name is None:
            self._topic_name = self.node.resolve_topic_name(self.topic)
        return self._topic_name

    def _offered(self) -> list[tuple[str, str]]:
        own = self.node.get_fully_qualified_name()
        infos = self.node.get_publishers_info_by_topic(self.resolved_topic)
        return [_names(i.qos_profile) for i in infos
                if f"{i.node_namespace.rstrip('/')}/{i.node_name}" != own]

    def qos(self) -> QoSProfile:
        c = self.choice
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.depth,
                          reliability=ReliabilityPolicy.RELIABLE if c.reliability == "reliable"
                          else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if c.durability == "transient_local"
                          else DurabilityPolicy.VOLATILE)

    def _deliver(self, msg: Any) -> None:
        """While two subscriptions overlap (a QoS switch), a message with a header arrives twice: pass it once."""
        if self._overlap_until and time.monotonic() < self._overlap_until and hasattr(msg, "header"):
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)
            if stamp in self._recent:
                return
            self._recent.append(stamp)
        self.callback(msg)

    def _subscribe(self, choice: QosChoice) -> None:
        """Subscribe with ``choice``. Switching: messages with a header make the new subscription before
        breaking the old one (no frame falls in the gap; duplicates are dropped by stamp); headerless ones
        (audio arrays) break first, since a duplicate chunk would corrupt the stream."""
        old = self.sub
        if old is not None and not self._has_header:
            self.node.destroy_subscription(old)
            old = None
        self.choice = choice
        events = SubscriptionEventCallbacks(message_lost=self._lost,
                                            **({"matched": self._matched} if _has_matched_event() else {}))
        try:
            self.sub = self.node.create_subscription(self.msg_type, self.topic, self._deliver, self.qos(),
                                                     event_callbacks=events)
        except Exception as e:  # an RMW without the message-lost event: subscribe anyway, say losses are unseen
            self.lost_events_supported = False
            self.log(f"transport losses cannot be counted with this RMW ({type(e).__name__}: {e})")
            self.sub = self.node.create_subscription(self.msg_type, self.topic, self._deliver, self.qos())
        if old is not None:
            self._overlap_until = time.monotonic() + OVERLAP_S
            self._retired.append((old, self._overlap_until))
        self.log(f"subscribed {self.resolved_topic} {choice.reliability}/{choice.durability} depth {self.depth}: "
                 f"{choice.reason}")

    def _matched(self, _info: Any) -> None:
        self._graph_changed = True  # handled by a timer: never re-subscribe inside the subscription's own event

    def _recheck_if_matched(self) -> None:
        """0.1 s timer: finish QoS switches, and re-check for 2 s after a (un)match (the graph lags the match)."""
        now = time.monotonic()
        while self._retired and self._retired[0][1] <= now:
            self.node.destroy_subscription(self._retired.pop(0)[0])
        if self._graph_changed:
            self._graph_changed = False
            self._recheck_until = now + 2.0
        if self.sub is None or now < self._recheck_until:
            self.recheck()

    def _lost(self, info: Any) -> None:
        if info.total_count_change > 0:
            self.on_lost(int(info.total_count_change))

    def describe(self) -> str:
        """'<topic> reliable/volatile (auto)' for diagnostics."""
        c = self.choice
        if c is None:
            return f"{self.resolved_topic} waiting for a publisher ({self.requested})"
        return f"{self.resolved_topic} {c.reliability}/{c.durability} ({self.requested})"

    def recheck(self) -> None:
        """Subscribe when the first publisher appears; re-subscribe when the publishers' QoS asks for another
        reliability/durability than the current one. No publisher (a driver restarting): keep what we have."""
        if self._closed:
            return
        offered = self._offered()
        if not offered:
            return
        choice = choose_qos(self.requested, offered)
        if self.choice is None or (choice.reliability, choice.durability) != (self.choice.reliability,
                                                                             self.choice.durability):
            self._subscribe(choice)

    def destroy(self) -> None:
        self._closed = True
        for timer in self._timers:
            self.node.destroy_timer(timer)
        self._timers = []
        for sub, _ in self._retired:
            self.node.destroy_subscription(sub)
        self._retired = []
        if self.sub is not None:
            self.node.destroy_subscription(self.sub)
            self.sub = None
