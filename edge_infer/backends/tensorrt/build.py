"""Build TensorRT engines on the robot from (sanitized) ONNX models: TensorRT 8.6, 10.x and 11.x Python API.

Engines are specific to the GPU and TensorRT version, so they are built where they run. Everything that
decides *what* to build is pure Python and tested without a GPU: the options that make up the cache key
(:class:`BuildOptions`), profiles (:mod:`.profiles`), the precision route (:mod:`.precision`: what fp16 and
int8 mean on this TensorRT), the timing cache (:mod:`.timing_cache`), the command lines (:mod:`.tool_commands`)
and the sidecar. The TensorRT calls are :func:`_create_network`, :func:`_configure` and
:func:`_build_serialized`; CPU tests run them against the real bindings of 8.6, 10.3, 10.16 and 11.4.

Precision (see :mod:`.precision`): ``fp32``; ``fp16`` by ``BuilderFlag.FP16`` where it exists, else an FP16
ONNX (the project's converter, validated, fp32 when it fails) built strongly typed; ``int8`` only from QDQ
models. DLA (Jetson AGX/NX) runs FP16/INT8 with static shapes only, so fp32 or dynamic profiles with a DLA
core are refused instead of silently running on the GPU.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_infer.backends.tensorrt import sidecar
from edge_infer.backends.tensorrt.engine_trust import engine_key
from edge_infer.backends.tensorrt.precision import (FP16_SOURCES, PRECISIONS, BuildError, Capabilities, Route,
                                                    choose_route, fallback_fp32, fp16_graph_for, require_qdq,
                                                    route_key)
from edge_infer.backends.tensorrt.profiles import Profile, derive_profiles, is_static, onnx_inputs, parse_range
from edge_infer.backends.tensorrt.progress import BUILDS, BuildState, progress_monitor
from edge_infer.backends.tensorrt.timing_cache import TimingCache, keyed_path
from edge_infer.backends.tensorrt.tool_commands import (find_trtexec, format_command, polygraphy_command,
                                                        trtexec_command, trtexec_version)
from edge_infer.backends.tensorrt.trt import import_tensorrt, logger, parse_major, tensorrt_version
from edge_infer.fileio import atomic_path, atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- options
@dataclass
class BuildOptions:
    precision: str = "fp16"
    workspace_mb: int = 1024
    profiles: dict[str, Profile] = field(default_factory=dict)  # input name -> (min, opt, max)
    timing_cache: str | None = None  # path; read before and written after the build
    dla_core: int | None = None  # Jetson AGX/NX DLA core (0/1); None = GPU
    gpu_fallback: bool = True  # with DLA: layers the DLA cannot run go to the GPU
    strongly_typed: str = "auto"  # auto | on | off (see precision.choose_route)
    fp16_source: str = "auto"  # auto: BuilderFlag.FP16 where it exists, else an FP16 ONNX | flag | onnx
    optimization_level: int | None = None  # builder optimization level 0..5 (TRT default 3)
    device: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BuildError(f"unknown precision '{self.precision}'; use one of {PRECISIONS}")
        if self.strongly_typed not in ("auto", "on", "off"):
            raise BuildError(f"strongly_typed must be auto|on|off, not '{self.strongly_typed}'")
        if self.fp16_source not in FP16_SOURCES:
            raise BuildError(f"fp16_source must be one of {FP16_SOURCES}, not '{self.fp16_source}'")
        if self.workspace_mb <= 0:
            raise BuildError(f"workspace must be positive, got {self.workspace_mb} MB")
        self.profiles = {k: tuple(tuple(int(d) for d in s) for s in v) for k, v in self.profiles.items()}
        if self.dla_core is not None:
            self._check_dla()

    def _check_dla(self) -> None:
        """DLA runs FP16/INT8 layers with static shapes; anything else would silently run on the GPU."""
        if self.precision == "fp32":
            raise BuildError("DLA runs FP16 or INT8 only: an fp32 engine with --dla-core would run every layer on the "
                             "GPU (with GPU fallback) or fail; use --precision fp16 / int8, or drop --dla-core")
        dynamic = [n for n, p in self.profiles.items() if not is_static(p)]
        if dynamic:
            raise BuildError(f"DLA needs static shapes, the profiles of {dynamic} are ranges (min != max); give a "
                             "fixed batch (--batch 1) or a static --profile NAME:S:S:S, or drop --dla-core")

    def key_dict(self) -> dict[str, Any]:
        """The options that change the engine (the timing cache path and the device index do not)."""
        return {
            "precision": self.precision,
            "workspace_mb": self.workspace_mb,
            "profiles": {k: [list(s) for s in v] for k, v in sorted(self.profiles.items())},
            "dla_core": self.dla_core,
            "gpu_fallback": self.gpu_fallback if self.dla_core is not None else None,
            "strongly_typed": self.strongly_typed,
            "fp16_source": self.fp16_source if self.precision == "fp16" else None,
            "optimization_level": self.optimization_level,
        }

    def engine_key(self, caps: "Capabilities | int") -> dict[str, Any]:
        """:meth:`key_dict` plus what the route adds for this TensorRT (route kind, FP16 converter version)."""
        return {**self.key_dict(), **route_key(self.precision, self.strongly_typed, self.fp16_source, caps)}

    def route(self, caps: "Capabilities | int") -> Route:
        return choose_route(self.precision, self.strongly_typed, self.fp16_source, caps)

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



# ---------------------------------------------------------------------------------------------- parsed ONNX
def fp16_onnx_path(engine_dir: Path, onnx_path: Path) -> Path:
    """Where the FP16 ONNX of a model lives: next to its engines (shared by GPU and DLA builds)."""
    return engine_dir / f"{onnx_path.stem}.fp16.onnx"


@dataclass
class Parsed:
    """The ONNX TensorRT parses for a route, and the route after a possible fp32 fallback."""

    path: Path
    route: Route
    record: dict[str, Any]  # what the sidecar says about it


def parsed_onnx(onnx_path: Path, engine_dir: Path, options: BuildOptions, caps: "Capabilities | int",
                echo: Callable[[str], None] = log.info) -> Parsed:
    """The one place that decides which graph is parsed: the model itself, or its FP16 ONNX (made, validated
    and cached), or the model again when the FP16 graph was rejected (fp32, with the reason recorded)."""
    route = options.route(caps)
    if not route.needs_fp16_onnx:
        return Parsed(onnx_path, route, {"file": onnx_path.name, "sha256": sidecar.onnx_digest(onnx_path),
                                         "converter": None})
    graph = fp16_graph_for(onnx_path, fp16_onnx_path(engine_dir, onnx_path), options.profiles)
    record = {"converter": graph.converter, "validated_by": graph.validator, "validation": graph.reason}
    if graph.ok:
        return Parsed(graph.path, route, {"file": graph.path.name, "sha256": graph.sha256, **record})
    fb = fallback_fp32(route, caps)
    echo(f"[build] {onnx_path.name}: the FP16 graph failed validation ({graph.reason}); building fp32 instead")
    return Parsed(onnx_path, fb, {"file": onnx_path.name, "sha256": sidecar.onnx_digest(onnx_path),
                                  "fp16_rejected": graph.reason, **record})


def _print_identity(device: int, major: int) -> dict[str, str]:
    """The identity a build here would have, as far as it can be known without building (for file names)."""
    installed = tensorrt_version()
    version = installed if installed and parse_major(installed) == major else str(major)
    try:
        return sidecar.machine_identity(device, version)
    except Exception:  # no CUDA here: the printed line is for another machine
        return sidecar.engine_identity(version, "unknown", "unknown")


def command_for(tool: str, onnx_path: Path, engine_path: Path, options: BuildOptions, major: int,
                trtexec: str = "trtexec") -> tuple[list[str], Parsed]:
    """The trtexec / polygraphy line for target TensorRT ``major`` (``--print-command``); on the fp16-onnx
    route the FP16 ONNX is made first so the line runs as printed."""
    caps = Capabilities.of_major(major)
    require_qdq(onnx_path, options.precision)
    parsed = parsed_onnx(onnx_path, engine_path.parent, options, caps)
    tc = keyed_path(options.timing_cache, _print_identity(options.device, major)) if options.timing_cache else None
    if tool == "trtexec":
        return trtexec_command(parsed.path, engine_path, options, parsed.route, trtexec, tc), parsed
    if tool == "polygraphy":
        return polygraphy_command(parsed.path, engine_path, options, parsed.route, tc), parsed
    raise BuildError(f"unknown tool '{tool}' (trtexec | polygraphy)")


# ---------------------------------------------------------------------------------------------- TensorRT
def _create_network(trt: Any, builder: Any, strongly_typed: bool, caps: Capabilities) -> Any:
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif caps.explicit_batch_flag:
        # 8.x: explicit batch is required for ONNX (deprecated and implied in 10, gone in 11)
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return builder.create_network(flags)


def _add_profile(builder: Any, network: Any, config: Any, options: BuildOptions) -> None:
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    shape_tensors = [t.name for t in inputs if t.is_shape_tensor]
    if shape_tensors:
        raise BuildError(f"inputs {shape_tensors} are shape tensors (their values are shapes); this builder sets "
                         "shape profiles only. Fold them into constants (edge-infer sanitize) or export them static")
    if not options.profiles:
        return
    unknown = sorted(set(options.profiles) - {t.name for t in inputs})
    if unknown:
        raise BuildError(f"profiles name {unknown}, the parsed network's inputs are {[t.name for t in inputs]}")
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in options.profiles.items():
        profile.set_shape(name, lo, opt, hi)
    if config.add_optimization_profile(profile) < 0:
        raise BuildError(f"TensorRT rejected the optimization profile {options.profiles} (see the TensorRT log)")


def _configure(trt: Any, builder: Any, network: Any, config: Any, options: BuildOptions, route: Route,
               timing: TimingCache | None, state: BuildState, echo: Callable[[str], None]) -> None:
    """Apply ``options`` and ``route`` to the builder config."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    for flag in route.flags:  # weak typing only; strongly typed networks take their precisions from the graph
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if route.flags and not getattr(builder, "platform_has_fast_fp16", True):
        echo("[build] warning: this GPU has no fast FP16; the engine may be slower than expected")
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    if options.dla_core is not None:
        if builder.num_DLA_cores <= options.dla_core:
            raise BuildError(f"DLA core {options.dla_core} requested, this device has {builder.num_DLA_cores} DLA cores")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        if options.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    _add_profile(builder, network, config, options)
    if timing is not None:
        timing.attach(config)
    if hasattr(trt, "IProgressMonitor"):  # TensorRT >= 10
        config.progress_monitor = progress_monitor(trt, state, echo)


def _build_serialized(trt: Any, parsed: Parsed, options: BuildOptions, caps: Capabilities,
                      timing: TimingCache | None, state: BuildState, echo: Callable[[str], None]) -> bytes:
    route = parsed.route
    builder = trt.Builder(logger(trt))
    network = _create_network(trt, builder, route.strongly_typed, caps)
    parser = trt.OnnxParser(network, logger(trt))
    state.phase = "parsing"
    # parse_from_file resolves external data (.onnx.data) next to the model
    if not parser.parse_from_file(str(parsed.path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildError(f"TensorRT's ONNX parser rejected {parsed.path}: " + " | ".join(errors)
                         + " (run `edge-infer sanitize` first)")
    config = builder.create_builder_config()
    _configure(trt, builder, network, config, options, route, timing, state, echo)
    echo(f"[build] TensorRT {trt.__version__}: {parsed.path.name} {route.kind}"
         f"{' strongly-typed' if route.strongly_typed else ''} workspace={options.workspace_mb} MB"
         f"{f' DLA{options.dla_core}' if options.dla_core is not None else ''}")
    state.phase = "building"
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT failed to build an engine from {parsed.path} (see the TensorRT log above)")
    if timing is not None and timing.save(config):
        echo(f"[build] timing cache written: {timing.path}")
    return bytes(serialized)


def build_metadata(onnx_path: Path, engine_path: Path, options: BuildOptions, identity: Mapping[str, str],
                   seconds: float, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "identity": dict(identity),
        "onnx": onnx_path.name,
        "onnx_sha256": sidecar.onnx_digest(onnx_path),
        "precision": options.precision,
        "profiles": {k: {"min": list(p[0]), "opt": list(p[1]), "max": list(p[2])} for k, p in options.profiles.items()},
        "options": options.engine_key(parse_major(identity.get("tensorrt"))),
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
    """Build ``engine_path`` from ``onnx_path``; write it and its sidecar atomically (and its HMAC tag when an
    engine key is configured, see :mod:`.engine_trust`); return the metadata. A file at ``engine_path`` that
    edge-infer did not write is refused before building.

    While it runs, the build is listed in :data:`~edge_infer.backends.tensorrt.progress.BUILDS` (phase,
    elapsed, progress) for the nodes' diagnostics.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise BuildError(f"ONNX model not found: {onnx_path}")
    if via not in ("python", "trtexec"):
        raise BuildError(f"unknown --via '{via}' (python | trtexec)")
    sidecar.refuse_foreign_target(engine_path)  # never replace a file edge-infer did not write
    engine_key()  # a misconfigured engine key fails now, not after a build of minutes
    state = BUILDS.start(onnx_path.stem, options.precision, str(engine_path))
    error = None
    t0 = time.perf_counter()
    try:
        qdq = require_qdq(onnx_path, options.precision)
        if via == "trtexec":
            trtexec = find_trtexec()
            version = trtexec_version(trtexec) or "unknown"
            caps = Capabilities.of_major(parse_major(version) or 10)
        else:
            trt = import_tensorrt()
            version, caps = trt.__version__, Capabilities.of_module(trt)
        identity = sidecar.machine_identity(options.device, version)
        parsed = parsed_onnx(onnx_path, engine_path.parent, options, caps, echo)
        timing = TimingCache(keyed_path(options.timing_cache, identity), echo) if options.timing_cache else None
        if via == "trtexec":
            _build_with_trtexec(trtexec, parsed, engine_path, options, timing, echo)
        else:
            atomic_write_bytes(engine_path, _build_serialized(trt, parsed, options, caps, timing, state, echo))
        seconds = time.perf_counter() - t0
        extra = {"via": via, "strongly_typed": parsed.route.strongly_typed, "qdq": qdq, "route": parsed.route.kind,
                 "built_precision": "fp32" if parsed.route.kind == "fp32" else options.precision,
                 "parsed_onnx": parsed.record, "timing_cache": str(timing.path) if timing else None}
        meta = build_metadata(onnx_path, engine_path, options, identity, seconds, extra)
        sidecar.write_sidecar(engine_path, meta)
    except BaseException as e:
        error = str(e) or type(e).__name__
        raise
    finally:
        BUILDS.finish(state, error)
    echo(f"[build] wrote {engine_path} ({meta['engine_bytes'] / 1e6:.1f} MB) in {seconds:.1f} s")
    return meta


def _build_with_trtexec(trtexec: str, parsed: Parsed, engine_path: Path, options: BuildOptions,
                        timing: TimingCache | None, echo: Callable[[str], None]) -> None:
    """trtexec reads and writes the timing cache itself: the file lock is held for the run instead of a merge."""
    import contextlib

    from edge_infer.fileio import file_lock

    with atomic_path(engine_path) as tmp:
        cmd = trtexec_command(parsed.path, tmp, options, parsed.route, trtexec, timing.path if timing else None)
        echo(f"[build] {format_command(cmd)}")
        with file_lock(timing.path) if timing else contextlib.nullcontext():
            proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not tmp.stat().st_size:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise BuildError(f"trtexec failed (exit {proc.returncode}):\n" + "\n".join(tail))


def sanitized_path(onnx_path: Path) -> Path:
    """Prefer the sanitize tool's output next to a model when it exists (``x.sanitized.onnx``/``x_sanitized.onnx``)."""
    for cand in (onnx_path.with_name(onnx_path.stem + ".sanitized.onnx"),
                 onnx_path.with_name(onnx_path.stem + "_sanitized.onnx"),
                 onnx_path.parent / "sanitized" / onnx_path.name):
        if cand.is_file():
            return cand
    return onnx_path


__all__ = ["BuildOptions", "BuildError", "Parsed", "parsed_onnx", "command_for", "build_engine", "build_metadata",
           "fp16_onnx_path", "sanitized_path", "PRECISIONS"]
