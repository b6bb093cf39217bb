"""`edge-infer import`: TFLite -> ONNX, Keras h5 -> torch -> ONNX."""

from __future__ import annotations

import argparse

from edge_infer.commands import emit, add_json
from edge_infer.commands.export import add_target


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
    from edge_infer.offline.importing import import_model
    from edge_infer.offline.onnx_info import describe

    r = import_model(args.source, args.output, names=args.names, checkpoint=args.checkpoint, target=args.target,
                     opset_version=args.opset, dynamic_batch=not args.static_batch)
    emit(args, {"ok": True, **r}, f"imported {r['kind']} -> {r['path']} (opset {r['opset']}, "
                                  f"{r['size_bytes'] / 1e6:.2f} MB)\n  {describe(r)}")
    return 0
