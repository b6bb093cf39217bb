"""The project's FP16 converter: an ONNX graph whose compute is float16 while its inputs and outputs stay
float32 (a Cast at each end), so callers keep feeding float32.

Two users, one function: ``edge-infer quantize --mode fp16`` (offline) and the TensorRT builder on
TensorRT 11 (and by choice on 10.x), where ``BuilderFlag.FP16`` no longer exists and reduced precision must
come from the graph itself, built strongly typed. It is pure ONNX -> ONNX (ONNX Runtime's float16 converter
plus a topological sort written here, no onnx_graphsurgeon), so the runtime layer can use it on a robot.

:data:`CONVERTER_VERSION` changes whenever this module's output changes; it is part of the engine cache
key and the sidecar, together with the ONNX Runtime version whose converter did the work.
"""

from __future__ import annotations

import heapq
from typing import Any, Iterable

from edge_infer.errors import EdgeInferError

CONVERTER_VERSION = "edge_infer-fp16/1"
#: ops whose fp16 form is numerically fragile or unsupported by ONNX Runtime's CPU kernels stay fp32
BLOCKED_OPS = ("Range", "RandomNormal", "RandomUniform", "STFT", "DFT")
_CONTROL_FLOW = ("If", "Loop", "Scan")


class Fp16ConversionError(EdgeInferError, RuntimeError):
    """The FP16 converter failed on a model; the message says which and why."""


def converter_id() -> str:
    """What made an FP16 graph: this module's version and ONNX Runtime's (its converter does the casting)."""
    import onnxruntime

    return f"{CONVERTER_VERSION} onnxruntime-{onnxruntime.__version__}"


def _subgraphs(node: Any) -> Iterable[Any]:
    import onnx

    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def _outer_names(graph: Any) -> set[str]:
    """Names a (sub)graph reads from its enclosing scope (If/Loop bodies read outer tensors implicitly)."""
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    used: set[str] = set()
    for n in graph.node:
        defined.update(n.output)
        used.update(n.input)
        for g in _subgraphs(n):
            used |= _outer_names(g)
    return used - defined - {""}


def toposort(graph: Any) -> None:
    """Sort ``graph.node`` in place so every node comes after its producers (the float16 converter appends
    its input Casts at the end; ONNX requires topological order). Stable: ready nodes keep their order."""
    nodes = list(graph.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    deps: list[set[int]] = []
    for i, n in enumerate(nodes):
        names = set(n.input) | set().union(*(_outer_names(g) for g in _subgraphs(n)))
        deps.append({producer[x] for x in names if x in producer and producer[x] != i})
    users: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(i)
    waiting = [len(d) for d in deps]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users.get(i, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        raise Fp16ConversionError(f"graph '{graph.name}' has a cycle; it cannot be sorted")
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)


def convert_fp16(model: Any, name: str = "model") -> Any:
    """``model`` (onnx.ModelProto, fp32) -> a new ModelProto computing in fp16 with fp32 inputs/outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        fp16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(BLOCKED_OPS))
    except Exception as e:
        sub = any(n.op_type in _CONTROL_FLOW for n in model.graph.node)
        hint = " (the converter does not handle If/Loop/Scan subgraphs; keep this model fp32)" if sub else ""
        first = str(e).splitlines()[0] if str(e) else ""
        raise Fp16ConversionError(f"FP16 conversion of {name} failed: {type(e).__name__} {first}{hint}") from None
    toposort(fp16.graph)
    fp16.ir_version = model.ir_version
    return fp16
