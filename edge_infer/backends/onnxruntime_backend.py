"""ONNX Runtime backend: the embedded default (CPU here; CUDA / TensorRT execution providers on a robot)."""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np

from edge_infer.backends.base import Backend, BackendError, TensorInfo, default_cpu_threads

log = logging.getLogger(__name__)

# Short names accepted in parameters and on the command line -> ONNX Runtime provider names.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def available_providers() -> list[str]:
    """Execution providers this onnxruntime build offers (CPU everywhere; CUDA / TensorRT with onnxruntime-gpu)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(requested: Sequence[str]) -> list[str]:
    """Map aliases to provider names and keep only those this onnxruntime build has (CPU always last).

    A robot image may ship onnxruntime-gpu while a workstation has the CPU build: asking for CUDA there
    should degrade to CPU with one log line, not fail.
    """
    available = available_providers()
    chosen: list[str] = []
    for p in requested:
        name = PROVIDER_ALIASES.get(p.lower(), p)
        if name not in available:
            log.warning("ONNX Runtime execution provider %s is not available here (have %s); skipping it", name, available)
            continue
        if name not in chosen:
            chosen.append(name)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def cpu_int8_saturates(cpuinfo: str | None = None) -> bool:
    """True on an x86 CPU with AVX2 but no VNNI (e.g. AMD EPYC before Zen 4, Intel before Cascade Lake).

    There ONNX Runtime runs int8 Conv/MatMul with VPMADDUBSW, whose int16 pair sums saturate: measured here on
    the zoo's emotion INT8 QDQ model (AMD EPYC, AVX2), top-1 agreement with fp32 fell from 1.0 (fake-quant) to
    0.79; on a Xeon with VNNI the fused kernels and fake-quant gave identical results (1.0, max diff 0.0625). TensorRT,
    ARM (Jetson) and VNNI CPUs accumulate without that loss, so a validation on such a CPU would judge the CPU,
    not the model (OpenVINO's "saturation issue" notes describe the same instruction).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


# The ONNX Runtime session config key that keeps QDQ pairs as Dequantize -> float op -> Quantize instead of
# fusing them into int8 kernels: the model's int8 arithmetic is simulated exactly, without the CPU's kernels.
DISABLE_QDQ_FUSION = {"session.disable_quant_qdq": "1"}


class OnnxRuntimeBackend(Backend):
    """The only place that opens an ``onnxruntime.InferenceSession``.

    ``intra_op_threads`` 0 = :func:`edge_infer.backends.base.default_cpu_threads` (not ONNX Runtime's "every
    core"). Graph optimisation stays at ORT_ENABLE_ALL: measured on RetinaFace, EXTENDED (no NCHWc layout) is
    1.5x slower and fixing the input shape gains nothing; INT8 QDQ models are slower than fp32 on this CPU
    (docs/PERFORMANCE.md).
    """

    def __init__(
        self,
        model_path: str,
        providers: Sequence[str] = ("cpu",),
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        log_severity_level: int | None = None,
        provider_options: Mapping[str, Mapping[str, object]] | None = None,
        session_config: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(model_path)
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - onnxruntime is a hard dependency
            raise BackendError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from e
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads) or default_cpu_threads()
        opts.inter_op_num_threads = inter_op_threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        for key, value in (session_config or {}).items():  # e.g. DISABLE_QDQ_FUSION for int8 validation
            opts.add_session_config_entry(str(key), str(value))
        if log_severity_level is not None:  # 3 = errors only: offline tools keep the terminal for their report
            opts.log_severity_level = int(log_severity_level)
        self.providers = resolve_providers(providers)
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=self.providers,
                                                provider_options=[dict((provider_options or {}).get(p, {}))
                                                                  for p in self.providers])
        except Exception as e:
            raise BackendError(f"ONNX Runtime could not load {model_path}: {e}") from e
        self.name = f"onnxruntime[{self.session.get_providers()[0]}]"
        self._inputs = [self._info(t) for t in self.session.get_inputs()]
        self._outputs = [self._info(t) for t in self.session.get_outputs()]

    @staticmethod
    def _info(t) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) else (d or None) for d in t.shape)
        return TensorInfo(t.name, shape, _ORT_TYPES.get(t.type, t.type))

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = list(output_names) if output_names else self.output_names
        try:
            values = self.session.run(names, dict(feeds))
        except Exception as e:
            self.check_feeds(feeds)  # raises a clearer message when the feeds are the cause
            raise BackendError(f"{self.model_path}: inference failed: {e}") from e
        return dict(zip(names, values))
