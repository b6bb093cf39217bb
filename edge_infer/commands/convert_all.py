"""`edge-infer convert-all`: the whole zoo into a deploy directory with a manifest (cached re-runs)."""

from __future__ import annotations

import argparse

from edge_infer.commands import emit, add_json, add_models_dir, models_dir
from edge_infer.commands.export import add_target


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-all", help="export/import -> sanitize -> fp16/int8 -> validate, every zoo model")
    p.add_argument("deploy_dir", help="output directory (manifest.json + one folder per model)")
    p.add_argument("names", nargs="*", help="only these zoo models (default: all)")
    add_target(p)
    p.add_argument("--variants", default="fp16,int8", help="comma separated: fp16, int8, int8-dynamic ('' for none)")
    p.add_argument("--images", help="image folder for validation and INT8 calibration (default: the zoo samples)")
    p.add_argument("--zoo", help="zoo file (default: installed config/models.yaml)")
    p.add_argument("--force", action="store_true", help="redo every step even if nothing changed")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge_infer.offline.convert_all import convert_all

    r = convert_all(args.deploy_dir, models_dir(args), args.names or None, target=args.target,
                    variants=[v.strip() for v in args.variants.split(",") if v.strip()], images=args.images,
                    zoo_path=args.zoo, force=args.force, progress=not args.json)
    manifest = json.loads(Path(r["manifest"]).read_text())
    lines = [f"convert-all -> {r['deploy_dir']} ({r['seconds']:.1f} s; {r['steps_run']} steps run, "
             f"{r['steps_skipped']} up to date)"]
    for name in r["models"]:
        m = manifest["models"][name]
        for variant, f in m["files"].items():
            v = f.get("validation", {})
            lines.append(f"  {name:<20} {variant:<5} {f['size_bytes'] / 1e6:7.2f} MB  {v.get('verdict', '-'):<4}  {f['path']}"
                         + ("" if f.get("deployable", True) else "  (rejected: not deployed)"))
        for step, err in m.get("errors", {}).items():
            lines.append(f"  {name:<20} {step:<5} {err}")
    emit(args, {"ok": not r["failed_validations"], **r}, "\n".join(lines))
    return 1 if r["failed_validations"] else 0
