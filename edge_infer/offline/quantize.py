"""FP16 (fp32 I/O kept), INT8 dynamic and INT8 static QDQ variants of an ONNX model, with size reports.

* fp16: :mod:`edge_infer.backends.tensorrt.fp16_onnx` (ONNX Runtime's float16 converter, ``keep_io_types=True``) — callers keep feeding float32 and a
  Cast at each end does the rest; TensorRT builds FP16 engines from it directly.
* int8 (static QDQ): symmetric per-channel weights and symmetric activations (what TensorRT's explicit
  quantization expects), calibrated by MinMax on real inputs made by the model's own preprocessing from a
  folder of images.
* int8-dynamic: weights only, activations quantized at run time (ONNX Runtime CPU; not for TensorRT).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from edge_infer.fileio import atomic_path, sha256_file
from edge_infer.errors import OfflineError
from edge_infer.offline.onnx_info import input_infos, load_onnx

MODES = ("fp16", "int8", "int8-dynamic")


def _size_report(src: Path, dst: Path) -> dict[str, Any]:
    a, b = src.stat().st_size, dst.stat().st_size
    return {"size_before": a, "size_bytes": b, "reduction_pct": round(100.0 * (1 - b / a), 1), "ratio": round(a / b, 2)}


def upgrade_opset(src: Path, dst: Path, minimum: int = 13) -> Path:
    """Per-channel QDQ (DequantizeLinear axis) needs opset >= 13; convert older models, or return src."""
    import onnx
    from onnx import version_converter

    from edge_infer.offline.onnx_info import opset

    model = load_onnx(src)
    if opset(model) >= minimum:
        return src
    try:
        up = version_converter.convert_version(model, minimum)
        onnx.checker.check_model(up)
    except Exception:
        return src
    onnx.save(up, str(dst))
    return dst


def to_fp16(src: Path, tmp: Path) -> dict[str, Any]:
    """The project's one FP16 converter (shared with the TensorRT builder for TensorRT 11)."""
    import onnx

    from edge_infer.backends.tensorrt.fp16_onnx import BLOCKED_OPS, Fp16ConversionError, convert_fp16, converter_id

    try:
        fp16 = convert_fp16(load_onnx(src), src.name)
    except Fp16ConversionError as e:
        raise OfflineError(str(e)) from None
    onnx.save(fp16, str(tmp))
    return {"keep_io_types": True, "op_block_list": list(BLOCKED_OPS), "converter": converter_id()}


class _Reader:
    """CalibrationDataReader over Inputs feeds, one batch row at a time (MinMax sees every sample)."""

    def __init__(self, feeds) -> None:
        rows = []
        for f in feeds:
            n = next(iter(f.values())).shape[0] if next(iter(f.values())).ndim else 1
            for i in range(n):
                rows.append({k: (v[i:i + 1] if v.ndim and v.shape[0] == n else v) for k, v in f.items()})
        self.rows = iter(rows)
        self.count = len(rows)

    def get_next(self):
        return next(self.rows, None)

    def rewind(self) -> None:  # pragma: no cover - ORT calls it for some calibrators
        pass


def to_int8_static(src: Path, tmp: Path, calibration, name: str | None, models_dir, progress: bool) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edge_infer.offline.inputs import identify, model_inputs

    spec = identify(src, name)
    inputs = model_inputs(spec.name if spec else None, spec.task if spec else None, input_infos(load_onnx(src)),
                          models_dir, calibration)
    if not inputs.real:
        raise OfflineError(f"{src.name}: no real calibration data for this model (unknown task); INT8 static "
                           "needs the model's own preprocessing — pass --name of a zoo model or use int8-dynamic")
    reader = _Reader(inputs.feeds)
    with tempfile.TemporaryDirectory() as td:
        base = upgrade_opset(src, Path(td) / "opset13.onnx")
        pre = Path(td) / "pre.onnx"
        try:  # symbolic shape inference + graph optimisation recommended before static quantization
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(base), str(pre), skip_symbolic_shape=False)
        except Exception:
            pre = base
        from edge_infer.offline.onnx_info import opset as _opset

        per_channel = _opset(load_onnx(pre, check=False)) >= 13
        try:
            quantize_static(str(pre), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        except Exception as e:
            raise OfflineError(f"INT8 static quantization of {src.name} failed: {str(e).splitlines()[0]}") from None
    return {"format": "QDQ", "per_channel": per_channel, "symmetric": True, "calibration": inputs.source,
            "calibration_samples": reader.count}


def to_int8_dynamic(src: Path, tmp: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        # QUInt8 weights: ONNX Runtime's CPU ConvInteger has no int8-weight kernel
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QUInt8, per_channel=False)
    except Exception as e:
        raise OfflineError(f"INT8 dynamic quantization of {src.name} failed: {str(e).splitlines()[0]}") from None
    return {"format": "QOperator (dynamic)", "weight_type": "uint8"}


def quantize(
    model_path: str | Path,
    output: str | Path,
    mode: str = "fp16",
    calibration: str | Path | None = None,
    name: str | None = None,
    models_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the ``mode`` variant of ``model_path`` to ``output``; report sizes and the reduction."""
    from edge_infer.paths import default_models_dir

    if mode not in MODES:
        raise OfflineError(f"unknown quantization mode '{mode}'; choose one of {MODES}")
    t0 = time.perf_counter()
    src, output = Path(model_path), Path(output)
    load_onnx(src)
    models_dir = Path(models_dir) if models_dir else default_models_dir()
    with atomic_path(output) as tmp:
        if mode == "fp16":
            details = to_fp16(src, tmp)
        elif mode == "int8":
            details = to_int8_static(src, tmp, calibration, name, models_dir, progress)
        else:
            details = to_int8_dynamic(src, tmp)
        load_onnx(tmp)  # checker before the file becomes visible
    return {"input": str(src), "path": str(output), "mode": mode, **_size_report(src, output),
            "sha256": sha256_file(output), **details, "seconds": round(time.perf_counter() - t0, 2)}
