"""Hostile TensorRT engines and ONNX external data (issue 19, "engines are code" and "reads outside the model's
folder"): each case gets one line, deserializes nothing, changes nothing, and stays within the memory bound.

What is real here: the CLI (`edge-infer inspect`, `edge-infer build`) in a fresh process (test/hostile.py), the
sidecar / signature / permission checks, the engine cache, onnx. What is a FAKE: TensorRT and CUDA
(test/fake_tensorrt.py with the real bindings' constants, test/fake_cuda.py), because TensorRT's libraries and a
GPU cannot exist on this machine. The fake records every ``deserialize_cuda_engine`` call, so "deserialize was
never called" is observed, not assumed. On this machine the CLI cannot deserialize at all (no TensorRT): the CLI
cases show that the refusal comes from the gate, before TensorRT is imported.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_infer.backends.tensorrt import build as eb
from edge_infer.backends.tensorrt import cache as ec
from edge_infer.backends.tensorrt import cuda
from edge_infer.backends.tensorrt import engine_trust as et
from edge_infer.backends.tensorrt import sidecar as sc
from edge_infer.fileio import sha256_file

sys.path.insert(0, str(Path(__file__).parent))
import trt_bindings  # noqa: E402
from fake_cuda import FakeCudaDevice  # noqa: E402
from fake_tensorrt import make_fake_tensorrt  # noqa: E402
from hostile import changed_paths, run_cli, tree_snapshot  # noqa: E402

KEY = "k" * 32  # an engine key for the signed cases (any >= 16 bytes)
IDENTITY = sc.engine_identity("10.3.0", "Fake Orin", "8.7")


@pytest.fixture(autouse=True)
def no_engine_key(monkeypatch):
    """Every case starts without a key; cases that need one set it (the CLI children inherit os.environ)."""
    monkeypatch.delenv(et.KEY_FILE_ENV, raising=False)
    monkeypatch.delenv(et.KEY_ENV, raising=False)


@pytest.fixture
def fake_trt(monkeypatch):
    """The FAKE TensorRT 10.3.0 (constants from its real bindings) and a fake CUDA device, installed in-process."""
    dev = FakeCudaDevice()
    try:
        fake = make_fake_tensorrt("10.3.0", device=dev)
    except trt_bindings.Unavailable as e:
        pytest.skip(f"real TensorRT bindings unavailable (the fake takes its constants from them): {e}")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(cuda, "open_device", lambda index=0, layer="auto": dev)
    return fake


def deserialized(fake) -> list[tuple]:
    return [c for c in fake.calls if c[0] == "deserialize_cuda_engine"]


def built_engine(folder: Path, payload: bytes = b"FAKE-ENGINE-BYTES", name: str = "m.fp32.engine") -> Path:
    """An engine + sidecar as the builder writes them (signed when a key is configured: write_sidecar signs)."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = folder / name
    engine.write_bytes(payload)
    sc.write_sidecar(engine, {"identity": IDENTITY, "onnx": "m.onnx", "engine_bytes": len(payload),
                              "engine_sha256": sha256_file(engine), "build_options": {"dla_core": None}})
    return engine


def key_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets" / "engine.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KEY + "\n")
    path.chmod(mode)
    return path


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg, msg
    return msg


# ---------------------------------------------------------------------------------------------- hostile engines
def _no_sidecar(folder: Path) -> Path:
    engine = folder / "m.fp32.engine"
    folder.mkdir(parents=True, exist_ok=True)
    engine.write_bytes(b"ATTACKER-ENGINE")
    return engine


def _wrong_sha(folder: Path) -> Path:
    engine = built_engine(folder)
    meta = json.loads(sc.sidecar_path(engine).read_text())
    meta["engine_sha256"] = "0" * 64
    sc.sidecar_path(engine).write_text(json.dumps(meta))
    return engine


def _tampered_bytes(folder: Path) -> Path:
    engine = built_engine(folder)
    engine.write_bytes(b"EVIL-ENGINE-BYTES")  # same size as the built one: only the sha256 can tell
    return engine


def _forged_sidecar(folder: Path) -> Path:
    """Key configured; the attacker replaces the engine and rewrites the sidecar's sha256, but cannot sign."""
    engine = built_engine(folder)  # signed (the key is set by the case)
    engine.write_bytes(b"EVIL-ENGINE-BYTES")
    meta = json.loads(sc.sidecar_path(engine).read_text())
    meta["engine_sha256"] = sha256_file(engine)
    sc.sidecar_path(engine).write_text(json.dumps(meta, indent=2) + "\n")  # not through write_sidecar: no key
    return engine


def _missing_tag(folder: Path) -> Path:
    engine = built_engine(folder)
    et.tag_path(engine).unlink()
    return engine


def _world_writable_folder(folder: Path) -> Path:
    engine = built_engine(folder)
    folder.chmod(0o1777)  # even with the sticky bit (a /tmp-like folder)
    return engine


def _world_writable_engine(folder: Path) -> Path:
    engine = built_engine(folder)
    engine.chmod(0o666)
    return engine


# name -> (make, key configured, what the line must say)
HOSTILE = {
    "no_sidecar": (_no_sidecar, False, ("no metadata sidecar", "move it away", "--cache force")),
    "wrong_sha256": (_wrong_sha, False, ("does not match the sha256", "--cache force")),
    "tampered_bytes": (_tampered_bytes, False, ("does not match the sha256", "--cache force")),
    "forged_sidecar_with_key": (_forged_sidecar, True, ("signature m.fp32.engine.hmac does not verify", "--cache force")),
    "missing_hmac_with_key": (_missing_tag, True, ("no signature m.fp32.engine.hmac", "--cache force")),
    "world_writable_folder": (_world_writable_folder, False, ("engine folder", "world-writable", "sticky bit")),
    "world_writable_engine": (_world_writable_engine, False, ("engine file", "world-writable")),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_engine_is_never_deserialized_by_inspect_or_the_runtime(case, fake_trt, tmp_path, monkeypatch):
    from edge_infer.backends.tensorrt.engine_info import inspect_engine
    from edge_infer.backends.tensorrt.runtime import TensorRTBackend

    make, with_key, needles = HOSTILE[case]
    if with_key:
        monkeypatch.setenv(et.KEY_ENV, KEY)
    engine = make(tmp_path / "engines")
    before = tree_snapshot(tmp_path)
    for load in (inspect_engine, TensorRTBackend, lambda p: TensorRTBackend(str(p), verify_sidecar=False)):
        with pytest.raises(et.UntrustedEngineError) as e:
            load(engine)
        line = one_line(e.value)
        assert str(engine) in line and all(n in line for n in needles), line
    assert deserialized(fake_trt) == []  # the fake records every call: TensorRT never saw the bytes
    assert changed_paths(before, tree_snapshot(tmp_path)) == []


def test_valid_engine_deserializes_signed_and_unsigned(fake_trt, tmp_path, monkeypatch, caplog):
    from edge_infer.backends.tensorrt.engine_info import inspect_engine
    from edge_infer.backends.tensorrt.runtime import TensorRTBackend

    # signed: key from a 0600 file, tag written by write_sidecar, verified by inspect and the runtime
    monkeypatch.setenv(et.KEY_FILE_ENV, str(key_file(tmp_path)))
    engine = built_engine(tmp_path / "signed")
    tag = et.tag_path(engine).read_text()
    assert tag.startswith(et.TAG_PREFIX) and len(tag.strip()) == len(et.TAG_PREFIX) + 64
    info = inspect_engine(engine)
    assert info["trust"] == "sha256 + signature verified" and [t["name"] for t in info["tensors"]] == ["input", "scores"]
    backend = TensorRTBackend(str(engine))
    out = backend.run({"input": np.ones((2, 1, 4, 4), np.float32)})["scores"]
    backend.close()
    assert np.allclose(out, 16.0 + np.arange(3))
    assert deserialized(fake_trt) == [("deserialize_cuda_engine", engine.stat().st_size, -1)] * 2
    if shutil.which("openssl"):  # the documented recipe reproduces the tag without edge_infer (a fleet's signer)
        msg = f"edge_infer-engine-hmac-v1\n{sha256_file(engine)}\n{sha256_file(sc.sidecar_path(engine))}\n"
        out_ssl = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", KEY], input=msg.encode(), capture_output=True)
        assert out_ssl.stdout.decode().split()[-1] == tag.strip()[len(et.TAG_PREFIX):]

    # unsigned, no key: integrity only, said once at INFO for the process, not a warning per engine
    monkeypatch.delenv(et.KEY_FILE_ENV)
    plain = built_engine(tmp_path / "plain")
    assert not et.tag_path(plain).exists()
    monkeypatch.setattr(et, "_integrity_only_noted", False)  # as in a fresh process
    with caplog.at_level(logging.INFO, logger="edge_infer.backends.tensorrt"):
        assert inspect_engine(plain)["trust"] == "sha256 verified (no engine key)"
        TensorRTBackend(str(plain)).close()
    notes = [r for r in caplog.records if "no engine key" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(deserialized(fake_trt)) == 4


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_engine_folder_owned_by_another_user_is_a_warning(fake_trt, tmp_path, caplog):
    from edge_infer.backends.tensorrt.runtime import TensorRTBackend

    engine = built_engine(tmp_path / "shared")
    os.chown(engine.parent, 4242, 4242)
    with caplog.at_level(logging.WARNING, logger="edge_infer.backends.tensorrt"):
        TensorRTBackend(str(engine)).close()
        TensorRTBackend(str(engine)).close()
    warned = [r.getMessage() for r in caplog.records if "owned by uid 4242" in r.getMessage()]
    assert len(warned) == 1 and "engine folder" in warned[0]  # once per path, and the engine still loads
    assert len(deserialized(fake_trt)) == 2


def test_engine_key_configuration_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv(et.KEY_FILE_ENV, str(key_file(tmp_path, 0o644)))
    with pytest.raises(et.EngineKeyError, match=r"permissions 0644.*chmod 600"):
        et.engine_key()
    monkeypatch.setenv(et.KEY_FILE_ENV, str(key_file(tmp_path, 0o600)))
    assert et.engine_key() == KEY.encode()  # the trailing newline is not part of the key
    monkeypatch.setenv(et.KEY_ENV, KEY)
    with pytest.raises(et.EngineKeyError, match="set only one"):
        et.engine_key()
    monkeypatch.delenv(et.KEY_FILE_ENV)
    monkeypatch.setenv(et.KEY_ENV, "short")
    with pytest.raises(et.EngineKeyError, match="at least 16"):
        et.engine_key()
    monkeypatch.delenv(et.KEY_ENV)
    os.mkfifo(tmp_path / "fifo")  # never opened: opening a FIFO would block the node
    monkeypatch.setenv(et.KEY_FILE_ENV, str(tmp_path / "fifo"))
    with pytest.raises(et.EngineKeyError, match="not a regular file"):
        et.engine_key()


# ---------------------------------------------------------------------------------------------- the engine cache
def _external_onnx(folder: Path, location: str = "m.onnx.data") -> Path:
    """A MatMul model whose weight is external data at ``location`` (rewritten after saving)."""
    folder.mkdir(parents=True, exist_ok=True)
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    path = folder / "m.onnx"
    onnx.save(helper.make_model(g), str(path), save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    if location != "m.onnx.data":
        model = onnx.load(str(path), load_external_data=False)
        for e in model.graph.initializer[0].external_data:
            if e.key == "location":
                e.value = location
        onnx.save(model, str(path))
    return path


def _builder(calls: list):
    def build(onnx_path, engine_path, options, **kw):
        calls.append(Path(engine_path))
        Path(engine_path).parent.mkdir(parents=True, exist_ok=True)
        Path(engine_path).write_bytes(b"E%d" % len(calls))
        sc.write_sidecar(engine_path, eb.build_metadata(Path(onnx_path), Path(engine_path), options, IDENTITY, 0.1))
    return build


def test_engine_cache_never_replaces_a_file_it_did_not_create(tmp_path):
    onnx_path = _external_onnx(tmp_path / "models")
    opts = eb.BuildOptions(precision="fp32")
    calls: list = []
    victim = tmp_path / "notes.txt"
    victim.write_text("my notes\n")
    link_target = tmp_path / "elsewhere.bin"
    link_target.write_bytes(b"keep")
    link = tmp_path / "engines" / "link.engine"
    link.parent.mkdir()
    link.symlink_to(link_target)
    other_json = tmp_path / "engines" / "cfg"
    (tmp_path / "engines" / "cfg.json").write_text('{"mine": true}')
    before = tree_snapshot(tmp_path)
    for target, needle in ((victim, "was not written by edge-infer"), (link, "symbolic link"),
                           (other_json, "was not written by edge-infer")):
        for policy in ("auto", "force"):
            with pytest.raises(sc.EngineCacheError) as e:
                ec.get_engine(onnx_path, opts, tmp_path / "engines", policy, IDENTITY, _builder(calls),
                              engine_path=target)
            assert needle in one_line(e.value) and "move it away" in str(e.value)
    assert calls == [] and changed_paths(before, tree_snapshot(tmp_path)) == []
    # its own engines it does replace: built, then rebuilt after the ONNX changed
    own = tmp_path / "engines" / "m.fp32.engine"
    assert ec.get_engine(onnx_path, opts, own.parent, "auto", IDENTITY, _builder(calls)).action == "built"
    assert ec.get_engine(onnx_path, opts, own.parent, "force", IDENTITY, _builder(calls)).action == "rebuilt"
    assert own.read_bytes() == b"E2"


def test_engine_cache_refuses_a_world_writable_folder_and_rebuilds_unsigned_engines_under_a_key(tmp_path, monkeypatch):
    onnx_path = _external_onnx(tmp_path / "models")
    opts = eb.BuildOptions(precision="fp32")
    calls: list = []
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(et.UntrustedEngineError, match="world-writable"):
        ec.get_engine(onnx_path, opts, shared, "auto", IDENTITY, _builder(calls))
    assert calls == [] and list(shared.iterdir()) == []
    cache = tmp_path / "engines"
    assert ec.get_engine(onnx_path, opts, cache, "auto", IDENTITY, _builder(calls)).action == "built"  # no key
    monkeypatch.setenv(et.KEY_ENV, KEY)
    with pytest.raises(sc.StaleEngineError, match="no signature m.fp32.engine.hmac"):
        ec.get_engine(onnx_path, opts, cache, "never", IDENTITY, _builder(calls))
    r = ec.get_engine(onnx_path, opts, cache, "auto", IDENTITY, _builder(calls))
    assert r.action == "rebuilt" and "no signature" in r.reasons[0] and et.tag_path(cache / "m.fp32.engine").is_file()
    assert ec.get_engine(onnx_path, opts, cache, "never", IDENTITY, _builder(calls)).action == "cached"


# ---------------------------------------------------------------------------------------------- ONNX external data
def _constant_in_subgraph_onnx(folder: Path, location: str) -> Path:
    """External data on a Constant node inside an If branch (not an initializer): it is read by parsers too."""
    folder.mkdir(parents=True, exist_ok=True)
    t = numpy_helper.from_array(np.ones((4, 4), np.float32), "c")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", location
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])
    branch = helper.make_graph([helper.make_node("Constant", [], ["y"], value=t)], "branch", [], [y])
    g = helper.make_graph([helper.make_node("If", ["c0"], ["y"], then_branch=branch, else_branch=branch)], "g",
                          [helper.make_tensor_value_info("c0", TensorProto.BOOL, [])], [y])
    path = folder / "m.onnx"
    onnx.save(helper.make_model(g), str(path))
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "constant_in_subgraph"])
def test_onnx_digest_refuses_external_data_outside_the_model_folder(kind, tmp_path, monkeypatch):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.ones(16, np.float32).tobytes())
    location = {"dotdot": "../outside.bin", "absolute": "/etc/passwd", "symlink": "link.bin",
                "constant_in_subgraph": "../outside.bin"}[kind]
    make = _constant_in_subgraph_onnx if kind == "constant_in_subgraph" else _external_onnx
    model = make(tmp_path / "models", location)
    if kind == "symlink":
        (model.parent / "link.bin").symlink_to(outside)
    hashed: list[str] = []
    monkeypatch.setattr(sc, "sha256_file", lambda p, *a: hashed.append(str(p)) or "0" * 64)
    with pytest.raises(sc.UnsafeExternalDataError) as e:
        sc.onnx_digest(model)
    line = one_line(e.value)
    assert str(model) in line and repr(location) in line and ("outside the model's folder" in line
                                                              or "not a relative path" in line)
    assert hashed == []  # refused before anything was hashed: neither the model nor the outside file


def test_onnx_digest_still_covers_external_data_inside_the_folder(tmp_path, monkeypatch):
    model = _external_onnx(tmp_path / "models", "weights/m.bin")
    (model.parent / "weights").mkdir()
    shutil.move(model.parent / "m.onnx.data", model.parent / "weights" / "m.bin")
    hashed: list[str] = []
    real = sc.sha256_file
    monkeypatch.setattr(sc, "sha256_file", lambda p, *a: hashed.append(Path(p).name) or real(p))
    digest = sc.onnx_digest(model)
    assert hashed == ["m.onnx", "m.bin"] and digest != real(model)


# ---------------------------------------------------------------------------------------------- the CLI
def test_cli_refuses_hostile_engines_and_external_data_in_one_line(tmp_path, monkeypatch):
    """`edge-infer inspect` / `build` in fresh processes: exit 2, one line, nothing changed, bounded memory."""
    engines = tmp_path / "engines"
    keyed = {et.KEY_FILE_ENV: str(key_file(tmp_path))}
    cases = [
        (["inspect", str(_no_sidecar(engines / "a"))], {}, ("no metadata sidecar",)),
        (["inspect", str(_tampered_bytes(engines / "b"))], {}, ("does not match the sha256", "--cache force")),
        (["inspect", str(_world_writable_folder(engines / "c"))], {}, ("world-writable",)),
    ]
    monkeypatch.setenv(et.KEY_FILE_ENV, keyed[et.KEY_FILE_ENV])  # the signed engines are written with the key
    forged = _forged_sidecar(engines / "d")
    signed = built_engine(engines / "e")
    monkeypatch.delenv(et.KEY_FILE_ENV)
    loose = {et.KEY_FILE_ENV: str(key_file(tmp_path / "loose", 0o644))}
    victim = tmp_path / "notes.txt"
    victim.write_text("my notes\n")
    cases += [
        (["inspect", str(forged)], keyed, ("does not verify",)),
        (["inspect", str(signed)], loose, ("permissions 0644", "chmod 600")),
        (["build", str(_external_onnx(tmp_path / "m1", "../outside.bin")), "--precision", "fp32", "--print-command",
          "trtexec", "--trt-major", "10", "--engine-dir", str(tmp_path / "out")], {}, ("'../outside.bin'", "outside")),
        (["build", str(_external_onnx(tmp_path / "m2")), "--precision", "fp32", "-o", str(victim), "--cache", "force"],
         {}, ("was not written by edge-infer",)),
    ]
    for args, env, needles in cases:
        before = tree_snapshot(tmp_path)
        run = run_cli(args, cwd=tmp_path, env=env)
        run.assert_one_line_error(*needles)
        run.assert_memory_bounded()
        assert changed_paths(before, tree_snapshot(tmp_path)) == [], args
    assert victim.read_text() == "my notes\n"
    # the valid signed engine passes the gate; here it then stops where TensorRT would be imported
    run = run_cli(["inspect", str(signed)], cwd=tmp_path, env=keyed)
    run.assert_one_line_error("tensorrt")
    assert "sha256" not in run.stderr and "signature" not in run.stderr
