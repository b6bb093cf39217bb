"""The thin executables in tools/: each answers --help, and the convert script runs on a zoo model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
VENV_BIN = Path(sys.executable).parent


def _env(models_dir: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "PYTHON": sys.executable,
            "MODELS_DIR": str(models_dir)}


@pytest.mark.parametrize("tool", ["export_model.py", "convert_all_models.sh", "benchmark_edge.sh"])
def test_tool_help(tool: str, models_dir: Path) -> None:
    cmd = [sys.executable, str(TOOLS / tool), "--help"] if tool.endswith(".py") else [str(TOOLS / tool), "--help"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(models_dir), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower() or "tools/" in r.stdout


def test_convert_all_script_on_the_emotion_model(models_dir: Path, tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    r = subprocess.run([str(TOOLS / "convert_all_models.sh"), str(deploy), "emotion"], capture_output=True,
                       text=True, env=_env(models_dir), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    manifest = json.loads((deploy / "manifest.json").read_text())
    files = manifest["models"]["emotion"]["files"]
    assert {"fp32", "fp16", "int8"} <= set(files)
    assert all(f["validation"]["verdict"] == "pass" for f in files.values())
    assert "2/2 TensorRT engines" in r.stdout  # the engine step ran (built, or said why not, on this machine)


def test_benchmark_script_writes_json_and_plot(models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    r = subprocess.run([str(TOOLS / "benchmark_edge.sh"), str(out), "emotion", "--backends", "onnxruntime",
                        "--batch", "1", "--runs", "5", "--warmup", "1", "--models-dir", str(models_dir)],
                       capture_output=True, text=True, env=_env(models_dir), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((out / "benchmark.json").read_text())
    (result,) = report["models"][0]["results"]
    assert result["backend"] == "onnxruntime" and result["status"] == "ok" and result["latency_ms"]["mean"] > 0
    assert (out / "benchmark.png").stat().st_size > 1000
