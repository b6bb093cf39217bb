"""The project's own task validation as the gate for FP16 graphs the TensorRT builder makes (TensorRT 11,
or ``fp16_source: onnx``): real inputs from the model's own preprocessing, task metrics at the ``fp16``
level (box IoU, top-1, mesh error, VAD / wake-word decisions, finite outputs). A model that fails (today the
openWakeWord melspectrogram: int16-scale audio overflows fp16 into NaN) is built fp32, with the reason in
the log and the engine's sidecar.

The runtime layer cannot import this module (it sits above it); :func:`install` registers it there. The
commands, the selftest and the ROS nodes call :func:`install`; without it a generic check runs and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edge_infer.backends.tensorrt.precision import Fp16Verdict, generic_fp16_check, register_fp16_validator


def task_fp16_check(fp32_path: Path, fp16_path: Path, profiles: Mapping[str, Any]) -> Fp16Verdict:
    from edge_infer.errors import EdgeInferError
    from edge_infer.offline.inputs import identify
    from edge_infer.offline.validate import validate

    spec = identify(fp32_path)
    if spec is None:  # not a zoo model: no task known
        return generic_fp16_check(fp32_path, fp16_path, profiles)
    try:
        report = validate(fp16_path, fp32_path, level="fp16", name=spec.name, models_dir=Path(fp32_path).parent)
    except EdgeInferError as e:  # e.g. no speech synthesizer for audio inputs on this machine
        generic = generic_fp16_check(fp32_path, fp16_path, profiles)
        return Fp16Verdict(generic.ok, f"task validation unavailable ({e}); {generic.detail}")
    failed = [f"{c['metric']} {c['value']} (needs {c['op']} {c['threshold']})" for c in report["checks"] if not c["pass"]]
    where = f"task validation '{spec.task}' on {report['inputs']['samples']} real inputs"
    if failed:
        return Fp16Verdict(False, f"{where}: " + "; ".join(failed))
    return Fp16Verdict(True, f"{where}: pass")


def install() -> None:
    """Make every FP16 graph built in this process pass the task validation."""
    register_fp16_validator("task", task_fp16_check)
