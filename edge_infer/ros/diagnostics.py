"""StreamHealth snapshot -> diagnostic_msgs/DiagnosticArray on /diagnostics."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from edge_infer.pipeline.stream_health import HealthBounds, StreamHealth


def diagnostic_array(node, name: str, hardware_id: str, stats: StreamHealth, bounds: HealthBounds,
                     extra: dict[str, str]) -> DiagnosticArray:
    return _array(node, health_status(name, hardware_id, stats, bounds, extra))


def health_status(name: str, hardware_id: str, stats: StreamHealth, bounds: HealthBounds,
                  extra: dict[str, str]) -> DiagnosticStatus:
    """One stream's status (the node's totals, or one camera of a multi-camera node)."""
    level, message, values = stats.snapshot(bounds)
    return _status(name, hardware_id, level, message, {**extra, **values})


def status_array(node, name: str, hardware_id: str, level: int, message: str, values: dict) -> DiagnosticArray:
    """One DiagnosticStatus in a DiagnosticArray stamped with the node clock."""
    return _array(node, _status(name, hardware_id, level, message, values))


def _status(name: str, hardware_id: str, level: int, message: str, values: dict) -> DiagnosticStatus:
    status = DiagnosticStatus(name=name, message=message, hardware_id=hardware_id)
    status.level = bytes([level])
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    return status


def _array(node, status: DiagnosticStatus) -> DiagnosticArray:
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [status]
    return arr
