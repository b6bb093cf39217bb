"""Atomic file writes and hashing: a crash or Ctrl-C mid-write never leaves a half-written model,
engine or report where a node would load it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

# Read once at import (os.umask can only be read by setting it, which is not thread safe later).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it over ``path``.

    The temp file lives in the same directory so ``os.replace`` is a same-filesystem atomic rename.
    On error the temp file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the permissions of a normal new file
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write a matplotlib figure as PNG atomically (benchmark plots) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    fig.clf()
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:  # pragma: no cover - a figure implies matplotlib
        pass
    return Path(path)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """An exclusive advisory lock on ``path`` + ``.lock`` for read-merge-write sequences between processes
    (e.g. two engine builds sharing one TensorRT timing cache). Blocks until the lock is free."""
    import fcntl

    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_yaml(path: str | os.PathLike[str], what: str, max_bytes: int, error: type[Exception],
              limit_name: str = "") -> Any:
    """Parse a YAML file that may come from anywhere (a zoo file, a bag's metadata, a parameter file).

    Why one reader: each of those is untrusted input, and each needs the same three guards: the size is checked
    before anything is read (a YAML file is small; a big one is not what it claims), ``yaml.safe_load`` builds
    only plain data (no Python tags, so no code runs), and every failure (unreadable, not UTF-8, not YAML,
    nested past the recursion limit) is one ``error`` line that starts with ``what``. The caller checks the
    document's shape (mapping, keys, types): that differs per file kind.
    """
    import yaml

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{what}: {size} bytes is more than {max_bytes} allowed for this kind of file"
                        + (f" ({limit_name})" if limit_name else ""))
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{what}: cannot read it ({' '.join(str(e).split())})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{what}: not valid YAML ({' '.join(str(e).split())})") from None
    except RecursionError:
        raise error(f"{what}: nested too deeply to be read") from None
