"""`edge-infer run`: the launch description (:mod:`edge_infer.launch_description`) in one process.

The embedded default where ``ros2 launch`` is not available: the same nodes, the same YAML files (their
values are passed as parameter overrides, so they also apply under a namespace), the same remappings,
spun and torn down by :func:`edge_infer.ros.runner.run_until_stopped` (Ctrl-C / SIGTERM: executor joined,
nodes destroyed, rclpy shut down). The nodes come up active (lifecycle ``autostart``, the launch argument of
the same name turns it off).
"""

from __future__ import annotations

import importlib
import os
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
                    ros_args: list[str] | None = None, stop: threading.Event | None = None, echo=print,
                    restore_signals: bool = True) -> int:
    """Run the enabled nodes until Ctrl-C, SIGTERM or ``stop`` is set. Returns the number of nodes run.

    ``restore_signals=False`` (the CLI, whose process exits afterwards): SIGINT/SIGTERM stay ignored after
    the teardown, see :class:`edge_infer.ros.runner.StopSignals`.
    """
    from edge_infer.ros.runner import run_until_stopped

    if not any(n.enabled for n in resolve(arguments, config_dir)):
        echo("edge-infer run: every node is disabled; nothing to run")
        return 0
    os.environ.update(node_environment(arguments or {}))  # before rclpy creates the DDS participant

    def started(nodes) -> None:
        echo("running " + ", ".join(node.get_fully_qualified_name() for node in nodes) + " (Ctrl-C to stop)")

    return run_until_stopped(lambda: build_nodes(arguments, config_dir), ros_args, stop, on_started=started,
                             restore_signals=restore_signals)
