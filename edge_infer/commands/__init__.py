"""Thin argparse wrappers, one module per `edge-infer` verb."""

from __future__ import annotations

import argparse
import json

from edge_infer.paths import default_models_dir


def add_models_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=str, default=None,
                   help=f"models directory (default: $EDGE_INFER_MODELS or {default_models_dir()})")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def models_dir(args: argparse.Namespace):
    from pathlib import Path

    return Path(args.models_dir).expanduser() if getattr(args, "models_dir", None) else default_models_dir()


def emit(args: argparse.Namespace, result: dict, human: str) -> None:
    """Print ``result`` as JSON with --json, else the human text."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=str))
    else:
        print(human)
