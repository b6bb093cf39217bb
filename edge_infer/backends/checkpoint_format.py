"""What a checkpoint file is, decided from its bytes before any unpickler or torch reader sees it.

Why: ``torch.load`` picks its reader from the first bytes (a zip archive, else the legacy pickle stream, which
also falls back to a tar reader), so a file from elsewhere reaches torch's parsers whatever it holds, and
torch's own errors describe every failure of its weights-only unpickler as "Weights only load failed", which
made random bytes look like a checkpoint that needs ``--trust-checkpoint``. Here a file is one of:

- a ``torch.save`` zip archive: ``<folder>/data.pkl`` plus tensor records ``<folder>/data/<n>``, every member
  stored (torch never compresses; a deflated member is how a 1 MB file expands to 1 GB in ``torch.load``);
- a TorchScript archive (``torch.jit.save``): the same zip with ``constants.pkl`` / ``code/``, recognised by its
  member names without loading it (loading runs its code);
- a legacy ``torch.save`` stream (``_use_new_zipfile_serialization=False``): it starts with torch's magic
  number pickle;
- a safetensors file (8-byte header length, then a JSON header): read without pickle at all;

and anything else "is not a PyTorch checkpoint", a message that never mentions ``--trust-checkpoint``.

Bounds, so that a small hostile file cannot take a lot of memory before its error (measured, see SECURITY.md):
the zip central directory (Python's zipfile keeps ~600 bytes per member), the pickle that the weights-only
unpickler runs (it keeps ~70 bytes of Python objects per byte of a crafted pickle), the small records torch
reads whole, and the safetensors JSON header (~15 bytes per byte to open it). Tensor data is never read
whole: torch maps zip archives (``mmap=True``) and safetensors maps its file.

This module imports no torch: the checks are plain file reads.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge_infer.backends.base import BackendError

#: the pickle that the weights-only unpickler runs (zip: data.pkl; legacy: the pickles before the raw
#: storages). 2 MiB is ~16,000 tensors of a state_dict (the zoo's emotion model: 12.5 KB for 95 tensors);
#: a crafted pickle of that size peaks at ~150 MB in torch's weights-only unpickler.
MAX_PICKLE_BYTES = 2 * 1024 * 1024
#: the zip central directory (torch.save: ~70-100 bytes a member, so ~40,000 tensors)
MAX_ZIP_DIRECTORY_BYTES = 4 * 1024 * 1024
#: members other than data.pkl and the tensor records (version, byteorder, ...) are a few bytes; torch reads them whole
MAX_SMALL_RECORD_BYTES = 64 * 1024
#: the safetensors JSON header (~100 bytes a tensor, so ~20,000 tensors); safetensors itself allows 100 MB
MAX_SAFETENSORS_HEADER_BYTES = 2 * 1024 * 1024

TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER, the first pickle of a legacy file
_LEGACY_HEADS = tuple(pickle.dumps(TORCH_MAGIC_NUMBER, protocol=p) for p in range(2, pickle.HIGHEST_PROTOCOL + 1))
_LEGACY_PICKLES = 5  # magic number, protocol version, sys info, the object, the storage keys; then raw storages
_EOCD, _ZIP64_LOCATOR, _ZIP64_EOCD = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"


class CheckpointError(BackendError):
    """A checkpoint is missing, unreadable, unsafe to unpickle or does not fit its architecture."""


@dataclass(frozen=True)
class CheckpointFile:
    """A file identified by its structure. ``kind``: zip | torchscript | legacy | safetensors."""

    path: Path
    kind: str
    pickle_member: str = ""  # zip: the data.pkl member
    pickle_bytes: int = 0  # zip: the size of data.pkl


def not_a_checkpoint(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a PyTorch checkpoint ({why}); expected a torch.save file, a "
                           "TorchScript archive or a .safetensors file")


def identify(path: str | Path) -> CheckpointFile:
    """The kind of checkpoint ``path`` holds, from its first bytes and (zip) its directory; raises CheckpointError
    "not a PyTorch checkpoint" for anything else, and for archives outside the bounds above."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        if path.suffix.lower() == ".safetensors" or _looks_like_safetensors(head, size):
            return _check_safetensors(path, head, size)
        if head.startswith(b"PK"):
            return _check_zip(path, f, size)
    if head.startswith(_LEGACY_HEADS):
        return CheckpointFile(path, "legacy")
    raise not_a_checkpoint(path, _describe(head))


def _describe(head: bytes) -> str:
    """What the first bytes of a file that is no checkpoint look like, for its error message."""
    if not head:
        return "the file is empty"
    if head[:1] == b"\x80":
        return "a pickle without torch's magic number: not written by torch.save"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "a text file"
    return f"unknown content starting {head[:8]!r}"


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return 2 <= n <= size - 8


def _check_safetensors(path: Path, head: bytes, size: int) -> CheckpointFile:
    if len(head) < 8:
        raise CheckpointError(f"{path} is not a valid safetensors file ({size} bytes: too short for its header)")
    n = struct.unpack("<Q", head[:8])[0]
    if n + 8 > size:
        raise CheckpointError(f"{path} is not a valid safetensors file (its header length {n} runs past the end "
                              f"of the {size}-byte file: truncated, or not safetensors)")
    if n > MAX_SAFETENSORS_HEADER_BYTES:
        raise CheckpointError(f"{path}: safetensors header of {n} bytes is over the "
                              f"{MAX_SAFETENSORS_HEADER_BYTES}-byte limit (MAX_SAFETENSORS_HEADER_BYTES)")
    return CheckpointFile(path, "safetensors")


def _zip_directory(path: Path, f: io.BufferedReader, size: int) -> tuple[int, int]:
    """(members, central directory bytes) from the end-of-central-directory record (zip64 too), read before
    zipfile builds one object per member."""
    tail_len = min(size, 22 + 65535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise not_a_checkpoint(path, "a zip archive without its central directory: truncated or damaged")
    _, _, _, _, members, cd_bytes, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    eocd_at = size - tail_len + at
    if (members == 0xFFFF or cd_bytes == 0xFFFFFFFF) and eocd_at >= 20:
        f.seek(eocd_at - 20)
        loc = f.read(20)
        if loc[:4] == _ZIP64_LOCATOR:
            z64_at = struct.unpack("<4sLQL", loc)[2]
            f.seek(min(z64_at, size))
            rec = f.read(56)
            if len(rec) < 56 or rec[:4] != _ZIP64_EOCD:
                raise not_a_checkpoint(path, "a zip archive with a damaged zip64 directory")
            members, cd_bytes = struct.unpack("<4sQ2H2L4Q", rec)[7:9]
    return members, cd_bytes


def _check_zip(path: Path, f: io.BufferedReader, size: int) -> CheckpointFile:
    members, cd_bytes = _zip_directory(path, f, size)
    if cd_bytes > size:
        raise not_a_checkpoint(path, f"a zip archive whose directory claims {cd_bytes} bytes of a {size}-byte file")
    if cd_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise CheckpointError(f"{path}: zip directory of {members} members ({cd_bytes} bytes) is over the "
                              f"{MAX_ZIP_DIRECTORY_BYTES}-byte limit (MAX_ZIP_DIRECTORY_BYTES)")
    f.seek(0)
    try:
        infos = zipfile.ZipFile(f).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, struct.error) as e:
        raise not_a_checkpoint(path, f"a damaged zip archive: {e}") from None
    pickles = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl")]
    if len(pickles) != 1:
        what = "without a <folder>/data.pkl member" if not pickles else f"with {len(pickles)} data.pkl members"
        raise not_a_checkpoint(path, f"a zip archive {what}, unlike a torch.save archive")
    folder = pickles[0].filename[: -len("data.pkl")]
    names = [i.filename for i in infos]
    if any(n == folder + "constants.pkl" or n.startswith(folder + "code/") for n in names):
        return CheckpointFile(path, "torchscript")
    for i in infos:
        rel = i.filename[len(folder):] if i.filename.startswith(folder) else None
        if rel is None:
            raise not_a_checkpoint(path, f"member {i.filename!r} is outside the archive's folder {folder!r}")
        if i.compress_type != zipfile.ZIP_STORED:
            raise not_a_checkpoint(path, f"member {i.filename!r} is compressed; torch.save stores every member "
                                         "uncompressed")
        if i.file_size != i.compress_size or i.header_offset + i.compress_size > size:
            raise not_a_checkpoint(path, f"member {i.filename!r} claims {i.file_size} bytes that the {size}-byte "
                                         "file does not hold")
        if rel != "data.pkl" and not rel.startswith("data/") and i.file_size > MAX_SMALL_RECORD_BYTES:
            raise not_a_checkpoint(path, f"member {i.filename!r} of {i.file_size} bytes; torch.save writes only "
                                         f"tensor records under {folder}data/ and a few small files")
    return CheckpointFile(path, "zip", pickles[0].filename, pickles[0].file_size)


def check_weights_only_bounds(cf: CheckpointFile) -> None:
    """Before the weights-only unpickler runs: its pickle within :data:`MAX_PICKLE_BYTES`, and (legacy) a
    well-formed sequence of torch's pickles, read as opcodes without executing any."""
    if cf.kind == "zip":
        if cf.pickle_bytes > MAX_PICKLE_BYTES:
            raise CheckpointError(_pickle_limit_message(cf.path, f"its data.pkl has {cf.pickle_bytes} bytes"))
        return
    if cf.kind != "legacy":
        return
    with open(cf.path, "rb") as f:
        buf = f.read(MAX_PICKLE_BYTES + 1)
    stream = io.BytesIO(buf)
    try:
        for _ in range(_LEGACY_PICKLES):
            for _op in pickletools.genops(stream):
                pass
    except ValueError as e:
        if len(buf) > MAX_PICKLE_BYTES:
            raise CheckpointError(_pickle_limit_message(cf.path, f"its pickles run past {MAX_PICKLE_BYTES} bytes")) from None
        raise not_a_checkpoint(cf.path, f"a legacy torch.save file whose pickles are truncated or damaged: {e}") from None


def _pickle_limit_message(path: Path, what: str) -> str:
    return (f"{path}: {what}, over the {MAX_PICKLE_BYTES}-byte limit of weights-only loading "
            "(MAX_PICKLE_BYTES); save the state_dict as .safetensors instead")


def main_pickle(cf: CheckpointFile) -> bytes:
    """The pickle of the saved object (zip: data.pkl; legacy: the 4th pickle), at most MAX_PICKLE_BYTES; b"" if
    it cannot be read within that bound. Used only to describe a refused file."""
    try:
        if cf.kind == "zip" and cf.pickle_bytes <= MAX_PICKLE_BYTES:
            with zipfile.ZipFile(cf.path) as zf:
                return zf.read(cf.pickle_member)
        if cf.kind == "legacy":
            with open(cf.path, "rb") as f:
                stream = io.BytesIO(f.read(MAX_PICKLE_BYTES))
            for _ in range(3):
                for _op in pickletools.genops(stream):
                    pass
            start = stream.tell()
            for _op in pickletools.genops(stream):
                pass
            return stream.getvalue()[start:stream.tell()]
    except (ValueError, OSError, zipfile.BadZipFile, KeyError):
        pass
    return b""


def pickle_globals(data: bytes) -> list[str]:
    """'module.name' of every global a pickle imports, read from its opcodes (nothing is imported or run)."""
    found: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except ValueError:
        pass
    return list(dict.fromkeys(found))
