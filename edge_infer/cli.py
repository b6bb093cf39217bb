"""`edge-infer <verb>`: one entry point for the offline tools, thin over the library.

Each verb lives in ``edge_infer/commands/<verb>.py`` with ``register(subparsers)``; heavy imports happen
inside the verb, so ``edge-infer --help`` stays instant on a robot.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from typing import Sequence

from edge_infer.errors import EdgeInferError

COMMAND_MODULES = ["zoo", "demo", "build", "bench", "bundle", "selftest", "export", "import_", "sanitize", "quantize", "validate", "inspect", "convert_all", "bag", "run", "ui"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-infer", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<verb>")
    for name in COMMAND_MODULES:
        importlib.import_module(f"edge_infer.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `--ros-args ...` belongs to rcl, not to us: argparse's REMAINDER positional does not take a tail that
    # starts with an option once another option came first (`run --enclave X --ros-args ...`), so split it off.
    ros_tail: list[str] = []
    if "--ros-args" in argv:
        cut = argv.index("--ros-args")
        argv, ros_tail = argv[:cut], argv[cut:]
    args = parser.parse_args(argv)
    if ros_tail:
        if not hasattr(args, "ros_args"):
            parser.error(f"'{args.command}' takes no --ros-args")
        args.ros_args = [*ros_tail, *(args.ros_args or [])]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except EdgeInferError as e:  # user-facing: the message is the whole story; anything else is a bug (traceback)
        if args.verbose:
            raise
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": str(e), "type": type(e).__name__}))
        else:
            print(f"edge-infer {args.command}: error: {e}", file=sys.stderr)
        return 2


def _verb(*verb: str):
    """A console-script entry point that is ``edge-infer <verb> ...`` (``ros2 run edge_infer <name>``)."""

    def entry() -> int:
        return main([*verb, *sys.argv[1:]])

    entry.__doc__ = f"`ros2 run edge_infer ...`: the same as `edge-infer {' '.join(verb)}`."
    return entry


# `ros2 run edge_infer <name>` executables (setup.py console_scripts), each one verb of the CLI above
zoo_fetch_main = _verb("zoo", "fetch")
run_main = _verb("run")
export_main = _verb("export")
import_main = _verb("import")
sanitize_main = _verb("sanitize")
quantize_main = _verb("quantize")
validate_main = _verb("validate")
inspect_main = _verb("inspect")
convert_all_main = _verb("convert-all")
build_main = _verb("build")
bench_main = _verb("bench")


if __name__ == "__main__":
    sys.exit(main())
