"""Engine cache: one TensorRT engine per (ONNX, build options) on this robot, rebuilt only when needed.

The cache key is sha256 of (engine identity: TensorRT version, GPU name + compute capability; the ONNX
digest including its external data; the build options that change the engine, with the precision route
and the FP16 converter version where an FP16 ONNX is parsed); its components live in the engine's sidecar
(:mod:`edge_infer.backends.tensorrt.sidecar`), which is checked before anything is deserialized.

Policies (node parameter ``engine_build`` and ``edge-infer build --cache``):
``auto`` use the cached engine when it matches, build otherwise; ``never`` use it or fail with the reason
(for fleets that ship prebuilt engines); ``force`` always build (the ``~/rebuild_engines`` service).
Engine names are fixed per model, precision and device (``emotion.fp16.engine``, ``emotion.fp16.dla0.engine``;
not per key) so stale engines are replaced, not piled up, and a DLA engine never overwrites the GPU one.
Only engines edge-infer wrote are replaced (they have its sidecar): a foreign file, a symlink or a folder at
the engine path is refused before building, as is a world-writable engine folder (the runtime would refuse
to load from it). With an engine key configured, an unsigned or badly signed cached engine is stale
(rebuilt under ``auto``, refused under ``never``).

:func:`engine_for` is what ``create_backend("tensorrt" | "auto", "model.onnx", ...)`` calls: the runtime
options dict in, an engine path out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_infer.backends.tensorrt.engine_trust import UntrustedEngineError, permission_problems, tag_path
from edge_infer.backends.tensorrt.sidecar import (EngineCacheError, StaleEngineError, check_engine, machine_identity,
                                                  onnx_digest, refuse_foreign_target, sidecar_path)
from edge_infer.backends.tensorrt.trt import parse_major

log = logging.getLogger(__name__)

POLICIES = ("auto", "never", "force")
#: the create_backend options that reach the engine cache (the rest go to the runtime backend)
CACHE_OPTIONS = ("engine_build", "engine_dir", "precision", "workspace_mb", "profiles", "batch", "spec_profile",
                 "dla_core", "timing_cache", "device", "fp16_source", "strongly_typed")

__all__ = ["POLICIES", "CACHE_OPTIONS", "EngineCacheError", "StaleEngineError", "cache_key", "engine_path_for",
           "CacheResult", "get_engine", "engine_for"]


def cache_key(identity: Mapping[str, str], onnx_sha256: str, options: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of everything that makes two engines different."""
    doc = {"identity": dict(sorted(identity.items())), "onnx_sha256": onnx_sha256, "options": options}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def engine_path_for(cache_dir: str | Path, onnx_path: str | Path, precision: str, dla_core: int | None = None) -> Path:
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return Path(cache_dir) / f"{Path(onnx_path).stem}.{precision}{dla}.engine"


@dataclass
class CacheResult:
    engine_path: Path
    action: str  # "cached" | "built" | "rebuilt"
    reasons: list[str] = field(default_factory=list)  # why it was (re)built
    seconds: float = 0.0


Builder = Callable[..., Mapping[str, Any]]


def get_engine(
    onnx_path: str | Path,
    options: Any,
    cache_dir: str | Path,
    policy: str = "auto",
    identity: Mapping[str, str] | None = None,
    builder: Builder | None = None,
    engine_path: str | Path | None = None,
    **build_kwargs: Any,
) -> CacheResult:
    """An engine for ``onnx_path`` built with ``options`` (a :class:`~edge_infer.backends.tensorrt.build.BuildOptions`).

    ``identity`` defaults to this machine's (TensorRT + GPU); ``builder`` defaults to
    :func:`edge_infer.backends.tensorrt.build.build_engine` (injectable so the policy logic is testable without
    a GPU). Never rebuilds on every start: with a matching sidecar the engine is returned untouched.
    """
    if policy not in POLICIES:
        raise EngineCacheError(f"unknown engine_build policy '{policy}'; use one of {POLICIES}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineCacheError(f"ONNX model not found: {onnx_path}")
    engine = Path(engine_path) if engine_path else engine_path_for(cache_dir, onnx_path, options.precision,
                                                                    options.dla_core)
    problems = permission_problems(engine, (sidecar_path(engine), tag_path(engine)))
    if problems:
        raise UntrustedEngineError(f"engine {engine}: " + "; ".join(problems))
    reasons: list[str] = []
    existed = engine.exists()
    if policy != "force":
        identity = dict(identity) if identity is not None else _identity(options, build_kwargs.get("via"))
        key_options = options.engine_key(parse_major(identity.get("tensorrt")))
        verdict = check_engine(engine, identity, onnx_digest(onnx_path), key_options)
        if verdict.ok:
            log.info("engine cache hit: %s", engine)
            return CacheResult(engine, "cached")
        reasons = verdict.reasons
        if policy == "never":
            raise StaleEngineError(verdict.message(engine) + ". engine_build is 'never': build it with "
                                   f"`edge-infer build {onnx_path} --precision {options.precision}` or set engine_build: auto")
        refuse_foreign_target(engine)  # before saying "rebuilding": a file edge-infer did not write stays
        log.warning("%s; rebuilding (engine_build: auto)", verdict.message(engine) if existed else f"no engine at {engine}")
    else:
        refuse_foreign_target(engine)
        reasons = ["engine_build is 'force'"]
    if builder is None:
        from edge_infer.backends.tensorrt.build import build_engine as builder  # noqa: N813 - the default builder
    log.info("building the %s engine of %s into %s (TensorRT builds take seconds to minutes; progress in "
             "/diagnostics)", options.precision, onnx_path.name, engine)
    t0 = time.perf_counter()
    builder(onnx_path, engine, options, **build_kwargs)
    return CacheResult(engine, "rebuilt" if existed else "built", reasons, time.perf_counter() - t0)


def _identity(options: Any, via: str | None) -> dict[str, str]:
    """This machine's identity as the build would record it: trtexec's own version with ``via='trtexec'``."""
    version = None
    if via == "trtexec":
        from edge_infer.backends.tensorrt.tool_commands import find_trtexec, trtexec_version

        version = trtexec_version(find_trtexec()) or "unknown"
    return machine_identity(getattr(options, "device", 0), version)


def engine_for(model_path: str, options: Mapping[str, Any]) -> str:
    """An engine path for ``model_path``: itself when it is an engine, else built/reused via the engine cache.

    ``options`` is create_backend's keyword dict; only :data:`CACHE_OPTIONS` are read here.
    """
    if Path(model_path).suffix != ".onnx":
        return model_path
    from edge_infer.backends.tensorrt.build import BuildOptions

    c = {k: v for k, v in options.items() if k in CACHE_OPTIONS and v is not None}
    policy = c.pop("engine_build", "auto")
    cache_dir = c.pop("engine_dir", None) or Path(model_path).parent / "engines"
    opts = BuildOptions.for_onnx(model_path, **c)
    return str(get_engine(model_path, opts, cache_dir, policy=policy).engine_path)
