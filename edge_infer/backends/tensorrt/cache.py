"""Engine cache: one TensorRT engine per (ONNX, build options) on this robot, rebuilt only when needed.

A TensorRT engine is valid only for the exact TensorRT version and GPU it was built on. Loading a foreign
engine fails deep inside TensorRT with an opaque "Serialization assertion" (or, worse, works with a
warning on a different GPU of the same generation and runs slowly). So every engine has a JSON sidecar
(``model.fp16.engine.json``) written with it, and the sidecar is checked *before* deserializing:

- key = sha256 of (TensorRT version, GPU name + compute capability, ONNX sha256, build options that
  change the engine); the components are kept in the sidecar so a mismatch is reported by name
  ("built with TensorRT 8.6.2, this is 10.3.0"), not as a bare hash difference;
- the engine file's own sha256 is in the sidecar too, so a truncated or replaced engine is caught.

Policies (node parameter ``engine_build`` and ``edge-infer build --cache``):
``auto`` use the cached engine when it matches, build otherwise; ``never`` use it or fail with the reason
(for fleets that ship prebuilt engines); ``force`` always build (the ``~/rebuild_engines`` service).
Engine names are fixed per model and precision (not per key) so stale engines are replaced, not piled up.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_infer.fileio import atomic_write_json, sha256_file

log = logging.getLogger(__name__)

SIDECAR_SCHEMA = "edge_infer/engine"
SIDECAR_VERSION = 1
POLICIES = ("auto", "never", "force")


class EngineCacheError(EdgeInferError, RuntimeError):
    """No usable engine under the chosen policy; the message says why and what to run."""


class StaleEngineError(EngineCacheError):
    """An engine exists but was built for another TensorRT / GPU / ONNX / options (or is damaged)."""


# ---------------------------------------------------------------------------------------------- sidecar
def sidecar_path(engine_path: str | Path) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def write_sidecar(engine_path: str | Path, meta: Mapping[str, Any]) -> Path:
    doc = {"schema": SIDECAR_SCHEMA, "version": SIDECAR_VERSION, **meta}
    return atomic_write_json(sidecar_path(engine_path), doc)


def read_sidecar(engine_path: str | Path) -> dict[str, Any] | None:
    """The sidecar of ``engine_path``; None when absent; :class:`StaleEngineError` when unreadable."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StaleEngineError(f"engine metadata {path} is unreadable ({e}); rebuild the engine "
                               "(edge-infer build ... --cache force)") from e
    if not isinstance(doc, dict) or doc.get("schema") != SIDECAR_SCHEMA:
        raise StaleEngineError(f"{path} is not an edge_infer engine sidecar (schema {SIDECAR_SCHEMA})")
    if doc.get("version") != SIDECAR_VERSION:
        raise StaleEngineError(f"{path} has sidecar version {doc.get('version')}, this code reads {SIDECAR_VERSION}")
    return doc


# ---------------------------------------------------------------------------------------------- keys
def identity_dict(tensorrt_version: str, gpu_name: str, compute_capability: str) -> dict[str, str]:
    """What an engine is bound to besides its inputs: the TensorRT build and the GPU."""
    return {"tensorrt": str(tensorrt_version), "gpu": str(gpu_name), "compute_capability": str(compute_capability)}


def runtime_identity(device: int = 0) -> dict[str, str]:
    """The identity of this machine (imports tensorrt and pycuda; clear errors when they are missing)."""
    from edge_infer.backends.tensorrt.cuda import device_info
    from edge_infer.backends.tensorrt.runtime import import_tensorrt

    trt = import_tensorrt()
    dev = device_info(device)
    return identity_dict(trt.__version__, dev.name, dev.compute_capability)


def cache_key(identity: Mapping[str, str], onnx_sha256: str, options: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of everything that makes two engines different."""
    doc = {"identity": dict(sorted(identity.items())), "onnx_sha256": onnx_sha256, "options": options}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- checks
@dataclass
class Verdict:
    """Whether an engine on disk can be used here; ``reasons`` are human sentences, empty when ok."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    meta: dict[str, Any] | None = None

    def message(self, engine_path: str | Path) -> str:
        return f"engine {engine_path} cannot be used here: " + "; ".join(self.reasons)


def _diff_options(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def check_engine(
    engine_path: str | Path,
    identity: Mapping[str, str] | None = None,
    onnx_sha256: str | None = None,
    options: Mapping[str, Any] | None = None,
    verify_file_hash: bool = True,
) -> Verdict:
    """Check ``engine_path`` against its sidecar without deserializing it (pure Python, no TensorRT).

    Only the given expectations are checked: the runtime backend passes ``identity`` alone (it does not
    know the ONNX), the cache passes everything.
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return Verdict(False, [f"{engine_path} does not exist"])
    try:
        meta = read_sidecar(engine_path)
    except StaleEngineError as e:
        return Verdict(False, [str(e)])
    if meta is None:
        return Verdict(False, [f"it has no metadata sidecar {sidecar_path(engine_path).name}, so the TensorRT version "
                               "and GPU it was built for are unknown"])
    reasons: list[str] = []
    built = meta.get("identity", {})
    if identity is not None:
        if built.get("tensorrt") != identity.get("tensorrt"):
            reasons.append(f"built with TensorRT {built.get('tensorrt')}, this machine has TensorRT {identity.get('tensorrt')}")
        if (built.get("gpu"), built.get("compute_capability")) != (identity.get("gpu"), identity.get("compute_capability")):
            reasons.append(f"built for GPU {built.get('gpu')} (compute {built.get('compute_capability')}), this machine has "
                           f"{identity.get('gpu')} (compute {identity.get('compute_capability')})")
    if onnx_sha256 is not None and meta.get("onnx_sha256") != onnx_sha256:
        reasons.append(f"the ONNX model changed since the build (sha256 {str(meta.get('onnx_sha256'))[:12]}... -> "
                       f"{onnx_sha256[:12]}...)")
    if options is not None and meta.get("options") != dict(options):
        reasons.append("build options changed (" + ", ".join(_diff_options(meta.get("options") or {}, options)) + ")")
    if verify_file_hash:
        size = engine_path.stat().st_size
        if meta.get("engine_bytes") is not None and size != meta.get("engine_bytes"):
            reasons.append(f"the engine file has {size} bytes, its sidecar says {meta.get('engine_bytes')} "
                           "(truncated or replaced)")
        elif meta.get("engine_sha256") and sha256_file(engine_path) != meta["engine_sha256"]:
            reasons.append("the engine file does not match the sha256 in its sidecar (replaced or corrupted)")
    return Verdict(not reasons, reasons, meta)


# ---------------------------------------------------------------------------------------------- cache
def engine_path_for(cache_dir: str | Path, onnx_path: str | Path, precision: str) -> Path:
    return Path(cache_dir) / f"{Path(onnx_path).stem}.{precision}.engine"


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
    """An engine for ``onnx_path`` built with ``options`` (an :class:`~edge_infer.backends.tensorrt.build.BuildOptions`).

    ``identity`` defaults to this machine's (TensorRT + GPU); ``builder`` defaults to
    :func:`edge_infer.backends.tensorrt.build.build_engine` (injectable so the policy logic is testable without
    a GPU). Never rebuilds on every start: with a matching sidecar the engine is returned untouched.
    """
    if policy not in POLICIES:
        raise EngineCacheError(f"unknown engine_build policy '{policy}'; use one of {POLICIES}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineCacheError(f"ONNX model not found: {onnx_path}")
    engine = Path(engine_path) if engine_path else engine_path_for(cache_dir, onnx_path, options.precision)
    onnx_sha = sha256_file(onnx_path)
    key_options = options.key_dict()
    reasons: list[str] = []
    existed = engine.exists()
    if policy != "force":
        identity = dict(identity) if identity is not None else runtime_identity(getattr(options, "device", 0))
        verdict = check_engine(engine, identity, onnx_sha, key_options)
        if verdict.ok:
            log.info("engine cache hit: %s", engine)
            return CacheResult(engine, "cached")
        reasons = verdict.reasons
        if policy == "never":
            raise StaleEngineError(verdict.message(engine) + ". engine_build is 'never': build it with "
                                   f"`edge-infer build {onnx_path} --precision {options.precision}` or set engine_build: auto")
        log.warning("%s; rebuilding (engine_build: auto)", verdict.message(engine) if existed else f"no engine at {engine}")
    else:
        reasons = ["engine_build is 'force'"]
    if builder is None:
        from edge_infer.backends.tensorrt.build import build_engine as builder  # noqa: N813 - the default builder
    t0 = time.perf_counter()
    builder(onnx_path, engine, options, **build_kwargs)
    return CacheResult(engine, "rebuilt" if existed else "built", reasons, time.perf_counter() - t0)
