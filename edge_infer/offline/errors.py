"""The one user-facing error type of the offline tools: its message is the whole story (cli prints it, exit 2)."""

from __future__ import annotations


class OfflineError(RuntimeError):
    """An offline tool could not do its job; the message names the file, what was wrong and what to do."""


def require_file(path, what: str = "file"):
    """``Path(path)`` if it is an existing file, else OfflineError '<what> not found: <path>'."""
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.is_file():
        raise OfflineError(f"{what} not found: {p}" + ("" if p.parent.is_dir() else f" (no directory {p.parent})"))
    return p
