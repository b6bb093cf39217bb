"""Build TensorRT engines on the robot from (sanitized) ONNX models: TensorRT 8.6 and 10.x Python API.

Engines are specific to the GPU and TensorRT version, so they are built where they run. Everything that
decides *what* to build is pure Python and tested without a GPU: optimization profiles from the model spec
or the command line (:func:`derive_profiles`), explicit-quantization detection (:func:`has_qdq`), the options
that make up the cache key (:class:`BuildOptions`), the equivalent ``trtexec`` / ``polygraphy`` command
lines, and the metadata sidecar. The TensorRT calls themselves are in :func:`_build_serialized` and the two
small helpers it uses.

Precision:
- ``fp32``; ``fp16`` (BuilderFlag.FP16, TensorRT may keep layers in fp32 where faster/necessary);
- ``int8`` only from QDQ models (``edge-infer quantize``): explicit quantization, the scales are in the graph.
  On TensorRT >= 10 such networks are built *strongly typed* (NetworkDefinitionCreationFlag.STRONGLY_TYPED:
  the types in the ONNX decide, precision flags are not used), the recommended way for QDQ models; on 8.6
  the network is created with EXPLICIT_BATCH and the INT8 (+ FP16 for the unquantized layers) flags are set.
  Implicit (calibration-based) INT8 is deprecated in TensorRT 10 and is not offered.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from edge_infer.backends.tensorrt import sidecar
from edge_infer.backends.tensorrt.trt import import_tensorrt, logger, parse_major, tensorrt_version, trt_major
from edge_infer.backends.tensorrt.trt import version_from_trtexec_banner
from edge_infer.errors import EdgeInferError
from edge_infer.fileio import atomic_path, atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
TRTEXEC_DIRS = ("/usr/src/tensorrt/bin",)  # JetPack installs trtexec here, not on PATH
Shape = tuple[int, ...]
Profile = tuple[Shape, Shape, Shape]  # (min, opt, max)


class BuildError(EdgeInferError, RuntimeError):
    """The engine could not be built; the message names the model and the cause."""


# ---------------------------------------------------------------------------------------------- options
@dataclass
class BuildOptions:
    precision: str = "fp16"
    workspace_mb: int = 1024
    profiles: dict[str, Profile] = field(default_factory=dict)  # input name -> (min, opt, max)
    timing_cache: str | None = None  # path; read before and written after the build
    dla_core: int | None = None  # Jetson AGX/NX DLA core (0/1); None = GPU
    gpu_fallback: bool = True  # with DLA: layers the DLA cannot run go to the GPU
    strongly_typed: str = "auto"  # auto (TRT >= 10 and QDQ) | on | off
    optimization_level: int | None = None  # builder optimization level 0..5 (TRT default 3)
    device: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BuildError(f"unknown precision '{self.precision}'; use one of {PRECISIONS}")
        if self.strongly_typed not in ("auto", "on", "off"):
            raise BuildError(f"strongly_typed must be auto|on|off, not '{self.strongly_typed}'")
        if self.workspace_mb <= 0:
            raise BuildError(f"workspace must be positive, got {self.workspace_mb} MB")
        self.profiles = {k: tuple(tuple(int(d) for d in s) for s in v) for k, v in self.profiles.items()}

    def key_dict(self) -> dict[str, Any]:
        """The options that change the engine (the timing cache path and the device index do not)."""
        return {
            "precision": self.precision,
            "workspace_mb": self.workspace_mb,
            "profiles": {k: [list(s) for s in v] for k, v in sorted(self.profiles.items())},
            "dla_core": self.dla_core,
            "gpu_fallback": self.gpu_fallback if self.dla_core is not None else None,
            "strongly_typed": self.strongly_typed,
            "optimization_level": self.optimization_level,
        }

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["profiles"] = {k: [list(s) for s in v] for k, v in self.profiles.items()}
        return d

    @classmethod
    def for_onnx(
        cls,
        onnx_path: str | Path,
        *,
        profiles: Mapping[str, Profile] | None = None,
        spec_profile: Mapping[str, Any] | None = None,
        batch: str | tuple[int, int, int] | None = None,
        explicit_profiles: Mapping[str, Profile] | None = None,
        **fields_: Any,
    ) -> "BuildOptions":
        """The one place options are assembled for a model (engine cache, ``edge-infer build``, selftest).

        ``profiles`` when given are used as they are; otherwise they are derived from the ONNX inputs, the
        zoo spec's ``profile``, ``batch`` (``"1:4:8"`` or a tuple) and ``explicit_profiles`` (``--profile``)
        by :func:`derive_profiles`. ``fields_`` are the other dataclass fields; None means "the default".
        """
        known = {f.name for f in fields(cls)} - {"profiles"}
        unknown = sorted(set(fields_) - known)
        if unknown:
            raise BuildError(f"unknown build options {unknown}; known: {sorted(known)}")
        if isinstance(batch, str):
            batch = parse_range(batch)
        if not profiles:
            profiles = derive_profiles(onnx_inputs(onnx_path), spec_profile, batch, explicit_profiles)
        given = {k: v for k, v in fields_.items() if v is not None}
        for k in ("workspace_mb", "device"):
            if k in given:
                given[k] = int(given[k])
        return cls(profiles=dict(profiles), **given)


# ---------------------------------------------------------------------------------------------- shapes
def parse_shape(text: str) -> Shape:
    """``1x3x640x640`` (trtexec style) or ``1,3,640,640`` / ``[1,3,640,640]`` -> (1, 3, 640, 640)."""
    t = text.strip().strip("[]()")
    parts = re.split(r"[x,]", t) if t else []
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise BuildError(f"bad shape '{text}': use e.g. 1x3x640x640") from None
    if not shape or any(d <= 0 for d in shape):
        raise BuildError(f"bad shape '{text}': dimensions must be positive integers")
    return shape


def parse_range(text: str) -> tuple[int, int, int]:
    """``--batch``: ``1:4:8`` -> (1, 4, 8); ``1:8`` -> (1, 1, 8) (opt = min); ``8`` -> (8, 8, 8)."""
    try:
        vals = [int(v) for v in text.split(":")]
    except ValueError:
        raise BuildError(f"bad range '{text}': use MIN:OPT:MAX, e.g. 1:4:8") from None
    if len(vals) == 1:
        vals = vals * 3
    elif len(vals) == 2:
        vals = [vals[0], vals[0], vals[1]]
    if len(vals) != 3 or not (0 < vals[0] <= vals[1] <= vals[2]):
        raise BuildError(f"bad range '{text}': need 0 < MIN <= OPT <= MAX")
    return vals[0], vals[1], vals[2]


def parse_profile_arg(text: str) -> tuple[str, Profile]:
    """``name:MINxSHAPE:OPTxSHAPE:MAXxSHAPE`` (``--profile input:1x1x64x64:4x1x64x64:8x1x64x64``)."""
    parts = text.rsplit(":", 3)
    if len(parts) != 4 or not parts[0]:
        raise BuildError(f"bad --profile '{text}': use NAME:MIN:OPT:MAX with shapes like 1x3x640x640")
    name, lo, opt, hi = parts
    return name, _check_profile(name, (parse_shape(lo), parse_shape(opt), parse_shape(hi)))


def _check_profile(name: str, prof: Profile) -> Profile:
    lo, opt, hi = prof
    if not (len(lo) == len(opt) == len(hi)):
        raise BuildError(f"profile for '{name}': min/opt/max have different ranks {lo} {opt} {hi}")
    if any(not (a <= b <= c) for a, b, c in zip(lo, opt, hi)):
        raise BuildError(f"profile for '{name}': need min <= opt <= max in every dimension, got {lo} {opt} {hi}")
    return prof


def onnx_inputs(onnx_path: str | Path) -> list[tuple[str, tuple[int | str | None, ...]]]:
    """Graph inputs (initializers excluded) as (name, dims); a dim is an int, a symbolic name, or None."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = []
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or None)
        out.append((vi.name, tuple(dims)))
    return out


def require_qdq(onnx_path: str | Path, precision: str) -> bool:
    """The one int8 rule: int8 engines come only from QDQ models (explicit quantization). Returns has_qdq."""
    qdq = has_qdq(onnx_path)
    if precision == "int8" and not qdq:
        raise BuildError(f"{Path(onnx_path).name} has no QuantizeLinear/DequantizeLinear nodes: int8 engines are built "
                         "from QDQ models (explicit quantization). Run `edge-infer quantize --mode int8` first, or use fp16")
    return qdq


def has_qdq(onnx_path: str | Path) -> bool:
    """True when the model carries QuantizeLinear/DequantizeLinear nodes (explicit quantization)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        for n in g.node:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                return True
            graphs.extend(a.g for a in n.attribute if a.type == onnx.AttributeProto.GRAPH)
    return False


def derive_profiles(
    inputs: Sequence[tuple[str, tuple[int | str | None, ...]]],
    spec_profile: Mapping[str, Sequence[Sequence[int]]] | None = None,
    batch: tuple[int, int, int] | None = None,
    explicit: Mapping[str, Profile] | None = None,
) -> dict[str, Profile]:
    """Optimization profiles for the dynamic inputs of a model, most specific source first:

    1. ``explicit`` (``--profile name:MIN:OPT:MAX``) for that input;
    2. the model spec's ``profile`` (config/models.yaml): either {min, opt, max}, which describes the *first*
       input (spec tensor names may differ from the exported names, e.g. face_mesh ``input`` vs ``image``),
       or {input_name: {min, opt, max}, ...} for models with several dynamic inputs;
    3. static dimensions as they are, dynamic batch (dim 0) = ``batch`` or 1.
    ``batch`` (``--batch 1:4:8``) then overrides dim 0 of every input whose dim 0 is dynamic.
    Inputs with only static dims get no profile (TensorRT needs none). A profile that contradicts a
    static dimension, or a dynamic non-batch dimension with no source, is an error naming the input.
    """
    explicit = dict(explicit or {})
    unknown = set(explicit) - {n for n, _ in inputs}
    if unknown:
        raise BuildError(f"--profile names unknown inputs {sorted(unknown)}; the model's inputs are "
                         f"{[n for n, _ in inputs]}")
    profiles: dict[str, Profile] = {}
    for idx, (name, dims) in enumerate(inputs):
        dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
        if name in explicit:
            prof = explicit[name]
        elif not dynamic:
            continue
        elif spec_profile and name in spec_profile and isinstance(spec_profile[name], Mapping):
            prof = tuple(tuple(int(d) for d in spec_profile[name][k]) for k in ("min", "opt", "max"))
        elif idx == 0 and spec_profile and all(k in spec_profile for k in ("min", "opt", "max")):
            prof = tuple(tuple(int(d) for d in spec_profile[k]) for k in ("min", "opt", "max"))
        else:
            missing = [i for i in dynamic if i != 0]
            if missing:
                raise BuildError(f"input '{name}' {list(dims)} has dynamic dimensions {missing} besides the batch; "
                                 f"give its shapes with --profile {name}:MIN:OPT:MAX (e.g. 1x3x384x640)")
            one = tuple(1 if not isinstance(d, int) else d for d in dims)
            prof = (one, one, one)
        prof = tuple(tuple(s) for s in prof)
        if batch is not None and dims and not isinstance(dims[0], int) and name not in explicit:
            prof = tuple((b, *s[1:]) for b, s in zip(batch, prof))
        for s in prof:
            if len(s) != len(dims):
                raise BuildError(f"profile for input '{name}' has rank {len(s)} {list(s)}, the model input is "
                                 f"{list(dims)} (rank {len(dims)})")
            bad = [i for i, (want, got) in enumerate(zip(dims, s)) if isinstance(want, int) and want != got]
            if bad:
                raise BuildError(f"profile shape {list(s)} for input '{name}' contradicts its static dimensions "
                                 f"{list(dims)} at axes {bad}")
        profiles[name] = _check_profile(name, prof)  # type: ignore[arg-type]
    return profiles


# ---------------------------------------------------------------------------------------------- command lines
def _x(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def trtexec_command(onnx_path: str | Path, engine_path: str | Path, options: BuildOptions, trtexec: str = "trtexec",
                    strongly_typed: bool = False) -> list[str]:
    """The trtexec invocation that builds the same engine (flags valid for TensorRT 8.6 and 10.x)."""
    cmd = [trtexec, f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
           f"--memPoolSize=workspace:{options.workspace_mb}"]  # MiB in both 8.6 and 10
    if strongly_typed:
        cmd.append("--stronglyTyped")
    else:
        if options.precision in ("fp16", "int8"):
            cmd.append("--fp16")
        if options.precision == "int8":
            cmd.append("--int8")
    if options.profiles:
        for flag, i in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)):
            cmd.append(f"{flag}=" + ",".join(f"{n}:{_x(p[i])}" for n, p in options.profiles.items()))
    if options.timing_cache:
        cmd.append(f"--timingCacheFile={options.timing_cache}")
    if options.dla_core is not None:
        cmd.append(f"--useDLACore={options.dla_core}")
        if options.gpu_fallback:
            cmd.append("--allowGPUFallback")
    if options.optimization_level is not None:
        cmd.append(f"--builderOptimizationLevel={options.optimization_level}")
    return cmd


def polygraphy_command(onnx_path: str | Path, engine_path: str | Path, options: BuildOptions,
                       strongly_typed: bool = False) -> list[str]:
    """The ``polygraphy convert`` invocation that builds the same engine."""
    cmd = ["polygraphy", "convert", str(onnx_path), "--convert-to", "trt", "-o", str(engine_path),
           "--pool-limit", f"workspace:{options.workspace_mb}M"]
    if strongly_typed:
        cmd.append("--strongly-typed")
    else:
        if options.precision in ("fp16", "int8"):
            cmd.append("--fp16")
        if options.precision == "int8":
            cmd.append("--int8")
    if options.profiles:
        for flag, i in (("--trt-min-shapes", 0), ("--trt-opt-shapes", 1), ("--trt-max-shapes", 2)):
            cmd += [flag, *(f"{n}:[{','.join(map(str, p[i]))}]" for n, p in options.profiles.items())]
    if options.timing_cache:
        cmd += ["--load-timing-cache", options.timing_cache, "--save-timing-cache", options.timing_cache]
    if options.dla_core is not None:
        # polygraphy has no DLA core selector: it uses core 0
        cmd.append("--use-dla")
        if options.gpu_fallback:
            cmd.append("--allow-gpu-fallback")
    if options.optimization_level is not None:
        cmd += ["--builder-optimization-level", str(options.optimization_level)]
    return cmd


def format_command(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def find_trtexec() -> str:
    found = shutil.which("trtexec")
    if found:
        return found
    for d in TRTEXEC_DIRS:
        p = Path(d) / "trtexec"
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    raise BuildError(f"trtexec not found on PATH or in {', '.join(TRTEXEC_DIRS)}; on Jetson it ships with JetPack "
                     "(package libnvinfer-bin / tensorrt) in /usr/src/tensorrt/bin; build without --via trtexec to use "
                     "the TensorRT Python API instead")


# ---------------------------------------------------------------------------------------------- progress
def _progress_monitor_class(trt: Any, echo: Callable[[str], None]) -> Any:
    """An IProgressMonitor subclass (TensorRT >= 10) that reports phases, nested by indentation."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[name-defined, misc]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._depth: dict[str, int] = {}
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._depth[phase_name] = depth
            self._steps[phase_name] = num_steps
            if depth <= 1:  # deeper phases are per-tactic noise
                echo(f"{'  ' * depth}[build] {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # returning False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            if self._depth.pop(phase_name, 2) == 0:
                echo(f"[build] {phase_name} done")

    return Monitor()


# ---------------------------------------------------------------------------------------------- TensorRT
def use_strongly_typed(options: BuildOptions, trt_major_version: int, qdq: bool) -> bool:
    """The one strongly-typed rule (Python API and trtexec alike): ``on`` needs TensorRT >= 10; ``auto`` means
    int8 QDQ models on TensorRT >= 10 (precisions from the graph, no precision flags)."""
    if options.strongly_typed == "on":
        if trt_major_version < 10:
            raise BuildError("strongly typed networks need TensorRT >= 10 (this is TensorRT "
                             f"{trt_major_version}.x); use --strongly-typed off")
        return True
    if options.strongly_typed == "off":
        return False
    return trt_major_version >= 10 and options.precision == "int8" and qdq


def _create_network(trt: Any, builder: Any, strongly_typed: bool) -> Any:
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif trt_major(trt) < 10:
        # 8.x: explicit batch is required for ONNX (deprecated and implied in 10, where 0 is correct)
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return builder.create_network(flags)


def _configure(trt: Any, builder: Any, network: Any, config: Any, options: BuildOptions, strongly_typed: bool,
               echo: Callable[[str], None]) -> tuple[Any, bytes | None]:
    """Apply ``options`` to the builder config; returns (timing cache object, its bytes as loaded)."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if not strongly_typed:  # strongly typed networks take their precisions from the graph
        if options.precision in ("fp16", "int8"):
            if not getattr(builder, "platform_has_fast_fp16", True):
                echo("[build] warning: this GPU has no fast FP16; the engine may be slower than expected")
            config.set_flag(trt.BuilderFlag.FP16)
        if options.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # explicit quantization: scales come from the QDQ nodes
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    if options.dla_core is not None:
        if builder.num_DLA_cores <= options.dla_core:
            raise BuildError(f"DLA core {options.dla_core} requested, this device has {builder.num_DLA_cores} DLA cores")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        if options.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if options.profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in options.profiles.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    cache_bytes = None
    if options.timing_cache:
        path = Path(options.timing_cache)
        cache_bytes = path.read_bytes() if path.is_file() else b""
        cache = config.create_timing_cache(cache_bytes)
        config.set_timing_cache(cache, False)  # ignore_mismatch=False: a cache from another GPU is rejected
        if cache_bytes:
            echo(f"[build] reusing timing cache {path} ({len(cache_bytes)} bytes)")
    else:
        cache = None
    if hasattr(trt, "IProgressMonitor"):  # TensorRT >= 10
        config.progress_monitor = _progress_monitor_class(trt, echo)
    return cache, cache_bytes


def _build_serialized(onnx_path: Path, options: BuildOptions, echo: Callable[[str], None]) -> tuple[bytes, dict]:
    trt = import_tensorrt()
    qdq = require_qdq(onnx_path, options.precision)
    strongly = use_strongly_typed(options, trt_major(trt), qdq)
    builder = trt.Builder(logger(trt))
    network = _create_network(trt, builder, strongly)
    parser = trt.OnnxParser(network, logger(trt))
    # parse_from_file resolves external data (.onnx.data) next to the model
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildError(f"TensorRT's ONNX parser rejected {onnx_path}: " + " | ".join(errors)
                         + " (run `edge-infer sanitize` first)")
    config = builder.create_builder_config()
    cache, cache_bytes = _configure(trt, builder, network, config, options, strongly, echo)
    echo(f"[build] TensorRT {trt.__version__}: {onnx_path.name} precision={options.precision}"
         f"{' strongly-typed' if strongly else ''} workspace={options.workspace_mb} MB"
         f"{f' DLA{options.dla_core}' if options.dla_core is not None else ''}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    if cache is not None and options.timing_cache:
        data = bytes(config.get_timing_cache().serialize())
        if data != cache_bytes:
            atomic_write_bytes(options.timing_cache, data)
    return bytes(serialized), {"tensorrt": trt.__version__, "strongly_typed": strongly, "qdq": qdq}


def build_metadata(onnx_path: Path, engine_path: Path, options: BuildOptions, identity: Mapping[str, str],
                   seconds: float, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "identity": dict(identity),
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "precision": options.precision,
        "profiles": {k: {"min": list(p[0]), "opt": list(p[1]), "max": list(p[2])} for k, p in options.profiles.items()},
        "options": options.key_dict(),
        "build_options": options.as_dict(),
        "engine_bytes": engine_path.stat().st_size,
        "engine_sha256": sha256_file(engine_path),
        "build_seconds": round(seconds, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        **(extra or {}),
    }


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    options: BuildOptions,
    via: str = "python",
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build ``engine_path`` from ``onnx_path``; write it and its sidecar atomically; return the metadata."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise BuildError(f"ONNX model not found: {onnx_path}")
    t0 = time.perf_counter()
    if via == "trtexec":
        meta_extra = _build_with_trtexec(onnx_path, engine_path, options, echo)
    elif via == "python":
        data, meta_extra = _build_serialized(onnx_path, options, echo)
        atomic_write_bytes(engine_path, data)
    else:
        raise BuildError(f"unknown --via '{via}' (python | trtexec)")
    seconds = time.perf_counter() - t0
    identity = sidecar.machine_identity(options.device, meta_extra.pop("tensorrt"))
    meta = build_metadata(onnx_path, engine_path, options, identity, seconds, {"via": via, **meta_extra})
    sidecar.write_sidecar(engine_path, meta)
    echo(f"[build] wrote {engine_path} ({meta['engine_bytes'] / 1e6:.1f} MB) in {seconds:.1f} s")
    return meta


def _build_with_trtexec(onnx_path: Path, engine_path: Path, options: BuildOptions,
                        echo: Callable[[str], None]) -> dict[str, Any]:
    trtexec = find_trtexec()
    qdq = require_qdq(onnx_path, options.precision)
    with atomic_path(engine_path) as tmp:
        version = tensorrt_version()
        strongly = use_strongly_typed(options, parse_major(version) or 10, qdq)  # unknown: the current major
        cmd = trtexec_command(onnx_path, tmp, options, trtexec, strongly_typed=strongly)
        echo(f"[build] {format_command(cmd)}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not tmp.stat().st_size:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise BuildError(f"trtexec failed (exit {proc.returncode}):\n" + "\n".join(tail))
        if version is None:  # the bindings are optional with trtexec: read the version from its banner
            version = version_from_trtexec_banner(proc.stdout) or "unknown"
    return {"tensorrt": version, "strongly_typed": strongly, "qdq": qdq}


def sanitized_path(onnx_path: Path) -> Path:
    """Prefer the sanitize tool's output next to a model when it exists (``x.sanitized.onnx``/``x_sanitized.onnx``)."""
    for cand in (onnx_path.with_name(onnx_path.stem + ".sanitized.onnx"),
                 onnx_path.with_name(onnx_path.stem + "_sanitized.onnx"),
                 onnx_path.parent / "sanitized" / onnx_path.name):
        if cand.is_file():
            return cand
    return onnx_path



__all__ = ["BuildOptions", "BuildError", "derive_profiles", "parse_shape", "parse_range", "parse_profile_arg",
           "onnx_inputs", "has_qdq", "trtexec_command", "polygraphy_command", "format_command", "find_trtexec",
           "build_engine", "build_metadata", "use_strongly_typed", "require_qdq", "sanitized_path", "PRECISIONS"]
