"""`edge-infer bundle`: engine/ONNX + benchmark.json + sample input + manifest, as .tar.gz or a directory;
`edge-infer bundle --verify BUNDLE` checks one received from elsewhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_infer.commands import emit, add_json, add_models_dir, models_dir
from edge_infer.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="pack engine/ONNX, benchmark.json, a sample input and a manifest")
    p.add_argument("model", nargs="?", help="zoo model name (its ONNX and, when present, its engines are packed) "
                                            "or a file")
    p.add_argument("-o", "--out", help="output: NAME.tar.gz (archive) or a directory (new or empty)")
    p.add_argument("--force", action="store_true",
                   help="replace a previous bundle at --out (only a bundle: its manifest and the files it lists)")
    p.add_argument("--verify", metavar="BUNDLE",
                   help="check a bundle (directory or .tar.gz) against its manifest instead of writing one")
    p.add_argument("--files", nargs="*", default=[], help="more engines / ONNX files to include")
    p.add_argument("--benchmark", help="benchmark.json to include (default: bench_out/benchmark.json if present)")
    p.add_argument("--engine-dir", help="engine directory (default: <models dir>/engines)")
    p.add_argument("--no-sample", action="store_true", help="do not include sample_input.npz")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_bundle)


def _bundle(args: argparse.Namespace) -> int:
    if args.verify:
        return _verify(args)
    if not args.model or not args.out:
        raise ConfigError("bundle needs MODEL and -o OUT (or --verify BUNDLE)")
    from edge_infer.backends import create_backend
    from edge_infer.models.spec import load_zoo
    from edge_infer.offline.bundle import make_bundle
    from edge_infer.offline.inputs import frame_input

    mdir = models_dir(args)
    zoo = load_zoo()
    files = [Path(f).expanduser() for f in args.files]
    spec = zoo.models.get(args.model)
    sample = None
    if spec is not None:
        onnx_path = spec.path(mdir)
        files.insert(0, onnx_path)
        engine_dir = Path(args.engine_dir).expanduser() if args.engine_dir else mdir / "engines"
        files += sorted(engine_dir.glob(f"{onnx_path.stem}.*.engine")) if engine_dir.is_dir() else []
        if not args.no_sample:
            with create_backend("onnxruntime", str(onnx_path)) as model:
                sample = frame_input(spec.task, model.inputs, mdir).feeds
    else:
        files.insert(0, Path(args.model).expanduser())
    bench = args.benchmark or ("bench_out/benchmark.json" if Path("bench_out/benchmark.json").is_file() else None)
    extra = {"model": args.model, "task": spec.task if spec else None, "licence": spec.licence if spec else None}
    manifest = make_bundle(args.out, files, bench, sample, extra, force=args.force)
    emit(args, manifest, f"bundle {manifest['path']}: " + ", ".join(f["name"] for f in manifest["files"])
         + ", manifest.json")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from edge_infer.offline.bundle import BundleError, verify_bundle

    problems = verify_bundle(Path(args.verify).expanduser())
    if problems:
        raise BundleError(f"bundle {args.verify} does not match its manifest: " + "; ".join(problems))
    emit(args, {"ok": True, "path": args.verify, "problems": []}, f"bundle {args.verify}: intact")
    return 0
