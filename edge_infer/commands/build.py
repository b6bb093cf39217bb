"""`edge-infer build`: TensorRT engines from (sanitized) ONNX models, on the robot, through the engine cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_infer.commands import emit, add_json, add_models_dir, models_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build TensorRT engines (fp32/fp16/int8-QDQ) with profiles, timing cache, DLA",
                       epilog="Engine signing: with EDGE_INFER_ENGINE_KEY_FILE (a key file, chmod 600) or "
                              "EDGE_INFER_ENGINE_KEY set, each engine gets <engine>.hmac (HMAC-SHA256 over the engine "
                              "and its sidecar), and the runtime and `inspect` load only engines whose tag verifies. "
                              "An existing file at the engine path that edge-infer did not write is never replaced.")
    p.add_argument("model", nargs="?", help="zoo model name (config/models.yaml) or path to an .onnx")
    p.add_argument("--all", action="store_true", help="build every model of the zoo (the robot-side convert-all)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16",
                   help="int8 needs a QDQ model from `edge-infer quantize` (explicit quantization)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace memory pool limit (MiB)")
    p.add_argument("--batch", help="batch range MIN:OPT:MAX for dynamic-batch inputs, e.g. 1:1:8")
    p.add_argument("--profile", action="append", default=[], metavar="NAME:MIN:OPT:MAX",
                   help="optimization profile of one input, e.g. input:1x3x384x640:1x3x384x640:4x3x384x640")
    p.add_argument("--timing-cache", help="timing cache file (default: <engine dir>/timing.cache; 'none' to disable)")
    p.add_argument("--dla-core", type=int, help="build for this DLA core (Jetson AGX/NX)")
    p.add_argument("--no-gpu-fallback", action="store_true", help="with --dla-core: fail instead of using the GPU")
    p.add_argument("--strongly-typed", choices=("auto", "on", "off"), default="auto",
                   help="auto = strongly typed for int8 QDQ models on TensorRT >= 10, always on TensorRT 11")
    p.add_argument("--fp16-source", choices=("auto", "flag", "onnx"), default="auto",
                   help="fp16 from BuilderFlag.FP16 (flag; TensorRT <= 10) or from an FP16 ONNX built strongly typed "
                        "(onnx; the only way on TensorRT 11); auto = flag where it exists")
    p.add_argument("--opt-level", type=int, choices=range(6), help="builder optimization level (TensorRT default 3)")
    p.add_argument("-o", "--out", help="engine path (default: <engine dir>/<model>.<precision>.engine)")
    p.add_argument("--engine-dir", help="engine directory (default: <models dir>/engines)")
    p.add_argument("--cache", choices=("auto", "never", "force"), default="auto",
                   help="auto: reuse a matching engine, build otherwise; never: fail if none; force: always build")
    p.add_argument("--print-command", choices=("trtexec", "polygraphy"),
                   help="print the equivalent command line and exit (no TensorRT needed)")
    p.add_argument("--trt-major", type=int, help="with --print-command: target TensorRT major version "
                   "(default: trtexec's own with --via trtexec, else the installed bindings', else 10)")
    p.add_argument("--via", choices=("python", "trtexec"), default="python",
                   help="build with the TensorRT Python API or by running trtexec")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_build)


def _targets(args: argparse.Namespace):
    from edge_infer.models.spec import load_zoo
    from edge_infer.backends.tensorrt.build import BuildError, sanitized_path

    zoo = load_zoo()
    mdir = models_dir(args)
    if args.all:
        if args.model or args.out:
            raise BuildError("--all builds every zoo model: give no model name and no --out")
        return [(m.name, sanitized_path(m.path(mdir)), m) for m in zoo.models.values()]
    if not args.model:
        raise BuildError("give a zoo model name or an .onnx path, or --all")
    if args.model.endswith(".onnx"):
        path = Path(args.model).expanduser()
        spec = next((m for m in zoo.models.values() if m.file == path.name), None)
        return [(path.stem, path, spec)]
    spec = zoo.model(args.model)
    return [(spec.name, sanitized_path(spec.path(mdir)), spec)]


def _options(args: argparse.Namespace, onnx_path: Path, spec, engine_dir: Path):
    from edge_infer.backends.tensorrt.build import BuildOptions
    from edge_infer.backends.tensorrt.profiles import parse_profile_arg

    tc = args.timing_cache or str(engine_dir / "timing.cache")
    return BuildOptions.for_onnx(
        onnx_path, spec_profile=spec.profile if spec else None, batch=args.batch,
        explicit_profiles=dict(parse_profile_arg(t) for t in args.profile),
        precision=args.precision, workspace_mb=args.workspace_mb, timing_cache=None if tc == "none" else tc,
        dla_core=args.dla_core, gpu_fallback=not args.no_gpu_fallback, strongly_typed=args.strongly_typed,
        fp16_source=args.fp16_source, optimization_level=args.opt_level,
    )


def _target_major(args: argparse.Namespace) -> int:
    from edge_infer.backends.tensorrt.tool_commands import find_trtexec, trtexec_version
    from edge_infer.backends.tensorrt.trt import parse_major, tensorrt_version

    if args.trt_major:
        return args.trt_major
    if args.via == "trtexec" or args.print_command == "trtexec":
        try:
            major = parse_major(trtexec_version(find_trtexec()))
        except Exception:  # no trtexec here: the line is for another machine
            major = 0
        if major:
            return major
    return parse_major(tensorrt_version()) or 10


def _build(args: argparse.Namespace) -> int:
    from edge_infer.backends.tensorrt import build as eb
    from edge_infer.backends.tensorrt.cache import engine_path_for, get_engine
    from edge_infer.backends.tensorrt.tool_commands import format_command
    from edge_infer.offline.fp16_check import install

    install()  # FP16 graphs (TensorRT 11, --fp16-source onnx) must pass the project's task validation

    engine_dir = Path(args.engine_dir).expanduser() if args.engine_dir else models_dir(args) / "engines"
    echo = (lambda s: None) if args.json else print
    results, failed = [], 0
    for name, onnx_path, spec in _targets(args):
        try:
            if not onnx_path.is_file():
                raise eb.BuildError(f"{onnx_path} not found (run `edge-infer zoo fetch`)")
            options = _options(args, onnx_path, spec, engine_dir)
            engine = Path(args.out).expanduser() if args.out else engine_path_for(engine_dir, onnx_path, args.precision,
                                                                                  args.dla_core)
            if args.print_command:
                major = _target_major(args)
                cmd, parsed = eb.command_for(args.print_command, onnx_path, engine, options, major)
                line = format_command(cmd)
                results.append({"model": name, "command": cmd, "line": line, "trt_major": major,
                                "route": parsed.route.kind, "parsed_onnx": parsed.record})
                if not args.json:
                    print(line)
                continue
            res = get_engine(onnx_path, options, engine_dir, policy=args.cache, engine_path=engine, via=args.via,
                             echo=echo)
            results.append({"model": name, "engine": str(res.engine_path), "action": res.action,
                            "reasons": res.reasons, "seconds": round(res.seconds, 1)})
            echo(f"{name}: {res.action} {res.engine_path}" + (f" ({'; '.join(res.reasons)})" if res.reasons else ""))
        except Exception as e:
            if not args.all:
                raise
            failed += 1
            results.append({"model": name, "error": str(e)})
            echo(f"{name}: FAILED: {e}")
    if args.json:
        emit(args, {"ok": failed == 0, "results": results}, "")
    elif args.all:
        print(f"build --all: {len(results) - failed} ok, {failed} failed")
    return 1 if failed else 0
