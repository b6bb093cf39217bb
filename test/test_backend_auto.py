"""`backend: auto` on a CPU: LiteRT for models that came from TFLite (their zoo `litert` file, renamed to the
ONNX I/O names), ONNX Runtime otherwise; and the CPU thread default both runtimes share."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import edge_infer.backends as backends
from edge_infer.backends import BackendError, create_backend
from edge_infer.backends.base import default_cpu_threads
from edge_infer.models import face_mesh as fm
from edge_infer.models.spec import load_zoo


@pytest.fixture
def mesh_files(models_dir):
    spec = load_zoo().model("face_mesh")
    return spec.path(models_dir), spec.litert.path(models_dir), spec.litert.names


def _no_gpu():
    if backends.resolve_auto()[0] != "onnxruntime":
        pytest.skip("TensorRT + GPU present: auto selects TensorRT here")


def test_auto_picks_litert_for_a_tflite_origin_model_with_the_onnx_names(mesh_files, astronaut_rgb, caplog):
    _no_gpu()
    onnx_path, tflite, names = mesh_files
    backends._auto_logged.clear()
    with caplog.at_level(logging.INFO, logger="edge_infer.backends"):
        auto = create_backend("auto", str(onnx_path), litert_model=str(tflite), litert_names=names,
                              intra_op_threads=1)
    assert auto.name.startswith("litert[") and auto.name.endswith(",1t]")
    assert auto.input_names == [fm.INPUT_NAME] and auto.output_names == [fm.LANDMARKS, fm.FACE_FLAG]
    logged = [r.getMessage() for r in caplog.records if "backend auto" in r.getMessage()]
    assert len(logged) == 1 and "litert" in logged[0] and "face_mesh.onnx" in logged[0]
    ort = create_backend("onnxruntime", str(onnx_path))
    rois = [fm.Roi(225.7, 117.9, 172.5, 172.5, 0.032), fm.Roi(230, 120, 190, 190, -0.1)]
    crops = fm.crop_batch(astronaut_rgb, rois)
    a, b = auto.run({fm.INPUT_NAME: crops}), ort.run({fm.INPUT_NAME: crops})
    assert a[fm.LANDMARKS].shape == b[fm.LANDMARKS].shape == (2, 1, 1, 1404)
    assert np.abs(a[fm.LANDMARKS] - b[fm.LANDMARKS]).max() < 1e-3  # crop pixels
    assert np.abs(a[fm.FACE_FLAG] - b[fm.FACE_FLAG]).max() < 1e-3


def test_auto_falls_back_to_onnxruntime_and_says_why(mesh_files, tmp_path, monkeypatch, caplog):
    _no_gpu()
    onnx_path, tflite, names = mesh_files
    backends._auto_logged.clear()
    with caplog.at_level(logging.INFO, logger="edge_infer.backends"):
        missing = create_backend("auto", str(onnx_path), litert_model=str(tmp_path / "none.tflite"),
                                 litert_names=names)
        real_find_spec = backends.importlib.util.find_spec
        monkeypatch.setattr(backends.importlib.util, "find_spec",
                            lambda name, *a: None if name == "ai_edge_litert" else real_find_spec(name, *a))
        no_runtime = create_backend("auto", str(onnx_path), litert_model=str(tflite), litert_names=names)
    assert missing.name.startswith("onnxruntime") and no_runtime.name.startswith("onnxruntime")
    logged = " | ".join(r.getMessage() for r in caplog.records if "backend auto" in r.getMessage())
    assert "none.tflite missing" in logged and "ai-edge-litert is not installed" in logged


def test_litert_renames_only_tensors_it_has(mesh_files):
    _, tflite, _ = mesh_files
    with pytest.raises(BackendError, match=r"no tensors named \['conv2d_99'\]"):
        create_backend("litert", str(tflite), names={"conv2d_99": "x"})


@pytest.mark.parametrize("cpus,threads", [(1, 1), (2, 1), (3, 2), (8, 4), (64, 4)])
def test_cpu_threads_leave_a_core_and_stop_at_four(monkeypatch, cpus, threads):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)))
    assert default_cpu_threads() == threads


def test_onnxruntime_and_litert_use_the_default_when_given_zero(mesh_files, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(3)))
    onnx_path, tflite, _ = mesh_files
    ort = create_backend("onnxruntime", str(onnx_path), intra_op_threads=0)
    assert ort.session.get_session_options().intra_op_num_threads == 2
    assert create_backend("litert", str(tflite)).name.endswith(",2t]")
    assert create_backend("onnxruntime", str(onnx_path), intra_op_threads=3).session.get_session_options() \
        .intra_op_num_threads == 3
