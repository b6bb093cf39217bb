"""`edge-infer bundle`: one deployable artefact per model: engine and/or ONNX, the engine sidecar,
benchmark.json, a sample input (the real preprocessed tensor the benchmark used, as .npz) and a manifest
with the sha256 of every file, so a robot (or a reviewer) can check what it received (`bundle --verify`).

Written atomically: a ``.tar.gz`` goes through a temp file + rename; a directory is assembled next to the
target and swapped in, so an interrupted bundle never leaves a half-filled deployment.

Never over what this command did not make: ``-o`` may name a new path, an empty directory, or (with
``force``) a previous bundle, i.e. a directory holding exactly the files its manifest lists or a ``.tar.gz``
whose members are exactly those; anything else is refused and left as it is.

A bundle to verify may come from anywhere: its manifest's names must stay inside the bundle, the archive is
read as a stream (members hashed in chunks, never whole in memory), only regular files are accepted, names
must be unique, and member count, manifest size and total uncompressed bytes are capped (MAX_MEMBERS,
MAX_MANIFEST_BYTES, MAX_TOTAL_BYTES below), so a gzip bomb costs bounded memory and time and gets one error.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.errors import EdgeInferError
from edge_infer.backends.tensorrt.engine_trust import tag_path
from edge_infer.backends.tensorrt.sidecar import sidecar_path
from edge_infer.fileio import atomic_path, sha256_file
from edge_infer.paths import OutsidePathError, inside, relative_name

MANIFEST_SCHEMA = "edge_infer/bundle"
MANIFEST_VERSION = 1
MANIFEST = "manifest.json"

# Limits on reading a bundle (verification, and recognising a previous bundle before replacing it).
MAX_MEMBERS = 1000                # a bundle holds ~10 files
MAX_MANIFEST_BYTES = 1 << 20      # manifest.json is ~2 KB
MAX_TOTAL_BYTES = 1 << 30         # uncompressed: models + engines of one zoo model are well under 100 MB
_MAX_SINGLE_READ = 4 << 20        # no tar header (pax / GNU long name) is bigger; member data is read in chunks
_CHUNK = 1 << 20


class BundleError(EdgeInferError, RuntimeError):
    """A bundle input is missing, the output cannot be written, or a bundle to read is malformed or hostile;
    the message names the file."""


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
    force: bool = False,
) -> dict[str, Any]:
    """Write the bundle to ``out`` (``.tar.gz``/``.tgz`` -> archive, else a directory); return the manifest.

    ``model_files``: engines (their ``.json`` sidecars are added automatically) and/or ONNX files.
    ``out`` may be new or an empty directory; a previous bundle is replaced only with ``force``; anything
    else that exists there is refused (BundleError) and left untouched.
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
        if p.suffix in (".engine", ".plan"):  # an engine travels with what vouches for it: sidecar, HMAC tag
            for side in (sidecar_path(p), tag_path(p)):
                if side.is_file():
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
    _check_replaceable(out, fmt, force)  # before any work: a refusal costs nothing and changes nothing
    entries = []
    for name, src in sorted(files.items()):
        if isinstance(src, Path):
            entries.append({"name": name, "bytes": src.stat().st_size, "sha256": sha256_file(src)})
        else:
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
                    _add(tar, name, src)
                _add(tar, MANIFEST, manifest_bytes)
            _check_replaceable(out, fmt, force)  # again just before the rename: nothing appeared meanwhile
    else:
        _write_dir(out, files, manifest_bytes, force)
    manifest["path"] = str(out)
    return manifest


def _write_dir(out: Path, files: Mapping[str, Path | bytes], manifest_bytes: bytes, force: bool) -> None:
    """Assemble next to ``out`` and swap in; the old bundle (checked again once moved aside) is deleted last."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old: Path | None = None
    try:
        for name, src in files.items():
            if isinstance(src, Path):
                shutil.copyfile(src, staging / name)
            else:
                (staging / name).write_bytes(src)
        (staging / MANIFEST).write_bytes(manifest_bytes)
        if out.exists() or out.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old)  # a directory renames over the empty temp directory
            try:  # what was moved is what was checked (nothing was added between the check and the move)
                _check_replaceable(old, "dir", force, shown=out)
            except BundleError:
                os.replace(old, out)
                old = None
                raise
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            old = None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if old is not None and old.exists() and not out.exists():  # the swap failed: put the old bundle back
            os.replace(old, out)


def _add(tar: tarfile.TarFile, name: str, src: Path | bytes) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = int(time.time())
    info.mode = 0o644
    if isinstance(src, Path):  # streamed: an engine is not read into memory whole
        info.size = src.stat().st_size
        with open(src, "rb") as f:
            tar.addfile(info, f)
    else:
        info.size = len(src)
        tar.addfile(info, io.BytesIO(src))


# ------------------------------------------------------------------------------- replacing an old output
def _check_replaceable(out: Path, fmt: str, force: bool, shown: Path | None = None) -> None:
    """BundleError unless writing ``out`` destroys nothing this command did not make (see module docstring)."""
    shown = shown or out
    if out.is_symlink():
        raise BundleError(f"bundle output {shown} is a symbolic link; refusing to replace it (give a new path)")
    if not out.exists():
        return
    if fmt == "dir":
        if not out.is_dir():
            raise BundleError(f"bundle output {shown} exists and is not a directory; refusing to replace it "
                              "(give a new path, or NAME.tar.gz for an archive)")
        if not any(out.iterdir()):
            return
        foreign = _foreign_dir_entries(out)
    else:
        if not out.is_file():
            raise BundleError(f"bundle output {shown} exists and is not a file; refusing to replace it")
        try:
            foreign = _foreign_archive_members(out)
        except BundleError as e:
            raise BundleError(f"bundle output {shown} exists and is not a readable bundle archive ({e}); "
                              "refusing to replace it (give a new path)") from None
    if foreign is None:
        raise BundleError(f"bundle output {shown} exists and is not an edge-infer bundle (no {MANIFEST} with "
                          f"schema {MANIFEST_SCHEMA}); refusing to replace it (give a new or empty "
                          f"{'directory' if fmt == 'dir' else 'path'})")
    if foreign:
        raise BundleError(f"bundle output {shown} holds files its manifest does not list ({', '.join(foreign[:5])}"
                          f"{', ...' if len(foreign) > 5 else ''}); refusing to replace it (move them away first)")
    if not force:
        raise BundleError(f"bundle output {shown} is a previous bundle; pass --force to replace it")


def _manifest_names(raw: bytes, where: str) -> set[str] | None:
    """The file names of an edge_infer bundle manifest, or None when ``raw`` is not one."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA or not isinstance(doc.get("files"), list):
        return None
    return {e["name"] for e in doc["files"] if isinstance(e, dict) and isinstance(e.get("name"), str)}


def _foreign_dir_entries(out: Path) -> list[str] | None:
    """None if ``out`` is not a bundle directory; else the entries its manifest does not list ([] = a bundle)."""
    manifest = out / MANIFEST
    if manifest.is_symlink() or not manifest.is_file() or manifest.stat().st_size > MAX_MANIFEST_BYTES:
        return None
    names = _manifest_names(manifest.read_bytes(), str(manifest))
    if names is None:
        return None
    listed = names | {MANIFEST}
    return sorted(p.name + ("/" if p.is_dir() and not p.is_symlink() else "") for p in out.iterdir()
                  if p.name not in listed or p.is_symlink() or not p.is_file())


def _foreign_archive_members(out: Path) -> list[str] | None:
    """The archive counterpart of :func:`_foreign_dir_entries` (read with the same bounds as verification)."""
    scan = _scan_archive(out, hash_members=False)
    if scan.manifest is None:
        return None
    names = _manifest_names(scan.manifest, str(out))
    if names is None:
        return None
    return sorted(set(scan.members) - names - {MANIFEST})


# ----------------------------------------------------------------------------------------- verification
class _BoundedReads(io.RawIOBase):
    """The decompressed stream under tarfile, with a cap on its total length and on any single read.

    tarfile reads a pax or GNU long-name header in one ``read(size)`` of the size the header declares, before
    any member is seen: a 1 KB archive could ask for gigabytes. Member data is read through here in chunks."""

    def __init__(self, raw: Any, path: Path, max_total: int) -> None:
        self._raw, self._path, self._max_total = raw, path, max_total

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._raw.tell() + offset if whence == io.SEEK_CUR else None
        if target is not None and target > self._max_total:
            raise _too_big(self._path, target, self._max_total)
        return self._raw.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > _MAX_SINGLE_READ:
            raise BundleError(f"{self._path}: a tar header asks for {size} bytes at once (pax / long-name headers "
                              f"are far smaller; limit {_MAX_SINGLE_READ}): not a bundle archive")
        if self._raw.tell() + size > self._max_total:
            raise _too_big(self._path, self._raw.tell() + size, self._max_total)
        return self._raw.read(size)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def _too_big(path: Path, size: int, limit: int) -> BundleError:
    return BundleError(f"{path}: more than {limit} bytes uncompressed (at least {size}); refusing to read further "
                       "(the limit is MAX_TOTAL_BYTES in edge_infer.offline.bundle): a gzip bomb, or a bundle far "
                       "bigger than one model")


class _Scan:
    def __init__(self) -> None:
        self.members: dict[str, tuple[int, str | None]] = {}  # name -> (bytes, sha256 or None)
        self.manifest: bytes | None = None


def _member_name(path: Path, name: str) -> str:
    try:
        rel = relative_name(name, f"{path}: member")
    except OutsidePathError as e:
        raise BundleError(str(e)) from None
    return rel.as_posix()


def _scan_archive(path: Path, hash_members: bool, max_members: int = MAX_MEMBERS,
                  max_total_bytes: int = MAX_TOTAL_BYTES) -> _Scan:
    """One streaming pass over a bundle archive (see the module docstring); BundleError for anything hostile."""
    scan = _Scan()
    total = 0
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=_BoundedReads(gz, path, max_total_bytes + (1 << 20)),
                                                       mode="r:") as tar:
            while (m := tar.next()) is not None:
                if len(scan.members) >= max_members:
                    raise BundleError(f"{path}: more than {max_members} members (MAX_MEMBERS in "
                                      "edge_infer.offline.bundle): not a bundle")
                name = _member_name(path, m.name)
                if m.isdir():
                    continue
                if not m.isreg():
                    kind = "symbolic link" if m.issym() else "hard link" if m.islnk() else "device or fifo"
                    raise BundleError(f"{path}: member {m.name} is a {kind}; a bundle holds regular files only")
                if name in scan.members:
                    raise BundleError(f"{path}: member {name} appears twice; a bundle names each file once")
                total += m.size
                if total > max_total_bytes:
                    raise _too_big(path, total, max_total_bytes)
                f = tar.extractfile(m)
                if name == MANIFEST:
                    if m.size > MAX_MANIFEST_BYTES:
                        raise BundleError(f"{path}: {MANIFEST} is {m.size} bytes (limit {MAX_MANIFEST_BYTES}, "
                                          "MAX_MANIFEST_BYTES in edge_infer.offline.bundle): not a bundle manifest")
                    scan.manifest = f.read(m.size)
                    scan.members[name] = (m.size, None)
                    continue
                digest = None
                if hash_members:
                    h = hashlib.sha256()
                    while block := f.read(_CHUNK):
                        h.update(block)
                    digest = h.hexdigest()
                scan.members[name] = (m.size, digest)
    except BundleError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as e:
        raise BundleError(f"{path}: not a readable .tar.gz bundle: {' '.join(str(e).split())}") from None
    return scan


def _manifest_entries(raw: bytes | None, where: str, root: Path | None) -> list[dict] | None:
    """The manifest's file entries, each name checked to stay inside the bundle (``root``: a bundle directory,
    where symlinks are resolved too; None: an archive); None if there is no manifest."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{where}: {MANIFEST} is not JSON ({type(e).__name__})") from None
    if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA or not isinstance(doc.get("files"), list):
        raise BundleError(f"{where}: {MANIFEST} is not an edge_infer bundle manifest (schema {MANIFEST_SCHEMA})")
    entries = doc["files"]
    if len(entries) > MAX_MEMBERS:
        raise BundleError(f"{where}: {MANIFEST} lists {len(entries)} files (limit {MAX_MEMBERS})")
    for i, e in enumerate(entries):
        if not (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("sha256"), str)):
            raise BundleError(f"{where}: {MANIFEST} files[{i}] needs a 'name' and a 'sha256'")
        try:
            if root is None:
                relative_name(e["name"], f"{where}: {MANIFEST} files[{i}]")
            else:
                inside(root, e["name"], f"{where}: {MANIFEST} files[{i}]")
        except OutsidePathError as err:
            raise BundleError(str(err)) from None
    return entries


def _size_differs(entry: dict, size: int) -> bool:
    """A size other than the manifest's is a mismatch without hashing anything."""
    return isinstance(entry.get("bytes"), int) and entry["bytes"] != size


def verify_bundle(path: str | Path, max_members: int = MAX_MEMBERS,
                  max_total_bytes: int = MAX_TOTAL_BYTES) -> list[str]:
    """Problems found in a bundle (missing, unlisted, wrong size, sha256 mismatch); empty when it is intact.

    A malformed or hostile bundle (names outside it, links, duplicates, over the limits, not an archive) is a
    BundleError, not a list of problems: nothing in it can be trusted enough to list.
    """
    path = Path(path)
    problems: list[str] = []
    if path.is_dir():
        try:
            manifest_file = inside(path, MANIFEST, f"bundle {path}")
        except OutsidePathError as e:
            raise BundleError(str(e)) from None
        raw = None
        if manifest_file.is_file():
            if manifest_file.stat().st_size > MAX_MANIFEST_BYTES:
                raise BundleError(f"{manifest_file}: over {MAX_MANIFEST_BYTES} bytes; not a bundle manifest")
            raw = manifest_file.read_bytes()
        entries = _manifest_entries(raw, str(path), path)
        if entries is None:
            return [f"{MANIFEST} missing"]
        for e in entries:
            f = path / e["name"]
            if not f.is_file():
                problems.append(f"{e['name']} missing")
            elif _size_differs(e, f.stat().st_size) or sha256_file(f) != e["sha256"]:
                problems.append(f"{e['name']} sha256 mismatch")
        listed = {PurePosixPath(e["name"]).parts[0] for e in entries} | {MANIFEST}
        problems += [f"{p.name} not in the manifest" for p in sorted(path.iterdir()) if p.name not in listed]
        return problems
    if not path.is_file():
        raise BundleError(f"bundle not found: {path}")
    scan = _scan_archive(path, hash_members=True, max_members=max_members, max_total_bytes=max_total_bytes)
    entries = _manifest_entries(scan.manifest, str(path), None)
    if entries is None:
        return [f"{MANIFEST} missing"]
    for e in entries:
        name = PurePosixPath(e["name"]).as_posix()
        got = scan.members.get(name)
        if got is None:
            problems.append(f"{e['name']} missing")
        elif _size_differs(e, got[0]) or got[1] != e["sha256"]:
            problems.append(f"{e['name']} sha256 mismatch")
    listed = {PurePosixPath(e["name"]).as_posix() for e in entries} | {MANIFEST}
    problems += [f"{n} not in the manifest" for n in sorted(scan.members) if n not in listed]
    return problems
