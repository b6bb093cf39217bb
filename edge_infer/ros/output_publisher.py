"""Publishers for the nodes' outputs without rclpy's default event handlers.

Why: rclpy gives every publisher two default event handlers (incompatible QoS, incompatible type), and its
executor rebuilds its wait set in Python on every wake-up, visiting each handler twice. The face node has 7
output publishers plus 5 per tracked face (ROS4HRI), i.e. 24-84 handlers, and each frame wakes the executor:
measured, that Python work held the GIL for ~0.6 ms between the image callback and the worker starting the frame
(the ``queued`` latency stage). What the handlers do is log a warning on *our* side when a subscriber asks for an
incompatible QoS; the subscriber logs the same incompatibility on its side (rclcpp and rclpy subscribers do by
default), so nothing is silenced where the user looks. The input subscription keeps its handlers: message loss
is counted there.
"""

from __future__ import annotations

from typing import Any

from rclpy.node import Node

try:  # Iron and newer
    from rclpy.event_handler import PublisherEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks


def no_event_handlers() -> PublisherEventCallbacks:
    """Event callbacks for ``create_publisher(..., event_callbacks=...)``: none, not even the defaults."""
    return PublisherEventCallbacks(use_default_callbacks=False)


def output_publisher(node: Node, msg_type: Any, topic: str, qos: Any, lifecycle: bool = False) -> Any:
    """``node.create_publisher`` (``create_lifecycle_publisher`` when ``lifecycle``) with no event handlers."""
    create = node.create_lifecycle_publisher if lifecycle else node.create_publisher
    return create(msg_type, topic, qos, event_callbacks=no_event_handlers())
