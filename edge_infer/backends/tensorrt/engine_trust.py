"""Who may hand this process a TensorRT engine: the engine key (an HMAC-SHA256 tag over the engine and
its sidecar) and the ownership / permissions of the engine's folder.

Why this exists: a serialized engine is executable (kernels, plugin code); NVIDIA's TensorRT security
notes say to deserialize only engines you built or received over an authenticated channel. The sidecar's
sha256 (:mod:`.sidecar`) is an integrity check only: whoever can replace the engine can rewrite the
sidecar too. So:

- with a key configured (:data:`KEY_FILE_ENV` or :data:`KEY_ENV`), every sidecar write also writes
  ``<engine>.hmac`` and nothing is deserialized unless that tag verifies under the key: only a holder of the
  key (this robot's builder, the fleet's build server) can produce an engine this process will load;
- without a key, the engine's folder is what protects it: a world-writable engine, sidecar or folder is
  refused (sticky bit or not: in a sticky /tmp anyone may *create* the engine name first), one owned by
  another user (not root, not us) is warned about.

The tag is ``HMAC-SHA256(key, "edge_infer-engine-hmac-v1\\n" + sha256(engine) + "\\n" + sha256(sidecar bytes)
+ "\\n")`` (hex digests), written as one line ``hmac-sha256:<hex>`` in ``<engine>.hmac``. It lives in its own
file rather than in a sidecar field because it covers the sidecar's exact bytes: a field inside would need
a canonical "sidecar minus the tag" form that every signer (including a fleet's shell script with
``openssl dgst -hmac``) must reproduce byte for byte. It covers the engine through its sha256 so the check
costs no second pass over a large engine.

This module reads no sidecar and imports no TensorRT; :mod:`.sidecar` combines it with the sidecar check in
the one gate before deserializing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from pathlib import Path
from typing import Iterable

from edge_infer.backends.base import BackendError
from edge_infer.errors import ConfigError
from edge_infer.fileio import atomic_write_text

log = logging.getLogger(__name__)

KEY_FILE_ENV = "EDGE_INFER_ENGINE_KEY_FILE"  #: path of a file holding the key (owner-only permissions)
KEY_ENV = "EDGE_INFER_ENGINE_KEY"  #: the key itself (for containers whose secrets arrive as variables)
MIN_KEY_BYTES = 16  #: shorter keys are refused (guessable); `openssl rand -hex 32` gives 64
MAX_KEY_FILE_BYTES = 4096  #: a key file larger than this is not a key (and is never read whole)
TAG_SUFFIX = ".hmac"
TAG_PREFIX = "hmac-sha256:"
_TAG_DOMAIN = "edge_infer-engine-hmac-v1"
_MAX_TAG_BYTES = 256

_integrity_only_noted = False
_owner_warned: set[str] = set()


class UntrustedEngineError(BackendError):
    """An engine is not deserialized: its sidecar, sha256, signature or folder permissions do not vouch for it."""


class EngineKeyError(ConfigError):
    """The configured engine key cannot be used (missing or unsafe key file, too short, both variables set)."""


# ---------------------------------------------------------------------------------------------- the key
def engine_key() -> bytes | None:
    """The engine key from the environment, or None when none is configured (integrity checks only).

    ``EDGE_INFER_ENGINE_KEY_FILE`` names a regular file readable by its owner only (like ssh's private keys:
    a key others can read is a key others can sign with), owned by us or root; ``EDGE_INFER_ENGINE_KEY`` is the
    key itself. Surrounding whitespace (a trailing newline) is not part of the key. Setting both is refused:
    which one signed an engine must not be a guess.
    """
    key_file, key_value = os.environ.get(KEY_FILE_ENV, ""), os.environ.get(KEY_ENV, "")
    if key_file and key_value:
        raise EngineKeyError(f"both {KEY_FILE_ENV} and {KEY_ENV} are set; set only one engine key")
    if key_file:
        key = _read_key_file(Path(key_file).expanduser())
        source = f"{KEY_FILE_ENV}={key_file}"
    elif key_value:
        key, source = key_value.encode("utf-8").strip(), KEY_ENV
    else:
        _note_integrity_only()
        return None
    if len(key) < MIN_KEY_BYTES:
        raise EngineKeyError(f"the engine key from {source} has {len(key)} bytes; use at least {MIN_KEY_BYTES} "
                             "(e.g. `openssl rand -hex 32`)")
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        st = path.stat()
    except OSError as e:
        raise EngineKeyError(f"engine key file {path} ({KEY_FILE_ENV}) cannot be read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise EngineKeyError(f"engine key file {path} ({KEY_FILE_ENV}) is not a regular file")
    if st.st_mode & 0o077:
        raise EngineKeyError(f"engine key file {path} has permissions {stat.S_IMODE(st.st_mode):04o}: others can read "
                             f"or change the key; make it owner-only (chmod 600 {path})")
    if st.st_uid not in (0, os.geteuid()):
        raise EngineKeyError(f"engine key file {path} is owned by uid {st.st_uid}, not by this user or root")
    if st.st_size > MAX_KEY_FILE_BYTES:
        raise EngineKeyError(f"engine key file {path} has {st.st_size} bytes; a key file holds at most "
                             f"{MAX_KEY_FILE_BYTES} bytes")
    with open(path, "rb") as f:
        return f.read(MAX_KEY_FILE_BYTES + 1).strip()


def _note_integrity_only() -> None:
    """One INFO line per process, not a warning per engine: running without a key is a valid choice."""
    global _integrity_only_noted
    if not _integrity_only_noted:
        _integrity_only_noted = True
        log.info("no engine key (%s / %s): TensorRT engines are checked for integrity (sidecar sha256) and folder "
                 "permissions only, not authenticity", KEY_FILE_ENV, KEY_ENV)


# ---------------------------------------------------------------------------------------------- the tag
def tag_path(engine_path: str | Path) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + TAG_SUFFIX)


def compute_tag(key: bytes, engine_sha256: str, sidecar_bytes: bytes) -> str:
    """The hex HMAC-SHA256 over the engine (by its sha256) and the sidecar's exact bytes (module docstring)."""
    msg = f"{_TAG_DOMAIN}\n{engine_sha256}\n{hashlib.sha256(sidecar_bytes).hexdigest()}\n".encode("ascii")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def write_tag(engine_path: str | Path, key: bytes, engine_sha256: str, sidecar_bytes: bytes) -> Path:
    return atomic_write_text(tag_path(engine_path), f"{TAG_PREFIX}{compute_tag(key, engine_sha256, sidecar_bytes)}\n")


def tag_problem(engine_path: str | Path, key: bytes, engine_sha256: str, sidecar_bytes: bytes) -> str | None:
    """None when ``<engine>.hmac`` verifies under ``key``; else the sentence saying what is wrong.

    Compared with :func:`hmac.compare_digest` (constant time); the tag file is read at most 256 bytes."""
    path = tag_path(engine_path)
    if not path.is_file():
        return (f"an engine key is configured but the engine has no signature {path.name} (built before the key was "
                "set, or not by a holder of the key)")
    with open(path, "rb") as f:
        given = f.read(_MAX_TAG_BYTES).strip()
    want = (TAG_PREFIX + compute_tag(key, engine_sha256, sidecar_bytes)).encode("ascii")
    if not hmac.compare_digest(given, want):
        return (f"its signature {path.name} does not verify under the configured engine key (engine or sidecar "
                "changed after signing, or signed with another key)")
    return None


# ---------------------------------------------------------------------------------------------- the folder
def permission_problems(engine_path: str | Path, companions: Iterable[str | Path] = ()) -> list[str]:
    """Reasons to refuse ``engine_path`` because others can write it: the engine, its ``companions`` that
    exist (sidecar, tag), the folder holding the path and (for a symlink) the folder holding the real file.
    World-writable is refused with or without the sticky bit. Ownership by another user (not root, not us) is logged once per path as a
    warning: that user can replace the engine, but a shared build account can be a deliberate setup."""
    path = Path(engine_path).absolute()
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: nothing to stat; the sidecar check reports the path
        real = path
    items = [(real, "engine file"), (path.parent, "engine folder"), (real.parent, "engine folder")]
    items += [(Path(c).resolve(), "file") for c in companions if Path(c).exists()]
    problems: list[str] = []
    seen: set[Path] = set()
    for item, what in items:
        if item in seen:
            continue
        seen.add(item)
        try:
            st = item.stat()
        except OSError:
            continue  # a missing file is reported by the sidecar check
        if st.st_mode & stat.S_IWOTH:
            sticky = "; sticky bit or not, anyone can create or swap files there" if stat.S_ISDIR(st.st_mode) else ""
            problems.append(f"its {what} {item} is world-writable (mode {stat.S_IMODE(st.st_mode):04o}{sticky}); "
                            f"chmod o-w it or keep engines in a folder only their owner can write")
        elif st.st_uid not in (0, os.geteuid()) and str(item) not in _owner_warned:
            _owner_warned.add(str(item))
            log.warning("TensorRT %s %s is owned by uid %d, not by this user or root: that user can replace the engine "
                        "this process loads", what, item, st.st_uid)
    return problems
