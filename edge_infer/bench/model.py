"""`edge-infer bench model`: the same model, the same real input, every runtime available here.

Runtimes (``--backends``): ``torch`` (the reference column; speedups are relative to it), ``onnxruntime``
(CPU EP), ``onnxruntime-cuda`` and ``onnxruntime-tensorrt`` (ONNX Runtime's CUDA / TensorRT execution
providers, when this onnxruntime build has them and they initialise), ``tensorrt`` (an engine through
:class:`~edge_infer.backends.tensorrt.runtime.TensorRTBackend`, built or reused via the engine cache).
A runtime that is not available is recorded as ``skipped`` with the reason, never silently dropped.

Inputs are real (:func:`edge_infer.offline.inputs.frame_input`): a camera-sized frame (1280x720 by default)
made from the zoo's astronaut photo goes through the pipeline's own preprocessing — the detector gets the
letterboxed frame, emotion gets fer-style face crops and the face mesh rotated ROI crops of the face the
detector finds. Batches repeat that input. Timing covers one ``Backend.run`` call (host->device copies
included for GPU runtimes, as a node sees it). Every runtime's outputs are compared with ONNX Runtime CPU's on
the same input (``max_abs_diff``, :func:`edge_infer.offline.compare.max_abs_diff`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edge_infer.backends import Backend, BackendError, create_backend
from edge_infer.backends.memory import memory_usage
from edge_infer.errors import EdgeInferError
from edge_infer.fileio import atomic_save_figure, atomic_write_json, sha256_file
from edge_infer.offline.compare import max_abs_diff
from edge_infer.offline.inputs import DEFAULT_RESOLUTION, ModelInput, camera_frame, frame_face, frame_input
from edge_infer.pipeline.latency import latency_stats

log = logging.getLogger(__name__)

SCHEMA = "edge_infer/benchmark"
SCHEMA_VERSION = 1
BACKENDS = ("torch", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")
DEFAULT_MODELS = ("face_detector", "emotion", "face_mesh")
_ORT_EP = {"onnxruntime": "CPUExecutionProvider", "onnxruntime-cuda": "CUDAExecutionProvider",
           "onnxruntime-tensorrt": "TensorrtExecutionProvider"}


class BenchError(EdgeInferError, RuntimeError):
    """The benchmark could not run at all (bad arguments, missing model); per-runtime failures are recorded."""


class _Skip(Exception):
    """Control flow inside this module, never raised to callers: a runtime is unavailable here; the message
    is the reason recorded in benchmark.json."""


@dataclass
class ModelBenchConfig:
    """Settings of ``edge-infer bench model`` (runtimes x batches); the bag benchmark has its own config."""

    backends: Sequence[str] = BACKENDS
    batches: Sequence[int] = (1, 8)
    warmup: int = 10
    runs: int = 100
    max_seconds: float = 20.0  # per (runtime, batch): stop early after min_runs when exceeded
    min_runs: int = 10
    resolution: tuple[int, int] = DEFAULT_RESOLUTION
    threads: int = 0  # intra-op threads for torch and ONNX Runtime (0 = runtime default)
    precision: str = "fp16"  # TensorRT engine precision
    engine_dir: str | None = None
    engine_build: str = "auto"
    engines: dict[str, str] = field(default_factory=dict)  # model -> prebuilt engine
    torch_models: dict[str, str] = field(default_factory=dict)  # model -> TorchScript / checkpoint / onnx
    trust_checkpoint: bool = False  # TorchScript / pickled modules run code from the file: the user opts in
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # generic models: input -> shape (batch 1)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


# ---------------------------------------------------------------------------------------------- runtimes
def _open(backend: str, model: str, onnx_path: Path, models_dir: Path, spec: Any, inp: ModelInput,
          config: ModelBenchConfig, reference: Backend) -> tuple[Backend, str]:
    """(Backend, note) or raise :class:`_Skip` with the reason."""
    threads = config.threads or None
    if backend == "torch":
        if importlib.util.find_spec("torch") is None:
            raise _Skip("torch is not installed (pip install torch==2.13.0)")
        src = config.torch_models.get(model)
        note = "torch model given on the command line"
        if not src and spec is not None and spec.extra.get("checkpoint"):
            ckpt = spec.checkpoint_path(Path(models_dir))
            if ckpt is not None and ckpt.is_file():
                src, note = str(ckpt), f"{ckpt.name} (edge_infer's torch {spec.extra.get('checkpoint')} module)"
        if not src:
            if importlib.util.find_spec("onnx2torch") is None:
                raise _Skip(f"no torch source for {model}: the zoo ships it as ONNX only. Pass --torch-model "
                           f"{model}=FILE (.safetensors + its registry architecture, or TorchScript with "
                           "--trust-checkpoint) or `pip install onnx2torch` to benchmark torch on the ONNX graph")
            src, note = str(onnx_path), "the ONNX graph converted to torch by onnx2torch"
        from edge_infer.models.architectures import ARCHITECTURES

        try:
            b = create_backend("torch", src, threads=config.threads, architectures=ARCHITECTURES,
                               trust_checkpoint=config.trust_checkpoint,
                               input_names=reference.input_names, output_names=reference.output_names,
                               input_shapes=[t.shape for t in reference.inputs])
        except BackendError as e:
            raise _Skip(str(e)) from e
        return b, note
    if backend in _ORT_EP:
        from edge_infer.backends.onnxruntime_backend import available_providers

        ep = _ORT_EP[backend]
        if ep not in available_providers():
            raise _Skip(f"{ep} is not in this onnxruntime build ({available_providers()}); "
                        "install onnxruntime-gpu (Jetson: the JetPack wheel)")
        b = create_backend("onnxruntime", str(onnx_path), providers=[ep], intra_op_threads=threads or 0,
                           provider_options=_ort_ep_options(ep, onnx_path, config))
        active = b.session.get_providers()[0]
        if active != ep:
            raise _Skip(f"{ep} is listed but did not initialise (session runs on {active}): no GPU / CUDA libraries?")
        return b, f"providers {b.session.get_providers()}"
    if backend == "tensorrt":
        from edge_infer.backends.tensorrt.trt import availability

        ok, reason = availability()
        if not ok:
            raise _Skip(reason)
        engine = config.engines.get(model)
        if engine:
            return create_backend("tensorrt", engine), f"engine {engine}"
        maxb = max(config.batches)
        profiles = {}
        for k, v in inp.feeds.items():
            shp = tuple(int(d) for d in v.shape)
            profiles[k] = ((1, *shp[1:]), (1, *shp[1:]), (maxb, *shp[1:]))
        b = create_backend("tensorrt", str(onnx_path), precision=config.precision, profiles=profiles,
                           engine_dir=config.engine_dir, engine_build=config.engine_build)
        return b, f"{config.precision} engine {b.model_path}"
    raise BenchError(f"unknown backend '{backend}'; choose from {BACKENDS}")


def _ort_ep_options(ep: str, onnx_path: Path, config: ModelBenchConfig) -> dict[str, dict[str, Any]]:
    """ONNX Runtime's TensorRT EP with the same precision as the tensorrt column and its engine + timing cache
    (without them every run rebuilds engines in fp32 and the column compares nothing)."""
    if ep != "TensorrtExecutionProvider":
        return {}
    cache = str(Path(config.engine_dir or Path(onnx_path).parent / "engines") / "ort_trt")
    os.makedirs(cache, exist_ok=True)
    return {ep: {"trt_fp16_enable": config.precision == "fp16", "trt_engine_cache_enable": True,
                 "trt_engine_cache_path": cache, "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}}


def time_runs(run: Callable[[], Any], warmup: int, runs: int, max_seconds: float, min_runs: int) -> list[float]:
    for _ in range(warmup):
        run()
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= min_runs and time.perf_counter() > deadline:
            break
    return times


def bench_one_model(name: str, models_dir: Path, config: ModelBenchConfig, zoo: Any = None,
                    face: tuple[np.ndarray, np.ndarray] | None = None, echo: Callable[[str], None] = print) -> dict:
    from edge_infer.models.spec import SpecError, load_zoo

    zoo = zoo or load_zoo()
    spec = None
    onnx_path = Path(name)
    if onnx_path.suffix == ".onnx" and onnx_path.is_file():
        task, model = "generic", onnx_path.stem
    else:
        try:
            spec = zoo.model(name)
        except SpecError as e:
            raise BenchError(str(e)) from None
        onnx_path, task, model = spec.path(models_dir), spec.task, name
        if not onnx_path.is_file():
            raise BenchError(f"{onnx_path} missing: run `edge-infer zoo fetch`")
    reference = create_backend("onnxruntime", str(onnx_path), intra_op_threads=config.threads)
    inp = frame_input(task, reference.inputs, models_dir, config.resolution, face, config.shapes)
    pre = None
    if inp.preprocess is not None:
        pre = latency_stats(time_runs(inp.preprocess, 2, 30, 2.0, 5)).as_dict()
    entry: dict[str, Any] = {
        "model": model, "task": task, "onnx": onnx_path.name, "onnx_sha256": sha256_file(onnx_path),
        "input": {"description": inp.description, "shapes": {k: list(v.shape) for k, v in inp.feeds.items()},
                  "preprocess_ms": pre},
        "results": [],
    }
    ref_out = {b: reference.run(inp.batch(b)) for b in config.batches}
    torch_mean: dict[int, float] = {}
    for backend in config.backends:
        try:
            runtime, note = _open(backend, model, onnx_path, models_dir, spec, inp, config, reference)
        except _Skip as e:
            echo(f"  {model:<14} {backend:<22} skipped: {e}")
            entry["results"] += [{"backend": backend, "batch": b, "status": "skipped", "reason": str(e)}
                                 for b in config.batches]
            continue
        except Exception as e:  # a runtime that is present but broken is a failure, recorded with its error
            echo(f"  {model:<14} {backend:<22} failed: {e}")
            entry["results"] += [{"backend": backend, "batch": b, "status": "failed", "reason": str(e)}
                                 for b in config.batches]
            continue
        try:
            for b in config.batches:
                feeds = inp.batch(b)
                rec: dict[str, Any] = {"backend": backend, "batch": b, "runtime": runtime.name, "note": note}
                try:
                    out = runtime.run(feeds)
                    times = time_runs(lambda: runtime.run(feeds), config.warmup, config.runs, config.max_seconds,
                                      config.min_runs)
                except Exception as e:
                    rec.update(status="failed", reason=str(e))
                    echo(f"  {model:<14} {backend:<22} b={b:<3} failed: {e}")
                    entry["results"].append(rec)
                    continue
                st = latency_stats(times)
                rec["memory"] = memory_usage()  # host RSS (and device memory in use on a GPU) after the runs
                if backend == "torch":
                    torch_mean[b] = st.mean
                rec.update(status="ok", runs=st.count, latency_ms=st.as_dict(),
                           fps=round(1e3 / st.mean, 2), items_per_s=round(b * 1e3 / st.mean, 2),
                           speedup_vs_torch=round(torch_mean[b] / st.mean, 3) if b in torch_mean else None,
                           max_abs_diff_vs_onnxruntime_cpu=max_abs_diff(out, ref_out[b]))
                echo(f"  {model:<14} {backend:<22} b={b:<3} mean {st.mean:8.3f} ms  p50 {st.p50:8.3f}  p99 {st.p99:8.3f}"
                     f"  {rec['items_per_s']:9.1f} items/s"
                     + (f"  x{rec['speedup_vs_torch']:.2f} vs torch" if rec["speedup_vs_torch"] else ""))
                entry["results"].append(rec)
        finally:
            runtime.close()
    return entry


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for mod in ("numpy", "onnxruntime", "torch", "tensorrt", "onnx2torch"):
        if importlib.util.find_spec(mod) is None:
            out[mod] = None
            continue
        try:
            out[mod] = str(__import__(mod).__version__)
        except Exception as e:  # an installed but broken package
            out[mod] = f"unimportable: {e}"
    return out


def run_benchmark(models_dir: Path, models: Sequence[str] = DEFAULT_MODELS, config: ModelBenchConfig | None = None,
                  out_dir: Path | None = None, echo: Callable[[str], None] = print) -> dict:
    """Benchmark ``models``; with ``out_dir`` write benchmark.json and benchmark.png there (atomically)."""
    config = config or ModelBenchConfig()
    bad = [b for b in config.backends if b not in BACKENDS]
    if bad:
        raise BenchError(f"unknown backends {bad}; choose from {BACKENDS}")
    if not config.batches or any(b < 1 for b in config.batches):
        raise BenchError(f"batch sizes must be >= 1, got {list(config.batches)}")
    if config.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    from edge_infer.models.spec import load_zoo

    zoo = load_zoo()
    models_dir = Path(models_dir)
    face = None
    if any(m in zoo.models and zoo.models[m].task in ("emotion", "face_mesh") for m in models):
        face = frame_face(models_dir, camera_frame(models_dir, config.resolution))
    t0 = time.perf_counter()
    report = {
        "schema": SCHEMA, "version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"machine": platform.machine(), "processor": platform.processor() or None,
                 "cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "versions": _versions(),
        "config": config.as_dict(),
        "models": [bench_one_model(m, models_dir, config, zoo, face, echo) for m in models],
    }
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if out_dir is not None:
        out_dir = Path(out_dir)
        report["files"] = {"json": str(out_dir / "benchmark.json"), "plot": str(out_dir / "benchmark.png")}
        atomic_write_json(out_dir / "benchmark.json", report)
        plot_benchmark(report, out_dir / "benchmark.png")
    return report


def plot_benchmark(report: Mapping[str, Any], png_path: Path) -> Path:
    """Grouped bars: mean latency per model x batch, one bar per runtime (p50..p99 as the whisker)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = report["models"]
    fig = Figure(figsize=(5 * max(1, len(models)), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    for i, m in enumerate(models):
        ax = fig.add_subplot(1, max(1, len(models)), i + 1)
        ok = [r for r in m["results"] if r["status"] == "ok"]
        backends = list(dict.fromkeys(r["backend"] for r in ok))
        batches = sorted({r["batch"] for r in m["results"]})
        width = 0.8 / max(1, len(backends))
        for j, be in enumerate(backends):
            xs, ys, lo, hi = [], [], [], []
            for k, b in enumerate(batches):
                r = next((r for r in ok if r["backend"] == be and r["batch"] == b), None)
                if r is None:
                    continue
                lat = r["latency_ms"]
                xs.append(k + (j - (len(backends) - 1) / 2) * width)
                ys.append(lat["mean"])
                lo.append(max(0.0, lat["mean"] - lat["p50"]) if lat["p50"] < lat["mean"] else 0.0)
                hi.append(max(0.0, lat["p99"] - lat["mean"]))
            ax.bar(xs, ys, width, label=be, yerr=[lo, hi], capsize=2)
        ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        ax.set_ylabel("latency per call (ms), whisker to p99")
        skipped = sorted({r["backend"] for r in m["results"] if r["status"] != "ok"})
        ax.set_title(f"{m['model']}" + (f"\n(skipped: {', '.join(skipped)})" if skipped else ""), fontsize=9)
        if backends:
            ax.legend(fontsize=8)
    fig.suptitle(f"edge-infer bench model  ({report['host'].get('machine')}, {report['host'].get('cpus')} CPUs)",
                 fontsize=10)
    fig.tight_layout()
    return atomic_save_figure(fig, png_path)


def summary_table(report: Mapping[str, Any]) -> str:
    lines = [f"{'model':<14} {'backend':<22} {'batch':>5} {'mean ms':>9} {'p50':>8} {'p99':>8} {'items/s':>9} {'vs torch':>8}"]
    for m in report["models"]:
        for r in m["results"]:
            if r["status"] == "ok":
                lat = r["latency_ms"]
                sp = f"x{r['speedup_vs_torch']:.2f}" if r.get("speedup_vs_torch") else "-"
                lines.append(f"{m['model']:<14} {r['backend']:<22} {r['batch']:>5} {lat['mean']:>9.3f} {lat['p50']:>8.3f} "
                             f"{lat['p99']:>8.3f} {r['items_per_s']:>9.1f} {sp:>8}")
            elif r["batch"] == min(x["batch"] for x in m["results"]):
                lines.append(f"{m['model']:<14} {r['backend']:<22} {r['status']}: {r['reason'][:90]}")
    return "\n".join(lines)
