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
    p.add_argument("--print", dest="print_only", action="store_true", help="print the resolved nodes and exit")
    p.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ... passed to rclpy.init")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge_infer.launch_description import LAUNCH_ARGUMENTS, resolve

    values = {a.name: getattr(args, a.name) for a in LAUNCH_ARGUMENTS if getattr(args, a.name) is not None}
    config_dir = Path(args.config_dir) if args.config_dir else None
    if args.print_only:
        print(json.dumps([n.as_dict() for n in resolve(values, config_dir)], indent=2, default=str))
        return 0
    from edge_infer.ros.one_process import run_description

    ros_args = ["edge-infer", *args.ros_args] if args.ros_args else None
    run_description(values, config_dir, ros_args, restore_signals=False)
    return 0
