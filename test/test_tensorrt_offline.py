"""Everything about TensorRT engines that does not need a GPU: profiles, options, cache keys, sidecars,
cache policies, command lines, backend selection and the errors when tensorrt / a CUDA layer / a GPU are
missing.

Builder calls against each real TensorRT version are in test_trt_real_bindings.py. The execution-path
tests here use test/fake_tensorrt.py (a FAKE whose constants come from the real bindings); everything else
runs the real code on the real zoo models.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_infer.backends import BackendError, create_backend
from edge_infer.backends.tensorrt import build as eb
from edge_infer.backends.tensorrt import cache as ec
from edge_infer.backends.tensorrt import precision as pr
from edge_infer.backends.tensorrt import profiles as pf
from edge_infer.backends.tensorrt import sidecar as sc
from edge_infer.backends.tensorrt import tool_commands as tc
from edge_infer.backends.tensorrt.trt import version_from_trtexec_banner

sys.path.insert(0, str(Path(__file__).parent))
import trt_bindings  # noqa: E402
from fake_tensorrt import make_fake_tensorrt as _make_fake  # noqa: E402


def make_fake_tensorrt(version: str = "10.3.0", **kw):
    """The fake, with the real bindings' constants; skips where those cannot be fetched."""
    try:
        return _make_fake(version, **kw)
    except trt_bindings.Unavailable as e:
        pytest.skip(f"real TensorRT {version} bindings unavailable (the fake takes its constants from them): {e}")

HAVE_TRT = __import__("importlib").util.find_spec("tensorrt") is not None
needs_no_trt = pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed here: the missing-tensorrt errors cannot occur")
IDENTITY = sc.engine_identity("10.3.0", "Orin", "8.7")


def _qdq_model(path: Path) -> Path:
    """A tiny explicit-quantization (QDQ) model: x -> Q -> DQ -> Relu -> y, batch dynamic."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
             helper.make_node("Relu", ["dq"], ["y"])]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


# ---------------------------------------------------------------------------------------------- parsing
def test_parse_shape_range_profile():
    assert pf.parse_shape("1x3x640x640") == (1, 3, 640, 640)
    assert pf.parse_shape("[1,3,64,64]") == (1, 3, 64, 64)
    assert pf.parse_range("1:4:8") == (1, 4, 8)
    assert pf.parse_range("1:8") == (1, 1, 8)
    assert pf.parse_range("4") == (4, 4, 4)
    assert pf.parse_profile_arg("input:1x1x64x64:2x1x64x64:8x1x64x64") == (
        "input", ((1, 1, 64, 64), (2, 1, 64, 64), (8, 1, 64, 64)))
    for bad in ("", "1xAx3", "0x3"):
        with pytest.raises(eb.BuildError, match="bad shape"):
            pf.parse_shape(bad)
    with pytest.raises(eb.BuildError, match="MIN <= OPT <= MAX"):
        pf.parse_range("8:1:4")
    with pytest.raises(eb.BuildError, match="NAME:MIN:OPT:MAX"):
        pf.parse_profile_arg("1x3:1x3")
    with pytest.raises(eb.BuildError, match="min <= opt <= max"):
        pf.parse_profile_arg("x:4x3:1x3:8x3")


# ---------------------------------------------------------------------------------------------- profiles
def test_profiles_from_zoo_spec_and_cli(models_dir):
    from edge_infer.models.spec import load_zoo

    zoo = load_zoo()
    emo = zoo.model("emotion")
    ins = pf.onnx_inputs(emo.path(models_dir))
    assert ins == [("input", ("batch", 1, 64, 64))]
    assert pf.derive_profiles(ins, emo.profile) == {"input": ((1, 1, 64, 64), (1, 1, 64, 64), (8, 1, 64, 64))}
    # --batch overrides the batch dimension of the spec profile
    assert pf.derive_profiles(ins, emo.profile, (2, 4, 16))["input"] == ((2, 1, 64, 64), (4, 1, 64, 64), (16, 1, 64, 64))
    # no spec: static dims kept, batch from --batch or 1
    assert pf.derive_profiles(ins, None, (1, 1, 8))["input"] == ((1, 1, 64, 64), (1, 1, 64, 64), (8, 1, 64, 64))
    assert pf.derive_profiles(ins, None)["input"] == ((1, 1, 64, 64),) * 3
    # an explicit --profile wins over spec and --batch
    explicit = {"input": ((1, 1, 64, 64), (2, 1, 64, 64), (4, 1, 64, 64))}
    assert pf.derive_profiles(ins, emo.profile, (1, 1, 32), explicit)["input"] == explicit["input"]

    mesh = zoo.model("face_mesh")  # spec names its input 'input', the converted model calls it 'image'
    mins = pf.onnx_inputs(mesh.path(models_dir))
    assert [n for n, _ in mins] == ["image"]
    assert pf.derive_profiles(mins, mesh.profile)["image"][2] == (8, 192, 192, 3)

    det = zoo.model("face_detector")  # dynamic batch, height and width
    dins = pf.onnx_inputs(det.path(models_dir))
    assert [d for d in dins[0][1] if isinstance(d, int)] == [3]
    with pytest.raises(eb.BuildError, match=r"dynamic dimensions \[2, 3\].*--profile input:MIN:OPT:MAX"):
        pf.derive_profiles(dins, None)
    prof = pf.derive_profiles(dins, det.profile)["input"]
    assert all(s[1] == 3 for s in prof)


def test_profile_errors_and_per_input_spec(models_dir):
    ins = [("input", ("batch", 1, 64, 64))]
    with pytest.raises(eb.BuildError, match="contradicts its static dimensions"):
        pf.derive_profiles(ins, {"min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [8, 3, 64, 64]})
    with pytest.raises(eb.BuildError, match="rank 3"):
        pf.derive_profiles(ins, {"min": [1, 64, 64], "opt": [1, 64, 64], "max": [8, 64, 64]})
    with pytest.raises(eb.BuildError, match="unknown inputs"):
        pf.derive_profiles(ins, None, explicit={"nope": ((1,), (1,), (1,))})
    # per-input spec profiles, for models with several dynamic inputs (e.g. audio models with state)
    multi = [("input", (None, None)), ("state", (2, None, 128))]
    spec = {"input": {"min": [1, 576], "opt": [1, 576], "max": [1, 576]},
            "state": {"min": [2, 1, 128], "opt": [2, 1, 128], "max": [2, 1, 128]}}
    assert pf.derive_profiles(multi, spec) == {"input": ((1, 576),) * 3, "state": ((2, 1, 128),) * 3}
    # static models need no profile at all
    assert pf.derive_profiles([("x", (1, 16))], None) == {}


def test_has_qdq(tmp_path, models_dir):
    assert pr.has_qdq(_qdq_model(tmp_path / "q.onnx"))
    assert not pr.has_qdq(models_dir / "emotion.onnx")


def test_strongly_typed_decision():
    """The one rule, by capability: 8.6 (weak typing only), 10.x (both), 11.x (strongly typed only)."""
    assert pr.choose_route("int8", "auto", "auto", 10).strongly_typed is True
    assert pr.choose_route("int8", "auto", "auto", 8) == pr.Route("int8", "int8-qdq", False, ("FP16", "INT8"))
    assert pr.choose_route("fp16", "auto", "auto", 10) == pr.Route("fp16", "fp16-flag", False, ("FP16",))
    assert pr.choose_route("fp16", "auto", "auto", 11) == pr.Route("fp16", "fp16-onnx", True)  # no BuilderFlag.FP16
    assert pr.choose_route("fp16", "auto", "onnx", 10).kind == "fp16-onnx"  # by choice on 10.x
    assert pr.choose_route("fp32", "auto", "auto", 11).strongly_typed and not pr.choose_route("fp32", "auto", "auto", 10).strongly_typed
    with pytest.raises(eb.BuildError, match="TensorRT >= 10"):
        pr.choose_route("fp16", "on", "auto", 8)
    with pytest.raises(eb.BuildError, match="only strongly typed"):
        pr.choose_route("fp32", "off", "auto", 11)
    with pytest.raises(eb.BuildError, match="no BuilderFlag.FP16"):
        pr.choose_route("fp16", "auto", "flag", 11)
    with pytest.raises(eb.BuildError, match="must be built strongly typed"):
        pr.choose_route("fp16", "auto", "onnx", 8)
    assert pr.fallback_fp32(pr.choose_route("fp16", "auto", "auto", 11), 11) == pr.Route("fp16", "fp32", True)


def test_one_version_parser_and_shared_logger():
    from edge_infer.backends.tensorrt import trt as trtmod

    assert [trtmod.parse_major(v) for v in ("8.6.1", "10.16.1.11", "11.4.0.106", None, "unknown", "")] == [8, 10, 11, 0, 0, 0]
    fake = make_fake_tensorrt("10.3.0")
    assert trtmod.trt_major(fake) == 10 and trtmod.logger(fake) is trtmod.logger(fake)  # one Logger per process


def test_build_options_for_onnx_is_the_one_assembly(models_dir, tmp_path):
    emo = models_dir / "emotion.onnx"
    spec = {"min": [1, 1, 64, 64], "opt": [1, 1, 64, 64], "max": [8, 1, 64, 64]}
    o = eb.BuildOptions.for_onnx(emo, spec_profile=spec, batch="1:2:4", precision="fp32", workspace_mb="256",
                                 dla_core=None)
    assert o.precision == "fp32" and o.workspace_mb == 256 and o.dla_core is None
    assert o.profiles == {"input": ((1, 1, 64, 64), (2, 1, 64, 64), (4, 1, 64, 64))}
    given = {"input": ((1, 1, 64, 64),) * 3}
    assert eb.BuildOptions.for_onnx(emo, profiles=given).profiles == given
    with pytest.raises(eb.BuildError, match="unknown build options \\['colour'\\]"):
        eb.BuildOptions.for_onnx(emo, colour="red")
    with pytest.raises(eb.BuildError, match="no QuantizeLinear/DequantizeLinear"):
        pr.require_qdq(emo, "int8")
    assert pr.require_qdq(emo, "fp16") is False and pr.require_qdq(_qdq_model(tmp_path / "q.onnx"), "int8") is True


def test_runtime_layer_imports_no_tool_layer():
    """backends/ (the runtime) never imports offline/, bench/, commands/, ros/ or the CLI."""
    import ast

    root = Path(eb.__file__).parents[2]
    bad = []
    for py in (root / "backends").rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{py.relative_to(root)}: {n}" for n in names
                    if n.split(".")[:2] in (["edge_infer", x] for x in ("offline", "bench", "commands", "ros", "cli"))]
    assert not bad, bad


def test_build_options_validation_and_key():
    with pytest.raises(eb.BuildError, match="unknown precision"):
        eb.BuildOptions(precision="bf8")
    with pytest.raises(eb.BuildError, match="workspace"):
        eb.BuildOptions(workspace_mb=0)
    a = eb.BuildOptions(profiles={"input": ([1, 1, 64, 64], [1, 1, 64, 64], [8, 1, 64, 64])}, timing_cache="/a")
    b = eb.BuildOptions(profiles={"input": ((1, 1, 64, 64), (1, 1, 64, 64), (8, 1, 64, 64))}, timing_cache="/b", device=1)
    assert a.key_dict() == b.key_dict()  # timing cache location and device index do not change the engine
    assert a.key_dict() != eb.BuildOptions(precision="fp32", profiles=a.profiles).key_dict()
    assert json.loads(json.dumps(a.key_dict())) == a.key_dict()  # what the sidecar stores compares equal
    # the route is part of the engine key: same options, TensorRT 10 (FP16 flag) vs 11 (FP16 ONNX + converter)
    k10, k11 = a.engine_key(10), a.engine_key(11)
    assert (k10["route"], k10["fp16_converter"]) == ("fp16-flag", None)
    assert k11["route"] == "fp16-onnx" and k11["fp16_converter"].startswith("edge_infer-fp16/")


def test_dla_restrictions_and_engine_names(tmp_path):
    dyn = {"input": ((1, 1, 64, 64), (1, 1, 64, 64), (8, 1, 64, 64))}
    with pytest.raises(eb.BuildError, match="DLA runs FP16 or INT8 only"):
        eb.BuildOptions(precision="fp32", dla_core=0)
    with pytest.raises(eb.BuildError, match="DLA needs static shapes.*'input'"):
        eb.BuildOptions(precision="fp16", dla_core=0, profiles=dyn)
    eb.BuildOptions(precision="fp16", dla_core=0, profiles={"input": ((4, 1, 64, 64),) * 3})  # static: fine
    assert ec.engine_path_for(tmp_path, "m.onnx", "fp16").name == "m.fp16.engine"
    assert ec.engine_path_for(tmp_path, "m.onnx", "fp16", 0).name == "m.fp16.dla0.engine"  # never the GPU engine


# ---------------------------------------------------------------------------------------------- keys + sidecar
def test_cache_key_stable_and_sensitive():
    opts = eb.BuildOptions().key_dict()
    k = ec.cache_key(IDENTITY, "a" * 64, opts)
    assert k == ec.cache_key(dict(reversed(list(IDENTITY.items()))), "a" * 64, dict(opts))
    assert k != ec.cache_key(sc.engine_identity("8.6.2", "Orin", "8.7"), "a" * 64, opts)
    assert k != ec.cache_key(sc.engine_identity("10.3.0", "Xavier", "7.2"), "a" * 64, opts)
    assert k != ec.cache_key(IDENTITY, "b" * 64, opts)
    assert k != ec.cache_key(IDENTITY, "a" * 64, eb.BuildOptions(precision="fp32").key_dict())
    assert k != ec.cache_key(IDENTITY, "a" * 64, eb.BuildOptions(dla_core=0).key_dict())


def _fake_built_engine(tmp_path: Path, onnx_path: Path, options: eb.BuildOptions, identity=IDENTITY,
                       payload: bytes = b"ENGINE") -> Path:
    engine = tmp_path / "engines" / f"{onnx_path.stem}.{options.precision}.engine"
    engine.parent.mkdir(parents=True, exist_ok=True)
    engine.write_bytes(payload)
    sc.write_sidecar(engine, eb.build_metadata(onnx_path, engine, options, identity, 1.0))
    return engine


def test_sidecar_roundtrip_and_verdicts(tmp_path, models_dir):
    onnx_path = models_dir / "emotion.onnx"
    opts = eb.BuildOptions(profiles={"input": ((1, 1, 64, 64),) * 3})
    engine = _fake_built_engine(tmp_path, onnx_path, opts)
    meta = sc.read_sidecar(engine)
    assert meta["schema"] == sc.SIDECAR_SCHEMA and meta["identity"] == IDENTITY
    assert meta["precision"] == "fp16" and meta["profiles"]["input"]["max"] == [1, 1, 64, 64]
    for key in ("onnx_sha256", "engine_sha256", "build_seconds", "built_at", "options", "engine_bytes"):
        assert key in meta
    sha = meta["onnx_sha256"]
    assert sc.check_engine(engine, IDENTITY, sha, opts.engine_key(10)).ok
    v = sc.check_engine(engine, sc.engine_identity("8.6.2", "Orin", "8.7"), sha, opts.engine_key(10))
    assert not v.ok and "built with TensorRT 10.3.0, this machine has TensorRT 8.6.2" in v.reasons[0]
    v = sc.check_engine(engine, sc.engine_identity("10.3.0", "NVIDIA H100", "9.0"))
    assert "built for GPU Orin (compute 8.7), this machine has NVIDIA H100 (compute 9.0)" in v.message(engine)
    v = sc.check_engine(engine, IDENTITY, "f" * 64)
    assert "ONNX model changed" in v.reasons[0]
    v = sc.check_engine(engine, IDENTITY, sha, eb.BuildOptions(precision="fp32", profiles=opts.profiles).engine_key(10))
    assert "precision: 'fp16' -> 'fp32'" in v.reasons[0]
    engine.write_bytes(b"ENG")  # truncated
    assert "truncated or replaced" in sc.check_engine(engine, IDENTITY).reasons[0]
    engine.write_bytes(b"ENGINX")  # same size, other bytes
    assert "does not match the sha256" in sc.check_engine(engine, IDENTITY).reasons[0]
    sc.sidecar_path(engine).write_text("{not json")
    assert "unreadable" in sc.check_engine(engine, IDENTITY).reasons[0]
    sc.sidecar_path(engine).write_text(json.dumps({"schema": "other"}))
    assert "not an edge_infer engine sidecar" in sc.check_engine(engine, IDENTITY).reasons[0]
    sc.sidecar_path(engine).unlink()
    assert "no metadata sidecar" in sc.check_engine(engine, IDENTITY).reasons[0]
    assert "does not exist" in sc.check_engine(tmp_path / "none.engine").reasons[0]


def test_get_engine_policies(tmp_path, models_dir):
    """Policy logic with an injected builder (a plain function writing an engine + sidecar; no TensorRT)."""
    src = tmp_path / "emotion.onnx"
    src.write_bytes((models_dir / "emotion.onnx").read_bytes())
    opts = eb.BuildOptions(profiles={"input": ((1, 1, 64, 64), (1, 1, 64, 64), (8, 1, 64, 64))})
    builds = []

    def builder(onnx_path, engine_path, options, **kw):
        builds.append(kw)
        Path(engine_path).parent.mkdir(parents=True, exist_ok=True)
        Path(engine_path).write_bytes(b"E%d" % len(builds))
        meta = eb.build_metadata(Path(onnx_path), Path(engine_path), options, IDENTITY, 0.1)
        sc.write_sidecar(engine_path, meta)
        return meta

    cache = tmp_path / "engines"
    with pytest.raises(sc.StaleEngineError, match="engine_build is 'never'"):
        ec.get_engine(src, opts, cache, "never", IDENTITY, builder)
    r = ec.get_engine(src, opts, cache, "auto", IDENTITY, builder, via="python")
    assert (r.action, len(builds), builds[0]) == ("built", 1, {"via": "python"})
    assert r.engine_path == cache / "emotion.fp16.engine"
    r = ec.get_engine(src, opts, cache, "auto", IDENTITY, builder)
    assert (r.action, len(builds)) == ("cached", 1)  # never rebuilt on every start
    assert ec.get_engine(src, opts, cache, "never", IDENTITY, builder).action == "cached"
    # a TensorRT upgrade on the robot: detected from the sidecar, rebuilt under auto, refused under never
    upgraded = sc.engine_identity("10.7.0", "Orin", "8.7")
    with pytest.raises(sc.StaleEngineError, match="built with TensorRT 10.3.0, this machine has TensorRT 10.7.0"):
        ec.get_engine(src, opts, cache, "never", upgraded, builder)
    # the ONNX changed: rebuilt with the reason
    src.write_bytes(src.read_bytes() + b"\0")
    r = ec.get_engine(src, opts, cache, "auto", IDENTITY, builder)
    assert r.action == "rebuilt" and "ONNX model changed" in r.reasons[0] and len(builds) == 2
    r = ec.get_engine(src, opts, cache, "force", IDENTITY, builder)
    assert r.action == "rebuilt" and len(builds) == 3
    with pytest.raises(ec.EngineCacheError, match="unknown engine_build policy"):
        ec.get_engine(src, opts, cache, "sometimes", IDENTITY, builder)
    with pytest.raises(ec.EngineCacheError, match="not found"):
        ec.get_engine(tmp_path / "missing.onnx", opts, cache, "auto", IDENTITY, builder)


# ---------------------------------------------------------------------------------------------- command lines
def test_trtexec_and_polygraphy_commands(tmp_path):
    opts = eb.BuildOptions(precision="fp16", workspace_mb=512, timing_cache="/c/t.cache", dla_core=1,
                           profiles={"input": ((2, 1, 64, 64),) * 3}, optimization_level=4)
    cmd = tc.trtexec_command("m.onnx", "m.engine", opts, opts.route(10), timing_cache="/c/t.cache")
    assert cmd == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--memPoolSize=workspace:512", "--skipInference",
                   "--fp16", "--minShapes=input:2x1x64x64", "--optShapes=input:2x1x64x64", "--maxShapes=input:2x1x64x64",
                   "--timingCacheFile=/c/t.cache", "--useDLACore=1", "--allowGPUFallback", "--builderOptimizationLevel=4"]
    i8 = eb.BuildOptions(precision="int8")
    assert "--stronglyTyped" in tc.trtexec_command("q.onnx", "q.engine", i8, i8.route(10))
    assert {"--fp16", "--int8"} <= set(tc.trtexec_command("q.onnx", "q.engine", i8, i8.route(8)))
    assert "--stronglyTyped" not in tc.trtexec_command("q.onnx", "q.engine", i8, i8.route(8))  # trtexec 8.6 rejects it
    assert not {"--fp16", "--int8"} & set(tc.trtexec_command("q.onnx", "q.engine", i8, i8.route(11)))
    assert "--fp16" not in tc.trtexec_command("m.onnx", "m.engine", eb.BuildOptions(precision="fp32"),
                                              eb.BuildOptions(precision="fp32").route(10))
    two = eb.BuildOptions(profiles={"a": ((1, 2),) * 3, "b": ((1, 3),) * 3})
    assert "--minShapes=a:1x2,b:1x3" in tc.trtexec_command("m.onnx", "e", two, two.route(10))
    pg = tc.polygraphy_command("m.onnx", "m.engine", opts, opts.route(10))
    assert pg[:7] == ["polygraphy", "convert", "m.onnx", "--convert-to", "trt", "-o", "m.engine"]
    assert "input:[2,1,64,64]" in pg and "workspace:512M" in pg and "--use-dla" in pg and "--tf32" in pg
    assert "--fp16" not in tc.polygraphy_command("m.onnx", "m.engine", opts, opts.route(11))
    assert tc.format_command(["a b", "c"]) == "'a b' c"


def test_polygraphy_command_flags_exist_in_installed_polygraphy():
    """Every flag we emit is one the installed polygraphy `convert` accepts (its real --help)."""
    exe = Path(sys.executable).parent / "polygraphy"
    if not exe.exists():
        pytest.skip("polygraphy CLI not installed in this environment")
    helptext = subprocess.run([str(exe), "convert", "--help"], capture_output=True, text=True, timeout=120).stdout
    for precision in ("int8", "fp16"):
        opts = eb.BuildOptions(precision=precision, timing_cache="t", dla_core=0, optimization_level=2,
                               profiles={"input": ((2, 3),) * 3})
        for major in (8, 10, 11):
            for tok in tc.polygraphy_command("m.onnx", "m.engine", opts, opts.route(major), timing_cache="t"):
                if tok.startswith("--"):
                    assert tok in helptext, tok


def test_find_trtexec_error_and_via_trtexec_with_stub(tmp_path, monkeypatch, models_dir):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(tc, "TRTEXEC_DIRS", (str(tmp_path / "nope"),))
    with pytest.raises(eb.BuildError, match="trtexec not found on PATH or in .*nope"):
        tc.find_trtexec()
    monkeypatch.setattr(tc, "TRTEXEC_DIRS", ("/usr/src/tensorrt/bin",))
    if not Path("/usr/src/tensorrt/bin/trtexec").exists():
        with pytest.raises(eb.BuildError, match="/usr/src/tensorrt/bin"):
            tc.find_trtexec()
    # a stub trtexec (shell script) on PATH: exercises the real subprocess path, banner parsing and sidecar
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "trtexec"
    stub.write_text("#!/bin/sh\necho '&&&& RUNNING TensorRT.trtexec [TensorRT v100300]'\necho \"$@\" > \"$ARGS_OUT\"\n"
                    "for a in \"$@\"; do case $a in --saveEngine=*) printf STUBENGINE > \"${a#--saveEngine=}\";; esac; done\n")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("ARGS_OUT", str(tmp_path / "args.txt"))
    monkeypatch.setattr(sc, "machine_identity", lambda d, v: sc.engine_identity(v, "Orin", "8.7"))
    engine = tmp_path / "out" / "emotion.fp16.engine"
    opts = eb.BuildOptions(profiles={"input": ((1, 1, 64, 64), (1, 1, 64, 64), (8, 1, 64, 64))})
    meta = eb.build_engine(models_dir / "emotion.onnx", engine, opts, via="trtexec", echo=lambda s: None)
    assert engine.read_bytes() == b"STUBENGINE"
    assert meta["identity"]["tensorrt"] == "10.3.0"  # trtexec's own version (its banner), not the bindings'
    assert meta["via"] == "trtexec"
    args = (tmp_path / "args.txt").read_text()
    assert "--maxShapes=input:8x1x64x64" in args and "--fp16" in args and "--skipInference" in args
    assert sc.check_engine(engine, meta["identity"], meta["onnx_sha256"], opts.engine_key(10)).ok
    assert not list(engine.parent.glob(".*.tmp"))  # the atomic temp file is gone
    assert version_from_trtexec_banner("[TensorRT v8601]") == "8.6.1"
    assert version_from_trtexec_banner("[TensorRT v100300]") == "10.3.0"
    assert version_from_trtexec_banner("[TensorRT v110400]") == "11.4.0"
    assert version_from_trtexec_banner("no banner") is None
    # trtexec 8.6 (banner v8601) with an int8 QDQ model: INT8 flags, never --stronglyTyped (8.6 rejects it)
    stub.write_text(stub.read_text().replace("v100300", "v8601"))
    q = _qdq_model(tmp_path / "q.onnx")
    meta = eb.build_engine(q, tmp_path / "q.engine", eb.BuildOptions.for_onnx(q, batch="1:1:4", precision="int8"),
                           via="trtexec", echo=lambda s: None)
    args = (tmp_path / "args.txt").read_text()
    assert meta["identity"]["tensorrt"] == "8.6.1" and "--int8" in args and "--stronglyTyped" not in args


# ---------------------------------------------------------------------------------------------- fake TensorRT builds
@pytest.mark.parametrize("version", [pytest.param(v, id=f"trt-{v}") for v in ("8.6.1", "10.3.0", "11.4.0")])
def test_build_config_with_fake_tensorrt(version, tmp_path, monkeypatch, models_dir):
    fake = make_fake_tensorrt(version, dla_cores=2)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(sc, "machine_identity", lambda d, v: sc.engine_identity(v, "Orin", "8.7"))
    cache = tmp_path / "timing.cache"
    keyed = tmp_path / f"timing.trt{fake.__version__}.sm87.cache"
    keyed.write_bytes(b"OLD")
    opts = eb.BuildOptions(precision="fp16", workspace_mb=256, timing_cache=str(cache), dla_core=1,
                           profiles={"input": ((4, 1, 64, 64),) * 3}, optimization_level=5)
    lines: list[str] = []
    meta = eb.build_engine(models_dir / "emotion.onnx", tmp_path / "e.engine", opts, echo=lines.append)
    calls = fake.calls
    flags = fake.NetworkDefinitionCreationFlag
    if version.startswith("8"):
        network = 1 << flags.EXPLICIT_BATCH
    else:  # 10: no flag for an fp16-flag network; 11: strongly typed always
        network = 1 << flags.STRONGLY_TYPED if version.startswith("11") else 0
    assert ("create_network", network) in calls
    assert ("set_memory_pool_limit", "WORKSPACE", 256 << 20) in calls
    assert ("set_shape", "input", (4, 1, 64, 64), (4, 1, 64, 64), (4, 1, 64, 64)) in calls
    assert ("create_timing_cache", b"OLD") in calls and ("set_timing_cache", False) in calls
    built = next(c for c in calls if c[0] == "build_serialized_network")
    fp16_flag = [] if version.startswith("11") else ["FP16"]  # 11: the FP16 ONNX carries the precision
    assert built[1:] == (sorted(fp16_flag + ["GPU_FALLBACK"]), "DLA", 1, 5)
    assert keyed.read_bytes() == b"OLD+tuned" and not cache.exists()  # written back, keyed by TensorRT + GPU
    assert (tmp_path / "e.engine").read_bytes() == b"FAKE-ENGINE-" + version.encode()
    assert meta["identity"]["tensorrt"] == fake.__version__ and meta["strongly_typed"] is version.startswith("11")
    assert sc.read_sidecar(tmp_path / "e.engine")["engine_sha256"] == meta["engine_sha256"]
    progress = [line for line in lines if "Building engine" in line]
    assert bool(progress) == (not version.startswith("8"))  # IProgressMonitor exists from TensorRT 10


@pytest.mark.parametrize("version,strongly", [("8.6.1", False), ("10.3.0", True), ("11.4.0", True)])
def test_int8_qdq_build_with_fake_tensorrt(version, strongly, tmp_path, monkeypatch, models_dir):
    fake = make_fake_tensorrt(version)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(sc, "machine_identity", lambda d, v: sc.engine_identity(v, "Orin", "8.7"))
    q = _qdq_model(tmp_path / "q.onnx")
    opts = eb.BuildOptions(precision="int8", profiles=pf.derive_profiles(pf.onnx_inputs(q), None, (1, 1, 8)))
    meta = eb.build_engine(q, tmp_path / "q.engine", opts, echo=lambda s: None)
    assert meta["strongly_typed"] is strongly and meta["qdq"] is True
    flags = next(c for c in fake.calls if c[0] == "build_serialized_network")[1]
    if strongly:  # TRT 10/11: strongly typed network (the real enum value), precisions from the QDQ graph
        assert ("create_network", 1 << fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED) in fake.calls and flags == []
    else:  # TRT 8.6: explicit batch + INT8 (and FP16 for the unquantized layers)
        assert ("create_network", 1) in fake.calls and flags == ["FP16", "INT8"]
    with pytest.raises(eb.BuildError, match="no QuantizeLinear/DequantizeLinear"):
        eb.build_engine(models_dir / "emotion.onnx", tmp_path / "x.engine", eb.BuildOptions(precision="int8"),
                        echo=lambda s: None)
    assert not (tmp_path / "x.engine").exists()


def test_fake_tensorrt_dla_core_out_of_range(tmp_path, monkeypatch, models_dir):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt("10.3.0", dla_cores=0))
    monkeypatch.setattr(sc, "machine_identity", lambda d, v: sc.engine_identity(v, "Orin", "8.7"))
    with pytest.raises(eb.BuildError, match="DLA core 0 requested, this device has 0"):
        eb.build_engine(models_dir / "emotion.onnx", tmp_path / "e.engine", eb.BuildOptions(dla_core=0),
                        echo=lambda s: None)


# ---------------------------------------------------------------------------------------------- missing deps
@needs_no_trt
def test_clear_errors_without_tensorrt(tmp_path, models_dir):
    from edge_infer.backends.tensorrt.runtime import TensorRTBackend
    from edge_infer.backends.tensorrt.trt import TensorRTUnavailable, import_tensorrt

    with pytest.raises(TensorRTUnavailable, match="python3-libnvinfer"):
        import_tensorrt()
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    with pytest.raises(TensorRTUnavailable, match="python3-libnvinfer"):
        TensorRTBackend(str(engine))
    with pytest.raises(TensorRTUnavailable, match="python3-libnvinfer"):
        create_backend("tensorrt", str(models_dir / "emotion.onnx"))
    with pytest.raises(TensorRTUnavailable, match="python3-libnvinfer"):
        eb.build_engine(models_dir / "emotion.onnx", tmp_path / "e.engine", eb.BuildOptions(), echo=lambda s: None)
    with pytest.raises(BackendError, match="is an ONNX model"):
        TensorRTBackend(str(models_dir / "emotion.onnx"))


def test_clear_errors_without_pycuda_or_gpu(tmp_path, monkeypatch):
    from edge_infer.backends.tensorrt import cuda as cuda_mem
    from edge_infer.backends.tensorrt.runtime import TensorRTBackend
    from edge_infer.backends.tensorrt.trt import availability

    if __import__("importlib").util.find_spec("pycuda") is None:
        with pytest.raises(cuda_mem.CudaUnavailable, match="pip install pycuda"):
            cuda_mem.import_pycuda()
        monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt("10.3.0"))
        engine = tmp_path / "m.engine"
        engine.write_bytes(b"x")
        with pytest.raises(cuda_mem.CudaUnavailable, match="pip install pycuda"):
            TensorRTBackend(str(engine))
    if cuda_mem.gpu_count() == 0:
        ok, reason = availability()
        assert not ok and any(s in reason for s in ("python3-libnvinfer", "pycuda", "no CUDA GPU"))


def test_backend_selection_auto_and_errors(models_dir, caplog):
    import edge_infer.backends as backends

    chosen, reason = backends.resolve_auto()
    if chosen == "tensorrt":
        pytest.skip("TensorRT + GPU present: auto selects TensorRT here (covered by the gpu tests)")
    assert chosen == "onnxruntime" and reason
    backends._auto_logged.clear()
    path = str(models_dir / "emotion.onnx")
    with caplog.at_level(logging.INFO, logger="edge_infer.backends"):
        b1 = create_backend("auto", path, providers=["cpu"], engine_build="auto", precision="fp16")
        b2 = create_backend("auto", path)
    assert b1.name.startswith("onnxruntime") and b2.name.startswith("onnxruntime")
    logged = [r.getMessage() for r in caplog.records if "backend auto" in r.getMessage()]
    assert len(logged) == 1 and "onnxruntime" in logged[0] and "emotion.onnx" in logged[0]
    out = b1.run({"input": np.zeros((2, 1, 64, 64), np.float32)})
    assert out["scores"].shape == (2, 7)
    with pytest.raises(BackendError, match="cannot load .*give the .onnx model"):
        create_backend("auto", str(models_dir / "emotion.fp16.engine"))
    with pytest.raises(BackendError, match="unknown backend"):
        create_backend("tflite", path)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_build_print_command_and_errors(models_dir, capsys, tmp_path):
    from edge_infer.cli import main

    rc = main(["build", "emotion", "--models-dir", str(models_dir), "--batch", "1:2:8", "--print-command", "trtexec",
               "--engine-dir", str(tmp_path), "--trt-major", "10"])
    out = capsys.readouterr().out.strip()
    assert rc == 0
    assert out.startswith("trtexec --onnx=") and "--optShapes=input:2x1x64x64" in out and "--maxShapes=input:8x1x64x64" in out
    assert f"--timingCacheFile={tmp_path}/timing.trt10" in out and "--fp16" in out and "--skipInference" in out
    # TensorRT 11: no removed flag; the FP16 ONNX (made here, by the project's converter) is built strongly typed
    rc = main(["build", "emotion", "--models-dir", str(models_dir), "--precision", "fp16", "--print-command", "trtexec",
               "--trt-major", "11", "--engine-dir", str(tmp_path)])
    out = capsys.readouterr().out.strip().split()
    assert rc == 0 and not {"--fp16", "--int8"} & set(out) and "--stronglyTyped" in out
    assert out[1] == f"--onnx={tmp_path}/emotion.fp16.onnx" and (tmp_path / "emotion.fp16.onnx").is_file()
    rc = main(["build", "face_mesh", "--models-dir", str(models_dir), "--print-command", "polygraphy", "--json",
               "--engine-dir", str(tmp_path), "--timing-cache", "none"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["results"][0]["command"][:2] == ["polygraphy", "convert"]
    assert "--load-timing-cache" not in doc["results"][0]["command"]
    assert main(["build", "--models-dir", str(models_dir), "--print-command", "trtexec"]) == 2
    assert "give a zoo model name" in capsys.readouterr().err
    if not HAVE_TRT:
        assert main(["build", "emotion", "--models-dir", str(models_dir), "--engine-dir", str(tmp_path)]) == 2
        assert "python3-libnvinfer" in capsys.readouterr().err


@needs_no_trt
def test_cli_selftest_fails_clearly_without_tensorrt(models_dir):
    env = {**os.environ, "EDGE_INFER_MODELS": str(models_dir)}
    proc = subprocess.run([sys.executable, "-m", "edge_infer.cli", "selftest"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 1
    assert "[FAIL] tensorrt: TensorRT is unavailable on this machine" in proc.stdout
    assert "python3-libnvinfer" in proc.stdout and "selftest: FAIL" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "edge_infer.cli", "selftest", "--json"], capture_output=True,
                          text=True, env=env, timeout=120)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["ok"] is False
    assert [c["status"] for c in doc["checks"]] == ["FAIL", "SKIP", "SKIP", "SKIP", "SKIP"]
