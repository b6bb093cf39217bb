"""The ``trtexec`` and ``polygraphy convert`` command lines that build the same engine as the Python API,
per *target* TensorRT major version, and trtexec's own version (from its banner).

What differs by version (checked against each tool's option parser and release notes):
- precision: ``--fp16`` / ``--int8`` exist only where TensorRT has weak typing (8.6 .. 10.x; trtexec 11 says
  "Unknown option"); strongly typed builds say ``--stronglyTyped`` (trtexec >= 10) / ``--strongly-typed``;
  both come from the same :class:`~edge_infer.backends.tensorrt.precision.Route` the Python build uses;
- ``--skipInference``: a build is a build; without it trtexec also benchmarks the engine for seconds;
- polygraphy disables TF32 by default while TensorRT enables it: ``--tf32`` makes it build the same engine.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

from edge_infer.backends.tensorrt.precision import BuildError, Route
from edge_infer.backends.tensorrt.trt import version_from_trtexec_banner

TRTEXEC_DIRS = ("/usr/src/tensorrt/bin",)  # JetPack installs trtexec here, not on PATH


def _x(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def trtexec_command(onnx_path: str | Path, engine_path: str | Path, options: Any, route: Route,
                    trtexec: str = "trtexec", timing_cache: str | Path | None = None) -> list[str]:
    """The trtexec invocation for ``route`` (which already encodes the target version's capabilities).

    ``onnx_path`` is the graph that is parsed (the FP16 ONNX on the fp16-onnx route); ``timing_cache`` the
    keyed timing-cache file (default: none).
    """
    cmd = [trtexec, f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
           f"--memPoolSize=workspace:{options.workspace_mb}", "--skipInference"]  # MiB in 8.6 .. 11
    if route.strongly_typed:
        cmd.append("--stronglyTyped")
    cmd += [f"--{flag.lower()}" for flag in route.flags]  # --fp16 / --int8, weak typing only
    if options.profiles:
        for flag, i in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)):
            cmd.append(f"{flag}=" + ",".join(f"{n}:{_x(p[i])}" for n, p in options.profiles.items()))
    if timing_cache:
        cmd.append(f"--timingCacheFile={timing_cache}")
    if options.dla_core is not None:
        cmd.append(f"--useDLACore={options.dla_core}")
        if options.gpu_fallback:
            cmd.append("--allowGPUFallback")
    if options.optimization_level is not None:
        cmd.append(f"--builderOptimizationLevel={options.optimization_level}")
    return cmd


def polygraphy_command(onnx_path: str | Path, engine_path: str | Path, options: Any, route: Route,
                       timing_cache: str | Path | None = None) -> list[str]:
    """The ``polygraphy convert`` invocation for ``route``."""
    cmd = ["polygraphy", "convert", str(onnx_path), "--convert-to", "trt", "-o", str(engine_path),
           "--pool-limit", f"workspace:{options.workspace_mb}M", "--tf32"]
    if route.strongly_typed:
        cmd.append("--strongly-typed")
    cmd += [f"--{flag.lower()}" for flag in route.flags]
    if options.profiles:
        for flag, i in (("--trt-min-shapes", 0), ("--trt-opt-shapes", 1), ("--trt-max-shapes", 2)):
            cmd += [flag, *(f"{n}:[{','.join(map(str, p[i]))}]" for n, p in options.profiles.items())]
    if timing_cache:
        cmd += ["--load-timing-cache", str(timing_cache), "--save-timing-cache", str(timing_cache)]
    if options.dla_core is not None:
        cmd.append("--use-dla")  # polygraphy has no DLA core selector: it uses core 0
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


def trtexec_version(trtexec: str, timeout: float = 60.0) -> str | None:
    """trtexec's own TensorRT version from the banner it prints first (``[TensorRT v100300]``); None when it
    prints none. Mixed installs (bindings from pip, trtexec from JetPack) are common: never assume they agree."""
    try:
        proc = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return version_from_trtexec_banner(proc.stdout + proc.stderr)
