"""StreamStats snapshot -> diagnostic_msgs/DiagnosticArray on /diagnostics."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..pipeline.stream_stats import HealthBounds, StreamStats


def diagnostic_array(node, name: str, hardware_id: str, stats: StreamStats, bounds: HealthBounds,
                     extra: dict[str, str]) -> DiagnosticArray:
    level, message, values = stats.snapshot(bounds)
    status = DiagnosticStatus()
    status.level = bytes([level])
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=k, value=str(v)) for k, v in {**extra, **values}.items()]
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [status]
    return arr
