"""`edge-infer bundle`: one deployable artefact per model: engine and/or ONNX, the engine sidecar,
benchmark.json, a sample input (the real preprocessed tensor the benchmark used, as .npz) and a manifest
with the sha256 of every file, so a robot (or a reviewer) can check what it received.

Written atomically: a ``.tar.gz`` goes through a temp file + rename; a directory is assembled next to the
target and swapped in, so an interrupted bundle never leaves a half-filled deployment.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.fileio import atomic_path, sha256_file

MANIFEST_SCHEMA = "edge_infer/bundle"
MANIFEST_VERSION = 1


class BundleError(EdgeInferError, RuntimeError):
    """A bundle input is missing or the output cannot be written; the message names the file."""


def _sample_npz(feeds: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in feeds.items()})
    return buf.getvalue()


def make_bundle(
    out: str | Path,
    model_files: Sequence[str | Path],
    benchmark: str | Path | None = None,
    sample_feeds: Mapping[str, np.ndarray] | None = None,
    extra: Mapping[str, Any] | None = None,
    fmt: str | None = None,
) -> dict[str, Any]:
    """Write the bundle to ``out`` (``.tar.gz``/``.tgz`` -> archive, else a directory); return the manifest.

    ``model_files``: engines (their ``.json`` sidecars are added automatically) and/or ONNX files.
    """
    out = Path(out)
    fmt = fmt or ("tar.gz" if out.name.endswith((".tar.gz", ".tgz")) else "dir")
    if fmt not in ("tar.gz", "dir"):
        raise BundleError(f"unknown bundle format '{fmt}' (tar.gz | dir)")
    files: dict[str, Path | bytes] = {}
    for f in model_files:
        p = Path(f)
        if not p.is_file():
            raise BundleError(f"bundle input not found: {p}")
        files[p.name] = p
        side = p.with_name(p.name + ".json")
        if p.suffix in (".engine", ".plan") and side.is_file():
            files[side.name] = side
    if not files:
        raise BundleError("nothing to bundle: give at least one engine or ONNX file")
    if benchmark is not None:
        b = Path(benchmark)
        if not b.is_file():
            raise BundleError(f"benchmark file not found: {b}")
        files["benchmark.json"] = b
        png = b.with_suffix(".png")
        if png.is_file():
            files["benchmark.png"] = png
    if sample_feeds:
        files["sample_input.npz"] = _sample_npz(sample_feeds)
    entries = []
    for name, src in sorted(files.items()):
        if isinstance(src, Path):
            entries.append({"name": name, "bytes": src.stat().st_size, "sha256": sha256_file(src)})
        else:
            import hashlib

            entries.append({"name": name, "bytes": len(src), "sha256": hashlib.sha256(src).hexdigest()})
    from edge_infer import __name__ as pkg

    manifest = {
        "schema": MANIFEST_SCHEMA, "version": MANIFEST_VERSION, "package": pkg,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": entries,
        "sample_input": {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                         for k, v in (sample_feeds or {}).items()},
        **(extra or {}),
    }
    manifest_bytes = (json.dumps(manifest, indent=2, default=str) + "\n").encode()
    if fmt == "tar.gz":
        with atomic_path(out) as tmp:
            with tarfile.open(tmp, "w:gz") as tar:
                for name, src in sorted(files.items()):
                    data = src.read_bytes() if isinstance(src, Path) else src
                    _add(tar, name, data)
                _add(tar, "manifest.json", manifest_bytes)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            for name, src in files.items():
                if isinstance(src, Path):
                    shutil.copyfile(src, staging / name)
                else:
                    (staging / name).write_bytes(src)
            (staging / "manifest.json").write_bytes(manifest_bytes)
            old = None
            if out.exists():
                old = out.with_name(f".{out.name}.old.{os.getpid()}")
                os.replace(out, old)
            os.replace(staging, out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    manifest["path"] = str(out)
    return manifest


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def verify_bundle(path: str | Path) -> list[str]:
    """Problems found in a bundle (missing files, sha256 mismatches); empty when it is intact."""
    import hashlib

    path = Path(path)
    problems: list[str] = []
    if path.is_dir():
        read = lambda n: (path / n).read_bytes() if (path / n).is_file() else None  # noqa: E731
        manifest_raw = read("manifest.json")
        blobs = None
    else:
        with tarfile.open(path, "r:gz") as tar:
            blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        read = blobs.get
        manifest_raw = read("manifest.json")
    if manifest_raw is None:
        return ["manifest.json missing"]
    for e in json.loads(manifest_raw)["files"]:
        data = read(e["name"])
        if data is None:
            problems.append(f"{e['name']} missing")
        elif hashlib.sha256(data).hexdigest() != e["sha256"]:
            problems.append(f"{e['name']} sha256 mismatch")
    return problems
