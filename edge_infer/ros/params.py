"""Declare a node's parameters from :mod:`edge_infer.ros.param_table`, with descriptors.

The table is the one source of defaults; this module only turns it into rclpy calls.
"""

from __future__ import annotations

from typing import Any, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

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
