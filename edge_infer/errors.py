"""The one error base class of edge_infer, and the user-facing errors shared by several layers.

Every error a user can cause (a missing file, a bad model, an unsupported option, a missing runtime)
derives from :class:`EdgeInferError`, and its message is the whole story: what, which file, what to do.
The CLI prints such an error as one line and exits 2; anything else is a bug and keeps its traceback.
Layer-specific subclasses live next to the code that raises them (``BackendError`` in backends,
``SpecError`` in models, ...) but all derive from this base, so one ``except EdgeInferError`` catches them.
"""

from __future__ import annotations

from pathlib import Path


class EdgeInferError(Exception):
    """A user-facing failure whose message says what was wrong and what to do."""


class OfflineError(EdgeInferError):
    """An offline tool (export, import, sanitize, quantize, validate, inspect, convert-all) could not do its job."""


def require_file(path: str | Path, what: str = "file") -> Path:
    """``Path(path)`` if it is an existing file, else OfflineError '<what> not found: <path>'."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise OfflineError(f"{what} not found: {p}" + ("" if p.parent.is_dir() else f" (no directory {p.parent})"))
    return p


class ConfigError(EdgeInferError, ValueError):
    """A parameter, option or configuration value is not valid; the message names it and the valid choices."""


class MissingFileError(EdgeInferError, FileNotFoundError):
    """A file the user named or the zoo promises is not there; the message says how to get it."""


class BagError(EdgeInferError, ValueError):
    """A rosbag2 bag cannot be read or written as asked (missing topic, wrong type, empty, bad storage)."""
