"""The JSON sidecar written next to every engine, the engine's identity, and the check made *before*
deserializing.

A TensorRT engine is valid only for the exact TensorRT version and GPU it was built on. Loading a foreign
engine fails deep inside TensorRT with an opaque "Serialization assertion" (or, worse, works with a
warning on a different GPU of the same generation and runs slowly). So every engine has a sidecar
(``model.fp16.engine.json``) holding its identity (TensorRT version, GPU, compute capability), the ONNX it
was built from, the options that change it and the engine file's own sha256, and both the runtime backend
and the engine cache check it first: a mismatch is reported by name ("built with TensorRT 8.6.2, this is
10.3.0"), not as a bare hash difference.

The same module is the one gate before TensorRT deserializes anything (:func:`load_trusted_engine` +
:func:`deserialize_engine`, used by the runtime backend and ``edge-infer inspect``): an engine is executable
code, so it is deserialized only when its sidecar exists, the engine's bytes match the sha256 recorded there,
its folder is not world-writable and, when an engine key is configured, its HMAC tag verifies
(:mod:`.engine_trust`). The bytes checked are the bytes deserialized (read once: no swap in between).

:func:`onnx_digest` refuses ONNX external data that lies outside the model's folder (an absolute location,
``../``, or a symlink out of it), as onnx and ONNX Runtime do, before hashing anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Mapping

from edge_infer.backends.base import BackendError
from edge_infer.backends.tensorrt.engine_trust import (TAG_PREFIX, UntrustedEngineError, engine_key,
                                                       permission_problems, tag_path, tag_problem, write_tag)
from edge_infer.errors import EdgeInferError
from edge_infer.fileio import atomic_write_bytes, sha256_bytes, sha256_file

SIDECAR_SCHEMA = "edge_infer/engine"
SIDECAR_VERSION = 1
SIDECAR_MAX_BYTES = 1 << 20  #: a sidecar is a few KB; a larger "sidecar" is not read (memory bound)


class EngineCacheError(EdgeInferError, RuntimeError):
    """No usable engine under the chosen policy; the message says why and what to run."""


class StaleEngineError(EngineCacheError):
    """An engine exists but was built for another TensorRT / GPU / ONNX / options (or is damaged)."""


class UnsafeExternalDataError(EngineCacheError):
    """An ONNX model names external data outside its own folder (absolute, ``../``, or a symlink out)."""


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


def _tensors_with_data(model: Any) -> list[Any]:
    """Every TensorProto that may carry external data: initializers, sparse initializers and node
    attributes (Constant values, tensor lists), in the main graph and every subgraph."""
    out: list[Any] = []
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        out.extend(g.initializer)
        for sp in g.sparse_initializer:
            out.extend((sp.values, sp.indices))
        for n in g.node:
            for a in n.attribute:
                out.extend([a.t] if a.HasField("t") else [])
                out.extend(a.tensors)
                for st in ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors):
                    out.extend((st.values, st.indices))
                graphs.extend(([a.g] if a.HasField("g") else []) + list(a.graphs))
    return out


def external_data_files(onnx_path: str | Path, model: Any = None) -> dict[str, Path]:
    """location -> file of every external-data entry of ``onnx_path``, each checked to lie inside the model's
    folder: an absolute location, one that climbs out with ``..``, or a symlink resolving outside is refused
    with :class:`UnsafeExternalDataError` before any of them is opened (onnx and ONNX Runtime refuse them too)."""
    import onnx

    path = Path(onnx_path)
    if model is None:
        model = onnx.load(str(path), load_external_data=False)
    folder = path.absolute().parent
    real_folder = folder.resolve()
    files: dict[str, Path] = {}
    for t in _tensors_with_data(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        for loc in (e.value for e in t.external_data if e.key == "location"):
            if loc in files:
                continue
            where = f"ONNX model {path}: external data location {loc!r} (tensor {t.name!r})"
            if not loc or "\0" in loc or PurePosixPath(loc).is_absolute() or PureWindowsPath(loc).is_absolute() \
                    or PureWindowsPath(loc).drive:
                raise UnsafeExternalDataError(f"{where} is not a relative path inside the model's folder {folder}; "
                                              "external data must be a file next to the model (re-export it)")
            try:
                resolved = (folder / loc).resolve()
            except (OSError, RuntimeError) as e:  # a symlink loop, a name too long
                raise UnsafeExternalDataError(f"{where} cannot be resolved ({e}); external data must be a file next "
                                              "to the model (re-export it)") from None
            if not resolved.is_relative_to(real_folder):
                raise UnsafeExternalDataError(f"{where} resolves to {resolved}, outside the model's folder {real_folder}; "
                                              "external data must be a file next to the model (re-export it)")
            files[loc] = resolved
    return files


def onnx_digest(onnx_path: str | Path) -> str:
    """sha256 identifying an ONNX model *including its external data* (``.onnx.data`` next to it): the
    plain file hash when there is none, else a hash over the model's and every data file's hashes. A
    changed weights file therefore changes the engine cache key, as a changed graph does.

    External data outside the model's folder is refused (:func:`external_data_files`) before anything is
    hashed; only regular files are read (a FIFO or device named as data counts as "missing")."""
    import hashlib

    import onnx

    path = Path(onnx_path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not parsable: the file hash identifies it; TensorRT's parser will say what is wrong
        return sha256_file(path)
    files = external_data_files(path, model)
    main = sha256_file(path)
    if not files:
        return main
    h = hashlib.sha256(main.encode())
    for loc in sorted(files):
        f = files[loc]
        h.update(f"\n{loc}:{sha256_file(f) if f.is_file() else 'missing'}".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- file
def sidecar_path(engine_path: str | Path) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def write_sidecar(engine_path: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write the sidecar atomically and, when an engine key is configured, the engine's HMAC tag over the
    engine and these exact sidecar bytes (:mod:`.engine_trust`): the sidecar and its tag change together, so
    no writer can forget to sign. Without a key a tag left from an earlier signed build is removed (it no
    longer matches). The key is read first: a misconfigured key fails before anything is written."""
    key = engine_key()
    doc = {"schema": SIDECAR_SCHEMA, "version": SIDECAR_VERSION, **meta}
    data = (json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")
    path = atomic_write_bytes(sidecar_path(engine_path), data)
    tag = tag_path(engine_path)
    if key is not None:
        write_tag(engine_path, key, str(doc.get("engine_sha256") or sha256_file(engine_path)), data)
    elif tag.is_file() and not tag.is_symlink():
        tag.unlink()
    return path


def _read_sidecar_bytes(engine_path: str | Path) -> bytes | None:
    """The sidecar's raw bytes (what the HMAC covers), at most :data:`SIDECAR_MAX_BYTES`; None when absent."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        size = path.stat().st_size
        if size > SIDECAR_MAX_BYTES:
            raise StaleEngineError(f"engine metadata {path} has {size} bytes, more than a sidecar holds "
                                   f"({SIDECAR_MAX_BYTES}); rebuild the engine (edge-infer build ... --cache force)")
        with open(path, "rb") as f:
            return f.read(SIDECAR_MAX_BYTES + 1)
    except OSError as e:
        raise StaleEngineError(f"engine metadata {path} is unreadable ({e}); rebuild the engine "
                               "(edge-infer build ... --cache force)") from e


def _parse_sidecar(path: Path, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise StaleEngineError(f"engine metadata {path} is unreadable ({e}); rebuild the engine "
                               "(edge-infer build ... --cache force)") from e
    if not isinstance(doc, dict) or doc.get("schema") != SIDECAR_SCHEMA:
        raise StaleEngineError(f"{path} is not an edge_infer engine sidecar (schema {SIDECAR_SCHEMA})")
    if doc.get("version") != SIDECAR_VERSION:
        raise StaleEngineError(f"{path} has sidecar version {doc.get('version')}, this code reads {SIDECAR_VERSION}")
    return doc


def read_sidecar(engine_path: str | Path) -> dict[str, Any] | None:
    """The sidecar of ``engine_path``; None when absent; :class:`StaleEngineError` when unreadable."""
    data = _read_sidecar_bytes(engine_path)
    return None if data is None else _parse_sidecar(sidecar_path(engine_path), data)


def _is_our_sidecar(data: bytes | None) -> bool:
    """Whether these bytes are a sidecar edge-infer wrote (any version): the mark of an engine it may replace."""
    try:
        doc = json.loads(data) if data is not None else None
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("schema") == SIDECAR_SCHEMA


def refuse_foreign_target(engine_path: str | Path) -> None:
    """Raise :class:`EngineCacheError` unless writing ``engine_path`` (and its sidecar and tag) would replace
    only files edge-infer wrote: a previous engine has our sidecar; anything else at that path (a user's file
    named by ``-o``, a symlink, a folder) is left alone and the build is refused before it starts."""
    engine = Path(engine_path)
    side, tag = sidecar_path(engine), tag_path(engine)
    hint = "move it away or choose another engine path (-o / --engine-dir / engine_dir)"
    for f in (engine, side, tag):
        if f.is_symlink() or (f.exists() and not f.is_file()):
            raise EngineCacheError(f"{f} is {'a symbolic link' if f.is_symlink() else 'not a regular file'}; the engine "
                                   f"cache writes regular files and never replaces what it did not create: {hint}")
    if engine.exists() or side.exists():
        try:
            data = _read_sidecar_bytes(engine)
        except StaleEngineError:
            data = None
        if not _is_our_sidecar(data):
            raise EngineCacheError(f"{engine if engine.exists() else side} exists and was not written by edge-infer "
                                   f"(no engine sidecar {side.name} of schema {SIDECAR_SCHEMA}); the engine cache never "
                                   f"replaces a file it did not create: {hint}")
    if tag.exists():
        with open(tag, "rb") as f:
            if not f.read(len(TAG_PREFIX)) == TAG_PREFIX.encode():
                raise EngineCacheError(f"{tag} exists and is not an engine signature edge-infer wrote; the engine cache "
                                       f"never replaces a file it did not create: {hint}")


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


@dataclass
class _Checked:
    verdict: Verdict
    data: bytes | None = None  # the engine bytes that were hashed (read_engine=True)
    permission_reasons: int = 0
    authenticated: bool = False


def _check(engine_path: Path, identity: Mapping[str, str] | None, onnx_sha256: str | None,
           options: Mapping[str, Any] | None, read_engine: bool) -> _Checked:
    """The one check behind :func:`check_engine` (the cache) and :func:`load_trusted_engine` (the gate)."""
    if not engine_path.is_file():
        return _Checked(Verdict(False, [f"{engine_path} does not exist"]))
    side = sidecar_path(engine_path)
    reasons = permission_problems(engine_path, (side, tag_path(engine_path)))
    n_perm = len(reasons)
    try:
        raw = _read_sidecar_bytes(engine_path)
        meta = None if raw is None else _parse_sidecar(side, raw)
    except StaleEngineError as e:
        return _Checked(Verdict(False, [*reasons, str(e)]), permission_reasons=n_perm)
    if meta is None:
        return _Checked(Verdict(False, [*reasons, f"it has no metadata sidecar {side.name}: nothing vouches for its "
                                        "bytes or says which TensorRT and GPU it was built for"]),
                        permission_reasons=n_perm)
    built = meta.get("identity") if isinstance(meta.get("identity"), dict) else {}
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
        old = meta.get("options") if isinstance(meta.get("options"), dict) else {}
        reasons.append("build options changed (" + ", ".join(_diff_options(old, options)) + ")")
    data, authenticated = None, False
    size, recorded = engine_path.stat().st_size, meta.get("engine_sha256")
    if meta.get("engine_bytes") is not None and size != meta.get("engine_bytes"):
        reasons.append(f"the engine file has {size} bytes, its sidecar says {meta.get('engine_bytes')} "
                       "(truncated or replaced)")
    elif not isinstance(recorded, str) or not recorded:
        reasons.append(f"its sidecar {side.name} records no engine sha256, so nothing ties it to the engine file")
    else:
        if read_engine:
            data = engine_path.read_bytes()
            actual = sha256_bytes(data)
        else:
            actual = sha256_file(engine_path)
        if actual != recorded:
            reasons.append("the engine file does not match the sha256 in its sidecar (replaced or corrupted)")
        else:
            key = engine_key()
            problem = tag_problem(engine_path, key, actual, raw) if key is not None else None
            if problem:
                reasons.append(problem)
            authenticated = key is not None and not problem
    return _Checked(Verdict(not reasons, reasons, meta), data, n_perm, authenticated)


def check_engine(
    engine_path: str | Path,
    identity: Mapping[str, str] | None = None,
    onnx_sha256: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Verdict:
    """Check ``engine_path`` against its sidecar without deserializing it (pure Python, no TensorRT): folder
    permissions, the sidecar, the engine's size and sha256, the HMAC tag when an engine key is configured,
    and the given expectations (the cache passes identity, ONNX digest and options)."""
    return _check(Path(engine_path), identity, onnx_sha256, options, read_engine=False).verdict


# ---------------------------------------------------------------------------------------------- the gate
@dataclass(frozen=True)
class TrustedEngine:
    """Engine bytes that passed :func:`load_trusted_engine`: the only thing :func:`deserialize_engine` takes."""

    path: Path
    data: bytes = field(repr=False)
    meta: dict[str, Any] = field(repr=False)
    authenticated: bool  # True when an engine key is configured and the tag verified


def load_trusted_engine(engine_path: str | Path, identity: Mapping[str, str] | None = None) -> TrustedEngine:
    """The engine's bytes, read once, after every check of :func:`check_engine` passed (and ``identity``
    matched, when given: the runtime passes this machine's, ``inspect`` none); else one-line
    :class:`~.engine_trust.UntrustedEngineError` saying what did not match and how to rebuild."""
    path = Path(engine_path)
    checked = _check(path, identity, None, None, read_engine=True)
    verdict = checked.verdict
    if not verdict.ok:
        if len(verdict.reasons) == checked.permission_reasons:
            hint = ""  # permissions only: rebuilding into the same folder would not help
        elif verdict.meta is None:  # no sidecar of ours: the cache will not replace this file
            hint = (f"; an engine is executable code: move it away and build it on this machine (edge-infer build "
                    f"MODEL -o {path} --cache force)")
        else:
            hint = (f"; rebuild it on this machine (edge-infer build MODEL -o {path} --cache force, or engine_build: "
                    "auto / the ~/rebuild_engines service in the nodes)")
        raise UntrustedEngineError(verdict.message(path) + hint)
    assert checked.data is not None and verdict.meta is not None
    return TrustedEngine(path, checked.data, verdict.meta, checked.authenticated)


def deserialize_engine(runtime: Any, trusted: TrustedEngine) -> Any:
    """The one call of ``IRuntime.deserialize_cuda_engine`` in edge_infer, on bytes :func:`load_trusted_engine`
    checked. ``runtime`` is a ``tensorrt.Runtime`` (its DLA core already set)."""
    if not isinstance(trusted, TrustedEngine):
        raise TypeError("deserialize_engine takes a TrustedEngine from load_trusted_engine, not a path or bytes")
    engine = runtime.deserialize_cuda_engine(trusted.data)
    if engine is None:
        raise BackendError(f"TensorRT could not deserialize {trusted.path} (see the TensorRT log above): built with "
                           "another TensorRT version or for another GPU?")
    return engine
