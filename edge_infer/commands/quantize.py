"""`edge-infer quantize`: FP16 (fp32 I/O), INT8 static QDQ (calibrated on images), INT8 dynamic."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_infer.errors import ConfigError
from edge_infer.commands import emit, add_json, add_models_dir, models_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="FP16 / INT8 variants with size report")
    p.add_argument("model", help="ONNX file (fp32, ideally sanitized)")
    p.add_argument("output", help="ONNX file to write")
    p.add_argument("--mode", choices=["fp16", "int8", "int8-dynamic"], default="fp16")
    p.add_argument("--calibration", help="int8: image file/folder for calibration (default: the zoo samples)")
    p.add_argument("--calib-bag", help="int8: calibrate on camera frames from this rosbag2 bag (with --topic)")
    p.add_argument("--topic", help="Image / CompressedImage topic in --calib-bag")
    p.add_argument("--calib-frames", type=int, default=100, help="frames taken from --calib-bag (default 100)")
    p.add_argument("--name", help="zoo model name (selects the preprocessing; default: from the file name)")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import tempfile

    from edge_infer.offline.quantize import quantize

    with tempfile.TemporaryDirectory(prefix="edge_infer_calib_") as tmp:
        calibration = args.calibration
        if args.calib_bag:
            calibration = _frames_from_bag(args.calib_bag, args.topic, args.calib_frames, Path(tmp))
        r = quantize(args.model, args.output, args.mode, calibration=calibration, name=args.name,
                     models_dir=models_dir(args), progress=not args.json)
    if args.calib_bag:
        r["calibration"] = f"{args.calib_bag}:{args.topic} ({r.get('calibration_samples', '?')} samples)"
    extra = f", calibrated on {r['calibration']}" if "calibration" in r else ""
    emit(args, {"ok": True, **r}, f"{r['mode']} -> {r['path']}: {r['size_before'] / 1e6:.2f} MB -> "
                                  f"{r['size_bytes'] / 1e6:.2f} MB ({r['reduction_pct']:.1f}% smaller){extra}")
    return 0


def _frames_from_bag(bag: str, topic: str | None, n: int, out: Path) -> Path:
    """Bag frames -> PNG files in ``out``: the quantizer's image-folder calibration path reads them."""
    import cv2

    from edge_infer.bags.read import calibration_frames_from_bag

    if not topic:
        raise ConfigError("--calib-bag needs --topic (an Image or CompressedImage topic of the bag)")
    frames = calibration_frames_from_bag(bag, topic, n)
    if not frames:
        raise ConfigError(f"{bag}: no frames on topic {topic}")
    for i, frame in enumerate(frames):
        cv2.imwrite(str(out / f"frame_{i:05d}.png"), frame)
    return out
