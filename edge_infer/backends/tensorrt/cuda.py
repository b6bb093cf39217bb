"""The one module that touches CUDA directly (through pycuda): device discovery, the primary context,
pinned host + device buffers, one stream, and optional CUDA graph capture.

Why pycuda (the design's choice) and the *primary* context: TensorRT uses the CUDA runtime API, which works
in the device's primary context. ``pycuda.autoinit`` would create a second, private context and every
TensorRT call would then run against the wrong one; retaining the primary context shares it instead.

Nothing here is imported until a TensorRT backend is created, so machines without a GPU never load pycuda.
Device discovery (:func:`gpu_count`) does not need pycuda: it asks the driver library through ctypes, so
``backend: auto`` can decide without importing anything heavy.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
import ctypes
import ctypes.util
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

PYCUDA_HINT = ("pycuda is not installed: on the robot run `pip install pycuda` (needs the CUDA toolkit headers, "
               "e.g. JetPack's cuda-toolkit / `nvcc` on PATH)")


class CudaUnavailable(EdgeInferError, RuntimeError):
    """pycuda is missing or no CUDA GPU / driver is present; the message says which and what to install."""


def import_pycuda() -> Any:
    """``pycuda.driver``, initialised; a clear :class:`CudaUnavailable` when pycuda or the driver is missing."""
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise CudaUnavailable(f"{PYCUDA_HINT} ({e})") from e
    try:
        cuda.init()
    except Exception as e:  # pycuda.driver.RuntimeError / LogicError: no driver, no device
        raise CudaUnavailable(f"CUDA driver could not be initialised ({e}); is this a machine with an NVIDIA GPU "
                              "and its driver (JetPack on Jetson)?") from e
    return cuda


def gpu_count() -> int:
    """Number of CUDA devices the driver reports; 0 when there is no driver (never raises)."""
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return 0
    try:
        if lib.cuInit(0) != 0:
            return 0
        n = ctypes.c_int(0)
        return n.value if lib.cuDeviceGetCount(ctypes.byref(n)) == 0 else 0
    except AttributeError:  # not the driver library
        return 0


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    compute_capability: str  # "8.7" (Orin), "7.2" (Xavier), "9.0" (H100)
    total_memory_mb: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def device_info(index: int = 0) -> DeviceInfo:
    cuda = import_pycuda()
    if cuda.Device.count() <= index:
        raise CudaUnavailable(f"CUDA device {index} does not exist ({cuda.Device.count()} devices)")
    dev = cuda.Device(index)
    major, minor = dev.compute_capability()
    return DeviceInfo(index, dev.name(), f"{major}.{minor}", int(dev.total_memory() // (1 << 20)))


class CudaContext:
    """The retained primary context of one device, pushed for the lifetime of a backend."""

    _lock = threading.Lock()

    def __init__(self, index: int = 0) -> None:
        self.cuda = import_pycuda()
        if self.cuda.Device.count() <= index:
            raise CudaUnavailable(f"CUDA device {index} does not exist ({self.cuda.Device.count()} devices)")
        self.device = self.cuda.Device(index)
        self.context = self.device.retain_primary_context()
        self.context.push()
        self._pushed = True

    def push(self) -> None:
        if not self._pushed:
            self.context.push()
            self._pushed = True

    def pop(self) -> None:
        if self._pushed:
            self.cuda.Context.pop()
            self._pushed = False

    def close(self) -> None:
        try:
            self.pop()
        except Exception:  # interpreter shutdown: the context may already be gone
            pass


class PinnedBuffer:
    """A page-locked host array plus a device allocation of the same byte size (sized once, for the maximum)."""

    def __init__(self, cuda: Any, max_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.max_shape = tuple(int(d) for d in max_shape)
        count = int(np.prod(self.max_shape)) if self.max_shape else 1
        self.host = cuda.pagelocked_empty(max(count, 1), self.dtype)  # flat; viewed per call with the live shape
        self.nbytes = max(count, 1) * self.dtype.itemsize
        self.device = cuda.mem_alloc(self.nbytes)

    @property
    def ptr(self) -> int:
        return int(self.device)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape)) if shape else 1
        return self.host[:n].reshape(shape)

    def free(self) -> None:
        self.device.free()


class Stream:
    """One CUDA stream with the copies the backend needs, and optional graph capture/replay."""

    def __init__(self, cuda: Any) -> None:
        self.cuda = cuda
        self.stream = cuda.Stream()

    @property
    def handle(self) -> int:
        return int(self.stream.handle)

    def htod(self, buf: PinnedBuffer, nbytes: int) -> None:
        self.cuda.memcpy_htod_async(buf.device, buf.host[: nbytes // buf.dtype.itemsize], self.stream)

    def dtoh(self, buf: PinnedBuffer, nbytes: int) -> None:
        self.cuda.memcpy_dtoh_async(buf.host[: nbytes // buf.dtype.itemsize], buf.device, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, enqueue: Callable[[], None]) -> Callable[[], None] | None:
        """Record ``enqueue`` (copies + execute_async_v3) into a CUDA graph; return a replay function.

        Returns None (after one log line) when this pycuda build has no graph API (pycuda < 2022.2) or the
        capture fails (e.g. an engine layer that cannot be captured); callers then run without a graph.
        """
        if not hasattr(self.stream, "begin_capture"):
            log.warning("this pycuda has no CUDA graph API (needs pycuda >= 2022.2); running without a graph")
            return None
        try:
            self.stream.begin_capture()
            try:
                enqueue()
            finally:
                graph = self.stream.end_capture()
            exe = graph.instance()
        except Exception as e:
            log.warning("CUDA graph capture failed (%s); running without a graph", e)
            return None
        stream = self.stream

        def replay() -> None:
            exe.launch(stream)

        replay.graph = graph  # keep the graph alive as long as its executable
        return replay
