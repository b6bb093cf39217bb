"""polygraphy surgeon sanitize --fold-constants, then onnx.checker + strict shape inference, then a proof.

What "sanitize" buys on a Jetson: exporters leave Shape->Gather->Concat chains, Constant nodes and dead
branches that TensorRT either folds slowly at build time or cannot parse (shape arithmetic in INT64). Folding
them here makes the graph static where it can be, and the linter below names what TensorRT will still
dislike for the chosen target. The sanitized model is validated against the original on real inputs at the
comparator's ``exact`` level (:mod:`edge_infer.offline.compare`: max |diff| 1e-5 and the same task results),
so a folding bug can never ship silently.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_infer.fileio import atomic_path, sha256_file
from edge_infer.errors import OfflineError
from edge_infer.offline.compare import EXACT_ATOL
from edge_infer.offline.onnx_info import load_onnx, op_counts, opset, signature
from edge_infer.offline.targets import get_target

INT32_MAX = 2**31 - 1


def _subgraph_nodes(graph):
    for n in graph.node:
        yield n, graph
        for a in n.attribute:
            if a.HasField("g"):
                yield from _subgraph_nodes(a.g)
            for g in a.graphs:
                yield from _subgraph_nodes(g)


def tensorrt_warnings(model, target: str | None = None) -> list[str]:
    """Constructs TensorRT handles badly or not at all on ``target``, one sentence each."""
    from onnx import numpy_helper

    tgt = get_target(target)
    warns: list[str] = []
    consts = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].HasField("t"):
            consts[n.output[0]] = n.attribute[0].t
    int64 = [t for t in consts.values() if t.data_type == 7]
    if int64:
        big = [t.name for t in int64 if np.abs(numpy_helper.to_array(t).astype(np.float64)).max(initial=0) > INT32_MAX]
        warns.append(f"{len(int64)} INT64 weights/constants: TensorRT casts them to INT32"
                     + (f"; values out of INT32 range in {big[:3]}" if big else " (all values fit)"))
    counts: dict[str, int] = {}
    for node, graph in _subgraph_nodes(model.graph):
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
        if node.op_type == "Loop":
            trip = node.input[0] if node.input else ""
            if not trip or trip not in consts:
                warns.append(f"Loop '{node.name or node.output[0]}' has a dynamic trip count: TensorRT needs a "
                             "build-time constant for an efficient (or any, before 8.6) loop")
    if counts.get("NonZero"):
        warns.append(f"{counts['NonZero']} NonZero node(s): data-dependent output shape, slow or unsupported in TensorRT")
    bad = sorted(op for op in counts if op in tgt.unsupported_ops)
    if bad:
        warns.append(f"ops not supported by TensorRT {tgt.tensorrt} ({tgt.name}): {bad}")
    other_domains = sorted({n.domain for n, _ in _subgraph_nodes(model.graph) if n.domain not in ("", "ai.onnx")})
    if other_domains:
        warns.append(f"custom op domains {other_domains}: need TensorRT plugins")
    if opset(model) > tgt.opset + 1:
        warns.append(f"opset {opset(model)} is newer than {tgt.name}'s parser is validated for (<= {tgt.opset})")
    return warns


def fold(model):
    """polygraphy's constant folding (ONNX Runtime evaluates foldable subgraphs), cleanup and toposort."""
    import contextlib
    import sys

    # polygraphy / graphsurgeon log to stdout; keep stdout clean for --json and show only their errors
    with contextlib.redirect_stdout(sys.stderr):
        import onnx_graphsurgeon as gs
        from polygraphy.backend.onnx import fold_constants
        from polygraphy.logger import G_LOGGER

        G_LOGGER.module_severity = G_LOGGER.ERROR
        gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR  # subgraph folding notes (silero's If branches)
        try:
            folded = fold_constants(model, num_passes=None, do_shape_inference=True, fold_shapes=True, error_ok=False)
        except Exception as e:
            raise OfflineError(f"constant folding failed: {str(e).splitlines()[0]}") from None
    graph = gs.import_onnx(folded)
    graph.cleanup().toposort()
    out = gs.export_onnx(graph)
    out.producer_name, out.producer_version = model.producer_name, model.producer_version
    out.ir_version = model.ir_version
    return out


def sanitize(
    model_path: str | Path,
    output: str | Path,
    target: str | None = None,
    verify: bool = True,
    atol: float | None = None,
    name: str | None = None,
    models_dir: str | Path | None = None,
    images: str | Path | None = None,
) -> dict[str, Any]:
    """Sanitize ``model_path`` into ``output``; verify against the original on real inputs (exact level, ``atol``)."""
    atol = EXACT_ATOL if atol is None else atol
    import onnx

    t0 = time.perf_counter()
    model_path, output = Path(model_path), Path(output)
    original = load_onnx(model_path)
    before = len(original.graph.node)
    model = fold(original)
    try:
        onnx.checker.check_model(model, full_check=True)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:
        raise OfflineError(f"{model_path.name}: sanitized graph fails onnx.checker/shape inference: "
                           f"{str(e).splitlines()[0]}") from None
    result: dict[str, Any] = {
        "input": str(model_path), "path": str(output), "opset": opset(model), "nodes_before": before,
        "nodes_after": len(model.graph.node), "ops_before": op_counts(original), "ops_after": op_counts(model),
        "warnings": tensorrt_warnings(model, target), "target": get_target(target).name, **signature(model),
    }
    with atomic_path(output) as tmp:
        onnx.save(model, str(tmp))
        if verify:
            from edge_infer.offline.validate import validate

            v = validate(tmp, model_path, level="exact", atol=atol, name=name or _zoo_name(model_path),
                         models_dir=models_dir, images=images)
            result["verification"] = {"max_abs": v["metrics"]["max_abs"], "mean_abs": v["metrics"]["mean_abs"],
                                      "atol": atol, "inputs": v["inputs"]["source"], "real_inputs": v["inputs"]["real"],
                                      "pass": v["verdict"] == "pass"}
            if not result["verification"]["pass"]:
                failed = ", ".join(f"{c['metric']} {c['value']:.3g} (needs {c['op']} {c['threshold']:g})"
                                   for c in v["checks"] if not c["pass"])
                raise OfflineError(f"{model_path.name}: sanitized outputs differ from the original: {failed}; not written")
    result["size_bytes"] = output.stat().st_size
    result["sha256"] = sha256_file(output)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def _zoo_name(path: Path) -> str | None:
    from edge_infer.offline.inputs import identify

    spec = identify(path)
    return spec.name if spec else None
