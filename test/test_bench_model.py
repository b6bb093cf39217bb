"""`edge-infer bench model` on the real zoo models with torch and ONNX Runtime (the runtimes present here),
plus `edge-infer bundle`. Runtimes that are absent must appear as skipped with a reason."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edge_infer.backends import create_backend
from edge_infer.bench import model as bm
from edge_infer.offline import inputs
from edge_infer.offline.bundle import BundleError, make_bundle, verify_bundle

FAST = dict(warmup=2, runs=8, max_seconds=2.0, min_runs=3)


@pytest.fixture(scope="module")
def report(models_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = bm.ModelBenchConfig(backends=["torch", "onnxruntime", "onnxruntime-cuda", "tensorrt"], batches=[1, 8], **FAST)
    return bm.run_benchmark(models_dir, ["face_detector", "emotion", "face_mesh"], cfg, out, echo=lambda s: None), out


def _results(rep, model):
    return next(m for m in rep["models"] if m["model"] == model)["results"]


def test_inputs_come_from_the_real_preprocessing_at_720p(models_dir):
    cfg = bm.ModelBenchConfig()
    frame = inputs.camera_frame(models_dir, cfg.resolution)
    assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8
    shapes = {}
    for name, task, onnx in [("face_detector", "face_detection", "face_detector.onnx"), ("emotion", "emotion", "emotion.onnx"),
                             ("face_mesh", "face_mesh", "face_mesh.onnx")]:
        inp = inputs.frame_input(task, create_backend("onnxruntime", str(models_dir / onnx)).inputs, models_dir,
                                 cfg.resolution)
        (k, v), = inp.feeds.items()
        shapes[name] = v.shape
        assert v.dtype == np.float32 and inp.preprocess is not None and "1280x720" in inp.description
        assert inp.batch(8)[k].shape == (8, *v.shape[1:])
    assert shapes == {"face_detector": (1, 3, 384, 640), "emotion": (1, 1, 64, 64), "face_mesh": (1, 192, 192, 3)}


def test_benchmark_json_plot_and_statuses(report):
    rep, out = report
    doc = json.loads((out / "benchmark.json").read_text())
    assert doc["schema"] == "edge_infer/benchmark" and doc["version"] == 1
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))
    assert doc["config"]["batches"] == [1, 8] and doc["host"]["cpus"]
    for m in doc["models"]:
        assert m["onnx_sha256"] and m["input"]["preprocess_ms"]["count"] >= 5
        by = {(r["backend"], r["batch"]): r for r in m["results"]}
        assert set(by) == {(b, n) for b in ("torch", "onnxruntime", "onnxruntime-cuda", "tensorrt") for n in (1, 8)}
        for n in (1, 8):
            ort = by[("onnxruntime", n)]
            assert ort["status"] == "ok", ort
            lat = ort["latency_ms"]
            assert set(lat) == {"count", "mean", "p50", "p90", "p99", "min", "max"}
            assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and lat["count"] >= 3
            assert ort["items_per_s"] == pytest.approx(n * 1e3 / lat["mean"], rel=0.01)
            assert ort["max_abs_diff_vs_onnxruntime_cpu"] == 0.0
        for b in ("tensorrt", "onnxruntime-cuda"):
            r = by[(b, 1)]
            if r["status"] == "skipped":
                assert r["reason"]  # says what is missing
        if importlib.util.find_spec("tensorrt") is None:
            assert "python3-libnvinfer" in by[("tensorrt", 1)]["reason"]


def test_torch_column_and_speedup(report):
    rep, _ = report
    emo = {(r["backend"], r["batch"]): r for r in _results(rep, "emotion")}
    for n in (1, 8):
        t, o = emo[("torch", n)], emo[("onnxruntime", n)]
        assert t["status"] == "ok" and "mini_xception" in t["note"]  # the hand-written torch mini-Xception
        assert t["max_abs_diff_vs_onnxruntime_cpu"] < 1e-4  # same model, two runtimes
        assert t["speedup_vs_torch"] == 1.0
        assert o["speedup_vs_torch"] == pytest.approx(t["latency_ms"]["mean"] / o["latency_ms"]["mean"], rel=0.02)
    for model in ("face_detector", "face_mesh"):
        r = next(r for r in _results(rep, model) if r["backend"] == "torch")
        if importlib.util.find_spec("onnx2torch") is None:
            assert r["status"] == "skipped" and "onnx2torch" in r["reason"]
        else:
            assert r["status"] == "ok" and r["max_abs_diff_vs_onnxruntime_cpu"] < 1e-2


def test_cli_bench_model(models_dir, tmp_path, capsys):
    from edge_infer.cli import main

    rc = main(["bench", "model", "emotion", "--backends", "torch,onnxruntime,tensorrt", "--batch", "1,4",
               "--warmup", "1", "--runs", "5", "--out", str(tmp_path), "--models-dir", str(models_dir)])
    out = capsys.readouterr().out
    assert rc == 0 and "emotion" in out and "wrote" in out
    doc = json.loads((tmp_path / "benchmark.json").read_text())
    assert [r["batch"] for r in doc["models"][0]["results"] if r["backend"] == "onnxruntime"] == [1, 4]
    assert main(["bench", "model", "emotion", "--backends", "tflite", "--out", str(tmp_path),
                 "--models-dir", str(models_dir)]) == 2
    assert "unknown backends" in capsys.readouterr().err


def test_torch_backend_errors(tmp_path, models_dir):
    import torch

    from edge_infer.backends import BackendError, create_backend

    bad = tmp_path / "bad.pt"
    torch.save({"model_state_dict": {}, "config": {"architecture": "resnet9000"}}, bad)
    with pytest.raises(BackendError, match="unknown architecture 'resnet9000'"):
        create_backend("torch", str(bad))
    with pytest.raises(BackendError, match="not found"):
        create_backend("torch", str(tmp_path / "none.pt"))
    if importlib.util.find_spec("onnx2torch") is None:
        with pytest.raises(BackendError, match="pip install onnx2torch"):
            create_backend("torch", str(models_dir / "face_mesh.onnx"))
    # TorchScript files load too, when trusted: loading one runs code stored in it (test_hostile_checkpoints.py)
    ts = tmp_path / "m.ts"
    torch.jit.save(torch.jit.script(torch.nn.ReLU()), ts)
    with pytest.raises(BackendError, match="TorchScript archive.*--trust-checkpoint"):
        create_backend("torch", str(ts))
    b = create_backend("torch", str(ts), trust_checkpoint=True)
    assert np.array_equal(b.run({"input": np.array([-1.0, 2.0], np.float32)})["output"], [0.0, 2.0])


def test_runtime_backends_import_no_model_code() -> None:
    """backends/ is the lowest floor: loading every backend module pulls in nothing from models/ or above."""
    import subprocess
    import sys

    code = ("import sys; import edge_infer.backends.torch_backend, edge_infer.backends.torch_checkpoint, "
            "edge_infer.backends.litert_backend, edge_infer.backends.keras_backend, "
            "edge_infer.backends.onnxruntime_backend; "
            "bad = sorted(m for m in sys.modules if m.startswith(('edge_infer.models', 'edge_infer.offline', "
            "'edge_infer.pipeline', 'edge_infer.bench'))); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bench_config_and_errors() -> None:
    from edge_infer.errors import EdgeInferError

    assert bm.ModelBenchConfig().resolution == inputs.DEFAULT_RESOLUTION and not hasattr(bm, "BenchConfig")
    assert issubclass(bm.BenchError, EdgeInferError) and not hasattr(bm, "Skip")  # _Skip never leaves the module


@pytest.mark.parametrize("fmt", ["tar.gz", "dir"])
def test_bundle(fmt, report, models_dir, tmp_path):
    rep, out = report
    sample = {"input": np.ones((1, 1, 64, 64), np.float32)}
    engine = tmp_path / "emotion.fp16.engine"
    engine.write_bytes(b"ENGINE")
    (tmp_path / "emotion.fp16.engine.json").write_text("{}")
    target = tmp_path / ("b.tar.gz" if fmt == "tar.gz" else "bundle_dir")
    man = make_bundle(target, [models_dir / "emotion.onnx", engine], out / "benchmark.json", sample, {"model": "emotion"})
    names = {f["name"] for f in man["files"]}
    assert names == {"emotion.onnx", "emotion.fp16.engine", "emotion.fp16.engine.json", "benchmark.json",
                     "benchmark.png", "sample_input.npz"}
    assert man["sample_input"] == {"input": {"shape": [1, 1, 64, 64], "dtype": "float32"}}
    assert verify_bundle(target) == []
    if fmt == "dir":
        (target / "benchmark.json").write_text("{}")
        assert verify_bundle(target) == ["benchmark.json sha256 mismatch"]
        make_bundle(target, [models_dir / "emotion.onnx"], force=True)  # replaces the previous bundle atomically
        assert sorted(p.name for p in target.iterdir()) == ["emotion.onnx", "manifest.json"]
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle_dir")]
    else:
        with tarfile.open(target) as tar:
            assert "manifest.json" in tar.getnames()
            npz = np.load(tar.extractfile("sample_input.npz"))
            assert np.array_equal(npz["input"], sample["input"])
    with pytest.raises(BundleError, match="not found"):
        make_bundle(tmp_path / "x.tar.gz", [tmp_path / "missing.onnx"])


def test_cli_bundle(models_dir, tmp_path, capsys):
    from edge_infer.cli import main

    rc = main(["bundle", "emotion", "-o", str(tmp_path / "emo.tar.gz"), "--models-dir", str(models_dir),
               "--engine-dir", str(tmp_path / "none"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and {f["name"] for f in doc["files"]} >= {"emotion.onnx", "sample_input.npz"}
    assert verify_bundle(tmp_path / "emo.tar.gz") == []
