"""`edge-infer bench <sub-verb>`: benchmarks. A small dispatcher: each sub-verb registers itself from its own
function in :data:`SUBVERBS`, so adding ``bench pipeline`` / ``bench audio`` / ``bench bag`` is one function
plus one list entry, without touching the others."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from edge_infer.errors import ConfigError
from edge_infer.commands import emit, add_json, add_models_dir, models_dir


def _register_model(bsub: argparse._SubParsersAction) -> None:
    from edge_infer.bench.model import BACKENDS, DEFAULT_MODELS

    p = bsub.add_parser("model", help="one model on torch / onnxruntime (CPU, CUDA, TensorRT EPs) / tensorrt")
    p.add_argument("models", nargs="*", default=list(DEFAULT_MODELS),
                   help=f"zoo model names or .onnx paths (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--backends", default=",".join(BACKENDS), help=f"comma separated subset of {','.join(BACKENDS)}")
    p.add_argument("--batch", default="1,8", help="comma separated batch sizes (default 1,8)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--max-seconds", type=float, default=20.0, help="time cap per runtime and batch (after 10 runs)")
    p.add_argument("--resolution", default="1280x720", help="camera frame size for image models (WxH, default 720p)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads for torch and ONNX Runtime (0 = default)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="TensorRT engine precision")
    p.add_argument("--engine", action="append", default=[], metavar="MODEL=PATH", help="use a prebuilt engine")
    p.add_argument("--torch-model", action="append", default=[], metavar="MODEL=PATH",
                   help="checkpoint (.safetensors preferred) or TorchScript for the torch column")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="--torch-model: allow TorchScript / pickled modules (runs code stored in the file)")
    p.add_argument("--engine-dir", help="engine cache directory (default: <models dir>/engines)")
    p.add_argument("--out", default="bench_out", help="output directory for benchmark.json and benchmark.png")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_model)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise ConfigError(f"{flag} expects MODEL=PATH, got '{it}'")
        k, v = it.split("=", 1)
        out[k] = v
    return out


def _model(args: argparse.Namespace) -> int:
    from edge_infer.bench.model import ModelBenchConfig, run_benchmark, summary_table
    from edge_infer.backends.tensorrt.profiles import parse_shape

    w, h = parse_shape(args.resolution)
    mdir = models_dir(args)
    config = ModelBenchConfig(
        backends=[b.strip() for b in args.backends.split(",") if b.strip()],
        batches=[int(b) for b in args.batch.split(",") if b.strip()],
        warmup=args.warmup, runs=args.runs, max_seconds=args.max_seconds, resolution=(w, h), threads=args.threads,
        precision=args.precision, engine_dir=args.engine_dir or str(mdir / "engines"),
        engines=_pairs(args.engine, "--engine"), torch_models=_pairs(args.torch_model, "--torch-model"),
        trust_checkpoint=args.trust_checkpoint,
    )
    report = run_benchmark(mdir, args.models, config, Path(args.out), echo=(lambda s: None) if args.json else print)
    emit(args, report, summary_table(report) + f"\nwrote {report['files']['json']} and {report['files']['plot']}")
    return 0


def _register_pipeline(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("pipeline", help="face pipeline vs raw models and vs mediapipe, 1 vs 6 faces, tracking, "
                                         "node e2e (node and camera in their own processes)")
    p.add_argument("--frames", type=int, default=40, help="frames per case (default 40)")
    p.add_argument("--backend", default="auto", help="runtime of the pipeline's models (default auto)")
    p.add_argument("--no-peer", action="store_true", help="skip mediapipe (its venv is made on first use)")
    p.add_argument("--no-node", action="store_true", help="skip the node end-to-end run")
    p.add_argument("--bench-venv", help="the mediapipe peer's venv (default .venv-bench in the checkout)")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_pipeline)


def _node_e2e_cross_process(models_dir: Path, frames: int) -> dict:
    """The face node started by its console script and a camera, each in its own process with the shipped DDS
    profile (as `ros2 launch` and `edge-infer run` start them): the node's end-to-end time minus its models'."""
    from edge_infer.launch_description import LARGE_DATA_PROFILE
    from edge_infer.ros.bench_harness import node_end_to_end

    result = node_end_to_end(models_dir, frames, camera="subprocess", node="subprocess")
    return {**result, "camera": f"node and camera each in its own process, DDS profile {LARGE_DATA_PROFILE}"}


def _pipeline(args: argparse.Namespace) -> int:
    from edge_infer.bench.pipeline import print_pipeline_bench, run_pipeline_bench

    peer_factory = None
    if not args.no_peer:
        from edge_infer.bench.peer import MediapipePeer, ensure_venv

        python = ensure_venv(Path(args.bench_venv) if args.bench_venv else None,
                             echo=(lambda s: None) if args.json else print)
        peer_factory = lambda frame_sets: MediapipePeer(python, frame_sets)  # noqa: E731
    report = run_pipeline_bench(models_dir(args), frames=args.frames, backend=args.backend, progress=not args.json,
                                node_e2e=None if args.no_node else _node_e2e_cross_process, peer_factory=peer_factory)
    if args.json:
        emit(args, report, "")
    else:
        print_pipeline_bench(report)
    return 0


def _register_audio(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("audio", help="audio pipeline real-time factor and wake-word detection latency")
    p.add_argument("--chunk", type=int, default=512, help="samples per input chunk (default 512)")
    p.add_argument("--repeats", type=int, default=3, help="runs per mode; the best is reported (default 3)")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_audio)


def _audio(args: argparse.Namespace) -> int:
    from edge_infer.bench.audio import run_audio_bench

    report = run_audio_bench(models_dir(args), chunk_samples=args.chunk, repeats=args.repeats, print_results=not args.json)
    if args.json:
        emit(args, report, "")
    return 0


def _register_drivers(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("drivers", help="camera drivers in other processes -> the face node (its console script, "
                        "own process): frames answered / lost in transport per QoS, size and DDS profile")
    p.add_argument("--frames", type=int, default=40, help="frames per case (default 40)")
    p.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    p.add_argument("--sizes", default="640x480,1280x720,1920x1080", help="comma separated WxH")
    p.add_argument("--qos", default="reliable,best_effort", help="camera QoS kinds, comma separated")
    p.add_argument("--node-reliability", default="auto", choices=("auto", "reliable", "best_effort"),
                   help="the node's input_qos.reliability (default auto)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_drivers)


def _drivers(args: argparse.Namespace) -> int:
    from edge_infer.fileio import atomic_write_json
    from edge_infer.ros.driver_check import CameraCase, format_table, run_driver_matrix

    cases = [CameraCase(int(w), int(h), args.rate, args.frames, qos, profile)
             for qos in args.qos.split(",") for profile in (False, True)
             for w, h in (s.split("x") for s in args.sizes.split(","))]
    results = run_driver_matrix(models_dir(args), cases,
                                node_params={"input_qos.reliability": args.node_reliability})
    doc = {"node_reliability": args.node_reliability, "cases": [r.as_dict() for r in results]}
    if args.out:
        atomic_write_json(Path(args.out), doc)
    emit(args, doc, f"node input_qos.reliability: {args.node_reliability}\n" + format_table(results))
    return 0


def _register_cameras(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("cameras", help="N cameras (own processes, 720p, 15 Hz) on ONE face node vs N separate face "
                        "nodes, in one run: per-camera rate and end to end, aggregate results/s, node RSS, goals")
    p.add_argument("--n", default="1,2,4", help="camera counts, comma separated (default 1,2,4)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per case (default 20)")
    p.add_argument("--warmup-seconds", type=float, default=2.0,
                   help="played after every camera's first result, before measuring (default 2)")
    p.add_argument("--rate", type=float, default=15.0, help="camera rate in Hz (default 15)")
    p.add_argument("--size", default="1280x720", help="camera frame size WxH (default 1280x720)")
    p.add_argument("--qos", default="reliable", choices=("reliable", "best_effort", "sensor"),
                   help="the cameras' publisher QoS (default reliable)")
    p.add_argument("--faces", type=int, default=1, help="faces per frame (0: the demo sequence of 1, 2 and 4)")
    p.add_argument("--backend", default=None, help="the nodes' backend (default: the node's own, auto; GPU: torch)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="another node parameter, as -p NAME:=VALUE (e.g. batch_cameras=false, batch_timeout_ms=0.0)")
    p.add_argument("--cases", default="one_node,separate_nodes", help="which cases, comma separated")
    p.add_argument("--log-dir", default=None, help="node logs here (default: a new temporary directory)")
    p.add_argument("--out", default=None, help="write the report as JSON here")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_cameras)


def _node_params(items: list[str]) -> dict[str, str]:
    """``--param NAME=VALUE`` -> {NAME: VALUE}; the value goes to the node as written (ROS parses it: 0.0 a
    double, false a bool, [a, b] an array)."""
    out = {}
    for it in items:
        name, sep, value = it.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param expects NAME=VALUE, got '{it}'")
        out[name.strip()] = value
    return out


def _cameras(args: argparse.Namespace) -> int:
    from edge_infer.fileio import atomic_write_json
    from edge_infer.ros.camera_bench import CASES, CamerasBenchConfig, format_report, run_cameras_bench

    cases = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    if not cases or set(cases) - set(CASES):
        raise ConfigError(f"--cases: choose from {','.join(CASES)}, got {args.cases!r}")
    try:
        ns = tuple(int(x) for x in args.n.split(",") if x.strip())
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--n expects counts like 1,2,4 and --size WxH, got {args.n!r} / {args.size!r}") from None
    if not ns or min(ns) < 1:
        raise ConfigError(f"--n: camera counts must be >= 1, got {args.n!r}")
    config = CamerasBenchConfig(ns=ns, seconds=args.seconds, rate_hz=args.rate, size=(w, h), qos=args.qos,
                                faces=args.faces, backend=args.backend, params=_node_params(args.param),
                                cases=cases, warmup_extra_s=args.warmup_seconds)
    report = run_cameras_bench(models_dir(args), config, log_dir=args.log_dir, progress=not args.json)
    if args.out:
        atomic_write_json(Path(args.out), report)
    emit(args, report, format_report(report) + (f"\nwrote {args.out}" if args.out else ""))
    failed = [r for r in report["runs"] if "error" in r]
    return 1 if failed else 0


def _register_bag(bsub: argparse._SubParsersAction) -> None:
    from edge_infer.commands.bag import register_bench_bag  # `bench bag`: arguments and runner live with the bag verbs

    register_bench_bag(bsub)


# Each entry adds one `bench` sub-verb; add yours here (bench pipeline / audio / bag).
SUBVERBS: list[Callable[[argparse._SubParsersAction], None]] = [_register_model, _register_pipeline, _register_audio,
                                                                _register_bag, _register_drivers, _register_cameras]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: model (runtimes), ...")
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="<what>")
    for add in SUBVERBS:
        add(bsub)
