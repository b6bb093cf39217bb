"""edge_infer's TensorRT builder, network flags, builder config, profiles, timing cache, command lines and
runtime calls, run against the REAL Python bindings of TensorRT 8.6.1, 10.3.0, 10.16.1 and 11.4.0.

The bindings import here against stub libnvinfer*.so (test/trt_bindings.py); each version runs in its own
interpreter (test/trt_probe.py) where library-made objects are recorders that accept only what the real
classes' signatures accept. What this proves: every enum, flag, method, property and argument type the
project uses exists in that version and is passed correctly. What it cannot prove: anything TensorRT's
library does (parsing, building, running); that needs a GPU (test_gpu_tensorrt.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import trt_bindings  # noqa: E402

MAJOR = {"8.6.1": 8, "10.3.0": 10, "10.16.1": 10, "11.4.0": 11}
STRONGLY_TYPED = {"8.6.1": None, "10.3.0": 1, "10.16.1": 1, "11.4.0": 0}  # the real enum values
VERSIONS = [pytest.param(v, id=f"trt-{v}") for v in trt_bindings.VERSIONS]


@pytest.fixture(scope="module")
def probes(models_dir, tmp_path_factory):
    """One child process per version, run once for the module."""
    results = {}

    def get(version: str) -> dict:
        if version not in results:
            try:
                out = tmp_path_factory.mktemp(f"trt-{version}")
                results[version] = trt_bindings.run_probe(version, "all", {"out": str(out), "models_dir": str(models_dir)})
            except trt_bindings.Unavailable as e:
                results[version] = e
        if isinstance(results[version], Exception):
            pytest.skip(f"real TensorRT {version} bindings unavailable here: {results[version]}")
        return results[version]

    return get


def _calls(case: dict, method: str) -> list:
    return [c for c in case["calls"] if c[1] == method]


@pytest.mark.parametrize("version", VERSIONS)
def test_real_constants_and_capabilities(probes, version):
    r = probes(version)
    c, caps = r["constants"], r["build"]["capabilities"]
    assert c["version"].startswith(version)
    assert c["NetworkDefinitionCreationFlag"].get("STRONGLY_TYPED") == STRONGLY_TYPED[version]
    assert ("FP16" in c["BuilderFlag"]) == (MAJOR[version] < 11) == caps["weak_typing"]  # TensorRT 11: no weak typing
    assert caps["major"] == MAJOR[version] and caps["explicit_batch_flag"] == (MAJOR[version] < 10)
    assert r["build"]["of_major_agrees"]  # trtexec's major-only capabilities match the real module's


@pytest.mark.parametrize("version", VERSIONS)
def test_real_network_flags_and_precision_routes(probes, version):
    b, major = probes(version)["build"], MAJOR[version]
    strong = 1 << STRONGLY_TYPED[version] if STRONGLY_TYPED[version] is not None else None
    explicit = 1  # 1 << EXPLICIT_BATCH(0), 8.6 only
    fp32, fp16, int8 = b["fp32"], b["fp16"], b["int8"]
    assert _calls(fp32, "create_network")[0][2] == [{8: explicit, 10: 0, 11: strong}[major]]
    assert fp32["strongly_typed"] is (major >= 11) and not _calls(fp32, "set_flag")
    if major < 11:  # BuilderFlag.FP16 on the fp32 ONNX
        assert fp16["route"] == "fp16-flag" and _calls(fp16, "set_flag") == [["IBuilderConfig", "set_flag", ["BuilderFlag.FP16"]]]
        assert fp16["parsed_onnx"]["file"] == "emotion.onnx"
    else:  # 11: an FP16 ONNX from the project's converter, strongly typed, no precision flag at all
        assert fp16["route"] == "fp16-onnx" and not _calls(fp16, "set_flag")
        assert _calls(fp16, "create_network")[0][2] == [strong]
        assert _calls(fp16, "parse_from_file")[0][2][0].endswith("emotion.fp16.onnx")
        assert fp16["parsed_onnx"]["converter"].startswith("edge_infer-fp16/") and fp16["parsed_onnx"]["sha256"]
        assert fp16["sidecar_options"]["route"] == "fp16-onnx" and fp16["sidecar_options"]["fp16_converter"]
    if major == 8:  # QDQ on 8.6: explicit batch + INT8 (+FP16 for unquantized layers)
        assert _calls(int8, "set_flag") == [["IBuilderConfig", "set_flag", ["BuilderFlag.FP16"]],
                                            ["IBuilderConfig", "set_flag", ["BuilderFlag.INT8"]]]
    else:  # 10/11: strongly typed QDQ
        assert int8["strongly_typed"] and not _calls(int8, "set_flag") and _calls(int8, "create_network")[0][2] == [strong]
    forced = b["fp16_flag_forced"]
    if major >= 11:
        assert "no BuilderFlag.FP16" in forced["error"]
    else:
        assert forced["route"] == "fp16-flag"
    assert "shape tensors" in b["shape_tensor"]["error"]


@pytest.mark.parametrize("version", VERSIONS)
def test_real_config_profile_dla_and_progress(probes, version):
    b, major = probes(version)["build"], MAJOR[version]
    fp32, dla = b["fp32"], b["dla"]
    assert ["IBuilderConfig", "set_memory_pool_limit", ["MemoryPoolType.WORKSPACE", 1 << 30]] in fp32["calls"]
    assert ["IBuilderConfig", "builder_optimization_level=", 4] in fp32["calls"]
    assert ["IOptimizationProfile", "set_shape", ["input", [1, 1, 64, 64], [1, 1, 64, 64], [8, 1, 64, 64]]] in fp32["calls"]
    assert _calls(fp32, "add_optimization_profile")
    assert ["IBuilderConfig", "default_device_type=", "DeviceType.DLA"] in dla["calls"]
    assert ["IBuilderConfig", "DLA_core=", 1] in dla["calls"]
    assert ["IBuilderConfig", "set_flag", ["BuilderFlag.GPU_FALLBACK"]] in dla["calls"]
    assert _calls(dla, "set_shape")[0][2][1:] == [[4, 1, 64, 64]] * 3  # DLA: static shapes
    assert bool(_calls(fp32, "progress_monitor=")) == (major >= 10)  # IProgressMonitor from TensorRT 10
    assert any("Building engine" in line for line in fp32["lines"]) == (major >= 10)


@pytest.mark.parametrize("version", VERSIONS)
def test_real_timing_cache_keyed_checked_merged(probes, version):
    b = probes(version)["build"]
    full = probes(version)["constants"]["version"]
    assert b["fp32"]["timing_cache"].endswith(f"timing.trt{full}.sm87.cache")  # per TensorRT version + GPU
    assert ["IBuilderConfig", "set_timing_cache", ["<ITimingCache>", False]] in b["fp32"]["calls"]
    merge = b["timing_merge"]  # another process wrote the file during the build: combined, not overwritten
    assert _calls(merge, "combine") and merge["file"].startswith("OLD")
    rejected = b["timing_rejected"]  # set_timing_cache said False: reported, rebuilt with an empty cache
    assert len(_calls(rejected, "set_timing_cache")) == 2
    assert ["IBuilderConfig", "create_timing_cache", ["<0 bytes>"]] in rejected["calls"]
    assert any("rejected the timing cache" in line for line in rejected["lines"])


@pytest.mark.parametrize("version", VERSIONS)
def test_real_command_lines_per_version(probes, version):
    cmds, major = probes(version)["commands"], MAJOR[version]
    for key, c in cmds.items():
        tool, precision = key.split("-")
        flags = set(c["cmd"])
        if major >= 11:
            assert not flags & {"--fp16", "--int8"}, c  # removed in trtexec / TensorRT 11
        if tool == "trtexec":
            assert "--skipInference" in flags
            assert ("--stronglyTyped" in flags) == (major >= 11 or (precision == "int8" and major >= 10))
        else:
            assert "--tf32" in flags
    if major >= 11:
        assert cmds["trtexec-fp16"]["cmd"][1].endswith("emotion.fp16.onnx") and cmds["trtexec-fp16"]["route"] == "fp16-onnx"
    else:
        assert "--fp16" in cmds["trtexec-fp16"]["cmd"] and "--fp16" in cmds["polygraphy-fp16"]["cmd"]


@pytest.mark.parametrize("version", VERSIONS)
def test_real_runtime_calls_from_another_thread(probes, version):
    r = probes(version)["runtime"]
    assert r.get("error") is None and r["shape"] == [3, 7]
    assert r["calls"][0] == ["Runtime", "DLA_core=", 1]  # set before deserializing, from the sidecar
    assert ["IExecutionContext", "set_input_shape", ["input", [3, 1, 64, 64]]] in r["calls"]
    assert _calls(r, "execute_async_v3") and r["unbound_calls"] == 0 and r["device_closed"]
    assert r["name"].endswith(",dla1]")


def test_bindings_cache_is_idempotent(monkeypatch):
    """A second ensure() downloads nothing (the wheels are pinned by sha256 and extracted once)."""
    try:
        first = trt_bindings.ensure("11.4.0")
    except trt_bindings.Unavailable as e:
        pytest.skip(str(e))
    monkeypatch.setattr(trt_bindings, "_fetch", lambda *a: pytest.fail("downloaded again"))
    again = trt_bindings.ensure("11.4.0")
    assert again == first and (again.libdir / "libnvinfer.so.11").is_file()
    assert (again.site / "tensorrt_bindings" / "__init__.py").is_file()
