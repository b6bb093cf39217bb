"""Declare a node's parameters from :mod:`edge_infer.ros.param_table` (with descriptors), and QoS from them.

The table is the one source of defaults; this module only turns it into rclpy calls.
"""

from __future__ import annotations

from typing import Any, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from edge_infer.errors import ConfigError
from edge_infer.ros.param_table import Param


def descriptor(p: Param) -> ParameterDescriptor:
    """The rclpy descriptor of one table entry (``ros2 param describe`` shows it)."""
    desc = ParameterDescriptor(description=p.description + (f" One of: {', '.join(p.choices)}." if p.choices else ""),
                               read_only=p.read_only)
    if p.int_range:
        desc.integer_range = [IntegerRange(from_value=p.int_range[0], to_value=p.int_range[1], step=1)]
    if p.float_range:
        desc.floating_point_range = [FloatingPointRange(from_value=float(p.float_range[0]),
                                                        to_value=float(p.float_range[1]))]
    return desc


def declare_params(node: Node, table: Sequence[Param]) -> dict[str, Any]:
    """Declare every parameter of ``table`` on ``node``; name -> value (a params file or override wins)."""
    values: dict[str, Any] = {}
    for p in table:
        value = node.declare_parameter(p.name, p.default, descriptor(p)).value
        reason = p.check(value)
        if reason:
            raise ConfigError(f"parameter {reason}")
        values[p.name] = value
    return values


def input_qos(values: dict[str, Any], prefix: str = "input_qos") -> QoSProfile:
    """Keep-last input QoS from ``<prefix>.reliability`` / ``<prefix>.depth``.

    Exposed because a reliable publisher with a best-effort subscriber works, but the opposite silently
    delivers nothing.
    """
    rel = values[f"{prefix}.reliability"]
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(values[f"{prefix}.depth"]),
                      durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.BEST_EFFORT if rel == "best_effort" else ReliabilityPolicy.RELIABLE)
