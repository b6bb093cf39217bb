"""The one CUDA layer: device discovery, the primary context bound in whichever thread calls, pinned host
buffers, one stream per backend and real CUDA graphs. cuda-python first, pycuda as the fallback.

Why this shape:
- **cuda-python** (``cuda-bindings``, NVIDIA's own; TensorRT's samples moved to it) is the primary
  implementation: it has stream capture and graph launch, which no released pycuda has. Pin its major to the
  platform's CUDA (JetPack 6: ``cuda-bindings==12.*``); a newer major than the driver fails at ``cuInit``
  and is reported with both versions.
- **pycuda** (named in the design card) is kept as the fallback; CUDA graphs are refused there, loudly.
- **Any thread.** A CUDA context is current per *thread*. Nodes create backends in one thread and run them
  in a worker thread (``face_pipeline_worker``, the executor of ``edge-infer run``), so every entry point
  runs inside :meth:`CudaDevice.bound`, which makes the device's *primary* context current in the calling
  thread (pushed and popped: the thread's stack is left as found). The primary context is the one the CUDA
  runtime API, and so TensorRT, uses.
- Nothing here imports a CUDA package until a device is opened; :func:`gpu_count` asks the driver library
  through ctypes so ``backend: auto`` decides without importing anything heavy.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import ctypes.util
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from edge_infer.errors import EdgeInferError

log = logging.getLogger(__name__)

CUDA_PYTHON_HINT = ("cuda-python is not installed: `pip install 'cuda-bindings==12.*'` (match the platform's CUDA "
                    "major: JetPack 6 = 12, CUDA 13 = 13); pycuda works as a fallback without CUDA graphs")
PYCUDA_HINT = ("no CUDA layer is installed: `pip install 'cuda-bindings==12.*'` (preferred; match the platform's "
               "CUDA major) or `pip install pycuda` (needs the CUDA toolkit headers, e.g. JetPack's nvcc on PATH)")
LAYERS = ("auto", "cuda-python", "pycuda")


class CudaUnavailable(EdgeInferError, RuntimeError):
    """No CUDA layer, no driver or no GPU; the message says which and what to install."""


class CudaError(EdgeInferError, RuntimeError):
    """A CUDA call failed; the message names the call and the CUDA error."""


# ---------------------------------------------------------------------------------------------- discovery
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


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_layer() -> str | None:
    """The CUDA layer :func:`open_device` would use here (without importing it), or None."""
    if _importable("cuda.bindings") or _importable("cuda.cuda"):
        return "cuda-python"
    if _importable("pycuda"):
        return "pycuda"
    return None


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    compute_capability: str  # "8.7" (Orin), "7.2" (Xavier), "9.0" (H100)
    total_memory_mb: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------------- interface
class PinnedBuffer:
    """A page-locked host array plus a device allocation of the same byte size (sized once, for the maximum)."""

    def __init__(self, host: np.ndarray, device_ptr: int, free: Callable[[], None]) -> None:
        self.host = host  # flat; viewed per call with the live shape
        self.dtype = host.dtype
        self.nbytes = host.nbytes
        self.ptr = int(device_ptr)
        self._free = free

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape)) if shape else 1
        return self.host[:n].reshape(shape)

    def free(self) -> None:
        if self._free is not None:
            self._free()
            self._free = None


class CudaGraph:
    """An instantiated CUDA graph: :meth:`launch` replays it on the stream it was captured on."""

    def __init__(self, launch: Callable[[], None], destroy: Callable[[], None]) -> None:
        self.launch = launch
        self._destroy = destroy

    def destroy(self) -> None:
        if self._destroy is not None:
            self._destroy()
            self._destroy = None


class Stream(abc.ABC):
    handle: int

    @abc.abstractmethod
    def htod(self, buf: PinnedBuffer, nbytes: int) -> None: ...

    @abc.abstractmethod
    def dtoh(self, buf: PinnedBuffer, nbytes: int) -> None: ...

    @abc.abstractmethod
    def dtod(self, dst: PinnedBuffer, src: PinnedBuffer, nbytes: int) -> None:
        """Device-to-device copy between two buffers' device sides."""

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    @abc.abstractmethod
    def capture(self, enqueue: Callable[[], None]) -> CudaGraph:
        """Record ``enqueue`` (copies + kernels on this stream) into a graph; :class:`CudaError` if impossible."""

    def destroy(self) -> None:
        pass


class CudaDevice(abc.ABC):
    """One GPU's primary context, usable from any thread through :meth:`bound`."""

    layer: str = "?"
    supports_graphs: bool = False  # stream capture + graph launch

    def __init__(self, index: int) -> None:
        self.index = index

    @abc.abstractmethod
    def bound(self) -> contextlib.AbstractContextManager:
        """Make the primary context current in the calling thread for the ``with`` block."""

    @abc.abstractmethod
    def info(self) -> DeviceInfo: ...

    @abc.abstractmethod
    def pinned(self, max_shape: tuple[int, ...], dtype: Any) -> PinnedBuffer: ...

    @abc.abstractmethod
    def stream(self) -> Stream: ...

    @abc.abstractmethod
    def memory(self) -> tuple[int, int]:
        """(free, total) bytes of device memory."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the primary context retained by this object (buffers and streams first)."""


def _count(max_shape: tuple[int, ...]) -> int:
    return max(int(np.prod(max_shape)) if max_shape else 1, 1)


# ---------------------------------------------------------------------------------------------- cuda-python
def _driver() -> Any:
    """cuda-python's driver API module (``cuda.bindings.driver``; ``cuda.cuda`` in cuda-python < 12.6)."""
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # type: ignore[no-redef]
        except ImportError as e:
            raise CudaUnavailable(f"{CUDA_PYTHON_HINT} ({e})") from e
    return driver


class CudaPythonDevice(CudaDevice):
    layer = "cuda-python"
    supports_graphs = True

    def __init__(self, index: int = 0, driver: Any = None) -> None:
        super().__init__(index)
        self.cu = driver or _driver()
        err = self.cu.cuInit(0)[0]
        if err != self.cu.CUresult.CUDA_SUCCESS:
            raise CudaUnavailable(f"cuInit failed ({self._name(err)}): no NVIDIA GPU/driver, or cuda-bindings newer than "
                                  f"the driver (driver CUDA {self._driver_version()}); {CUDA_PYTHON_HINT}")
        count = self.check(self.cu.cuDeviceGetCount(), "cuDeviceGetCount")
        if count <= index:
            raise CudaUnavailable(f"CUDA device {index} does not exist ({count} devices)")
        self.dev = self.check(self.cu.cuDeviceGet(index), "cuDeviceGet")
        self.ctx = self.check(self.cu.cuDevicePrimaryCtxRetain(self.dev), "cuDevicePrimaryCtxRetain")
        self._closed = False

    def _name(self, err: Any) -> str:
        return getattr(err, "name", str(err))

    def _driver_version(self) -> str:
        try:
            v = int(self.cu.cuDriverGetVersion()[1])
            return f"{v // 1000}.{v % 1000 // 10}"
        except Exception:
            return "unknown"

    def check(self, result: Any, call: str) -> Any:
        """cuda-python returns (CUresult, *values): raise on an error, return the value(s)."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.cu.CUresult.CUDA_SUCCESS:
            raise CudaError(f"{call} failed: {self._name(err)}")
        return values[0] if len(values) == 1 else (tuple(values) or None)

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        current = self.check(self.cu.cuCtxGetCurrent(), "cuCtxGetCurrent")
        if current is not None and int(current) == int(self.ctx):
            yield
            return
        self.check(self.cu.cuCtxPushCurrent(self.ctx), "cuCtxPushCurrent")
        try:
            yield
        finally:
            self.check(self.cu.cuCtxPopCurrent(), "cuCtxPopCurrent")

    def info(self) -> DeviceInfo:
        cu = self.cu
        raw = self.check(cu.cuDeviceGetName(256, self.dev), "cuDeviceGetName")
        name = raw.split(b"\0", 1)[0].decode() if isinstance(raw, (bytes, bytearray)) else str(raw)
        attr = cu.CUdevice_attribute
        major = self.check(cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.dev), "attr")
        minor = self.check(cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.dev), "attr")
        total = self.check(cu.cuDeviceTotalMem(self.dev), "cuDeviceTotalMem")
        return DeviceInfo(self.index, name, f"{major}.{minor}", int(total) // (1 << 20))

    def pinned(self, max_shape: tuple[int, ...], dtype: Any) -> PinnedBuffer:
        dtype = np.dtype(dtype)
        nbytes = _count(max_shape) * dtype.itemsize
        with self.bound():
            host_ptr = int(self.check(self.cu.cuMemHostAlloc(nbytes, 0), "cuMemHostAlloc"))
            dptr = self.check(self.cu.cuMemAlloc(nbytes), "cuMemAlloc")
        host = np.frombuffer((ctypes.c_uint8 * nbytes).from_address(host_ptr), np.uint8).view(dtype)

        def free() -> None:
            with self.bound():
                self.check(self.cu.cuMemFree(dptr), "cuMemFree")
                self.check(self.cu.cuMemFreeHost(host_ptr), "cuMemFreeHost")

        buf = PinnedBuffer(host, int(dptr), free)
        buf.host_ptr = host_ptr
        return buf

    def stream(self) -> Stream:
        return _CudaPythonStream(self)

    def memory(self) -> tuple[int, int]:
        with self.bound():
            free, total = self.check(self.cu.cuMemGetInfo(), "cuMemGetInfo")
        return int(free), int(total)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.check(self.cu.cuDevicePrimaryCtxRelease(self.dev), "cuDevicePrimaryCtxRelease")


class _CudaPythonStream(Stream):
    def __init__(self, device: CudaPythonDevice) -> None:
        self.d = device
        with device.bound():
            self.stream = device.check(device.cu.cuStreamCreate(1), "cuStreamCreate")  # 1 = CU_STREAM_NON_BLOCKING
        self.handle = int(self.stream)

    def htod(self, buf: PinnedBuffer, nbytes: int) -> None:
        self.d.check(self.d.cu.cuMemcpyHtoDAsync(buf.ptr, buf.host_ptr, nbytes, self.stream), "cuMemcpyHtoDAsync")

    def dtoh(self, buf: PinnedBuffer, nbytes: int) -> None:
        self.d.check(self.d.cu.cuMemcpyDtoHAsync(buf.host_ptr, buf.ptr, nbytes, self.stream), "cuMemcpyDtoHAsync")

    def dtod(self, dst: PinnedBuffer, src: PinnedBuffer, nbytes: int) -> None:
        self.d.check(self.d.cu.cuMemcpyDtoDAsync(dst.ptr, src.ptr, nbytes, self.stream), "cuMemcpyDtoDAsync")

    def synchronize(self) -> None:
        self.d.check(self.d.cu.cuStreamSynchronize(self.stream), "cuStreamSynchronize")

    def capture(self, enqueue: Callable[[], None]) -> CudaGraph:
        cu, check = self.d.cu, self.d.check
        mode = cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL  # other threads' CUDA calls unaffected
        check(cu.cuStreamBeginCapture(self.stream, mode), "cuStreamBeginCapture")
        try:
            enqueue()
        finally:
            graph = check(cu.cuStreamEndCapture(self.stream), "cuStreamEndCapture")
        instantiate = getattr(cu, "cuGraphInstantiateWithFlags", None) or cu.cuGraphInstantiate
        exe = check(instantiate(graph, 0), "cuGraphInstantiate")
        stream = self.stream

        def destroy() -> None:
            check(cu.cuGraphExecDestroy(exe), "cuGraphExecDestroy")
            check(cu.cuGraphDestroy(graph), "cuGraphDestroy")

        return CudaGraph(lambda: check(cu.cuGraphLaunch(exe, stream), "cuGraphLaunch"), destroy)

    def destroy(self) -> None:
        if self.stream is not None:
            with self.d.bound():
                self.d.check(self.d.cu.cuStreamDestroy(self.stream), "cuStreamDestroy")
            self.stream = None


# ---------------------------------------------------------------------------------------------- pycuda
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


class PycudaDevice(CudaDevice):
    """pycuda's context stack is per thread: the primary context is pushed around every call, never left
    current (a context left on a stack makes pycuda abort at interpreter exit)."""

    layer = "pycuda"

    def __init__(self, index: int = 0, cuda: Any = None) -> None:
        super().__init__(index)
        self.cuda = cuda or import_pycuda()
        if self.cuda.Device.count() <= index:
            raise CudaUnavailable(f"CUDA device {index} does not exist ({self.cuda.Device.count()} devices)")
        self.device = self.cuda.Device(index)
        self.context = self.device.retain_primary_context()
        self._closed = False

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        self.context.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def info(self) -> DeviceInfo:
        major, minor = self.device.compute_capability()
        return DeviceInfo(self.index, self.device.name(), f"{major}.{minor}", int(self.device.total_memory() // (1 << 20)))

    def pinned(self, max_shape: tuple[int, ...], dtype: Any) -> PinnedBuffer:
        dtype = np.dtype(dtype)
        with self.bound():
            host = self.cuda.pagelocked_empty(_count(max_shape), dtype)
            dev = self.cuda.mem_alloc(host.nbytes)

        def free() -> None:
            with self.bound():
                dev.free()

        buf = PinnedBuffer(host, int(dev), free)
        buf.allocation = dev
        return buf

    def stream(self) -> Stream:
        return _PycudaStream(self)

    def memory(self) -> tuple[int, int]:
        with self.bound():
            free, total = self.cuda.mem_get_info()
        return int(free), int(total)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # interpreter shutdown: the context may already be gone
                self.context.detach()


class _PycudaStream(Stream):
    def __init__(self, device: PycudaDevice) -> None:
        self.d = device
        with device.bound():
            self.stream = device.cuda.Stream()
        self.handle = int(self.stream.handle)

    def htod(self, buf: PinnedBuffer, nbytes: int) -> None:
        self.d.cuda.memcpy_htod_async(buf.allocation, buf.host[: nbytes // buf.dtype.itemsize], self.stream)

    def dtoh(self, buf: PinnedBuffer, nbytes: int) -> None:
        self.d.cuda.memcpy_dtoh_async(buf.host[: nbytes // buf.dtype.itemsize], buf.allocation, self.stream)

    def dtod(self, dst: PinnedBuffer, src: PinnedBuffer, nbytes: int) -> None:
        self.d.cuda.memcpy_dtod_async(dst.allocation, src.allocation, nbytes, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, enqueue: Callable[[], None]) -> CudaGraph:
        raise CudaError("CUDA graphs need cuda-python (`pip install 'cuda-bindings==12.*'`): no released pycuda has "
                        "stream capture; set cuda_graph false or install cuda-python")


# ---------------------------------------------------------------------------------------------- entry points
_devices: dict[tuple[str, int], CudaDevice] = {}
_devices_lock = threading.Lock()


_open_devices: "weakref.WeakSet[CudaDevice]" = weakref.WeakSet()


def open_device(index: int = 0, layer: str = "auto") -> CudaDevice:
    """A :class:`CudaDevice` on ``layer`` (auto: cuda-python, else pycuda); the caller closes it."""
    if layer not in LAYERS:
        raise CudaUnavailable(f"unknown CUDA layer '{layer}'; use one of {LAYERS}")
    chosen = available_layer() if layer == "auto" else layer
    if chosen is None:
        raise CudaUnavailable(PYCUDA_HINT)
    dev = CudaPythonDevice(index) if chosen == "cuda-python" else PycudaDevice(index)
    _open_devices.add(dev)
    return dev


def device_memory_in_use() -> dict[str, int] | None:
    """{"used_mb", "total_mb"} of the first device this process already opened; None when none is open
    (never opens one: a new context alone costs device memory)."""
    for dev in list(_open_devices):
        if getattr(dev, "_closed", False):
            continue
        try:
            free, total = dev.memory()
        except Exception:
            continue
        return {"used_mb": (total - free) >> 20, "total_mb": total >> 20}
    return None


def device_info(index: int = 0) -> DeviceInfo:
    """Name, compute capability and memory of device ``index`` (opens and keeps one device per process)."""
    with _devices_lock:
        layer = available_layer()
        if layer is None:
            raise CudaUnavailable(PYCUDA_HINT)
        key = (layer, index)
        if key not in _devices:
            _devices[key] = open_device(index, layer)
        dev = _devices[key]
    return dev.info()
