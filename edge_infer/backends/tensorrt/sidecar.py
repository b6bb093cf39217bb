"""The JSON sidecar written next to every engine, the engine's identity, and the check made *before*
deserializing.

A TensorRT engine is valid only for the exact TensorRT version and GPU it was built on. Loading a foreign
engine fails deep inside TensorRT with an opaque "Serialization assertion" (or, worse, works with a
warning on a different GPU of the same generation and runs slowly). So every engine has a sidecar
(``model.fp16.engine.json``) holding its identity (TensorRT version, GPU, compute capability), the ONNX it
was built from, the options that change it and the engine file's own sha256, and both the runtime backend
and the engine cache check it first: a mismatch is reported by name ("built with TensorRT 8.6.2, this is
10.3.0"), not as a bare hash difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edge_infer.errors import EdgeInferError
from edge_infer.fileio import atomic_write_json, sha256_file

SIDECAR_SCHEMA = "edge_infer/engine"
SIDECAR_VERSION = 1


class EngineCacheError(EdgeInferError, RuntimeError):
    """No usable engine under the chosen policy; the message says why and what to run."""


class StaleEngineError(EngineCacheError):
    """An engine exists but was built for another TensorRT / GPU / ONNX / options (or is damaged)."""


# ---------------------------------------------------------------------------------------------- identity
def engine_identity(tensorrt_version: str, gpu_name: str, compute_capability: str) -> dict[str, str]:
    """What an engine is bound to besides its inputs: the TensorRT build and the GPU. The one definition:
    the builder writes it, the cache and the runtime compare with it."""
    return {"tensorrt": str(tensorrt_version), "gpu": str(gpu_name), "compute_capability": str(compute_capability)}


def machine_identity(device: int = 0, tensorrt_version: str | None = None) -> dict[str, str]:
    """This machine's identity for ``device``; the TensorRT version defaults to the installed bindings'
    (``--via trtexec`` passes trtexec's own). Clear errors when TensorRT or CUDA are missing."""
    from edge_infer.backends.tensorrt.cuda import device_info

    if tensorrt_version is None:
        from edge_infer.backends.tensorrt.trt import import_tensorrt

        tensorrt_version = import_tensorrt().__version__
    dev = device_info(device)
    return engine_identity(tensorrt_version, dev.name, dev.compute_capability)


def onnx_digest(onnx_path: str | Path) -> str:
    """sha256 identifying an ONNX model *including its external data* (``.onnx.data`` next to it): the
    plain file hash when there is none, else a hash over the model's and every data file's hashes. A
    changed weights file therefore changes the engine cache key, as a changed graph does."""
    import hashlib

    import onnx

    path = Path(onnx_path)
    main = sha256_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not parsable: the file hash identifies it; TensorRT's parser will say what is wrong
        return main
    locations: set[str] = set()
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        for t in g.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                locations.update(e.value for e in t.external_data if e.key == "location")
        for n in g.node:
            graphs.extend(a.g for a in n.attribute if a.type == onnx.AttributeProto.GRAPH)
    if not locations:
        return main
    h = hashlib.sha256(main.encode())
    for loc in sorted(locations):
        f = path.parent / loc
        h.update(f"\n{loc}:{sha256_file(f) if f.is_file() else 'missing'}".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- file
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


# ---------------------------------------------------------------------------------------------- check
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
