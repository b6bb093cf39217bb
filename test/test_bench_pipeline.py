"""`edge-infer bench pipeline`: the mediapipe peer (its own venv, a worker process) and the report's goals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_infer.bench import peer as peer_mod
from edge_infer.bench.peer import MediapipePeer, PeerError, ensure_venv
from edge_infer.bench.pipeline import TARGETS, close_up, print_pipeline_bench, run_pipeline_bench
from edge_infer.samples.scenes import load_samples

FAKE_MEDIAPIPE = '''
"""A stand-in with mediapipe's FaceMesh API: one face wherever the frame is not blank (tests only)."""
import types

__version__ = "0.0-fake"


class _Result:
    def __init__(self, n):
        self.multi_face_landmarks = [object()] * n or None


class FaceMesh:
    def __init__(self, static_image_mode, max_num_faces, refine_landmarks):
        self.max_num_faces = max_num_faces

    def process(self, frame):
        return _Result(min(self.max_num_faces, int(frame.std() > 0)))

    def close(self):
        pass


solutions = types.SimpleNamespace(face_mesh=types.SimpleNamespace(FaceMesh=FaceMesh))
'''


@pytest.fixture
def fake_peer_python(tmp_path: Path) -> Path:
    """A 'venv python' that runs the real worker against the stand-in mediapipe (no bench venv needed)."""
    pkg = tmp_path / "fake_site" / "mediapipe"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_MEDIAPIPE)
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\nPYTHONPATH={pkg.parent} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    return python


def test_ensure_venv_installs_once_and_again_when_the_pins_change(tmp_path: Path):
    req = tmp_path / "requirements-bench.txt"
    req.write_text("mediapipe==0.10.21\n")
    venv = tmp_path / "venv"
    calls: list[list[str]] = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        assert "PYTHONPATH" not in kwargs["env"] and "LD_LIBRARY_PATH" not in kwargs["env"]  # a clean env
        if cmd[1:3] == ["-m", "venv"]:
            (venv / "bin").mkdir(parents=True)
            (venv / "bin" / "python").write_text("")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    quiet = dict(run=run, echo=lambda s: None)
    assert ensure_venv(venv, req, **quiet) == venv / "bin" / "python"
    assert [c[1:3] for c in calls] == [["-m", "venv"], ["-m", "pip"]]
    assert "--no-deps" in calls[1] and str(req) in calls[1]  # the file is the full lock
    ensure_venv(venv, req, **quiet)
    assert len(calls) == 2  # stamp matches: nothing runs
    req.write_text("mediapipe==0.10.21\nnumpy==1.26.4\n")
    ensure_venv(venv, req, **quiet)
    assert len(calls) == 3 and calls[2][1:3] == ["-m", "pip"]  # venv kept, pins re-installed

    def failing(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for mediapipe==9")

    req.write_text("mediapipe==9\n")
    with pytest.raises(PeerError, match="No matching distribution"):
        ensure_venv(venv, req, run=failing, echo=lambda s: None)


def test_the_pins_are_a_full_lock_outside_the_product():
    req = peer_mod.requirements_file()
    pins = [ln for ln in req.read_text().splitlines() if ln and not ln.startswith("#")]
    assert pins and all("==" in ln for ln in pins) and "mediapipe==0.10.21" in pins
    product = "".join(p.read_text() for p in req.parent.glob("requirements*.txt") if p != req)
    assert "mediapipe" not in product


def test_worker_protocol_and_peer_errors(fake_peer_python: Path):
    blank = np.zeros((8, 8, 3), np.uint8)
    photo = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    with MediapipePeer(fake_peer_python, {"a": [blank, photo]}) as p:
        assert p.version == "0.0-fake"
        ms0, faces0 = p.process("a", 0, static=True, max_faces=1)
        ms1, faces1 = p.process("a", 1, static=False, max_faces=1)
        assert (faces0, faces1) == (0, 1) and ms0 >= 0 and ms1 >= 0
        with pytest.raises(PeerError, match="No such file"):
            p.process("missing_set", 0, static=True, max_faces=1)
        assert p.process("a", 3, static=True, max_faces=1)[1] == 1  # indices cycle; the worker kept serving
    assert p.worker.proc.poll() is not None


def test_report_has_every_goal_with_its_verdict(models_dir: Path, fake_peer_python: Path):
    node = {"end_to_end_p50_ms": 25.0, "raw_models_p50_ms": 20.5, "stages_p50_ms": {"convert": 0.1},
            "before_processing_p50_ms": 2.0, "camera": "camera in another process"}
    r = run_pipeline_bench(models_dir, frames=3, progress=False, node_e2e=lambda m, n: node,
                           peer_factory=lambda sets: MediapipePeer(fake_peer_python, sets))
    assert set(r["targets"]) == set(TARGETS)
    assert r["targets"]["e2e_p50_minus_raw_ms"] == {"target": 3.0, "cmp": "<=", "measured": 4.5, "met": False}
    assert r["peer"]["group"]["ours"]["faces_min"] == 6 and r["targets"]["group_faces_found"]["met"] is True
    assert r["peer"]["tracked"]["mediapipe"]["faces_max"] == 1  # the stand-in finds the close-up face
    short = r["peer"]["equal_range"]  # information beside the goals: our detector at mediapipe's range
    assert short["detector_size"] == [320, 192] and short["group"]["ours"]["faces_min"] == 6
    assert short["detect_every_frame"]["speed_ratio"] > 0 and "detect_vs_mediapipe_static" in r["targets"]
    for name in ("tracked_vs_mediapipe_video", "detect_vs_mediapipe_static"):
        t = r["targets"][name]
        assert t["measured"] > 0 and t["met"] == (t["measured"] >= t["target"])
    assert "litert[" in r["backend"]  # auto on this CPU: LiteRT runs the mesh
    assert {"preprocess", "detector", "mesh", "emotion"} <= set(r["1_face"]["stages_ms_p50"])
    lines: list[str] = []
    print_pipeline_bench(r, echo=lines.append)
    text = "\n".join(lines)
    assert "0.0-fake" in text and "(goal <= 3.0)  NOT met" in text and "stamp to worker" in text
    assert "at mediapipe's short range (our detector at 320x192" in text
    one, six = r["1_face"]["json"], r["6_face"]["json"]  # the JSON mirror's cost, measured on real results
    assert one["ms_p50"] > 0 and six["kbytes"] > 4 * one["kbytes"] > 0 and "~/faces JSON" in text
    assert len(r["load_average"]) == 3 and "load average at start" in text


def test_unmeasured_goals_say_so(models_dir: Path):
    r = run_pipeline_bench(models_dir, frames=2, progress=False)
    assert r["targets"]["tracked_vs_mediapipe_video"]["met"] is None
    lines: list[str] = []
    print_pipeline_bench(r, echo=lines.append)
    assert any("not measured" in ln for ln in lines)


def test_real_mediapipe_finds_the_close_up_and_not_the_group(models_dir: Path):
    """With the bench venv made (make bench-env): mediapipe's short-range detector finds the close-up face
    the peer comparison uses, and none of the small faces of the 6-face frame (the issue's observation)."""
    try:
        python = peer_mod.venv_python(peer_mod.default_venv())
        stamped = (python.parent.parent / peer_mod.STAMP).is_file()
    except PeerError:
        stamped = False
    if not stamped:
        pytest.skip("no bench venv here (make bench-env / edge-infer bench pipeline makes it)")
    from edge_infer.samples.scenes import scene

    samples = load_samples(models_dir)
    rgb = lambda bgr: np.ascontiguousarray(bgr[..., ::-1])  # noqa: E731
    sets = {"close": [rgb(close_up(samples, i)) for i in range(3)], "group": [rgb(scene(samples, 0, 6))]}
    with MediapipePeer(python, sets) as p:
        assert p.version == "0.10.21"
        assert [p.process("close", i, static=False, max_faces=1)[1] for i in range(3)] == [1, 1, 1]
        assert p.process("group", 0, static=True, max_faces=8)[1] == 0
