"""Run a model given as a file, whatever produced it: ONNX (ONNX Runtime), torch checkpoint, Keras h5.

Validation compares an ONNX file against its *source*; the source may be another ONNX file (variants), a
torch checkpoint (exported models) or the original Keras .h5 (an independent implementation, run by Keras 3
on its torch backend). Every runner takes and returns name -> array dicts in the ONNX model's layout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from edge_infer.errors import OfflineError, require_file

Runner = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".tar", ".bin")
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")


def onnx_runner(path: str | Path, threads: int = 0) -> Runner:
    import onnxruntime as ort

    from edge_infer.offline.onnx_info import load_onnx

    path = require_file(path, "ONNX model")
    load_onnx(path, check=False)  # clear message for truncated files before ORT's own
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise OfflineError(f"ONNX Runtime cannot load {path}: {str(e).splitlines()[0]}") from None
    names = [o.name for o in sess.get_outputs()]

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(names, sess.run(names, dict(feeds))))
        except Exception as e:
            shapes = {k: list(v.shape) for k, v in feeds.items()}
            want = {i.name: i.shape for i in sess.get_inputs()}
            raise OfflineError(f"input shape mismatch running {path.name}: got {shapes}, model expects {want} "
                               f"({str(e).splitlines()[0][:200]})") from None

    return run


def torch_runner(path: str | Path, input_names: list[str], output_names: list[str], architecture: str | None = None,
                 kwargs: dict | None = None, trust: bool = False) -> Runner:
    import torch

    from edge_infer.offline.checkpoints import build_module, load_checkpoint

    module, _ = build_module(load_checkpoint(path, trust=trust), architecture, kwargs)

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in input_names])
        outs = out if isinstance(out, (tuple, list)) else [out]
        return {n: o.detach().numpy() for n, o in zip(output_names, outs)}

    return run


def keras_runner(path: str | Path, input_names: list[str], output_names: list[str]) -> Runner:
    """Keras 3 (torch backend) reading the h5 itself: an implementation independent of ours.

    ``safe_mode`` keeps Keras from deserializing Lambda code. NCHW inputs are transposed to Keras' NHWC.
    """
    path = require_file(path, "Keras model")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise OfflineError("validating against a Keras file needs keras: pip install keras==3.15.1") from None
    try:
        model = keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as e:
        raise OfflineError(f"Keras cannot load {path}: {str(e).splitlines()[0]}") from None
    want = tuple(model.input_shape[1:])

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds[input_names[0]]
        if x.ndim == 4 and tuple(x.shape[1:]) != want and tuple(x.shape[2:] + x.shape[1:2]) == want:
            x = x.transpose(0, 2, 3, 1)  # NCHW -> NHWC
        y = model.predict(x, verbose=0, batch_size=len(x))
        ys = y if isinstance(y, (list, tuple)) else [y]
        return {n: np.asarray(o) for n, o in zip(output_names, ys)}

    return run


def source_runner(path: str | Path, input_names: list[str], output_names: list[str], **torch_opts) -> tuple[Runner, str]:
    """(runner, kind) for a reference file chosen by suffix."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return onnx_runner(p), "onnxruntime"
    if suffix in TORCH_SUFFIXES:
        return torch_runner(p, input_names, output_names, **torch_opts), "torch"
    if suffix in KERAS_SUFFIXES:
        return keras_runner(p, input_names, output_names), "keras"
    require_file(p, "reference model")
    raise OfflineError(f"{p}: unknown reference type '{suffix}' (use .onnx, {', '.join(TORCH_SUFFIXES)} or "
                       f"{', '.join(KERAS_SUFFIXES)})")
