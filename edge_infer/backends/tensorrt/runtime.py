"""TensorRT runtime backend (TensorRT 8.6, 10.x and 11.x Python API; named I/O tensors, ``execute_async_v3``).

Life of a backend:
1. the engine goes through the one gate before deserializing (:func:`~.sidecar.load_trusted_engine`): its
   sidecar must exist and match the engine's bytes (sha256; the HMAC tag when an engine key is configured),
   its folder must not be world-writable, and the TensorRT version and GPU it was built for must be this
   machine's; a foreign, stale or tampered engine gives a sentence, not TensorRT's serialization assertion
   (or, for a hostile engine, its code running);
2. :func:`~.sidecar.deserialize_engine` on the checked bytes -> one execution context, optimization profile 0;
3. every I/O tensor gets a pinned host buffer and a device buffer sized for the profile maximum (allocated
   once: no allocation per frame), their addresses are bound by name with ``set_tensor_address``;
4. ``run``: copy inputs into the pinned buffers, ``set_input_shape`` when the batch changed (dynamic batch
   within the profile), H2D copies, ``execute_async_v3`` on the one stream, D2H copies, one synchronize;
5. optionally (``cuda_graph=True``, cuda-python) the copy + execute sequence is captured once per input
   shape into a CUDA graph and replayed, which removes per-kernel launch overhead on Jetson's slower CPUs.

Every method runs with the device's primary context bound in the *calling* thread (nodes build backends
in one thread and run them in another); every TensorRT call whose result says "failed" is checked;
:meth:`TensorRTBackend.close` frees the engine, buffers and graphs (nodes call it on shutdown and after an
engine rebuild swap).

All CUDA calls go through :mod:`edge_infer.backends.tensorrt.cuda`; tensorrt is imported through
:mod:`edge_infer.backends.tensorrt.trt` only.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.backends.base import Backend, BackendError, TensorInfo
from edge_infer.backends.tensorrt.sidecar import TrustedEngine, deserialize_engine, engine_identity, load_trusted_engine
from edge_infer.backends.tensorrt.trt import import_tensorrt, logger

log = logging.getLogger(__name__)

# TensorRT DataType names -> numpy dtype names (by name, so no tensorrt import is needed to read the table)
TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
              "BOOL": "bool", "UINT8": "uint8", "BF16": "bfloat16", "FP8": "float8"}


def numpy_dtype(trt_dtype: Any) -> np.dtype:
    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    np_name = TRT_DTYPES.get(name)
    if np_name in (None, "bfloat16", "float8"):
        raise BackendError(f"TensorRT I/O dtype {name} has no numpy equivalent; rebuild the engine with float32/"
                           "float16 I/O (the ONNX inputs define the engine's I/O types)")
    return np.dtype(np_name)


def _sidecar_dla_core(trusted: TrustedEngine) -> int | None:
    """The DLA core the engine was built for, from its sidecar (None: the GPU)."""
    options = trusted.meta.get("build_options")
    core = options.get("dla_core") if isinstance(options, dict) else None
    if core is not None and (not isinstance(core, int) or isinstance(core, bool) or core < 0):
        raise BackendError(f"{trusted.path}: its sidecar names DLA core {core!r}; rebuild the engine "
                           "(edge-infer build ... --cache force)")
    return core


class TensorRTBackend(Backend):
    """A deserialized engine with pre-allocated buffers, run by tensor name from any thread.

    ``verify_sidecar=False`` skips only the TensorRT-version / GPU comparison (to try an engine from a sibling
    machine); the sidecar, sha256, signature and folder checks of the gate always run."""

    def __init__(
        self,
        model_path: str,
        device: int = 0,
        cuda_graph: bool = False,
        profile_index: int = 0,
        verify_sidecar: bool = True,
        dla_core: int | None = None,
        cuda_layer: str = "auto",
    ) -> None:
        super().__init__(model_path)
        path = Path(model_path)
        if path.suffix == ".onnx":
            raise BackendError(f"{model_path} is an ONNX model; the tensorrt backend loads engines. Build one with "
                               "`edge-infer build` or use backend: auto (builds and caches the engine)")
        if not path.is_file():
            raise BackendError(f"TensorRT engine not found: {model_path}")
        trt = import_tensorrt()
        from edge_infer.backends.tensorrt.cuda import open_device

        self._graphs: dict[tuple, Any] = {}
        self.buffers: dict[str, Any] = {}
        # one execution context, one set of device buffers: runs from several threads (the face node's workers,
        # one per CPU core, share the models) take turns
        self._lock = threading.Lock()
        self.stream = self.context = self.engine = None
        self.dev = open_device(device, cuda_layer)  # clear CudaUnavailable when no CUDA layer / GPU
        try:
            with self.dev.bound():
                trusted = load_trusted_engine(path, self._identity(trt) if verify_sidecar else None)
                if dla_core is None:
                    dla_core = _sidecar_dla_core(trusted)
                self._load(trt, trusted, profile_index, dla_core)
        except BaseException:
            self.close()
            raise
        if cuda_graph and not self.dev.supports_graphs:
            self.close()
            raise BackendError("cuda_graph=True needs cuda-python (no released pycuda can capture a CUDA graph): "
                               "`pip install 'cuda-bindings==12.*'` or set cuda_graph false")
        self.use_cuda_graph = cuda_graph
        self.dla_core = dla_core
        self.name = f"tensorrt[{trt.__version__}{f',dla{dla_core}' if dla_core is not None else ''}]"

    # ------------------------------------------------------------------------------------------ setup
    def _identity(self, trt: Any) -> dict[str, str]:
        """This machine's engine identity (TensorRT version, GPU), compared with the sidecar's.
        ``verify_sidecar=False`` skips only this comparison; the sidecar, sha256, signature and folder checks
        always run (an engine is executable code)."""
        dev = self.dev.info()
        return engine_identity(trt.__version__, dev.name, dev.compute_capability)

    def _check(self, ok: Any, what: str) -> None:
        if not ok:
            raise BackendError(f"{self.model_path}: TensorRT refused {what} (see the TensorRT log)")

    def _load(self, trt: Any, trusted: TrustedEngine, profile_index: int, dla_core: int | None) -> None:
        path = trusted.path
        self._runtime = trt.Runtime(logger(trt))
        if dla_core is not None:
            if self._runtime.num_DLA_cores <= dla_core:
                raise BackendError(f"{path} was built for DLA core {dla_core}; this device has "
                                   f"{self._runtime.num_DLA_cores} DLA cores")
            self._runtime.DLA_core = dla_core  # deserialize onto the core it was built for
        self.engine = deserialize_engine(self._runtime, trusted)
        self.context = self.engine.create_execution_context()
        self._check(self.context, "to create an execution context (out of device memory?)")
        self.stream = self.dev.stream()
        if self.engine.num_optimization_profiles > 1 or profile_index:
            self._check(self.context.set_optimization_profile_async(profile_index, self.stream.handle),
                        f"optimization profile {profile_index}")
        self._inputs: list[TensorInfo] = []
        self._outputs: list[TensorInfo] = []
        self.profiles: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
        max_shapes: dict[str, tuple[int, ...]] = {}
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        shape_io = [n for n in names if self.engine.is_shape_inference_io(n)]
        if shape_io:
            raise BackendError(f"{path}: tensors {shape_io} are shape tensors (host-side values that set shapes); "
                               "this backend binds device buffers only. Fold them into constants (edge-infer sanitize)")
        for name in names:
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(int(d) for d in self.engine.get_tensor_shape(name))
            dtype = numpy_dtype(self.engine.get_tensor_dtype(name))
            info = TensorInfo(name, tuple(d if d >= 0 else None for d in shape), dtype.name)
            if is_input:
                self._inputs.append(info)
                if any(d < 0 for d in shape):
                    lo, opt, hi = (tuple(int(d) for d in s) for s in self.engine.get_tensor_profile_shape(name, profile_index))
                    self.profiles[name] = (lo, opt, hi)
                    max_shapes[name] = hi
                    self._check(self.context.set_input_shape(name, hi), f"input shape {hi} for '{name}'")
                else:
                    max_shapes[name] = shape
            else:
                self._outputs.append(info)
        for info in self._outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(info.name))
            if any(d < 0 for d in shape):
                raise BackendError(f"{path}: output '{info.name}' has a data-dependent shape {shape}; not supported")
            max_shapes[info.name] = shape
        for info in [*self._inputs, *self._outputs]:
            buf = self.dev.pinned(max_shapes[info.name], np.dtype(info.dtype))
            self.buffers[info.name] = buf
            self._check(self.context.set_tensor_address(info.name, buf.ptr), f"the address of '{info.name}'")
        self._current: dict[str, tuple[int, ...]] = {}

    # ------------------------------------------------------------------------------------------ I/O
    def _set_shapes(self, feeds: Mapping[str, np.ndarray]) -> bool:
        changed = False
        for info in self._inputs:
            shape = tuple(int(d) for d in feeds[info.name].shape)
            if self._current.get(info.name) == shape:
                continue
            if info.name in self.profiles:
                lo, _, hi = self.profiles[info.name]
                if len(shape) != len(hi) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
                    raise BackendError(f"{self.model_path}: input '{info.name}' shape {shape} is outside the engine's "
                                       f"optimization profile min {lo} max {hi}; rebuild with a larger profile "
                                       "(edge-infer build --batch MIN:OPT:MAX)")
                self._check(self.context.set_input_shape(info.name, shape), f"input shape {shape} for '{info.name}'")
            self._current[info.name] = shape
            changed = True
        return changed

    def _enqueue(self) -> None:
        for info in self._inputs:
            self.stream.htod(self.buffers[info.name], self._nbytes(info.name))
        self._check(self.context.execute_async_v3(self.stream.handle), "execute_async_v3")
        for info in self._outputs:
            self.stream.dtoh(self.buffers[info.name], self._nbytes(info.name))

    def _nbytes(self, name: str) -> int:
        shape = self._current.get(name) or tuple(self.context.get_tensor_shape(name))
        return int(np.prod(shape)) * self.buffers[name].dtype.itemsize

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        with self._lock:
            return self._run(feeds, output_names)

    def _run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        if self.context is None:
            raise BackendError(f"{self.model_path}: this TensorRT backend is closed")
        self.check_feeds(feeds)
        with self.dev.bound():
            self._set_shapes(feeds)
            for info in self._outputs:  # output shapes follow the input shapes
                self._current[info.name] = tuple(int(d) for d in self.context.get_tensor_shape(info.name))
            for info in self._inputs:
                np.copyto(self.buffers[info.name].view(self._current[info.name]), feeds[info.name], casting="same_kind")
            if self.use_cuda_graph:
                key = tuple(self._current[i.name] for i in self._inputs)
                if key not in self._graphs:
                    self._enqueue()  # one plain run first: TensorRT may allocate / tune lazily on the first enqueue
                    self.stream.synchronize()
                    self._graphs[key] = self.stream.capture(self._enqueue)
                self._graphs[key].launch()
            else:
                self._enqueue()
            self.stream.synchronize()
        names = list(output_names) if output_names else self.output_names
        return {n: self.buffers[n].view(self._current[n]).copy() for n in names}

    def close(self) -> None:
        """Free graphs, engine objects, buffers and the stream (in that order), then release the context.
        Idempotent; safe from any thread and after a failed constructor."""
        dev = getattr(self, "dev", None)
        if dev is None:
            return
        with dev.bound():
            for graph in self._graphs.values():
                graph.destroy()
            self._graphs.clear()
            self.context = self.engine = self._runtime = None  # TensorRT objects go before their memory
            for buf in self.buffers.values():
                buf.free()
            self.buffers = {}
            if self.stream is not None:
                self.stream.destroy()
                self.stream = None
        dev.close()
        self.dev = None
