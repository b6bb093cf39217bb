"""`edge-infer run`: the pipeline launch description in one process (no `ros2 launch` needed)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from edge_infer.launch_description import LAUNCH_ARGUMENTS

    p = sub.add_parser("run", help="run the face + audio nodes in one process (same config as pipeline.launch.py)")
    for a in LAUNCH_ARGUMENTS:
        p.add_argument(f"--{a.name.replace('_', '-')}", dest=a.name, default=None,
                       help=f"{a.description} (default: {a.default!r})")
    p.add_argument("--config-dir", default=None, help="directory holding the YAML files (default: installed config/)")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="check the parameter files, print the resolved nodes and exit")
    p.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ... passed to rclpy.init")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge_infer.launch_description import LAUNCH_ARGUMENTS, load_node_parameters, one_process_ros_arguments, resolve

    values = {a.name: getattr(args, a.name) for a in LAUNCH_ARGUMENTS if getattr(args, a.name) is not None}
    config_dir = Path(args.config_dir) if args.config_dir else None
    nodes = resolve(values, config_dir)
    for n in nodes:  # a bad parameter file is one line before rclpy or a model is touched
        if n.enabled:
            load_node_parameters(n.description, n.params_file)
    # --enclave: one process = one DDS participant = one enclave for both nodes (<root>/pipeline)
    process_args = one_process_ros_arguments(values)
    if args.print_only:  # what this command starts: every node in this one process, with its ros args
        print(json.dumps([dict(n.as_dict(), ros_arguments=process_args) for n in nodes], indent=2, default=str))
        return 0
    from edge_infer.ros.one_process import run_description

    ros_args = list(args.ros_args)
    if process_args:  # first: rcl takes the last --enclave, so one given by hand after --ros-args wins
        ros_args = ["--ros-args", *process_args, *ros_args]
    run_description(values, config_dir, ["edge-infer", *ros_args] if ros_args else None, restore_signals=False)
    return 0
