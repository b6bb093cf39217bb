"""The web server's trust rules: who may call it (token), which names it accepts, which files it serves.

Why here and not in each endpoint: a robot's dashboard is an attack surface, and one place that decides
"is this caller allowed" and "is this a safe file name" is one place to review.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import stat
from pathlib import Path

from edge_infer.errors import ConfigError, EdgeInferError

TOKEN_ENV = "EDGE_INFER_UI_TOKEN"
MAX_TOKEN_FILE_BYTES = 4096
MIN_TOKEN_CHARS = 16
SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
MAX_NAME_CHARS = 128


class UnsafeNameError(EdgeInferError, ValueError):
    """A file or model name from a request that could name something outside its folder."""


def safe_name(raw: object, what: str = "name") -> str:
    """``raw`` reduced to a safe base name (letters, digits, ``._-``), else UnsafeNameError.

    Refused outright (not cleaned): anything with a path separator, ``..``, NUL, or nothing left, since a name
    that tried to climb out of its folder is an attack, not a typo. Other characters (spaces, accents) become
    ``_``. A leading dot is refused too: hidden files are the server's own temporaries.
    """
    if not isinstance(raw, str) or not raw:
        raise UnsafeNameError(f"{what}: empty")
    if "\0" in raw or "/" in raw or "\\" in raw or ".." in raw:
        raise UnsafeNameError(f"{what}: '{raw[:80]}' is not a plain file name (no '/', '\\', '..' or NUL)")
    name = SAFE_CHARS.sub("_", raw.strip())
    if not name or name.startswith(".") or set(name) <= {"_", "."} or len(name) > MAX_NAME_CHARS:
        raise UnsafeNameError(f"{what}: '{raw[:80]}' leaves no usable file name")
    return name


def read_token(token_file: str | None) -> str | None:
    """The UI token from ``--token-file`` or ``$EDGE_INFER_UI_TOKEN`` (not both), else None.

    A token file must be a regular file without group/other permissions (like ssh keys and the engine key).
    """
    env = os.environ.get(TOKEN_ENV)
    if token_file and env:
        raise ConfigError(f"give the UI token once: --token-file or ${TOKEN_ENV}, not both")
    if token_file:
        path = Path(token_file).expanduser()
        try:
            st = path.stat()
        except OSError as e:
            raise ConfigError(f"--token-file {path}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_TOKEN_FILE_BYTES:
            raise ConfigError(f"--token-file {path}: not a regular file of at most {MAX_TOKEN_FILE_BYTES} bytes")
        if st.st_mode & 0o077:
            raise ConfigError(f"--token-file {path}: readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
        token = path.read_text(encoding="utf-8", errors="replace").strip()
    elif env is not None:
        token = env.strip()
    else:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the UI token must have at least {MIN_TOKEN_CHARS} characters (openssl rand -hex 32)")
    return token


def is_loopback(host: str) -> bool:
    """Whether ``host`` (what uvicorn binds) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: could resolve to anything


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison (a timing difference must not reveal how much of a guess was right)."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(host_header: str | None) -> str:
    """``example.org:8080`` -> ``example.org``; ``[::1]:8080`` -> ``::1``."""
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def browser_attack(method: str, host_header: str | None, origin: str | None) -> str | None:
    """Why a tokenless request must be refused, else None.

    Without a token the server trusts "this machine", and a browser on this machine also runs pages from
    elsewhere: such a page may POST to http://127.0.0.1:8080 (forms and multipart uploads need no CORS
    preflight), and a DNS-rebinding name makes the browser treat the server as that page's own origin. So a
    state-changing request must come from the server's own origin, and the Host must be a loopback name.
    (With a token neither attack works: the token is a header the other page does not know.)
    """
    from urllib.parse import urlsplit

    if host_name(host_header) not in LOOPBACK_NAMES:
        return (f"Host '{(host_header or '')[:80]}' refused: without a token only localhost / 127.0.0.1 / [::1] "
                "(DNS rebinding); behind a proxy, give the server a token")
    if method not in ("GET", "HEAD") and origin is not None and urlsplit(origin).netloc.lower() != (host_header or "").lower():
        return f"cross-origin {method} from '{origin[:80]}' refused"
    return None


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None
