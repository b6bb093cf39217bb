"""Keras .h5 -> torch checkpoint -> ONNX, without TensorFlow or Keras.

TensorFlow is not installable on the dev machines and tf2onnx needs it, so Keras models are rebuilt as
torch modules (edge_infer.models.architectures) and exported with torch's legacy TorchScript exporter,
which needs no onnxscript and always writes a single self-contained .onnx file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from edge_infer.fileio import atomic_path
from edge_infer.models.architectures import INPUT_SIZE, NUM_CLASSES, load_mini_xception
from edge_infer.models.emotion import INPUT_NAME, OUTPUT_NAME  # the zoo's emotion I/O names


def keras_h5_to_onnx(
    h5_path: str | Path,
    onnx_path: str | Path,
    checkpoint_path: str | Path | None = None,
    opset: int = 17,
) -> Path:
    """Convert fer's mini-Xception h5 to ONNX (input ``input`` [batch,1,64,64], output ``scores`` [batch,7]).

    The optional checkpoint uses the project's torch checkpoint layout ({"model_state_dict", "config"}),
    so the generic torch -> ONNX exporter can rebuild the model by architecture name later.
    """
    model = load_mini_xception(h5_path)
    if checkpoint_path is not None:
        ckpt = {
            "model_state_dict": model.state_dict(),
            "config": {
                "architecture": "mini_xception",
                "input_size": INPUT_SIZE,
                "num_classes": NUM_CLASSES,
                "source": str(Path(h5_path).name),
            },
        }
        with atomic_path(checkpoint_path) as tmp:  # a crash never leaves a half file a node would load
            torch.save(ckpt, tmp)
    dummy = torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE)
    with atomic_path(onnx_path) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            # the legacy exporter is a deliberate choice (see module docstring); its deprecation notices are noise
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model, (dummy,), str(tmp), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
    return Path(onnx_path)
