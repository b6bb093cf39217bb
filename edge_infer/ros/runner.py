"""The one way this package spins nodes and tears them down (``ros2 run``, ``edge-infer run``, demo,
benchmarks, tests).

Teardown order matters and is written only here: shut the executor down, **join its thread before
rclpy.shutdown()** (otherwise "terminate called without an active exception"), destroy the nodes, shut
rclpy down only if we initialised it, and put back any signal handler we replaced. See
docs/ARCHITECTURE.md.

Signals of a node process (:class:`StopSignals`): rclpy's own handlers are not installed; Ctrl-C/SIGTERM
abort a start-up (a long model load or engine build), stop a running process cleanly, and are ignored
during the teardown, since a second one is common (a terminal's Ctrl-C reaches every process of the group
and ``ros2 launch`` forwards one more) and must not interrupt it with a KeyboardInterrupt traceback.

ROS security (SROS2) fails closed: with ``ROS_SECURITY_ENABLE=true`` a process whose enclave is missing or
whose DDS has no security support is refused by rcl / the middleware; :func:`run_until_stopped` turns that
refusal into one :class:`RosSecurityError` line that says which (:func:`security_start_message`).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from edge_infer.errors import EdgeInferError


class RosSecurityError(EdgeInferError):
    """ROS security was requested and this process cannot run with it, so it does not run at all."""


def security_requested(environ: dict[str, str] | None = None) -> bool:
    """rcl's own test: security is on only for ``ROS_SECURITY_ENABLE`` exactly ``true``."""
    return (os.environ if environ is None else environ).get("ROS_SECURITY_ENABLE", "") == "true"


def requested_enclave(args: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> str:
    """The enclave rcl looks up: ``ROS_SECURITY_ENCLAVE_OVERRIDE``, else the last ``--enclave``/``-e`` of a
    ``--ros-args`` section of ``args`` (``sys.argv`` when None), else ``/``."""
    env = os.environ if environ is None else environ
    if env.get("ROS_SECURITY_ENCLAVE_OVERRIDE"):
        return env["ROS_SECURITY_ENCLAVE_OVERRIDE"]
    argv = list(sys.argv if args is None else args)
    enclave, in_ros_args = "/", False
    for i, arg in enumerate(argv):
        if arg == "--ros-args":
            in_ros_args = True
        elif arg == "--":
            in_ros_args = False
        elif in_ros_args and arg in ("--enclave", "-e") and i + 1 < len(argv):
            enclave = argv[i + 1]
    return enclave


def security_start_message(error: BaseException, args: Sequence[str] | None = None,
                           environ: dict[str, str] | None = None) -> str:
    """One line for an rcl / middleware refusal under ``ROS_SECURITY_ENABLE=true``: what was asked, what is
    missing (the keystore, the enclave's folder, or DDS-Security in this ROS install) and what to do."""
    env = os.environ if environ is None else environ
    strategy = env.get("ROS_SECURITY_STRATEGY", "") or "Permissive (unset)"
    keystore = env.get("ROS_SECURITY_KEYSTORE", "")
    enclave = requested_enclave(args, env)
    asked = (f"ROS security is on (ROS_SECURITY_ENABLE=true, ROS_SECURITY_STRATEGY={strategy}, "
             f"ROS_SECURITY_KEYSTORE={keystore or '(unset)'}, enclave {enclave})")
    # rcl's text without its source locations (", at /project/src/rcl/security.c:202"), on one line
    detail = " ".join(re.sub(r",? at /\S+:\d+", "", str(error)).split())
    guide = "README: ROS 2 security (SROS2)"
    if not keystore:
        return f"{asked} but ROS_SECURITY_KEYSTORE is not set: set it to the keystore folder ({guide})"
    enclave_dir = Path(keystore) / "enclaves" / enclave.strip("/")
    if not enclave_dir.is_dir():
        return (f"{asked} but the keystore has no folder {enclave_dir} for the enclave, so the node does not start: "
                f"create it (ros2 security create_enclave {keystore} {enclave}, then its permissions from "
                f"config/sros2/edge_infer.policy.xml) or choose the keystore's enclave ({guide})")
    if "security libraries" in detail:
        return (f"{asked} but this ROS install's DDS has no security support ({detail}), so the node does not "
                "start (fail closed): use a ROS install with DDS-Security (the apt ros-$ROS_DISTRO packages; the "
                f"PyPI ROS wheels have none) or unset ROS_SECURITY_ENABLE to run without security ({guide})")
    return f"{asked} and the node cannot start with it: {detail} ({guide})"


def make_executor() -> SingleThreadedExecutor:
    """The executor for our nodes: single threaded on purpose.

    Callbacks here are short (the face node hands frames to its own worker thread; audio chunks take ~3 ms),
    and rclpy's MultiThreadedExecutor measured 100-300 ms median delivery of a 720p Image on the 2-core dev
    machine against ~10 ms for SingleThreadedExecutor (same process, same QoS).
    """
    return SingleThreadedExecutor()


@contextmanager
def rclpy_session(args: list[str] | None = None, signal_handlers: bool = True) -> Iterator[bool]:
    """rclpy initialised for the block; yields whether this block initialised it (and so shuts it down).

    Nested users (a benchmark inside a test session that already called ``rclpy.init``) leave it running.
    ``signal_handlers=False``: rclpy installs none (the caller handles SIGINT/SIGTERM, see :class:`StopSignals`).
    """
    if rclpy.ok():
        yield False
        return
    rclpy.init(args=args, signal_handler_options=None if signal_handlers else SignalHandlerOptions.NO)
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
    # set from a helper thread: Event.set takes a lock that the interrupted main thread may hold inside its
    # own stop.wait(), and setting it in the handler itself could deadlock on a repeated SIGTERM
    previous = signal.signal(signal.SIGTERM,
                             lambda *_: threading.Thread(target=stop.set, name="sigterm_stop", daemon=True).start())
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


class StopSignals:
    """SIGINT and SIGTERM of a node process, by phase (main thread only; elsewhere nothing is installed).

    - starting (models loading, engines building): KeyboardInterrupt, so Ctrl-C aborts the start-up (and
      later signals are ignored while it unwinds);
    - running: noted (:meth:`should_stop`); the main loop then tears down in order;
    - stopping: ignored, so a second signal cannot interrupt the teardown.

    On exit the previous handlers come back, unless ``restore`` is false (a process that is about to exit
    keeps ignoring them: a signal in its last moments must not print a traceback either).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop: threading.Event, restore: bool = True) -> None:
        self.stop, self.restore = stop, restore
        self.installed = threading.current_thread() is threading.main_thread()
        self.phase = "starting"
        self.received = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        # Only a flag: a handler that took a lock (Event.set) could interrupt the main thread inside the same
        # lock (its Event.wait) and deadlock on a second signal.
        self.received = True
        if self.phase == "starting":
            self.stopping()  # the unwinding (node destruction, rclpy shutdown) must not be interrupted again
            raise KeyboardInterrupt

    def should_stop(self) -> bool:
        """A signal arrived, or ``stop`` was set."""
        return self.received or self.stop.is_set()

    def running(self) -> None:
        self.phase = "running"

    def stopping(self) -> None:
        """From now on SIGINT/SIGTERM are ignored by the OS (SIG_IGN, not a Python handler: Python resets its
        own handlers to the default, deadly action while the interpreter exits, SIG_IGN it leaves alone)."""
        self.phase = "stopping"
        if self.installed and threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                signal.signal(s, signal.SIG_IGN)

    def __enter__(self) -> "StopSignals":
        if self.installed:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self.stopping()
        if self.installed and self.restore:
            for s, handler in self._previous.items():
                signal.signal(s, handler)


def run_until_stopped(make_nodes: Callable[[], Sequence[Node]], args: list[str] | None = None,
                      stop: threading.Event | None = None,
                      on_started: Callable[[Sequence[Node]], None] | None = None,
                      restore_signals: bool = True) -> int:
    """Main loop of a node process: build the nodes, spin until Ctrl-C, SIGTERM or ``stop``, tear down.

    ``make_nodes`` runs after rclpy.init and must clean up its own partial work if it raises. Returns the
    number of nodes that ran (0: nothing to run or interrupted while starting; ``on_started`` is not called
    then). ``restore_signals=False``: keep ignoring SIGINT/SIGTERM afterwards (the process is exiting).
    """
    stop = stop or threading.Event()
    nodes: Sequence[Node] = []
    secure = security_requested()
    if secure:  # rclpy's follow-up to a refused node ("Failed to fini rosout publisher"): noise after the error
        warnings.filterwarnings("ignore", message="Failed to fini rosout publisher", category=RuntimeWarning)
    with StopSignals(stop, restore_signals) as signals:
        try:
            with rclpy_session(args, signal_handlers=not signals.installed):
                nodes = make_nodes()
                if not nodes:
                    return 0
                with Spinner(*nodes) as spinner:
                    try:
                        signals.running()
                        if on_started is not None:
                            on_started(nodes)
                        while spinner.alive and not signals.should_stop():
                            stop.wait(0.1)
                    finally:
                        signals.stopping()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except _rclpy.RCLError as e:  # rclpy.init or a node refused before anything ran
            if nodes or not secure:
                raise
            raise RosSecurityError(security_start_message(e, args)) from e
    return len(nodes)


def run_nodes(factories: Sequence[Callable[..., Node]], args: list[str] | None = None,
              node_kwargs: Sequence[dict] | None = None, restore_signals: bool = True) -> int:
    """Run ``factories[i](**node_kwargs[i])`` until Ctrl-C / SIGTERM; the number of nodes that ran."""

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

    return run_until_stopped(make, args, restore_signals=restore_signals)


def node_main(factories: Sequence[Callable[..., Node]], args: list[str] | None = None) -> None:
    """``ros2 run`` / launch entry of a node executable: run until Ctrl-C / SIGTERM, then exit 0.

    A user-facing start-up error (:class:`edge_infer.errors.EdgeInferError`: a missing model, TensorRT absent,
    a bad parameter) is the whole story: printed as one line, exit status 2, like the CLI. Anything else is a
    bug and keeps its traceback.
    """
    try:
        run_nodes(factories, args, restore_signals=False)
    except EdgeInferError as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
