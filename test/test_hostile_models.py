"""Hostile Keras / TFLite files through the commands that read them (issue 19's trust boundary).

Keras files can carry Python bytecode (a `Lambda` layer's function is marshalled into the model's config);
Keras 3 refuses to deserialize it under `safe_mode=True`, which the Keras backend (the validation reference)
always passes. `edge-infer import` never runs Keras at all: it reads the h5's weights with h5py into a torch
module by layer name. These tests build such files with the real Keras and check both paths: one-line error,
exit 2, the lambda never ran, nothing outside the output changed, memory bounded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostile import changed_paths, run_cli, tree_snapshot


def _lambda_model(tmp_path: Path, marker: Path, suffix: str) -> Path:
    """A real Keras model whose Lambda layer writes ``marker`` when it is deserialized or run."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    inp = keras.Input((64, 64, 1))
    target = str(marker)  # a plain string in the closure: Keras serializes the lambda's bytecode and closure
    out = keras.layers.Lambda(lambda x: (open(target, "w").write("ran"), x)[1])(inp)  # noqa: SIM115
    out = keras.layers.Flatten()(out)
    out = keras.layers.Dense(7)(out)
    path = tmp_path / f"lambda{suffix}"
    keras.Model(inp, out).save(str(path))
    marker.unlink(missing_ok=True)  # saving traced the function once; what counts is what loading does
    return path


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_keras_lambda_reference_is_refused_without_running(tmp_path: Path, models_dir: Path, suffix: str) -> None:
    marker = tmp_path / "PWNED"
    model = _lambda_model(tmp_path, marker, suffix)
    report = tmp_path / "out" / "report.json"
    before = tree_snapshot(tmp_path, models_dir)
    r = run_cli(["validate", str(models_dir / "emotion.onnx"), str(model), "--name", "emotion",
                 "--report", str(report)])
    line = r.assert_one_line_error("keras")
    assert "lambda" in line.lower(), line  # Keras' own reason survives into the one line
    assert not marker.exists(), "the Lambda's code ran"
    assert changed_paths(before, tree_snapshot(tmp_path, models_dir), allowed=(report.parent,)) == []
    r.assert_memory_bounded()


def test_import_of_hostile_keras_and_tflite_files_is_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    lam = _lambda_model(tmp_path, marker, ".h5")
    garbage_tflite = tmp_path / "garbage.tflite"
    garbage_tflite.write_bytes(os.urandom(4096))
    garbage_h5 = tmp_path / "garbage.h5"
    garbage_h5.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4096))  # the HDF5 signature, then noise
    out = tmp_path / "out"
    before = tree_snapshot(tmp_path)
    for src in (lam, garbage_tflite, garbage_h5):
        r = run_cli(["import", str(src), str(out / (src.stem + ".onnx"))])
        r.assert_one_line_error(src.name)
        r.assert_memory_bounded()
    assert not marker.exists(), "the Lambda's code ran"
    assert changed_paths(before, tree_snapshot(tmp_path), allowed=(out,)) == []
    assert not any(out.glob("*.onnx")), "a failed import left an output file"
