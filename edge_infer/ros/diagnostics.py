"""StreamHealth snapshot -> diagnostic_msgs/DiagnosticArray on /diagnostics."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from edge_infer.pipeline.stream_health import HealthBounds, StreamHealth


def diagnostic_array(node, name: str, hardware_id: str, stats: StreamHealth, bounds: HealthBounds,
                     extra: dict[str, str]) -> DiagnosticArray:
    level, message, values = stats.snapshot(bounds)
    return status_array(node, name, hardware_id, level, message, {**extra, **values})


def status_array(node, name: str, hardware_id: str, level: int, message: str, values: dict) -> DiagnosticArray:
    """One DiagnosticStatus in a DiagnosticArray stamped with the node clock."""
    status = DiagnosticStatus()
    status.level = bytes([level])
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [status]
    return arr
