"""`edge-infer run`: the launch description (:mod:`edge_infer.launch_description`) in one process.

The embedded default where ``ros2 launch`` is not available: the same nodes, the same YAML files (their
values are passed as parameter overrides, so they also apply under a namespace), the same remappings,
spun by one executor (runner.make_executor); Ctrl-C / SIGTERM shut down cleanly (executor joined, nodes destroyed,
rclpy shut down).
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
from pathlib import Path
from typing import Any, Mapping

from edge_infer.launch_description import ResolvedNode, load_node_parameters, node_environment, resolve


def node_class(module: str, class_name: str):
    """The node class; if ``class_name`` is absent, the one rclpy Node subclass defined in ``module``."""
    from rclpy.node import Node

    mod = importlib.import_module(module)
    cls = getattr(mod, class_name, None)
    if cls is None:
        found = [v for v in vars(mod).values()
                 if isinstance(v, type) and issubclass(v, Node) and v is not Node and v.__module__ == mod.__name__]
        if len(found) != 1:
            raise ImportError(f"{module}: no node class {class_name} (found {[c.__name__ for c in found]})")
        cls = found[0]
    return cls


def node_kwargs(n: ResolvedNode) -> dict[str, Any]:
    """Constructor kwargs for one resolved node (parameter_overrides, namespace, remap cli_args)."""
    from rclpy.parameter import Parameter

    values = load_node_parameters(n.description, n.params_file)
    values.update(n.overrides)
    cli = ["--ros-args"]
    for src, dst in n.remappings:
        cli += ["-r", f"{src}:={dst}"]
    kw: dict[str, Any] = {"parameter_overrides": [Parameter(k, value=v) for k, v in values.items()]}
    if n.namespace:
        kw["namespace"] = n.namespace
    if len(cli) > 1:
        kw["cli_args"] = cli
    return kw


def build_nodes(arguments: Mapping[str, str] | None = None, config_dir: Path | None = None) -> list:
    """Construct every enabled node (rclpy must be initialised)."""
    nodes = []
    try:
        for n in resolve(arguments, config_dir):
            if n.enabled:
                cls = node_class(n.description.module, n.description.class_name)
                nodes.append(cls(**node_kwargs(n)))
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def run_description(arguments: Mapping[str, str] | None = None, config_dir: Path | None = None,
                    ros_args: list[str] | None = None, stop: threading.Event | None = None, echo=print) -> int:
    """Run the enabled nodes until Ctrl-C, SIGTERM or ``stop`` is set. Returns the number of nodes run."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from edge_infer.ros.runner import make_executor

    os.environ.update(node_environment(arguments or {}))  # before rclpy creates the DDS participant
    rclpy.init(args=ros_args)
    stop = stop or threading.Event()
    nodes: list = []
    executor = make_executor()
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    spin = None
    try:
        nodes = build_nodes(arguments, config_dir)
        if not nodes:
            echo("edge-infer run: every node is disabled; nothing to run")
            return 0
        for node in nodes:
            executor.add_node(node)
        echo("running " + ", ".join(node.get_fully_qualified_name() for node in nodes) + " (Ctrl-C to stop)")
        spin = threading.Thread(target=executor.spin, name="edge_infer_executor", daemon=True)
        spin.start()
        while not stop.wait(0.2) and spin.is_alive():
            pass
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        if spin is not None:
            spin.join(timeout=10)  # join before rclpy.shutdown (see docs/ARCHITECTURE.md)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return len(nodes)
