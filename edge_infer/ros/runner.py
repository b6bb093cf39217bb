"""Spin nodes with clean shutdown (executor threads joined before rclpy.shutdown, see DESIGN.md)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

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


@contextmanager
def spinning(*nodes: Node, matched_publisher=None, timeout_s: float = 10.0) -> Iterator[MultiThreadedExecutor]:
    """Spin ``nodes`` on a background executor (demo, benchmarks); on exit shut down, join, destroy the nodes.

    ``matched_publisher``: wait (up to ``timeout_s``) until it has a subscriber, so the first message is not lost.
    """
    executor = MultiThreadedExecutor(num_threads=2)
    for node in nodes:
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while matched_publisher is not None and matched_publisher.get_subscription_count() == 0 \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        yield executor
    finally:
        executor.shutdown()
        thread.join(timeout=5.0)
        for node in nodes:
            node.destroy_node()
