"""`edge-infer inspect model.engine`: I/O and optimization profiles of a TensorRT engine (like
`trtexec --dumpProfile`), with the build sidecar when present. Needs TensorRT (the robot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_infer.backends.base import BackendError
from edge_infer.backends.tensorrt.sidecar import read_sidecar
from edge_infer.backends.tensorrt.trt import import_tensorrt, logger
from edge_infer.errors import MissingFileError


def inspect_engine(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"engine not found: {path}")
    info = {"path": str(path), "size_bytes": path.stat().st_size, "format": "tensorrt", "sidecar": read_sidecar(path)}
    info.update(describe_engine(str(path)))
    return info


def describe_engine(engine_path: str) -> dict[str, Any]:
    """I/O names, shapes, dtypes and profiles of an engine (for `edge-infer inspect x.engine`)."""
    from edge_infer.backends.tensorrt.cuda import open_device

    trt = import_tensorrt()
    dev = open_device(0)
    try:
        with dev.bound():
            return _describe(trt, engine_path)
    finally:
        dev.close()


def _describe(trt: Any, engine_path: str) -> dict[str, Any]:
    runtime = trt.Runtime(logger(trt))
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise BackendError(f"TensorRT could not deserialize {engine_path}")
    tensors = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        entry = {"name": name, "mode": "input" if is_input else "output",
                 "shape": [int(d) for d in engine.get_tensor_shape(name)],
                 "dtype": getattr(engine.get_tensor_dtype(name), "name", str(engine.get_tensor_dtype(name)))}
        if is_input:
            entry["profiles"] = [
                dict(zip(("min", "opt", "max"), ([int(d) for d in s] for s in engine.get_tensor_profile_shape(name, p))))
                for p in range(engine.num_optimization_profiles)
            ]
        tensors.append(entry)
    return {"tensorrt": trt.__version__, "profiles": engine.num_optimization_profiles, "tensors": tensors}
