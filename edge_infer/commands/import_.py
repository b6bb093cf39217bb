"""`edge-infer import`: TFLite -> ONNX, Keras h5 -> torch -> ONNX."""

from __future__ import annotations

import argparse

from ..cli import emit
from . import add_json
from .export import add_target


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="TFLite / Keras h5 -> ONNX")
    p.add_argument("source", help=".tflite or .h5/.hdf5 file")
    p.add_argument("output", help="ONNX file to write")
    p.add_argument("--names", choices=["face_mesh"], help="stable I/O names for a known TFLite model")
    p.add_argument("--checkpoint", help="Keras only: also write the torch checkpoint (for `edge-infer export`)")
    add_target(p)
    p.add_argument("--opset", type=int, help="Keras only: override the target's opset")
    p.add_argument("--static-batch", action="store_true", help="TFLite only: keep batch 1")
    add_json(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..offline.importing import import_model
    from ..offline.inspect import describe

    r = import_model(args.source, args.output, names=args.names, checkpoint=args.checkpoint, target=args.target,
                     opset_version=args.opset, dynamic_batch=not args.static_batch)
    emit(args, {"ok": True, **r}, f"imported {r['kind']} -> {r['path']} (opset {r['opset']}, "
                                  f"{r['size_bytes'] / 1e6:.2f} MB)\n  {describe(r)}")
    return 0


def main() -> int:
    """Console script / `ros2 run edge_infer ...`: the same as `edge-infer import`."""
    import sys

    from ..cli import main as cli_main

    return cli_main(["import", *sys.argv[1:]])
