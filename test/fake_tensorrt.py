"""FAKE TensorRT module for in-process tests of *execution paths*. NOT TensorRT.

Which calls the builder and the runtime make, and whether their arguments fit each real version, is tested
against the real bindings (test/test_trt_real_bindings.py). This fake exists for what those cannot do in a
child process with recorder objects: run the engine cache, the sidecar, the FP16 fallback and the runtime
(dynamic batch, CUDA graph replay, close) end to end inside pytest.

Its constants are not hand-written: :func:`make_fake_tensorrt` takes every enum value and capability
(STRONGLY_TYPED = 1 on 10.x and 0 on 11.x, no BuilderFlag.FP16 on 11.x, IProgressMonitor from 10.x) from
the real bindings of that version (test/trt_bindings.py ``constants``). The fake engine computes
``scores[b, j] = sum(input[b]) + j`` so outputs can be checked.
"""

from __future__ import annotations

import enum
import types

import numpy as np

import trt_bindings


def make_fake_tensorrt(version: str = "10.3.0", dla_cores: int = 0, device=None) -> types.ModuleType:
    c = trt_bindings.constants(version)
    calls: list[tuple] = []
    trt = types.ModuleType("tensorrt")
    trt.__version__ = c["version"]
    trt.calls = calls
    trt.IS_FAKE = True
    for name in ("NetworkDefinitionCreationFlag", "BuilderFlag", "MemoryPoolType", "DeviceType", "TensorIOMode",
                 "DataType"):
        setattr(trt, name, enum.IntEnum(name, c[name]))

    class Logger:
        WARNING = "WARNING"

        def __init__(self, level=None):
            self.level = level

    class Tensor:
        def __init__(self, name):
            self.name, self.is_shape_tensor = name, False

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.inputs = [Tensor("input")]
            self.num_inputs = 1

        def get_input(self, i):
            return self.inputs[i]

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0
            self.network = network

        def parse_from_file(self, path):
            calls.append(("parse_from_file", path))
            import onnx

            m = onnx.load(path, load_external_data=False)
            inits = {i.name for i in m.graph.initializer}
            self.network.inputs = [Tensor(i.name) for i in m.graph.input if i.name not in inits]
            self.network.num_inputs = len(self.network.inputs)
            return True

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data)

        def combine(self, other, ignore_mismatch):
            calls.append(("combine", other.data))
            self.data += b"|" + other.data
            return True

        def serialize(self):
            return self.data + b"+tuned"

    class Config:
        def __init__(self):
            self.flags = set()
            self.progress_monitor = None
            self.default_device_type = trt.DeviceType.GPU
            self.DLA_core = -1
            self.builder_optimization_level = 3
            self._cache = None

        def set_memory_pool_limit(self, pool, size):
            calls.append(("set_memory_pool_limit", pool.name, size))

        def set_flag(self, flag):
            self.flags.add(flag.name)
            calls.append(("set_flag", flag.name))

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))
            return 0

        def create_timing_cache(self, data):
            calls.append(("create_timing_cache", bytes(data)))
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            calls.append(("set_timing_cache", ignore_mismatch))
            self._cache = cache
            return True

        def get_timing_cache(self):
            return self._cache

    class Builder:
        num_DLA_cores = dla_cores

        def __init__(self, logger):
            pass

        def create_network(self, flags=0):
            calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build_serialized_network", sorted(config.flags), config.default_device_type.name,
                          config.DLA_core, config.builder_optimization_level))
            mon = config.progress_monitor
            if mon is not None:  # drive the monitor like TensorRT 10 does
                mon.phase_start("Building engine", None, 2)
                mon.phase_start("Tactic selection", "Building engine", 3)
                assert mon.step_complete("Building engine", 0) is True
                mon.phase_finish("Tactic selection")
                mon.phase_finish("Building engine")
            return b"FAKE-ENGINE-" + version.encode()

    if c["builder_platform_has_fast_fp16"]:
        Builder.platform_has_fast_fp16 = True

    # ---------------------------------------------------------------------------------- runtime (execution)
    class Context:
        def __init__(self):
            self.batch, self.addr = 8, {}

        def set_input_shape(self, name, shape):
            calls.append(("set_input_shape", name, tuple(shape)))
            self.batch = tuple(shape)[0]
            return True

        def get_tensor_shape(self, name):
            return (self.batch, 1, 4, 4) if name == "input" else (self.batch, 3)

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr
            return True

        def set_optimization_profile_async(self, index, stream):
            return True

        def execute_async_v3(self, stream_handle):
            def compute():
                mem = device.memory_store
                x = np.frombuffer(bytes(mem[self.addr["input"]][: self.batch * 16 * 4]), np.float32).reshape(self.batch, 16)
                y = (x.sum(1, keepdims=True) + np.arange(3, dtype=np.float32)).astype(np.float32)
                mem[self.addr["scores"]][: y.nbytes] = y.tobytes()

            device.streams[stream_handle]._op("execute", compute)
            return True

    class Engine:
        num_io_tensors, num_optimization_profiles = 2, 1

        def get_tensor_name(self, i):
            return ["input", "scores"][i]

        def is_shape_inference_io(self, name):
            return False

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "input" else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name):
            return (-1, 1, 4, 4) if name == "input" else (-1, 3)

        def get_tensor_dtype(self, name):
            return trt.DataType.FLOAT

        def get_tensor_profile_shape(self, name, profile):
            return [(1, 1, 4, 4), (1, 1, 4, 4), (8, 1, 4, 4)]

        def create_execution_context(self):
            return Context()

    class Runtime:
        num_DLA_cores = dla_cores

        def __init__(self, logger):
            self.DLA_core = -1

        def deserialize_cuda_engine(self, data):
            calls.append(("deserialize_cuda_engine", len(data), self.DLA_core))
            return Engine()

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, Parser, Runtime
    if c["has_IProgressMonitor"]:
        class IProgressMonitor:
            def __init__(self):
                pass

        trt.IProgressMonitor = IProgressMonitor
    return trt
