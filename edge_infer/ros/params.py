"""Declare a node's parameters from :mod:`edge_infer.ros.param_table`, with descriptors, and keep them live.

The table is the one source of defaults and constraints; this module only turns it into rclpy calls:
descriptors (ranges, read-only), declaration, and :class:`LiveParameters`, the ``add_on_set_parameters_callback``
that validates a change against the same table and hands it to the node, which applies it from the next
frame/chunk. Read-only parameters never reach the callback: rclpy refuses them ("Trying to set a read-only
parameter: <name>.").
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from edge_infer.errors import ConfigError, EdgeInferError
from edge_infer.ros.param_table import Param

READ_ONLY_NOTE = " Read-only: set it at start-up (params file, launch argument or --ros-args -p)."
LIVE_NOTE = " Live: `ros2 param set` applies it from the next frame/chunk."


def descriptor(p: Param) -> ParameterDescriptor:
    """The rclpy descriptor of one table entry (``ros2 param describe`` shows it)."""
    text = p.description + (f" One of: {', '.join(p.choices)}." if p.choices else "")
    desc = ParameterDescriptor(description=text + (READ_ONLY_NOTE if p.read_only else LIVE_NOTE),
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
        try:
            value = node.declare_parameter(p.name, p.default, descriptor(p)).value
        except ParameterException as e:  # a params file / -p value of the wrong type or out of range
            raise ConfigError(f"parameter {p.name}: {e}") from None
        reason = p.check(value)
        if reason:
            raise ConfigError(f"parameter {reason}")
        values[p.name] = value
    return values


#: ``apply(new_values, changed_names)``: make the change effective from the next frame/chunk, or raise
#: ConfigError (or another EdgeInferError / ValueError) whose message is the reason the change is refused.
ApplyChange = Callable[[dict[str, Any], set[str]], None]


class LiveParameters:
    """The node's current parameter values; changes through the parameter service are checked and applied.

    ``values`` always holds what is in effect. A set request (one or several parameters, atomically) is
    checked against the table (choices, ranges), then ``apply`` gets the complete new values and the changed
    names; only when it returns are the new values kept, so a refused change leaves everything as it was.
    """

    def __init__(self, node: Node, table: Sequence[Param], apply: ApplyChange) -> None:
        self.table = {p.name: p for p in table}
        self.values = declare_params(node, table)
        self._apply = apply
        node.add_on_set_parameters_callback(self._on_set)

    def _on_set(self, parameters: list) -> SetParametersResult:
        new = dict(self.values)
        changed: set[str] = set()
        for param in parameters:
            spec = self.table.get(param.name)
            if spec is None:  # rclpy's own (use_sim_time): handled by rclpy
                continue
            reason = spec.check(param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if param.value != new[param.name]:
                new[param.name] = param.value
                changed.add(param.name)
        if changed:
            try:
                self._apply(new, changed)
            except (EdgeInferError, ValueError) as e:
                return SetParametersResult(successful=False, reason=str(e))
        self.values = new
        return SetParametersResult(successful=True)
