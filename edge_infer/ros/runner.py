"""The one way this package spins nodes and tears them down (``ros2 run``, ``edge-infer run``, demo,
benchmarks, tests).

Teardown order matters and is written only here: shut the executor down, **join its thread before
rclpy.shutdown()** (otherwise "terminate called without an active exception"), destroy the nodes, shut
rclpy down only if we initialised it, and put back any signal handler we replaced. See
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def make_executor() -> SingleThreadedExecutor:
    """The executor for our nodes: single threaded on purpose.

    Callbacks here are short (the face node hands frames to its own worker thread; audio chunks take ~3 ms),
    and rclpy's MultiThreadedExecutor measured 100-300 ms median delivery of a 720p Image on the 2-core dev
    machine against ~10 ms for SingleThreadedExecutor (same process, same QoS).
    """
    return SingleThreadedExecutor()


@contextmanager
def rclpy_session(args: list[str] | None = None) -> Iterator[bool]:
    """rclpy initialised for the block; yields whether this block initialised it (and so shuts it down).

    Nested users (a benchmark inside a test session that already called ``rclpy.init``) leave it running.
    """
    if rclpy.ok():
        yield False
        return
    rclpy.init(args=args)
    try:
        yield True
    finally:
        rclpy.try_shutdown()


@contextmanager
def sigterm_sets(stop: threading.Event) -> Iterator[None]:
    """SIGTERM sets ``stop`` for the block (a clean exit like Ctrl-C); the previous handler is restored after.

    Python only lets the main thread install handlers: elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Spinner:
    """Nodes spun by one executor on a background thread; :meth:`close` tears down in the safe order.

    Owns the nodes given to it: they are destroyed on close (after the executor thread has been joined).
    """

    def __init__(self, *nodes: Node, name: str = "edge_infer_executor") -> None:
        self.executor = make_executor()
        self.nodes: list[Node] = []
        self._name = name
        self._thread: threading.Thread | None = None
        for node in nodes:
            self.add(node)

    def add(self, node: Node) -> Node:
        """Spin ``node`` too (also after :meth:`start`); it is destroyed on close."""
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:  # rclpy was shut down under us (Ctrl-C): a normal way to stop
            pass

    def start(self) -> "Spinner":
        self._thread = threading.Thread(target=self._spin, name=self._name, daemon=True)
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, join_timeout_s: float = 10.0) -> None:
        self.executor.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=join_timeout_s)
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []

    def __enter__(self) -> "Spinner":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for_subscriber(publisher, timeout_s: float = 10.0) -> bool:
    """Wait until ``publisher`` is matched to a subscriber, so its first message is not lost."""
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return publisher.get_subscription_count() > 0


@contextmanager
def spinning(*nodes: Node, matched_publisher=None, timeout_s: float = 10.0) -> Iterator[Spinner]:
    """Spin ``nodes`` in the background for the block (demo, benchmarks, tests), then tear them down.

    ``matched_publisher``: first wait (up to ``timeout_s``) until it has a subscriber.
    """
    with Spinner(*nodes) as spinner:
        if matched_publisher is not None:
            wait_for_subscriber(matched_publisher, timeout_s)
        yield spinner


def run_until_stopped(make_nodes: Callable[[], Sequence[Node]], args: list[str] | None = None,
                      stop: threading.Event | None = None,
                      on_started: Callable[[Sequence[Node]], None] | None = None) -> int:
    """Main loop of a node process: build the nodes, spin until Ctrl-C, SIGTERM or ``stop``, tear down.

    ``make_nodes`` runs after rclpy.init and must clean up its own partial work if it raises. Returns the
    number of nodes that ran (0: nothing to run; ``on_started`` is not called then).
    """
    stop = stop or threading.Event()
    nodes: Sequence[Node] = []
    try:
        with rclpy_session(args), sigterm_sets(stop):
            nodes = make_nodes()
            if not nodes:
                return 0
            with Spinner(*nodes) as spinner:
                if on_started is not None:
                    on_started(nodes)
                while spinner.alive and not stop.wait(0.2):
                    pass
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return len(nodes)


def run_nodes(factories: Sequence[Callable[..., Node]], args: list[str] | None = None,
              node_kwargs: Sequence[dict] | None = None) -> None:
    """``ros2 run`` entry of one node executable: ``factories[i](**node_kwargs[i])`` until Ctrl-C / SIGTERM."""

    def make() -> list[Node]:
        nodes: list[Node] = []
        try:
            for i, factory in enumerate(factories):
                nodes.append(factory(**(node_kwargs[i] if node_kwargs else {})))
        except BaseException:
            for node in nodes:
                node.destroy_node()
            raise
        return nodes

    run_until_stopped(make, args)
