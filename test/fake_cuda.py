"""FAKE CUDA for CPU tests. NOT CUDA.

:class:`FakeCudaDevice` implements edge_infer's CudaDevice interface over numpy (device memory is a dict of
bytearrays) and models the one CUDA rule the layer exists for: a context is current per *thread*. Every
copy, sync or graph call made while :meth:`bound` is not active in the calling thread is counted in
``unbound_calls`` and fails like CUDA does (invalid context). ``FakeDriver`` / ``FakePycuda`` model the
same rule at the level of cuda-python's driver module and pycuda's context stack, so the real
:class:`~edge_infer.backends.tensorrt.cuda.CudaPythonDevice` / ``PycudaDevice`` code runs against them.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import threading
import types
from typing import Any, Callable, Iterator

import numpy as np

from edge_infer.backends.tensorrt.cuda import CudaDevice, CudaError, CudaGraph, DeviceInfo, PinnedBuffer, Stream


class FakeCudaDevice(CudaDevice):
    layer = "fake"

    def __init__(self, index: int = 0, supports_graphs: bool = True) -> None:
        super().__init__(index)
        self.supports_graphs = supports_graphs
        self._local = threading.local()
        self.memory_store: dict[int, bytearray] = {}
        self._ptrs = itertools.count(0x1000, 0x1000)
        self.unbound_calls = 0
        self.closed = False
        self.streams: dict[int, FakeStream] = {}

    def _require_bound(self, what: str) -> None:
        if not getattr(self._local, "depth", 0):
            self.unbound_calls += 1
            raise CudaError(f"{what}: invalid device context (not current in thread {threading.current_thread().name})")

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def info(self) -> DeviceInfo:
        return DeviceInfo(self.index, "Fake Orin", "8.7", 8192)

    def pinned(self, max_shape: tuple[int, ...], dtype: Any) -> PinnedBuffer:
        self._require_bound("cuMemAlloc")
        n = max(int(np.prod(max_shape)) if max_shape else 1, 1)
        host = np.zeros(n, np.dtype(dtype))
        ptr = next(self._ptrs)
        self.memory_store[ptr] = bytearray(host.nbytes)
        return PinnedBuffer(host, ptr, lambda: self.memory_store.pop(ptr))

    def stream(self) -> Stream:
        self._require_bound("cuStreamCreate")
        s = FakeStream(self)
        self.streams[s.handle] = s
        return s

    def memory(self) -> tuple[int, int]:
        used = sum(len(b) for b in self.memory_store.values())
        return (8192 << 20) - used, 8192 << 20

    def close(self) -> None:
        self.closed = True


class FakeStream(Stream):
    def __init__(self, dev: FakeCudaDevice) -> None:
        self.dev = dev
        self.handle = next(dev._ptrs)
        self.capturing: list[Callable[[], None]] | None = None
        self.launches = 0

    def _op(self, what: str, fn: Callable[[], None]) -> None:
        self.dev._require_bound(what)
        if self.capturing is not None:
            self.capturing.append(fn)
        else:
            fn()

    def htod(self, buf: PinnedBuffer, nbytes: int) -> None:
        self._op("cuMemcpyHtoDAsync", lambda: self.dev.memory_store[buf.ptr].__setitem__(
            slice(0, nbytes), buf.host.view(np.uint8)[:nbytes].tobytes()))

    def dtoh(self, buf: PinnedBuffer, nbytes: int) -> None:
        def copy() -> None:
            buf.host.view(np.uint8)[:nbytes] = np.frombuffer(bytes(self.dev.memory_store[buf.ptr][:nbytes]), np.uint8)

        self._op("cuMemcpyDtoHAsync", copy)

    def dtod(self, dst: PinnedBuffer, src: PinnedBuffer, nbytes: int) -> None:
        self._op("cuMemcpyDtoDAsync", lambda: self.dev.memory_store[dst.ptr].__setitem__(
            slice(0, nbytes), bytes(self.dev.memory_store[src.ptr][:nbytes])))

    def synchronize(self) -> None:
        self.dev._require_bound("cuStreamSynchronize")

    def capture(self, enqueue: Callable[[], None]) -> CudaGraph:
        self.dev._require_bound("cuStreamBeginCapture")
        self.capturing = []
        try:
            enqueue()
        finally:
            ops, self.capturing = self.capturing, None

        def launch() -> None:
            self.dev._require_bound("cuGraphLaunch")
            self.launches += 1
            for op in ops:
                op()

        return CudaGraph(launch, lambda: None)


# ---------------------------------------------------------------------------------------------- driver level
def make_fake_driver() -> types.SimpleNamespace:
    """A cuda-python ``driver`` module look-alike: (CUresult, value) tuples and a per-thread context stack."""
    CUresult = enum.Enum("CUresult", "CUDA_SUCCESS CUDA_ERROR_INVALID_CONTEXT CUDA_ERROR_NO_DEVICE")
    ok, bad = CUresult.CUDA_SUCCESS, CUresult.CUDA_ERROR_INVALID_CONTEXT
    local = threading.local()
    ctx, mem, calls = 0xC0, {}, []
    ptrs = itertools.count(0x10000, 0x1000)
    d = types.SimpleNamespace(CUresult=CUresult, calls=calls, mem=mem)
    d.CUdevice_attribute = types.SimpleNamespace(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR=75,
                                                 CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR=76)
    d.CUstreamCaptureMode = types.SimpleNamespace(CU_STREAM_CAPTURE_MODE_THREAD_LOCAL=1)

    def stack() -> list:
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    def needs_ctx(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any) -> Any:
            calls.append((name, threading.current_thread().name))
            if not stack() or stack()[-1] != ctx:
                return (bad,)
            return fn(*a)
        return call

    d.cuInit = lambda flags: (ok,)
    d.cuDriverGetVersion = lambda: (ok, 12020)
    d.cuDeviceGetCount = lambda: (ok, 1)
    d.cuDeviceGet = lambda i: (ok, 0)
    d.cuDevicePrimaryCtxRetain = lambda dev: (ok, ctx)
    d.cuDevicePrimaryCtxRelease = lambda dev: (calls.append(("release", "")), (ok,))[1]
    d.cuCtxGetCurrent = lambda: (ok, stack()[-1] if stack() else 0)
    d.cuCtxPushCurrent = lambda c: (stack().append(c), (ok,))[1]
    d.cuCtxPopCurrent = lambda: (ok, stack().pop())
    d.cuDeviceGetName = lambda n, dev: (ok, b"Fake Orin\0\0")
    d.cuDeviceGetAttribute = lambda a, dev: (ok, 8 if a == 75 else 7)
    d.cuDeviceTotalMem = lambda dev: (ok, 8 << 30)

    def host_alloc(n: int, flags: int) -> tuple:
        buf = (np.zeros(n, np.uint8))
        mem[buf.ctypes.data] = buf
        return ok, buf.ctypes.data

    def dev_alloc(n: int) -> tuple:
        p = next(ptrs)
        mem[p] = np.zeros(n, np.uint8)
        return ok, p

    def copy(dst: int, src: int, n: int, stream: Any) -> tuple:
        mem[dst][:n] = mem[src][:n]
        return (ok,)

    d.cuMemHostAlloc = needs_ctx("cuMemHostAlloc", host_alloc)
    d.cuMemAlloc = needs_ctx("cuMemAlloc", dev_alloc)
    d.cuMemFree = needs_ctx("cuMemFree", lambda p: (mem.pop(int(p)), (ok,))[1])
    d.cuMemFreeHost = needs_ctx("cuMemFreeHost", lambda p: (mem.pop(int(p)), (ok,))[1])
    d.cuMemGetInfo = needs_ctx("cuMemGetInfo", lambda: (ok, 6 << 30, 8 << 30))
    d.cuStreamCreate = needs_ctx("cuStreamCreate", lambda flags: (ok, 0x5))
    d.cuStreamDestroy = needs_ctx("cuStreamDestroy", lambda s: (ok,))
    d.cuStreamSynchronize = needs_ctx("cuStreamSynchronize", lambda s: (ok,))
    d.cuMemcpyHtoDAsync = needs_ctx("cuMemcpyHtoDAsync", copy)
    d.cuMemcpyDtoHAsync = needs_ctx("cuMemcpyDtoHAsync", copy)
    d.cuMemcpyDtoDAsync = needs_ctx("cuMemcpyDtoDAsync", copy)
    # stream capture: calls on a capturing stream are recorded (not run) and replayed by cuGraphLaunch
    capturing: dict = {}
    for name in ("cuMemcpyHtoDAsync", "cuMemcpyDtoHAsync", "cuMemcpyDtoDAsync"):
        run = getattr(d, name)

        def recorded(*a, _run=run):
            if a[-1] in capturing:
                capturing[a[-1]].append(lambda: _run(*a))
                return (ok,)
            return _run(*a)

        setattr(d, name, recorded)
    d.cuStreamBeginCapture = needs_ctx("cuStreamBeginCapture", lambda s, mode: (capturing.__setitem__(s, []), (ok,))[1])
    d.cuStreamEndCapture = needs_ctx("cuStreamEndCapture", lambda s: (ok, capturing.pop(s)))
    d.cuGraphInstantiateWithFlags = needs_ctx("cuGraphInstantiate", lambda g, f: (ok, g))
    d.cuGraphLaunch = needs_ctx("cuGraphLaunch", lambda ops, s: ([op() for op in ops], (ok,))[1])
    d.cuGraphExecDestroy = needs_ctx("cuGraphExecDestroy", lambda e: (ok,))
    d.cuGraphDestroy = needs_ctx("cuGraphDestroy", lambda g: (ok,))
    return d


def make_fake_pycuda() -> types.SimpleNamespace:
    """A pycuda.driver look-alike: a per-thread context stack; copies need our context on top of it."""
    local = threading.local()

    def stack() -> list:
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    class Context:
        def __init__(self) -> None:
            self.detached = False

        def push(self) -> None:
            stack().append(self)

        @staticmethod
        def pop() -> None:
            stack().pop()

        def detach(self) -> None:
            self.detached = True

    primary = Context()

    def current(what: str) -> None:
        if not stack() or stack()[-1] is not primary:
            raise RuntimeError(f"{what}: invalid device context")

    class Allocation:
        def __init__(self, n: int) -> None:
            self.data = np.zeros(n, np.uint8)

        def __int__(self) -> int:
            return self.data.ctypes.data

        def free(self) -> None:
            current("mem_free")

    class Device:
        @staticmethod
        def count() -> int:
            return 1

        def __init__(self, index: int) -> None:
            pass

        def retain_primary_context(self) -> Context:
            return primary

        def compute_capability(self) -> tuple[int, int]:
            return 8, 7

        def name(self) -> str:
            return "Fake Orin"

        def total_memory(self) -> int:
            return 8 << 30

    class FakePycudaStream:
        handle = 0x77

        def synchronize(self) -> None:
            current("stream synchronize")

    def mem_alloc(n: int) -> Allocation:
        current("mem_alloc")
        return Allocation(n)

    def pagelocked_empty(n: int, dtype: Any) -> np.ndarray:
        current("pagelocked_empty")
        return np.zeros(n, dtype)

    def htod(dev: Allocation, host: np.ndarray, stream: Any) -> None:
        current("memcpy_htod_async")
        dev.data[: host.nbytes] = host.view(np.uint8)

    def dtoh(host: np.ndarray, dev: Allocation, stream: Any) -> None:
        current("memcpy_dtoh_async")
        host.view(np.uint8)[:] = dev.data[: host.nbytes]

    def stream_factory() -> FakePycudaStream:
        current("Stream")
        return FakePycudaStream()

    return types.SimpleNamespace(Device=Device, Context=Context, primary=primary, stack=stack, mem_alloc=mem_alloc,
                                 pagelocked_empty=pagelocked_empty, memcpy_htod_async=htod, memcpy_dtoh_async=dtoh,
                                 Stream=stream_factory, mem_get_info=lambda: (6 << 30, 8 << 30))
