"""Parameter declaration with descriptors, and QoS built from parameters.

Defaults live in config/*.yaml; the values here are the fallbacks when a node starts without a params file.
"""

from __future__ import annotations

from edge_infer.errors import ConfigError
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def declare(node: Node, name: str, default: Any, description: str, *, read_only: bool = False,
            int_range: tuple[int, int] | None = None, float_range: tuple[float, float] | None = None,
            choices: tuple[str, ...] | None = None) -> Any:
    desc = ParameterDescriptor(description=description + (f" One of: {', '.join(choices)}." if choices else ""),
                               read_only=read_only)
    if int_range:
        desc.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    if float_range:
        desc.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]), to_value=float(float_range[1]))]
    value = node.declare_parameter(name, default, desc).value
    if choices and value not in choices:
        raise ConfigError(f"parameter {name}={value!r} is not one of {choices}")
    return value


def declare_qos(node: Node, prefix: str, reliability: str, depth: int) -> QoSProfile:
    """Input QoS from ``<prefix>.reliability`` / ``<prefix>.depth`` parameters.

    Sensor inputs default to best effort depth 1 (stale frames dropped, never queued). Exposed because a
    reliable publisher with a best-effort subscriber works, but the opposite silently delivers nothing.
    """
    rel = declare(node, f"{prefix}.reliability", reliability, "Input QoS reliability.",
                  choices=("best_effort", "reliable"), read_only=True)
    dep = declare(node, f"{prefix}.depth", depth, "Input QoS history depth.", int_range=(1, 100), read_only=True)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=dep, durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.BEST_EFFORT if rel == "best_effort" else ReliabilityPolicy.RELIABLE)
