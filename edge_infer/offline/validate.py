"""Validate an ONNX model against its source on real inputs: numbers and task-level agreement, with verdicts.

The model and its reference both run as :class:`~edge_infer.backends.Backend`s, the reference chosen by file
type (:data:`REFERENCE_KINDS`): another ONNX file (variants, sanitized), a torch checkpoint (exported models;
``.safetensors`` without pickle, torch.save files weights-only, TorchScript only when trusted), the original
Keras h5 (Keras 3 itself, independent of our torch rebuild)
or the original TFLite (LiteRT itself). Inputs are real (:mod:`edge_infer.offline.inputs`) and the outputs
are judged by :mod:`edge_infer.offline.compare` at the chosen level (exact / fp32 / fp16 / int8).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.backends import Backend, create_backend
from edge_infer.backends.onnxruntime_backend import DISABLE_QDQ_FUSION, cpu_int8_saturates
from edge_infer.errors import OfflineError, require_file
from edge_infer.fileio import atomic_write_json, sha256_file
from edge_infer.offline.compare import compare
from edge_infer.offline.inputs import Inputs, identify, model_inputs
from edge_infer.offline.onnx_info import load_onnx

REPORT_SCHEMA = "edge_infer/validation"
REPORT_VERSION = 1
#: reference file suffix -> backend kind
REFERENCE_KINDS: dict[str, str] = {
    ".onnx": "onnxruntime",
    **{s: "torch" for s in (".safetensors", ".pt", ".pth", ".ckpt", ".tar", ".bin", ".ts", ".torchscript")},
    **{s: "keras" for s in (".h5", ".hdf5", ".keras")},
    ".tflite": "litert",
}
_QUIET_ORT = {"log_severity_level": 3}  # errors only: the report is the output


def open_onnx(path: str | Path, what: str = "ONNX model", session_config: Mapping[str, str] | None = None) -> Backend:
    """ONNX Runtime (CPU) on ``path``, after a readable check of the file (truncated files say so)."""
    load_onnx(require_file(path, what), check=False)
    extra = {"session_config": dict(session_config)} if session_config else {}
    return create_backend("onnxruntime", str(path), **_QUIET_ORT, **extra)


def int8_execution(level: str) -> tuple[str, Mapping[str, str] | None]:
    """How an int8 model is run for validation: ONNX Runtime's int8 kernels, or, on a CPU where those saturate
    (:func:`cpu_int8_saturates`), the QDQ graph unfused (fake-quant: the same int8 rounding, float accumulation,
    as TensorRT and VNNI CPUs compute it). Said in the report, so a verdict never hides which one ran."""
    if level != "int8" or not cpu_int8_saturates():
        return "onnxruntime int8 kernels", None
    return ("fake-quant (QDQ unfused): this CPU has AVX2 without VNNI, where ONNX Runtime's int8 kernels "
            "saturate"), DISABLE_QDQ_FUSION


def open_reference(path: Path, model: Backend, architecture: str | None = None,
                   trust_checkpoint: bool = False) -> tuple[Backend, str]:
    """(Backend, kind) for a reference file chosen by suffix; torch gets the model's I/O names."""
    kind = REFERENCE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise OfflineError(f"{path}: unknown reference type '{path.suffix}' (use {', '.join(REFERENCE_KINDS)})")
    if kind == "onnxruntime":
        return open_onnx(path, "reference model"), kind
    if kind == "torch":
        from edge_infer.models.architectures import ARCHITECTURES

        return create_backend("torch", str(path), architectures=ARCHITECTURES, architecture=architecture,
                              trust_checkpoint=trust_checkpoint, input_names=model.input_names,
                              output_names=model.output_names, input_shapes=[t.shape for t in model.inputs]), kind
    return create_backend(kind, str(path)), kind


def _layout_adapter(model: Backend, reference: Backend):
    """feeds in the model's names and layout -> the reference's (by position; NCHW -> NHWC where it expects it).

    A Keras or TFLite original keeps its own tensor names and channels-last layout; an exported ONNX may use
    other names and NCHW.
    """
    if len(reference.inputs) != len(model.inputs):
        raise OfflineError(f"input mismatch: {model.model_path} takes {model.input_names}, reference "
                           f"{reference.model_path} takes {reference.input_names}")
    pairs = list(zip(model.input_names, reference.inputs))

    def adapt(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, ref in pairs:
            x = feeds[name]
            want = tuple(ref.shape[1:])
            fits = lambda s: len(s) == len(want) and all(not isinstance(w, int) or w == d for d, w in zip(s, want))  # noqa: E731
            if x.ndim == 4 and not fits(x.shape[1:]) and fits(x.shape[2:] + x.shape[1:2]):
                x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # NCHW -> NHWC
            out[ref.name] = x
        return out

    return adapt


def run_all(backend: Backend, feeds: Sequence[Mapping[str, np.ndarray]], progress: bool, desc: str,
            adapt=None, rename: Sequence[str] | None = None) -> list[dict[str, np.ndarray]]:
    """Outputs of ``backend`` for every feed; ``rename`` maps its outputs by position to the model's names."""
    from tqdm import tqdm

    results = []
    for f in tqdm(feeds, desc=desc, unit="batch", disable=not progress or len(feeds) < 3, leave=False):
        out = backend.run(adapt(f) if adapt else f)
        results.append(dict(zip(rename, out.values())) if rename else out)
    return results


# ------------------------------------------------------------------------------------------------ validate
def _json_safe(obj: Any) -> Any:
    """NaN/inf (an overflowing FP16 model) -> strings, so the report stays strict JSON."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def validate(
    model: str | Path,
    reference: str | Path,
    level: str = "exact",
    name: str | None = None,
    task: str | None = None,
    images: str | Path | None = None,
    models_dir: str | Path | None = None,
    atol: float | None = None,
    report: str | Path | None = None,
    progress: bool = False,
    architecture: str | None = None,
    trust_checkpoint: bool = False,
    inputs: Inputs | None = None,
) -> dict[str, Any]:
    """Compare ``model`` (ONNX) with ``reference`` (ONNX / torch checkpoint / Keras h5 / TFLite); optional JSON report."""
    from edge_infer.paths import default_models_dir

    t0 = time.perf_counter()
    model, reference = require_file(model, "ONNX model"), require_file(reference, "reference model")
    models_dir = Path(models_dir) if models_dir else default_models_dir()
    execution, session_config = int8_execution(level)
    test_be = open_onnx(model, session_config=session_config)
    ref_be, ref_kind = open_reference(reference, test_be, architecture, trust_checkpoint)
    try:
        in_names, out_names = test_be.input_names, test_be.output_names
        if ref_kind == "onnxruntime" and ref_be.input_names != in_names:
            raise OfflineError(f"input mismatch: {model.name} takes {in_names}, reference {reference.name} takes "
                               f"{ref_be.input_names}")
        adapt = None if ref_be.input_names == in_names else _layout_adapter(test_be, ref_be)
        if set(ref_be.output_names) == set(out_names):
            rename = None
        elif len(ref_be.output_names) == len(out_names):
            rename = out_names  # same outputs in the same order under the source framework's names
        else:
            raise OfflineError(f"output mismatch: {model.name} has {out_names}, reference has {ref_be.output_names}")
        spec = identify(model, name) if (name or not task) else None
        task = task or (spec.task if spec else "generic")
        inputs = inputs or model_inputs(spec.name if spec else None, task, test_be.inputs, models_dir, images)
        tests = run_all(test_be, inputs.feeds, progress, f"run {model.name}")
        refs = run_all(ref_be, inputs.feeds, progress, f"run {reference.name}", adapt, rename)
    finally:
        test_be.close()
        ref_be.close()
    judged = compare(refs, tests, out_names, task, inputs.feeds, level, atol)
    result = {
        "schema": REPORT_SCHEMA, "version": REPORT_VERSION,
        "model": str(model), "model_sha256": sha256_file(model),
        "reference": str(reference), "reference_kind": ref_kind, "reference_sha256": sha256_file(reference),
        "task": task, "level": level, **({"int8_execution": execution} if level == "int8" else {}),
        "inputs": {"source": inputs.source, "samples": inputs.count, "batches": len(inputs.feeds), "real": inputs.real},
        "outputs": judged["outputs"], "metrics": judged["metrics"], "checks": judged["checks"],
        "verdict": judged["verdict"],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if report:
        atomic_write_json(report, _json_safe(result))
        result["report"] = str(report)
    return result
