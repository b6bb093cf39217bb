"""`edge-infer selftest`: for a robot operator, "does TensorRT work on this robot, and does it agree with
ONNX Runtime?" in one command, with numbers.

Steps (each printed PASS / FAIL / SKIP with its numbers): TensorRT importable; pycuda + GPU present; build a
small engine from a zoo model (emotion by default: seconds to build, batch 1..8 profile); run it on a real
preprocessed face crop (:func:`edge_infer.offline.inputs.frame_input`) at batch 1 and at the profile maximum;
compare with ONNX Runtime CPU through :mod:`edge_infer.offline.compare` at the level named by the precision
(fp32 / fp16 / int8 rows of its one tolerance table). Exit code 0 only when every step passed; a machine
without TensorRT fails clearly.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable



@dataclass
class Check:
    name: str
    status: str  # PASS | FAIL | SKIP
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class SelftestReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.status == "PASS" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.__dict__ for c in self.checks]}


def run_selftest(models_dir: Path, model: str = "emotion", precision: str = "fp16", max_batch: int = 8,
                 engine_dir: Path | None = None, echo: Callable[[str], None] = print) -> SelftestReport:
    report = SelftestReport()

    def add(name: str, status: str, detail: str, **numbers: Any) -> Check:
        c = Check(name, status, detail, numbers)
        report.checks.append(c)
        echo(f"[{status}] {name}: {detail}")
        return c

    def skip_rest(after: str) -> SelftestReport:
        for name in ("build engine", "run engine", "compare with ONNX Runtime"):
            add(name, "SKIP", f"not run: {after} failed")
        return report

    from edge_infer.backends.tensorrt.cuda import PYCUDA_HINT, available_layer, gpu_count
    from edge_infer.offline.fp16_check import install

    install()  # FP16 graphs (TensorRT 11) must pass the project's task validation
    from edge_infer.backends.tensorrt.trt import TensorRTUnavailable, import_tensorrt

    try:
        trt = import_tensorrt()
        add("tensorrt", "PASS", f"TensorRT {trt.__version__}")
    except TensorRTUnavailable as e:
        add("tensorrt", "FAIL", f"TensorRT is unavailable on this machine: {e}")
        add("CUDA layer + GPU", "SKIP", "not run: tensorrt failed")
        return skip_rest("tensorrt")
    layer = available_layer()
    if layer is None:
        add("CUDA layer + GPU", "FAIL", PYCUDA_HINT)
        return skip_rest("CUDA layer")
    n = gpu_count()
    if n == 0:
        add("CUDA layer + GPU", "FAIL", "no CUDA GPU found (libcuda reports 0 devices)")
        return skip_rest("GPU")
    from edge_infer.backends.tensorrt.cuda import device_info

    dev = device_info(0)
    add("CUDA layer + GPU", "PASS", f"{dev.name} (compute {dev.compute_capability}, {dev.total_memory_mb} MB) via {layer}",
        gpus=n, compute_capability=dev.compute_capability)

    from edge_infer.backends import create_backend
    from edge_infer.backends.tensorrt.build import BuildOptions, build_engine
    from edge_infer.models.spec import load_zoo
    from edge_infer.offline.compare import compare
    from edge_infer.offline.inputs import frame_input

    spec = load_zoo().model(model)
    onnx_path = spec.path(models_dir)
    ort = create_backend("onnxruntime", str(onnx_path))
    inp = frame_input(spec.task, ort.inputs, Path(models_dir))
    options = BuildOptions.for_onnx(onnx_path, spec_profile=spec.profile, batch=(1, 1, max_batch), precision=precision,
                                    workspace_mb=512)
    profiles = options.profiles
    tmp = None
    if engine_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="edge_infer_selftest_")
        engine_dir = Path(tmp.name)
    engine = Path(engine_dir) / f"{onnx_path.stem}.{precision}.selftest.engine"
    try:
        try:
            t0 = time.perf_counter()
            meta = build_engine(onnx_path, engine, options, echo=lambda s: None)
            add("build engine", "PASS", f"{engine.name} {precision} in {time.perf_counter() - t0:.1f} s "
                f"({meta['engine_bytes'] / 1e6:.2f} MB), profile {profiles}", seconds=meta["build_seconds"])
        except Exception as e:
            add("build engine", "FAIL", str(e))
            add("run engine", "SKIP", "not run: build failed")
            add("compare with ONNX Runtime", "SKIP", "not run: build failed")
            return report
        feeds, refs, tests, lat = [], [], [], {}
        try:
            with create_backend("tensorrt", str(engine)) as be:
                for b in sorted({1, max_batch}):
                    feeds.append(inp.batch(b))
                    tests.append(be.run(feeds[-1]))
                    t0 = time.perf_counter()
                    for _ in range(20):
                        be.run(feeds[-1])
                    lat[b] = (time.perf_counter() - t0) / 20 * 1e3
                    refs.append(ort.run(feeds[-1]))
            add("run engine", "PASS", ", ".join(f"batch {b}: {ms:.3f} ms" for b, ms in lat.items()),
                latency_ms={str(k): round(v, 3) for k, v in lat.items()})
        except Exception as e:
            add("run engine", "FAIL", str(e))
            add("compare with ONNX Runtime", "SKIP", "not run: the engine did not run")
            return report
        judged = compare(refs, tests, ort.output_names, spec.task, feeds, level=precision)
        add("compare with ONNX Runtime", "PASS" if judged["verdict"] == "pass" else "FAIL",
            f"max abs diff {judged['metrics']['max_abs']:.2e}; level {precision}: " + ", ".join(
                f"{c['metric']} {c['value']:.3g} {c['op']} {c['threshold']:g}{'' if c['pass'] else ' FAILED'}"
                for c in judged["checks"]),
            max_abs_diff=judged["metrics"]["max_abs"], level=precision, checks=judged["checks"])
    finally:
        if tmp is not None:
            tmp.cleanup()
    return report
