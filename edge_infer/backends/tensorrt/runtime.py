"""TensorRT runtime backend (TensorRT 8.6 and 10.x Python API; named I/O tensors, ``execute_async_v3``).

Life of a backend:
1. the engine's JSON sidecar is checked against this machine (TensorRT version, GPU) *before*
   deserializing, so a foreign or stale engine gives a sentence, not TensorRT's serialization assertion;
2. ``Runtime.deserialize_cuda_engine`` -> one execution context, optimization profile 0;
3. every I/O tensor gets a pinned host buffer and a device buffer sized for the profile maximum (allocated
   once: no allocation per frame), their addresses are bound by name with ``set_tensor_address``;
4. ``run``: copy inputs into the pinned buffers, ``set_input_shape`` when the batch changed (dynamic batch
   within the profile), H2D copies, ``execute_async_v3`` on the one stream, D2H copies, one synchronize;
5. optionally (``cuda_graph=True``) the copy + execute sequence is captured once per input shape into a CUDA
   graph and replayed, which removes per-kernel launch overhead on Jetson's slower CPUs.

All CUDA calls go through :mod:`edge_infer.backends.tensorrt.cuda`; tensorrt is imported through
:mod:`edge_infer.backends.tensorrt.trt` only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.backends.base import Backend, BackendError, TensorInfo
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


class TensorRTBackend(Backend):
    """A deserialized engine with pre-allocated buffers, run by tensor name."""

    def __init__(
        self,
        model_path: str,
        device: int = 0,
        cuda_graph: bool = False,
        profile_index: int = 0,
        verify_sidecar: bool = True,
    ) -> None:
        super().__init__(model_path)
        path = Path(model_path)
        if path.suffix == ".onnx":
            raise BackendError(f"{model_path} is an ONNX model; the tensorrt backend loads engines. Build one with "
                               "`edge-infer build` or use backend: auto (builds and caches the engine)")
        if not path.is_file():
            raise BackendError(f"TensorRT engine not found: {model_path}")
        trt = import_tensorrt()
        from edge_infer.backends.tensorrt import cuda as cuda_mem

        self._ctx = cuda_mem.CudaContext(device)  # clear CudaUnavailable when pycuda / GPU are missing
        try:
            if verify_sidecar:
                self._verify(trt, device)
            self._load(trt, cuda_mem, path, profile_index)
        except BaseException:
            self._ctx.close()
            raise
        self.use_cuda_graph = cuda_graph
        self._graphs: dict[tuple, Any] = {}
        self.name = f"tensorrt[{trt.__version__}]"

    # ------------------------------------------------------------------------------------------ setup
    def _verify(self, trt: Any, device: int) -> None:
        from edge_infer.backends.tensorrt.sidecar import check_engine, machine_identity

        verdict = check_engine(self.model_path, machine_identity(device, trt.__version__))
        if not verdict.ok:
            raise BackendError(verdict.message(self.model_path) + ". Rebuild it on this machine "
                               "(edge-infer build, or engine_build: auto / the ~/rebuild_engines service); pass "
                               "verify_sidecar=False to try loading it anyway")

    def _load(self, trt: Any, cuda_mem: Any, path: Path, profile_index: int) -> None:
        self._runtime = trt.Runtime(logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT could not deserialize {path} (see the TensorRT log above): built with "
                               "another TensorRT version or for another GPU?")
        self.context = self.engine.create_execution_context()
        self.stream = cuda_mem.Stream(self._ctx.cuda)
        if self.engine.num_optimization_profiles > 1 or profile_index:
            self.context.set_optimization_profile_async(profile_index, self.stream.handle)
        self._inputs: list[TensorInfo] = []
        self._outputs: list[TensorInfo] = []
        self.profiles: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
        max_shapes: dict[str, tuple[int, ...]] = {}
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
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
                    self.context.set_input_shape(name, hi)  # so the output shapes below are the maxima
                else:
                    max_shapes[name] = shape
            else:
                self._outputs.append(info)
        for info in self._outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(info.name))
            if any(d < 0 for d in shape):
                raise BackendError(f"{path}: output '{info.name}' has a data-dependent shape {shape}; not supported")
            max_shapes[info.name] = shape
        self.buffers = {}
        for info in [*self._inputs, *self._outputs]:
            buf = cuda_mem.PinnedBuffer(self._ctx.cuda, max_shapes[info.name], np.dtype(info.dtype))
            self.buffers[info.name] = buf
            self.context.set_tensor_address(info.name, buf.ptr)
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
                if not self.context.set_input_shape(info.name, shape):
                    raise BackendError(f"{self.model_path}: TensorRT rejected input shape {shape} for '{info.name}'")
            self._current[info.name] = shape
            changed = True
        return changed

    def _enqueue(self) -> None:
        for info in self._inputs:
            self.stream.htod(self.buffers[info.name], self._nbytes(info.name))
        if not self.context.execute_async_v3(self.stream.handle):
            raise BackendError(f"{self.model_path}: execute_async_v3 failed (see the TensorRT log)")
        for info in self._outputs:
            self.stream.dtoh(self.buffers[info.name], self._nbytes(info.name))

    def _nbytes(self, name: str) -> int:
        shape = self._current.get(name) or tuple(self.context.get_tensor_shape(name))
        return int(np.prod(shape)) * self.buffers[name].dtype.itemsize

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.check_feeds(feeds)
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
            replay = self._graphs[key]
            replay() if replay is not None else self._enqueue()
        else:
            self._enqueue()
        self.stream.synchronize()
        names = list(output_names) if output_names else self.output_names
        return {n: self.buffers[n].view(self._current[n]).copy() for n in names}

    def close(self) -> None:
        if getattr(self, "buffers", None):
            self._ctx.push()
            for buf in self.buffers.values():
                try:
                    buf.free()
                except Exception:
                    pass
            self.buffers = {}
            self._graphs.clear()
            self.context = self.engine = None
        if getattr(self, "_ctx", None) is not None:
            self._ctx.close()
