"""`edge-infer export`: PyTorch checkpoint (.safetensors preferred, or torch.save) -> ONNX (legacy exporter,
opset by --target)."""

from __future__ import annotations

import argparse
import json

from edge_infer.commands import emit, add_json


def add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="jetpack6", help="jetpack4.6 (opset 13), jetpack5 (16), jetpack6 (17; default)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="PyTorch checkpoint (.safetensors or torch.save) -> ONNX")
    p.add_argument("checkpoint", help=".safetensors state_dict (preferred: no pickle), or a torch.save state_dict, "
                                      "{'state_dict'} or {'model_state_dict','config'} (weights-only); TorchScript "
                                      "and pickled modules need --trust-checkpoint")
    p.add_argument("output", help="ONNX file to write")
    p.add_argument("--arch", help="registry name (e.g. mini_xception; default: the registry entry the file names), "
                                  "or package.module:Class together with --trust-checkpoint")
    p.add_argument("--kwargs", default="{}", help="constructor kwargs as JSON, e.g. '{\"num_classes\": 7}'")
    p.add_argument("--input-shape", action="append", help="per input, e.g. 1x1x64x64 (repeat for several inputs)")
    p.add_argument("--input-names", help="comma separated")
    p.add_argument("--output-names", help="comma separated")
    add_target(p)
    p.add_argument("--opset", type=int, help="override the target's opset")
    p.add_argument("--static-batch", action="store_true", help="no dynamic batch axis")
    p.add_argument("--no-constant-folding", action="store_true")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow running code: pickles beyond weights, TorchScript, --arch package.module:Class "
                        "(only for files you trust; prefer .safetensors)")
    add_json(p)
    p.set_defaults(func=_run)


def _list(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _run(args: argparse.Namespace) -> int:
    from edge_infer.errors import OfflineError
    from edge_infer.offline.export import export_checkpoint, parse_shape
    from edge_infer.offline.onnx_info import describe

    try:
        kwargs = json.loads(args.kwargs)
    except ValueError as e:
        raise OfflineError(f"--kwargs is not valid JSON: {e}") from None
    r = export_checkpoint(args.checkpoint, args.output, architecture=args.arch, kwargs=kwargs,
                          input_shapes=[parse_shape(s) for s in args.input_shape] if args.input_shape else None,
                          input_names=_list(args.input_names), output_names=_list(args.output_names),
                          target=args.target, opset=args.opset, dynamic_batch=not args.static_batch,
                          constant_folding=not args.no_constant_folding, trust_checkpoint=args.trust_checkpoint)
    emit(args, {"ok": True, **r}, f"exported {r['architecture']} -> {r['path']} (opset {r['opset']}, "
                                  f"{r['size_bytes'] / 1e6:.2f} MB, sha256 {r['sha256'][:12]})\n  {describe(r)}")
    return 0
