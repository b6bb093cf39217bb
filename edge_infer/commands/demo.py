"""`edge-infer demo`: fetch the zoo if needed, then run the models and the nodes on the embedded samples."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_infer.commands import add_json, add_models_dir, models_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the face pipeline node on sample frames and print a summary")
    add_models_dir(p)
    add_json(p)
    p.add_argument("--frames", type=int, default=300, help="frames to publish (default 300)")
    p.add_argument("--rate", type=float, default=15.0, help="publish rate in Hz (default 15)")
    p.add_argument("--out", default="out/demo", help="where the annotated image and summary.json go")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_infer.fileio import atomic_write_json
    from edge_infer.offline.zoo import fetch
    from edge_infer.ros.demo import model_report, print_face_summary, run_audio_demo, run_face_demo

    mdir = models_dir(args)
    echo = (lambda s: None) if args.json else print
    fetch(mdir, progress=False, echo=lambda s: None)
    echo("== 1. each model on the sample photos (ONNX Runtime, CPU)")
    model_report(mdir, echo)
    echo("== 2. face_pipeline_node (real rclpy) on a stream of 720p frames")
    summary = run_face_demo(mdir, Path(args.out), args.frames, args.rate, echo)
    print_face_summary(summary, echo)
    echo("== 3. audio_node (real rclpy): voice activity and wake word on synthesized speech")
    summary["audio"] = run_audio_demo(mdir, echo)
    atomic_write_json(Path(args.out) / "summary.json", summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    ok = summary["results_received"] > 0 and not summary["bad_messages"] and summary["audio"]["wake_words"] == 1
    return 0 if ok else 1
