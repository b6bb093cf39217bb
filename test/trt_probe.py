"""Runs edge_infer's TensorRT code against the REAL bindings of one TensorRT version (a child process; see
test/trt_bindings.py). Usage: ``python trt_probe.py SITE_DIR SCENARIO JSON_ARGS``; prints one JSON line.

What is real here: the ``tensorrt`` module (enums, classes, method and property signatures), ``trt.Logger``,
``trt.Dims``, ``trt.IProgressMonitor`` (subclassed by the project), the ONNX converter and ONNX Runtime.
What is not: objects TensorRT's library would create (Builder, network, config, profile, timing cache,
parser, Runtime, engine, context). They are :class:`Recorder` objects that accept only what the real class
accepts: every method called must exist on the real class and match one of its real pybind signatures
(argument count and types: enums must be that enum, Dims must convert to ``trt.Dims``, bool must be bool),
every attribute set must be a real property with a setter and a value of its type. Calls are logged.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable

SITE, SCENARIO, ARGS = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, SITE)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project under test
sys.path.insert(0, str(Path(__file__).resolve().parent))  # fake_cuda

import tensorrt_bindings as trt  # noqa: E402  the real bindings

sys.modules["tensorrt"] = trt  # what `import tensorrt` gives on a robot (the meta package re-exports these)
REAL = {name: getattr(trt, name) for name in dir(trt)}  # before any factory is replaced by a recorder factory
LOG: list[list[Any]] = []


# ---------------------------------------------------------------------------------------------- signatures
def _split(params: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in params:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def signatures(func: Any, name: str) -> list[tuple[list[tuple[str, str, bool]], str]]:
    """[(params [(name, type, has_default)] without self, return type)] from a pybind docstring."""
    sigs = []
    for line in (func.__doc__ or "").splitlines():
        m = re.match(rf"\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*->\s*(.+?)\s*$", line)
        if not m or m.group(1).startswith("*args"):
            continue
        params = []
        for p in _split(m.group(1)):
            pname, _, rest = p.partition(":")
            ptype, _, default = rest.partition("=")
            params.append((pname.strip(), ptype.strip(), bool(default.strip())))
        sigs.append(([p for p in params if p[0] not in ("self", "arg0")], m.group(2)))
    return sigs


def _last(tp: str) -> str:
    return tp.rsplit(".", 1)[-1]


def accepts(tp: str, value: Any) -> bool:
    """Whether pybind would accept ``value`` for a parameter documented as ``tp``."""
    if tp in ("int", "typing.SupportsInt"):
        return isinstance(value, int) or hasattr(value, "__index__")
    if tp == "bool":
        return isinstance(value, bool)
    if tp in ("str",):
        return isinstance(value, str)
    if tp in ("float", "typing.SupportsFloat"):
        return isinstance(value, (int, float))
    if tp in ("buffer", "typing_extensions.Buffer", "collections.abc.Buffer"):
        try:
            memoryview(value)
            return True
        except TypeError:
            return False
    if tp.startswith(("tensorrt_bindings.", "tensorrt.")):
        real = REAL.get(_last(tp))
        if real is None:
            return True
        if isinstance(value, Recorder):
            return issubclass(value._cls, real) or value._cls.__name__ == real.__name__
        if real is trt.Dims and isinstance(value, (tuple, list)):
            try:
                trt.Dims(value)
                return True
            except Exception:
                return False
        return isinstance(value, real)
    return True  # object, List[...], typing constructs: not checked


def _show(v: Any) -> Any:
    if isinstance(v, Recorder):
        return f"<{v._cls.__name__}>"
    if hasattr(v, "name") and type(v).__module__.startswith("tensorrt"):
        return f"{type(v).__name__}.{v.name}"
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    if isinstance(v, (tuple, list)):
        return [_show(x) for x in v]
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return f"<{type(v).__name__}>"


class Recorder:
    """Stands in for a library-made TensorRT object of real class ``cls`` (see the module docstring)."""

    def __init__(self, cls: Any, returns: dict[str, Any] | None = None, attrs: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_cls", cls)
        object.__setattr__(self, "_returns", returns or {})
        object.__setattr__(self, "_attrs", dict(attrs or {}))

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._cls, name)  # AttributeError: not in this TensorRT version
        if isinstance(real, property):
            if name in self._attrs:
                return self._attrs[name]
            return _default(signatures(real.fget, "")[0][1] if signatures(real.fget, "") else "", name)
        sigs = signatures(real, name)
        if not sigs:
            raise AssertionError(f"{self._cls.__name__}.{name}: no parsable signature in {real.__doc__!r}")

        def call(*args: Any) -> Any:
            for params, ret in sigs:
                need = [p for p in params if not p[2]]
                if len(need) <= len(args) <= len(params) and all(accepts(t, a) for (_, t, _), a in zip(params, args)):
                    LOG.append([self._cls.__name__, name, _show(list(args))])
                    given = self._returns.get(name)
                    return given(*args) if callable(given) else given if name in self._returns else _default(ret, name)
            raise TypeError(f"{self._cls.__name__}.{name}{_show(list(args))} matches no real signature: "
                            + " | ".join(f"({', '.join(f'{n}: {t}' for n, t, _ in p)}) -> {r}" for p, r in sigs))

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        real = getattr(self._cls, name, None)
        if not isinstance(real, property) or real.fset is None:
            raise AttributeError(f"{self._cls.__name__} has no settable property '{name}' in TensorRT {trt.__version__}")
        sig = signatures(real.fget, "")
        if sig and not accepts(sig[0][1], value):
            raise TypeError(f"{self._cls.__name__}.{name} = {_show(value)}: the real property is {sig[0][1]}")
        LOG.append([self._cls.__name__, f"{name}=", _show(value)])
        self._attrs[name] = value


def _default(ret: str, name: str) -> Any:
    if ret == "None":
        return None
    if ret == "bool":
        return True
    if ret in ("int", "typing.SupportsInt"):
        return 0
    if ret == "str":
        return ""
    real = REAL.get(_last(ret))
    if isinstance(real, type) and not hasattr(real, "__members__"):
        return Recorder(real)
    raise AssertionError(f"no default for {name} -> {ret}; give the recorder a return value")


# ---------------------------------------------------------------------------------------------- fixtures
def install_builder(dla_cores: int = 0, inputs: list[tuple[str, bool]] | None = None,
                    on_build: Callable[[], None] | None = None, timing_accepts: list[bool] | None = None) -> None:
    """trt.Builder / trt.OnnxParser -> recorders (their real factories return NULL against the stubs)."""
    tensors = [Recorder(trt.ITensor, attrs={"name": n, "is_shape_tensor": s}) for n, s in (inputs or [("input", False)])]
    network = Recorder(trt.INetworkDefinition, returns={"get_input": lambda i: tensors[i]}, attrs={"num_inputs": len(tensors)})
    accepts_iter = iter(timing_accepts or [])
    caches: list[Recorder] = []

    def make_cache(data: Any) -> Recorder:
        cache = Recorder(trt.ITimingCache, returns={"serialize": lambda: bytes(data) + b"+tuned", "combine": True})
        caches.append(cache)
        return cache

    config = Recorder(trt.IBuilderConfig, returns={
        "create_timing_cache": make_cache, "set_timing_cache": lambda c, i: next(accepts_iter, True),
        "get_timing_cache": lambda: caches[-1], "add_optimization_profile": 0})

    def build(net: Any, cfg: Any) -> bytes:
        if on_build:
            on_build()
        mon = config._attrs.get("progress_monitor")
        if mon is not None:  # drive the project's real IProgressMonitor subclass like TensorRT 10 does
            mon.phase_start("Building engine", None, 2)
            assert mon.step_complete("Building engine", 0) is True
            mon.phase_finish("Building engine")
        return b"ENGINE-" + trt.__version__.encode()

    builder_attrs = {"num_DLA_cores": dla_cores}

    def make_builder(logger: Any) -> Recorder:
        assert isinstance(logger, trt.ILogger), logger
        return Recorder(REAL["Builder"], returns={"create_network": network, "create_builder_config": config,
                                              "build_serialized_network": build}, attrs=builder_attrs)

    def make_parser(net: Any, logger: Any) -> Recorder:
        assert accepts("tensorrt_bindings.tensorrt.INetworkDefinition", net) and isinstance(logger, trt.ILogger)
        return Recorder(REAL["OnnxParser"], returns={"parse_from_file": True}, attrs={"num_errors": 0})

    trt.Builder, trt.OnnxParser = make_builder, make_parser


def fake_identity() -> None:
    from edge_infer.backends.tensorrt import sidecar

    sidecar.machine_identity = lambda device=0, version=None: sidecar.engine_identity(version, "Orin", "8.7")


def qdq_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]), helper.make_node("Relu", ["dq"], ["y"])]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


# ---------------------------------------------------------------------------------------------- scenarios
def constants() -> dict:
    enums = ("NetworkDefinitionCreationFlag", "BuilderFlag", "MemoryPoolType", "DeviceType", "TensorIOMode", "DataType")
    return {"version": trt.__version__,
            **{e: {k: int(v) for k, v in getattr(trt, e).__members__.items()} for e in enums},
            "has_IProgressMonitor": hasattr(trt, "IProgressMonitor"),
            "builder_platform_has_fast_fp16": hasattr(trt.Builder, "platform_has_fast_fp16"),
            "runtime_DLA_core": isinstance(getattr(trt.Runtime, "DLA_core", None), property),
            "engine_is_shape_inference_io": hasattr(trt.ICudaEngine, "is_shape_inference_io")}


def build() -> dict:
    """build_engine (Python API) for fp32 / fp16 / int8-QDQ / DLA, timing cache kept, merged and rejected."""
    from edge_infer.backends.tensorrt import build as eb
    from edge_infer.backends.tensorrt.precision import Capabilities
    from edge_infer.backends.tensorrt.sidecar import read_sidecar

    fake_identity()
    out, models = Path(ARGS["out"]), Path(ARGS["models_dir"])
    emo = models / "emotion.onnx"
    prof = {"input": ((1, 1, 64, 64), (1, 1, 64, 64), (8, 1, 64, 64))}
    results: dict[str, Any] = {"capabilities": Capabilities.of_module(trt).__dict__,
                               "of_major_agrees": Capabilities.of_module(trt) == Capabilities.of_major(
                                   int(trt.__version__.split(".")[0]))}

    def case(name: str, onnx_path: Path, options: Any, **builder: Any) -> None:
        LOG.clear()
        install_builder(**builder)
        lines: list[str] = []
        try:
            meta = eb.build_engine(onnx_path, out / name / "e.engine", options, echo=lines.append)
        except Exception as e:  # recorded: the parent asserts which cases must fail and how
            results[name] = {"error": f"{type(e).__name__}: {e}", "calls": list(LOG)}
            return
        side = read_sidecar(out / name / "e.engine")
        results[name] = {"calls": list(LOG), "route": meta["route"], "strongly_typed": meta["strongly_typed"],
                         "parsed_onnx": meta["parsed_onnx"], "built_precision": meta["built_precision"],
                         "engine": (out / name / "e.engine").read_bytes().decode(), "lines": lines,
                         "sidecar_options": side["options"], "timing_cache": meta["timing_cache"]}

    tc_dir = out / "tc"
    tc_dir.mkdir(parents=True, exist_ok=True)
    case("fp32", emo, eb.BuildOptions(precision="fp32", profiles=prof, timing_cache=str(tc_dir / "timing.cache"),
                                      optimization_level=4))
    case("fp16", emo, eb.BuildOptions(precision="fp16", profiles=prof))
    case("int8", qdq_model(out / "q.onnx"), eb.BuildOptions(precision="int8", profiles={
        "x": ((1, 4), (1, 4), (8, 4))}), inputs=[("x", False)])
    case("dla", emo, eb.BuildOptions(precision="fp16", dla_core=1, profiles={"input": ((4, 1, 64, 64),) * 3}), dla_cores=2)
    case("fp16_flag_forced", emo, eb.BuildOptions(precision="fp16", fp16_source="flag", profiles=prof))
    case("shape_tensor", emo, eb.BuildOptions(precision="fp32", profiles=prof), inputs=[("input", True)])
    keyed = Path(results["fp32"].get("timing_cache") or tc_dir / "missing")
    keyed.write_bytes(b"OLD")  # the second fp32 build finds a cache, and another process writes meanwhile
    case("timing_merge", emo, eb.BuildOptions(precision="fp32", profiles=prof, timing_cache=str(tc_dir / "timing.cache")),
         on_build=lambda: keyed.write_bytes(b"OTHER"))
    results["timing_merge"]["file"] = keyed.read_bytes().decode()
    keyed.write_bytes(b"FOREIGN")
    case("timing_rejected", emo, eb.BuildOptions(precision="fp32", profiles=prof, timing_cache=str(tc_dir / "timing.cache")),
         timing_accepts=[False, True])
    results["timing_rejected"]["file"] = keyed.read_bytes().decode()
    return results


def commands() -> dict:
    """trtexec / polygraphy lines for this version's real capabilities (the same Route the build uses)."""
    from edge_infer.backends.tensorrt import build as eb
    from edge_infer.backends.tensorrt.trt import trt_major

    out, models = Path(ARGS["out"]), Path(ARGS["models_dir"])
    prof = {"input": ((1, 1, 64, 64), (1, 1, 64, 64), (8, 1, 64, 64))}
    q = qdq_model(out / "q.onnx")
    res = {}
    for tool in ("trtexec", "polygraphy"):
        for precision, onnx_path, p in (("fp32", models / "emotion.onnx", prof), ("fp16", models / "emotion.onnx", prof),
                                        ("int8", q, {"x": ((1, 4), (1, 4), (8, 4))})):
            opts = eb.BuildOptions(precision=precision, profiles=p, timing_cache=str(out / "timing.cache"))
            cmd, parsed = eb.command_for(tool, onnx_path, out / f"{precision}.engine", opts, trt_major(trt))
            res[f"{tool}-{precision}"] = {"cmd": cmd, "route": parsed.route.kind}
    return res


def runtime() -> dict:
    """TensorRTBackend (dynamic batch, DLA core from the sidecar, close) against recorder engine objects whose
    calls match the real signatures, on a fake CUDA device, run from a second thread."""
    from fake_cuda import FakeCudaDevice

    LOG.clear()

    from edge_infer.backends.tensorrt import cuda, runtime as rt
    from edge_infer.backends.tensorrt.sidecar import engine_identity, write_sidecar
    from edge_infer.fileio import sha256_file

    dev = FakeCudaDevice()
    cuda.open_device = lambda index=0, layer="auto": dev
    out = Path(ARGS["out"])
    engine_path = out / "e.engine"
    engine_path.write_bytes(b"ENGINE")
    write_sidecar(engine_path, {"identity": engine_identity(trt.__version__, dev.info().name, dev.info().compute_capability),
                                "engine_bytes": 6, "engine_sha256": sha256_file(engine_path),
                                "build_options": {"dla_core": 1}})
    shapes = {"input": (-1, 1, 64, 64), "scores": (-1, 7)}
    live = {"batch": 8}

    def ctx_shape(name: str) -> Any:
        return trt.Dims((live["batch"], *shapes[name][1:]))

    def set_input_shape(name: str, shape: Any) -> bool:
        live["batch"] = tuple(shape)[0]
        return True

    context = Recorder(trt.IExecutionContext, returns={"set_input_shape": set_input_shape, "get_tensor_shape": ctx_shape,
                                                       "set_tensor_address": True, "execute_async_v3": True})
    names = ["input", "scores"]
    engine = Recorder(trt.ICudaEngine, attrs={"num_io_tensors": 2, "num_optimization_profiles": 1}, returns={
        "get_tensor_name": lambda i: names[i], "is_shape_inference_io": False,
        "get_tensor_mode": lambda n: trt.TensorIOMode.INPUT if n == "input" else trt.TensorIOMode.OUTPUT,
        "get_tensor_shape": lambda n: trt.Dims(shapes[n]), "get_tensor_dtype": lambda n: trt.DataType.FLOAT,
        "get_tensor_profile_shape": lambda n, p: [trt.Dims((1, 1, 64, 64)), trt.Dims((1, 1, 64, 64)),
                                                  trt.Dims((8, 1, 64, 64))],
        "create_execution_context": context})

    def make_runtime(logger: Any) -> Recorder:
        assert isinstance(logger, trt.ILogger)
        return Recorder(REAL["Runtime"], returns={"deserialize_cuda_engine": engine}, attrs={"num_DLA_cores": 2})

    trt.Runtime = make_runtime
    import numpy as np

    backend = rt.TensorRTBackend(str(engine_path))
    result: dict[str, Any] = {}

    def worker() -> None:  # inference in another thread than construction, as in the nodes
        try:
            got = backend.run({"input": np.zeros((3, 1, 64, 64), np.float32)})
            result["shape"] = list(got["scores"].shape)
        except Exception as e:
            result["error"] = f"{type(e).__name__}: {e}"

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    backend.close()
    backend.close()  # idempotent
    return {**result, "calls": list(LOG), "name": backend.name, "device_closed": dev.closed,
            "unbound_calls": dev.unbound_calls, "profiles": {k: [list(s) for s in v] for k, v in backend.profiles.items()}}


def everything() -> dict:
    """All scenarios in one process (one interpreter start per version in the test suite)."""
    out = Path(ARGS["out"])
    res = {"constants": constants()}
    for name, fn in (("build", build), ("commands", commands), ("runtime", runtime)):
        ARGS["out"] = str(out / name)
        Path(ARGS["out"]).mkdir(parents=True, exist_ok=True)
        res[name] = fn()
    return res


if __name__ == "__main__":
    scenarios = {"constants": constants, "build": build, "commands": commands, "runtime": runtime, "all": everything}
    print(json.dumps(scenarios[SCENARIO]()))
