"""The one door to the ``tensorrt`` module: import with a clear hint, the version and its major number,
the shared logger, and whether TensorRT can run here at all.

Every other module of this subpackage asks this one, so "which TensorRT is this" is decided in one place
(the version parser used to be written three ways, and two of them disagreed on garbage input).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import Any

from edge_infer.backends.base import BackendError

TENSORRT_HINT = ("the TensorRT Python bindings are not installed: on Jetson `sudo apt install python3-libnvinfer` "
                 "(JetPack; in a venv create it with --system-site-packages), on x86 `pip install tensorrt`")


class TensorRTUnavailable(BackendError):
    """tensorrt (or the CUDA layer, or a GPU) is missing; the message names what to install."""


def import_tensorrt() -> Any:
    """The ``tensorrt`` module; :class:`TensorRTUnavailable` with the install hint when it is missing."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTUnavailable(f"{TENSORRT_HINT} ({e})") from e
    return trt


def parse_major(version: Any) -> int:
    """``"10.3.0"`` -> 10, ``"8.6.1.6"`` -> 8; 0 for None or anything unparsable (never raises)."""
    m = re.match(r"\s*(\d+)", str(version)) if version is not None else None
    return int(m.group(1)) if m else 0


def trt_major(trt: Any) -> int:
    """The major version of an imported ``tensorrt`` module."""
    return parse_major(getattr(trt, "__version__", None))


def tensorrt_version() -> str | None:
    """The installed TensorRT Python bindings' version, or None; never raises."""
    try:
        import tensorrt as trt
    except Exception:
        return None
    return str(getattr(trt, "__version__", "unknown"))


def version_from_trtexec_banner(text: str) -> str | None:
    """trtexec prints ``[TensorRT v8601]`` / ``[TensorRT v100300]`` / ``[TensorRT v110400]`` -> the version."""
    m = re.search(r"TensorRT v(\d+)", text)
    if not m:
        return None
    n = int(m.group(1))
    if n >= 100000:  # 10.x and newer: MMmmpp
        return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
    return f"{n // 1000}.{n // 100 % 10}.{n % 100}"  # 8.x: Mmpp


_LOGGERS: dict[int, Any] = {}


def logger(trt: Any) -> Any:
    """One ``trt.Logger`` per process and module (TensorRT keeps a single global logger: a second one with
    another severity is ignored with a warning)."""
    key = id(trt)
    if key not in _LOGGERS:
        _LOGGERS[key] = trt.Logger(trt.Logger.WARNING)
    return _LOGGERS[key]


def importable(name: str) -> bool:
    """Whether ``import name`` would find a module, without importing it (cheap; never raises)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def availability() -> tuple[bool, str]:
    """(usable, reason): tensorrt and a CUDA layer (cuda-python or pycuda) importable and a CUDA GPU present;
    imports tensorrt only when everything else is there (to report its version)."""
    from edge_infer.backends.tensorrt.cuda import PYCUDA_HINT, available_layer, gpu_count

    if not importable("tensorrt"):
        return False, TENSORRT_HINT
    layer = available_layer()
    if layer is None:
        return False, PYCUDA_HINT
    if gpu_count() == 0:
        return False, "no CUDA GPU / driver found (libcuda reports no devices)"
    return True, f"TensorRT {tensorrt_version()} with {layer}"
