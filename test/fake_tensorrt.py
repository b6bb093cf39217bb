"""FAKE TensorRT module for tests on machines without TensorRT. NOT TensorRT.

It implements only the slice of the TensorRT 8.6 / 10.x Python builder API that
edge_infer.backends.tensorrt.build calls, and records every call, so the tests can check which builder flags,
network creation flags, profiles, pool limits, DLA settings and timing-cache calls a build makes for each
TensorRT major version. It proves nothing about TensorRT itself: the real path is covered by
test/test_gpu_tensorrt.py (marked gpu, skipped where TensorRT or a GPU is absent).
"""

from __future__ import annotations

import enum
import types


def make_fake_tensorrt(version: str = "10.3.0", dla_cores: int = 0) -> types.ModuleType:
    major = int(version.split(".")[0])
    calls: list[tuple] = []
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = calls
    trt.IS_FAKE = True

    class Logger:
        WARNING = "WARNING"

        def __init__(self, level=None):
            self.level = level

    flags = {"EXPLICIT_BATCH": 0}
    if major >= 10:
        flags["STRONGLY_TYPED"] = 5  # TensorRT 10's enum value
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)
    trt.BuilderFlag = enum.Enum("BuilderFlag", "FP16 INT8 GPU_FALLBACK")
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE")
    trt.DeviceType = enum.Enum("DeviceType", "GPU DLA")

    class Network:
        def __init__(self, flags):
            self.flags = flags

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def parse_from_file(self, path):
            calls.append(("parse_from_file", path))
            return True

        def get_error(self, i):  # pragma: no cover
            return "fake"

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data) + b"+tuned"

        def serialize(self):
            return self.data

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
        platform_has_fast_fp16 = True
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
                assert mon.step_complete("Tactic selection", 0) is True
                mon.phase_finish("Tactic selection")
                mon.phase_finish("Building engine")
            return b"FAKE-ENGINE-" + version.encode()

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, Parser
    if major >= 10:
        class IProgressMonitor:
            def __init__(self):
                pass

        trt.IProgressMonitor = IProgressMonitor
    return trt
