"""`edge-infer inspect model.engine`: I/O and optimization profiles of a TensorRT engine (like
`trtexec --dumpProfile`), with its build sidecar. Needs TensorRT (the robot).

An engine is executable code, so inspecting one deserializes it only through the same gate as the runtime
(:func:`~.sidecar.load_trusted_engine`): a missing or mismatching sidecar, a bad signature or a
world-writable folder is refused in one line *before* TensorRT is even imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_infer.backends.tensorrt.sidecar import TrustedEngine, deserialize_engine, load_trusted_engine
from edge_infer.backends.tensorrt.trt import import_tensorrt, logger
from edge_infer.errors import MissingFileError


def inspect_engine(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"engine not found: {path}")
    trusted = load_trusted_engine(path)  # no identity: inspecting a foreign machine's engine is allowed
    info = {"path": str(path), "size_bytes": len(trusted.data), "format": "tensorrt", "sidecar": trusted.meta,
            "trust": "sha256 + signature verified" if trusted.authenticated else "sha256 verified (no engine key)"}
    info.update(describe_engine(trusted))
    return info


def describe_engine(trusted: TrustedEngine) -> dict[str, Any]:
    """I/O names, shapes, dtypes and profiles of a checked engine (for `edge-infer inspect x.engine`)."""
    from edge_infer.backends.tensorrt.cuda import open_device

    trt = import_tensorrt()
    dev = open_device(0)
    try:
        with dev.bound():
            return _describe(trt, trusted)
    finally:
        dev.close()


def _describe(trt: Any, trusted: TrustedEngine) -> dict[str, Any]:
    runtime = trt.Runtime(logger(trt))
    engine = deserialize_engine(runtime, trusted)
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
