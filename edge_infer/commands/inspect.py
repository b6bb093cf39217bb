"""`edge-infer inspect`: I/O, dtypes, opset, nodes, size, producer of a model file.

A TensorRT engine is executable code: it is deserialized only when its sidecar matches (and its signature,
with an engine key configured); otherwise one line says what did not match and how to rebuild."""

from __future__ import annotations

import argparse

from edge_infer.commands import emit, add_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="describe a model file (.onnx; TensorRT engines where supported)")
    p.add_argument("model")
    add_json(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edge_infer.offline.onnx_info import inspect_model

    r = inspect_model(args.model)
    lines = [f"{r['path']}: {r.get('format', '?')}, {r['size_bytes'] / 1e6:.2f} MB"
             + (f", opset {r['opset']}, {r['node_count']} nodes, producer {r['producer'] or '?'}" if "opset" in r else "")]
    if "trust" in r:
        lines[0] += f", TensorRT {r.get('tensorrt', '?')}, {r['trust']}"
    for kind in ("inputs", "outputs"):
        for t in r.get(kind, []):
            lines.append(f"  {kind[:-1]:<6} {t['name']:<24} [{', '.join(map(str, t['shape']))}] {t['dtype']}")
    for t in r.get("tensors", []):  # engines: I/O in binding order, with the profile ranges of inputs
        ranges = "; ".join(f"{p['min']}..{p['max']}" for p in t.get("profiles", []))
        lines.append(f"  {t['mode']:<6} {t['name']:<24} [{', '.join(map(str, t['shape']))}] {t['dtype']}"
                     + (f" profiles {ranges}" if ranges else ""))
    emit(args, r, "\n".join(lines))
    return 0
