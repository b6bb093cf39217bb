"""`edge-infer sanitize`: fold constants, check, lint for TensorRT, prove outputs unchanged."""

from __future__ import annotations

import argparse

from edge_infer.commands import emit, add_json, add_models_dir, models_dir
from edge_infer.commands.export import add_target


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sanitize", help="polygraphy sanitize --fold-constants + checks + TensorRT warnings")
    p.add_argument("model", help="ONNX file")
    p.add_argument("output", help="sanitized ONNX file to write")
    add_target(p)
    p.add_argument("--name", help="zoo model name (for real verification inputs; default: from the file name)")
    p.add_argument("--images", help="image file/folder for verification inputs (default: the zoo samples)")
    p.add_argument("--atol", type=float, help="max |difference| allowed vs the input model (default: the exact "
                                              "level's, 1e-5)")
    p.add_argument("--no-verify", action="store_true", help="skip running both models")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edge_infer.offline.sanitize import sanitize

    r = sanitize(args.model, args.output, target=args.target, verify=not args.no_verify, atol=args.atol,
                 name=args.name, models_dir=models_dir(args), images=args.images)
    lines = [f"sanitized -> {r['path']}: nodes {r['nodes_before']} -> {r['nodes_after']}, opset {r['opset']}"]
    if "verification" in r:
        v = r["verification"]
        lines.append(f"  outputs vs input model: max |diff| {v['max_abs']:.3g} (<= {v['atol']:g}) on {v['inputs']}")
    lines += [f"  warning: {w}" for w in r["warnings"]]
    emit(args, {"ok": True, **r}, "\n".join(lines))
    return 0
