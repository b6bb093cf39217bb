"""mediapipe's own FaceMesh as the pipeline benchmark's peer, in a venv of its own.

Why a separate venv and a worker process: mediapipe pins numpy < 2 and protobuf 4 and would drag its own
OpenCV into the product's environment; the product never depends on it. The bench creates
``.venv-bench`` from requirements-bench.txt (pinned, ``--no-deps``: the file is the full lock) the first time
it runs, re-installs only when that file changes, and runs :mod:`edge_infer.bench.mediapipe_worker` there.
Frames travel once, as ``.npy`` files the worker memory-maps; each request then names a frame, so our
pipeline and mediapipe run the same frame back to back (A, B, A, B...), which keeps a shared machine's load
from favouring either side.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from edge_infer.bench.worker_process import JsonLinesProcess
from edge_infer.errors import EdgeInferError

log = logging.getLogger(__name__)

REQUIREMENTS = "requirements-bench.txt"
VENV_ENV = "EDGE_INFER_BENCH_VENV"  # where the bench venv lives (default: .venv-bench next to requirements-bench.txt)
STAMP = ".edge_infer_bench_requirements"  # in the venv: sha256 of the requirements it was built from
WORKER = Path(__file__).with_name("mediapipe_worker.py")
#: variables of this (ROS) venv that must not leak into the peer's python (wrong libraries, wrong modules)
_ENV_DROP = ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "_ROS_WHEELS_BOOTSTRAP_COMPLETE")


class PeerError(EdgeInferError, RuntimeError):
    """The mediapipe peer could not be installed or did not answer; the message says what to do."""


def requirements_file() -> Path:
    """requirements-bench.txt of this source checkout (the bench peer is a developer tool, not installed)."""
    from edge_infer.paths import share_dir

    path = share_dir() / REQUIREMENTS
    if not path.is_file():
        raise PeerError(f"{REQUIREMENTS} not found in {path.parent}: the mediapipe peer runs from a source "
                        "checkout of edge_infer (or pass --no-peer)")
    return path


def default_venv() -> Path:
    return Path(os.environ.get(VENV_ENV) or requirements_file().parent / ".venv-bench")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _ENV_DROP}


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path | None = None, requirements: Path | None = None,
                run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                echo: Callable[[str], None] = print) -> Path:
    """The bench venv's python, created and installed from ``requirements`` unless its stamp matches already
    (a second run costs one file read). Never touches the product's venvs."""
    requirements = requirements or requirements_file()
    venv = venv or default_venv()
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / STAMP
    python = venv_python(venv)
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return python
    echo(f"[bench] installing the mediapipe peer into {venv} from {requirements.name} (first run: ~30 s)")
    # the base interpreter, not this venv's python (which re-executes itself with the ROS libraries)
    base = getattr(sys, "_base_executable", None) or sys.executable
    steps = [[base, "-m", "venv", str(venv)]] if not python.is_file() else []
    steps.append([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "-r",
                  str(requirements)])
    for cmd in steps:
        proc = run(cmd, env=_clean_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
            raise PeerError(f"could not set up the mediapipe peer ({' '.join(cmd[:4])} ...): {tail}")
    stamp.write_text(digest + "\n")
    return python


class MediapipePeer:
    """The worker process serving ``FaceMesh.process`` timings on frames it shares with the caller."""

    def __init__(self, python: Path, frame_sets: dict[str, list[np.ndarray]], start_timeout_s: float = 120.0) -> None:
        """``frame_sets``: name -> RGB uint8 frames (written once to .npy files the worker maps)."""
        self._dir = tempfile.TemporaryDirectory(prefix="edge_infer_peer_")
        for name, frames in frame_sets.items():
            np.save(Path(self._dir.name) / f"{name}.npy", np.stack(frames).astype(np.uint8, copy=False))
        self.worker = JsonLinesProcess([str(python), str(WORKER), self._dir.name], "mediapipe peer", PeerError,
                                       env=_clean_env(), quiet_stderr=True)
        try:
            self.version = self.worker.expect("ready", start_timeout_s)["mediapipe"]
        except BaseException:
            self.close()
            raise

    def process(self, frame_set: str, index: int, static: bool, max_faces: int) -> tuple[float, int]:
        """(ms of ``FaceMesh.process``, faces found) for frame ``index`` of ``frame_set``."""
        msg = self.worker.request({"cmd": "run", "set": frame_set, "index": int(index), "static": bool(static),
                                   "max_faces": int(max_faces)}, "ran", 60.0)
        return float(msg["ms"]), int(msg["faces"])

    def close(self) -> None:
        self.worker.close()
        self._dir.cleanup()

    def __enter__(self) -> "MediapipePeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
