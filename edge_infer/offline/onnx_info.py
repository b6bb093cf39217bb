"""Describe a model file: I/O (dynamic dims by name), dtypes, opset, nodes, size, producer.

Dispatch is by file suffix (:data:`INSPECTORS`): ``.onnx`` here; ``.engine``/``.plan``/``.trt`` (TensorRT) go
to :func:`edge_infer.backends.tensorrt.engine_info.inspect_engine`, so the CLI verb and its JSON stay the same
for both. (This module was ``offline/inspect.py``, which shadowed the standard library's ``inspect``.)
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Callable

from edge_infer.backends.base import TensorInfo
from edge_infer.errors import OfflineError, require_file
from edge_infer.fileio import sha256_file

ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
               11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


def load_onnx(path: str | Path, check: bool = True):
    """onnx.ModelProto with one-line errors for a missing, truncated or invalid file."""
    import onnx

    path = require_file(path, "ONNX model")
    if path.stat().st_size == 0:
        raise OfflineError(f"{path} is empty (0 bytes); not an ONNX model")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError on truncated / non-ONNX files
        raise OfflineError(f"{path} is not a valid ONNX model (truncated or corrupted? {type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else 'parse error'})") from None
    if not model.graph.node and not model.graph.output:
        raise OfflineError(f"{path} parsed to an empty graph (truncated or not an ONNX file)")
    if check:
        try:
            onnx.checker.check_model(model)
        except Exception as e:
            raise OfflineError(f"{path} fails onnx.checker (truncated or corrupted?): {str(e).splitlines()[0]}") from None
    return model


def _dims(vi) -> list[int | str]:
    out: list[int | str] = []
    for d in vi.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else "?"))
    return out


def tensor_info(vi) -> dict[str, Any]:
    return {"name": vi.name, "shape": _dims(vi), "dtype": ONNX_DTYPES.get(vi.type.tensor_type.elem_type, "other")}


def signature(model) -> dict[str, list[dict[str, Any]]]:
    """Graph inputs (initializers excluded) and outputs as name/shape/dtype dicts."""
    inits = {t.name for t in model.graph.initializer}
    return {"inputs": [tensor_info(v) for v in model.graph.input if v.name not in inits],
            "outputs": [tensor_info(v) for v in model.graph.output]}


def input_infos(model) -> list[TensorInfo]:
    """The graph inputs as the Backend interface describes tensors (what the real-input factory takes)."""
    return [TensorInfo(t["name"], tuple(d if isinstance(d, int) else (d if d != "?" else None) for d in t["shape"]),
                       t["dtype"]) for t in signature(model)["inputs"]]


def opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def op_counts(model) -> dict[str, int]:
    """Op type -> count, including nodes inside If/Loop/Scan subgraphs."""
    counts: collections.Counter[str] = collections.Counter()

    def walk(graph) -> None:
        for n in graph.node:
            counts[n.op_type] += 1
            for a in n.attribute:
                if a.g is not None and a.g.node:
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(model.graph)
    return dict(counts.most_common())


def inspect_onnx(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    model = load_onnx(path, check=False)
    sig = signature(model)
    return {
        "path": str(path), "format": "onnx", "size_bytes": path.stat().st_size, "sha256": sha256_file(path),
        "opset": opset(model), "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "node_count": len(model.graph.node), "op_counts": op_counts(model),
        "initializer_count": len(model.graph.initializer),
        "dynamic_dims": sorted({d for t in sig["inputs"] + sig["outputs"] for d in t["shape"] if isinstance(d, str)}),
        **sig,
    }


def _tensorrt_engine(path: str | Path) -> dict[str, Any]:
    from edge_infer.backends.tensorrt.engine_info import inspect_engine  # TensorRT imported only for engines

    return inspect_engine(path)


#: file suffix -> inspector
INSPECTORS: dict[str, Callable[[str | Path], dict[str, Any]]] = {
    ".onnx": inspect_onnx,
    ".engine": _tensorrt_engine,
    ".plan": _tensorrt_engine,
    ".trt": _tensorrt_engine,
}


def inspect_model(path: str | Path) -> dict[str, Any]:
    path = require_file(path, "model")
    fn = INSPECTORS.get(path.suffix.lower())
    if fn is None:
        raise OfflineError(f"{path}: don't know how to inspect '{path.suffix}' files (supported: {sorted(INSPECTORS)})")
    return fn(path)


def describe(sig: dict[str, list[dict[str, Any]]]) -> str:
    """One line: 'input[batch,1,64,64]:float32 -> scores[batch,7]:float32'."""
    def one(t: dict) -> str:
        return f"{t['name']}[{','.join(map(str, t['shape']))}]:{t['dtype']}"

    return ", ".join(map(one, sig["inputs"])) + " -> " + ", ".join(map(one, sig["outputs"]))
