"""Spin nodes with clean shutdown (executor threads joined before rclpy.shutdown, see DESIGN.md)."""

from __future__ import annotations

from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def run_nodes(factories: Sequence[Callable[..., Node]], args=None, node_kwargs: Sequence[dict] | None = None) -> None:
    """``ros2 run`` / ``edge-infer run`` main loop: build the nodes, spin until Ctrl-C, tear down in order."""
    rclpy.init(args=args)
    nodes: list[Node] = []
    executor = MultiThreadedExecutor()
    try:
        for i, make in enumerate(factories):
            nodes.append(make(**(node_kwargs[i] if node_kwargs else {})))
            executor.add_node(nodes[-1])
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
