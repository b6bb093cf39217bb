"""`edge-infer selftest --cuda` (``make gpu-check``): does the CUDA side of the project work on this GPU?

Needs only a GPU, cuda-python and PyTorch (no TensorRT, no network), so it runs on machines where TensorRT
is not installed. Steps, each PASS / FAIL / SKIP, then one verdict line:

1. cuda-python importable, a CUDA GPU present (else the verdict is NO GPU: nothing was checked);
2. the project's CUDA layer opened in the main thread and used from *another* thread (the node's worker
   thread situation): pinned host -> device -> host round trip of 1 MiB, stream synchronize;
3. a CUDA graph: the copies captured once from that thread, instantiated and replayed three times with new
   host data each time (the replay must see the new data);
4. the torch backend on CUDA with zoo models, compared with ONNX Runtime CPU on the same real inputs.

Exit status: 0 PASS, 1 FAIL, 3 NO GPU.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edge_infer.offline.selftest import Check, SelftestReport

# fp32 on CUDA (TF32 off) vs fp32 on CPU, relative to the output's magnitude: the mesh's outputs are pixel
# coordinates up to 192, the emotion model's are probabilities.
TORCH_TOLERANCE = 1e-4
EXIT_NO_GPU = 3


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a new thread (not the one that opened the device); re-raise its exception here."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name="gpu_check_worker")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _round_trip(dev: Any) -> str:
    n = 1 << 18  # 1 MiB of float32
    with dev.bound():
        buf, stream = dev.pinned((n,), np.float32), dev.stream()
        try:
            data = np.random.default_rng(0).standard_normal(n).astype(np.float32)
            buf.view((n,))[:] = data
            t0 = time.perf_counter()
            stream.htod(buf, buf.nbytes)
            buf.view((n,))[:] = 0
            stream.dtoh(buf, buf.nbytes)
            stream.synchronize()
            ms = (time.perf_counter() - t0) * 1e3
            if not np.array_equal(buf.view((n,)), data):
                raise AssertionError("the data that came back differs from what was sent")
        finally:
            buf.free()
            stream.destroy()
    return f"1 MiB pinned H2D + D2H in {ms:.2f} ms from thread gpu_check_worker"


def _graph_replay(dev: Any) -> str:
    """Capture src.host -> src.dev -> dst.dev -> dst.host once; each replay must deliver new src data into dst
    (which is zeroed before every launch, so a replay that did nothing cannot pass)."""
    n = 4096
    with dev.bound():
        src, dst, stream = dev.pinned((n,), np.float32), dev.pinned((n,), np.float32), dev.stream()
        try:
            graph = stream.capture(lambda: (stream.htod(src, src.nbytes), stream.dtod(dst, src, src.nbytes),
                                            stream.dtoh(dst, dst.nbytes)))
            for k in range(3):
                want = np.full(n, k + 1.5, np.float32)
                src.view((n,))[:] = want
                dst.view((n,))[:] = 0
                graph.launch()
                stream.synchronize()
                if not np.array_equal(dst.view((n,)), want):
                    raise AssertionError(f"replay {k} did not carry the new host data")
            graph.destroy()
        finally:
            src.free()
            dst.free()
            stream.destroy()
    return "H2D + D2D + D2H captured once, replayed 3 times with new data"


@contextlib.contextmanager
def _strict_fp32() -> Iterator[None]:
    """TF32 off for the comparison, restored after.

    PyTorch runs cuDNN convolutions in TF32 by default on Ampere and newer (10-bit mantissa): on an H200 that gave
    a 3.2e-2 pixel difference on the mesh (relative 2e-4), which is the GPU's arithmetic, not a wrong model.
    """
    import torch

    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _torch_vs_ort(models_dir: Path, model: str, device: str = "cuda") -> tuple[str, float]:
    """The torch backend on ``device`` vs ONNX Runtime CPU on real inputs; (detail, worst relative difference).

    The difference of each output is max |torch - ort| / max(1, max |ort|).

    ``device`` is a parameter so the comparison itself runs (on "cpu") in CI, where no GPU is.
    """
    from edge_infer.backends import create_backend
    from edge_infer.models.architectures import ARCHITECTURES
    from edge_infer.models.spec import load_zoo
    from edge_infer.offline.inputs import model_inputs

    spec = load_zoo().model(model)
    onnx_path = spec.path(models_dir)
    ckpt = spec.checkpoint_path(models_dir)
    source = ckpt if ckpt and ckpt.is_file() else onnx_path
    ort_be = create_backend("onnxruntime", str(onnx_path))
    torch_be = None
    worst = 0.0
    try:
        inputs = model_inputs(spec.name, spec.task, ort_be.inputs, models_dir)
        torch_be = create_backend("torch", str(source), device=device, architectures=ARCHITECTURES,
                                  input_names=[t.name for t in ort_be.inputs])
        with _strict_fp32():
            for feeds in inputs.feeds[:4]:
                got, ref = torch_be.run(feeds), ort_be.run(feeds)
                for name, r in ref.items():
                    g = np.asarray(got.get(name, next(iter(got.values()))), np.float64).reshape(-1)
                    r = np.asarray(r, np.float64).reshape(-1)
                    worst = max(worst, float(np.max(np.abs(g - r)) / max(1.0, float(np.max(np.abs(r))))))
    finally:
        if torch_be is not None:
            torch_be.close()
        ort_be.close()
    return f"{model} ({source.name}) on {torch_be.name}: max relative diff {worst:.2e} vs ONNX Runtime CPU (TF32 off)", worst


def run_gpu_check(models_dir: Path, models: tuple[str, ...] = ("emotion", "face_mesh"),
                  echo: Callable[[str], None] = print) -> tuple[SelftestReport, str]:
    """Run the steps; returns the report and the verdict: PASS | FAIL | NO GPU."""
    report = SelftestReport()

    def add(name: str, status: str, detail: str, **numbers: Any) -> None:
        report.checks.append(Check(name, status, detail, numbers))
        echo(f"[{status}] {name}: {detail}")

    from edge_infer.backends.tensorrt import cuda

    steps = ["CUDA layer from another thread", "CUDA graph capture + replay", *(f"torch CUDA vs ONNX Runtime: {m}"
                                                                                for m in models)]
    layer = cuda.available_layer()
    if layer != "cuda-python":
        add("cuda-python", "FAIL", cuda.CUDA_PYTHON_HINT)
    else:
        add("cuda-python", "PASS", "cuda.bindings importable")
    gpus = cuda.gpu_count()
    if gpus == 0:
        add("GPU", "SKIP", "no CUDA GPU / driver on this machine (libcuda reports none)")
        for s in steps:
            add(s, "SKIP", "not run: no GPU")
        return report, "NO GPU"
    if layer != "cuda-python":
        for s in steps[:2]:
            add(s, "SKIP", "not run: cuda-python missing")
    else:
        dev = cuda.open_device(0, "cuda-python")
        try:
            info = dev.info()
            add("GPU", "PASS", f"{info.name} (compute {info.compute_capability}, {info.total_memory_mb} MB), {gpus} GPU(s)")
            for name, fn in zip(steps[:2], (_round_trip, _graph_replay)):
                try:
                    add(name, "PASS", _in_thread(lambda: fn(dev)))
                except Exception as e:
                    add(name, "FAIL", f"{type(e).__name__}: {e}")
        finally:
            dev.close()
    for model, step in zip(models, steps[2:]):
        try:
            if not _torch_source_ok(Path(models_dir), model):
                add(step, "SKIP", "its torch module comes from the ONNX via onnx2torch, which is not installed")
                continue
            detail, worst = _torch_vs_ort(Path(models_dir), model)
            add(step, "PASS" if worst <= TORCH_TOLERANCE else "FAIL", detail, max_relative_diff=worst,
                tolerance=TORCH_TOLERANCE)
        except Exception as e:
            add(step, "FAIL", f"{type(e).__name__}: {e}")
    return report, "FAIL" if any(c.status == "FAIL" for c in report.checks) else "PASS"


def _torch_source_ok(models_dir: Path, model: str) -> bool:
    """A zoo model has a torch checkpoint, or onnx2torch can convert its ONNX."""
    import importlib.util

    from edge_infer.models.spec import load_zoo

    ckpt = load_zoo().model(model).checkpoint_path(models_dir)
    return bool(ckpt and ckpt.is_file()) or importlib.util.find_spec("onnx2torch") is not None
