"""`edge-infer selftest`: build a small engine from a zoo model, run it, compare with ONNX Runtime."""

from __future__ import annotations

import argparse

from edge_infer.commands import emit, add_json, add_models_dir, models_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selftest", help="check TensorRT on this robot: build, run, compare with ONNX Runtime; "
                       "--cuda: check the CUDA layer and torch on the GPU (no TensorRT needed)")
    p.add_argument("--cuda", action="store_true", help="the GPU check: CUDA layer from another thread, CUDA graph "
                   "replay, torch on CUDA vs ONNX Runtime CPU (needs cuda-python + torch; exit 3 = no GPU)")
    p.add_argument("--model", default="emotion", help="zoo model to build (default: emotion, builds in seconds)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--max-batch", type=int, default=8)
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_selftest)


def _selftest(args: argparse.Namespace) -> int:
    if args.cuda:
        from edge_infer.offline.gpu_check import EXIT_NO_GPU, run_gpu_check

        report, verdict = run_gpu_check(models_dir(args), echo=(lambda s: None) if args.json else print)
        emit(args, {**report.as_dict(), "ok": verdict == "PASS", "verdict": verdict}, f"gpu-check: {verdict}")
        return {"PASS": 0, "NO GPU": EXIT_NO_GPU}.get(verdict, 1)
    from edge_infer.offline.selftest import run_selftest

    report = run_selftest(models_dir(args), args.model, args.precision, args.max_batch,
                          echo=(lambda s: None) if args.json else print)
    emit(args, report.as_dict(), f"selftest: {'PASS' if report.ok else 'FAIL'}")
    return 0 if report.ok else 1
