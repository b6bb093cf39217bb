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

COMMAND_MODULES = ["zoo", "demo", "build", "bench", "bundle", "selftest", "export", "import_", "sanitize", "quantize", "validate", "inspect", "convert_all", "bag", "run"]


class CommandError(RuntimeError):
    """A user-facing failure: printed as one line (or JSON) and exit code 2, no traceback."""


def emit(args: argparse.Namespace, result: dict, human: str) -> None:
    """Print ``result`` as JSON with --json, else the human text."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=str))
    else:
        print(human)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-infer", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<verb>")
    for name in COMMAND_MODULES:
        importlib.import_module(f"edge_infer.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user-facing errors from the library carry their own clear message
        if args.verbose:
            raise
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": str(e), "type": type(e).__name__}))
        else:
            print(f"edge-infer {args.command}: error: {e}", file=sys.stderr)
        return 2


def zoo_fetch_main() -> int:
    """`ros2 run edge_infer zoo_fetch`: the same as `edge-infer zoo fetch`."""
    return main(["zoo", "fetch", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
