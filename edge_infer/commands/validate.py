"""`edge-infer validate`: ONNX model vs its source (ONNX / torch checkpoint or .safetensors / Keras h5 / TFLite) on
real inputs."""

from __future__ import annotations

import argparse

from edge_infer.commands import emit, add_json, add_models_dir, models_dir


def register(sub: argparse._SubParsersAction) -> None:
    from edge_infer.offline.compare import LEVELS

    p = sub.add_parser("validate", help="compare an ONNX model with its source; JSON report with verdicts")
    p.add_argument("model", help="ONNX file under test")
    p.add_argument("reference", help="source: .onnx, torch .safetensors or checkpoint (.pt/.pth), Keras .h5/.hdf5 "
                                     "or .tflite")
    p.add_argument("--level", choices=list(LEVELS), default="exact",
                   help="row of the tolerance table (edge_infer.offline.compare.LEVELS); fp32 = another runtime")
    p.add_argument("--atol", type=float, help="exact level: max |difference| (default 1e-5)")
    p.add_argument("--name", help="zoo model name (task and preprocessing; default: from the file name)")
    p.add_argument("--task", help="override the task (face_detection, emotion, face_mesh, vad, wake_word, ...)")
    p.add_argument("--images", help="image file/folder for inputs (default: the zoo samples)")
    p.add_argument("--arch", help="torch reference: registry architecture if the file does not name one "
                                  "(package.module:Class only with --trust-checkpoint)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="torch reference: allow running code (TorchScript, pickled modules, --arch module:Class)")
    p.add_argument("--report", help="write the JSON report here (atomically)")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edge_infer.offline.validate import validate

    r = validate(args.model, args.reference, level=args.level, name=args.name, task=args.task, images=args.images,
                 models_dir=models_dir(args), atol=args.atol, report=args.report, progress=not args.json,
                 architecture=args.arch, trust_checkpoint=args.trust_checkpoint)
    lines = [f"{r['verdict'].upper()}: {r['model']} vs {r['reference']} ({r['reference_kind']}, level {r['level']}, "
             f"task {r['task']}) on {r['inputs']['source']}"]
    lines += [f"  {n}: max |diff| {d['max_abs']:.3g}, mean {d['mean_abs']:.3g}" for n, d in r["outputs"].items()]
    lines += [f"  [{'ok' if c['pass'] else 'FAIL'}] {c['metric']} = {c['value']:.4g} {c['op']} {c['threshold']:g}"
              for c in r["checks"]]
    emit(args, {"ok": r["verdict"] == "pass", **r}, "\n".join(lines))
    return 0 if r["verdict"] == "pass" else 1
