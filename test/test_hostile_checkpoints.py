"""Hostile PyTorch checkpoints (issue 19): a file never chooses code to run, and a file that is no checkpoint says so.

Each crafted file goes through the real `edge-infer` CLI: in a fresh process with test/hostile.py's probe
where memory or a side effect outside the process is at stake (peak RSS over the baseline, files created),
in this process (cli.main) where only the error line matters. Every refused case asserts: exit 2 with one
line, no code from the file ran (a marker file the payload would create is absent), and nothing outside the
command's output changed. The safetensors path is checked on the real zoo emotion model: its ONNX export gives
the same numbers as the export of the zoo's own .pt.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from edge_infer.backends import checkpoint_format as fmt  # noqa: E402
from edge_infer.backends.torch_checkpoint import CheckpointError, build_module, load_checkpoint  # noqa: E402
from edge_infer.cli import main  # noqa: E402
from hostile import CliRun, changed_paths, run_cli, tree_snapshot  # noqa: E402

NOT_A_CHECKPOINT = "is not a PyTorch checkpoint"


@pytest.fixture(scope="module")
def zoo_checkpoint(models_dir: Path) -> Path:
    from edge_infer.models.spec import load_zoo

    path = models_dir / load_zoo().model("emotion").extra["checkpoint"]  # config/models.yaml: emotion_mini_xception.pt
    assert path.is_file(), "the zoo fetch writes the emotion checkpoint next to emotion.onnx"
    return path


def cli(capsys, *argv: str) -> CliRun:
    """`edge-infer <argv>` in this process (no RSS figure): for cases where only the error line matters."""
    capsys.readouterr()  # what the test printed before is not the command's output
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return CliRun(rc, out, err, 0.0)


def assert_no_trust_hint(line: str) -> None:
    """A file that is not a checkpoint must not nudge the user towards the unsafe flag."""
    assert "trust" not in line.lower() and "pickle code execution" not in line, line


def export_refused(ckpt: Path, *needles: str, trust_hint: bool = False) -> str:
    """`edge-infer export ckpt` in a fresh process, run in the checkpoint's folder: one error line with the
    needles, no output and nothing else in that folder changed, peak RSS within the bound; returns the line."""
    folder, out = ckpt.parent, ckpt.parent / "out.onnx"
    before = tree_snapshot(folder)
    r = run_cli(["export", ckpt, out], cwd=folder)
    line = r.assert_one_line_error(*needles)
    print(line, f"(peak RSS +{r.peak_over_baseline_mb:.0f} MB)")
    if not trust_hint:
        assert_no_trust_hint(line)
    assert not out.exists() and changed_paths(before, tree_snapshot(folder)) == []
    r.assert_memory_bounded()
    return line


# ------------------------------------------------------------------------------------------------ crafted files
class _Trap:
    """Unpickling this creates ``path``: proof that code from a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class _StorageRef:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _TensorClaim:
    """Pickles like torch's own tensors (_rebuild_tensor_v2 over a persistent storage) with any claimed size."""

    def __init__(self, ref: _StorageRef, numel: int) -> None:
        self.ref, self.numel = ref, numel

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (self.ref, 0, (self.numel,), (1,), False, collections.OrderedDict()))


class _TorchPickler(pickle.Pickler):
    legacy = False

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            pid = ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
            return pid + (None,) if self.legacy else pid
        return None


def _pickle(obj, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    p = _TorchPickler(buf, protocol=2)
    p.legacy = legacy
    p.dump(obj)
    return buf.getvalue()


def _torch_zip(path: Path, data_pkl: bytes, records: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    """A torch.save-layout archive written member by member (what torch's reader accepts); ``compression``
    applies to the tensor records."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, data in records.items():
            z.writestr(f"archive/data/{key}", data, compress_type=compression, compresslevel=1)
        z.writestr("archive/version", "3\n")
    return path


class _SetstateWritesMarker(torch.nn.Module):
    """A TorchScript module whose __setstate__ (run by torch.jit.load) creates a file: code stored in the archive."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.marker, self.scale, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.marker = state[0]
        created = torch.from_file(self.marker, shared=True, size=1, dtype=torch.uint8)  # creates the file
        self.scale = state[1] + created.float().sum() * 0  # uses the result: not dead code
        self.training = state[2]


# ------------------------------------------------------------------------------------------------ code execution
def test_checkpoint_naming_a_module_class_runs_nothing(tmp_path: Path) -> None:
    """The issue's repro: a weights-only dict whose config names subprocess:run with the args `touch pwned`."""
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model_state_dict": {}, "config": {"architecture": "subprocess:run", "args": ["touch", "pwned"]}}, ckpt)
    export_refused(ckpt, "unknown architecture 'subprocess:run'", "named by the checkpoint", "mini_xception", "--arch")
    assert not (tmp_path / "pwned").exists()


def test_module_class_arch_needs_trust_too(tmp_path: Path, capsys) -> None:
    """--arch package.module:Class comes from the user, but importing it still runs code: it needs both flags."""
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model_state_dict": {}, "config": {"args": ["touch", str(tmp_path / "pwned")]}}, ckpt)
    before = tree_snapshot(tmp_path)
    line = cli(capsys, "export", ckpt, tmp_path / "out.onnx", "--arch", "subprocess:run").assert_one_line_error(
        "--arch 'subprocess:run'", "--trust-checkpoint")
    print(line)
    assert not (tmp_path / "pwned").exists()
    assert changed_paths(before, tree_snapshot(tmp_path)) == []


def test_config_feeds_registry_constructors_plain_named_values_only(tmp_path: Path) -> None:
    class Tiny(torch.nn.Module):
        def __init__(self, width: int = 2, **extra) -> None:
            super().__init__()
            self.extra = extra
            self.fc = torch.nn.Linear(width, 1)

    registry = {"tiny": Tiny}
    ckpt = tmp_path / "tiny.pt"
    torch.save({"model_state_dict": Tiny(3).state_dict(),
                "config": {"architecture": "tiny", "width": 3, "cmd": ["touch", "x"]}}, ckpt)
    model, arch = build_module(load_checkpoint(ckpt), registry)
    assert arch == "tiny" and model.fc.in_features == 3 and model.extra == {}  # **extra gets nothing from the file
    torch.save({"model_state_dict": Tiny(3).state_dict(), "config": {"architecture": "tiny", "width": {"n": 3}}}, ckpt)
    with pytest.raises(CheckpointError, match="parameter 'width' a dict; only JSON numbers"):
        build_module(load_checkpoint(ckpt), registry)
    # a trusted module:Class from the command line gets the user's --kwargs only, never the file's config
    model, arch = build_module(load_checkpoint(ckpt), {}, f"{__name__}:_ConfigProbe", {"width": 5}, trust=True)
    assert arch.endswith(":_ConfigProbe") and model.kwargs == {"width": 5}


class _ConfigProbe(torch.nn.Module):
    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = kwargs
        self.fc = torch.nn.Linear(3, 1)


def test_torchscript_needs_trust_and_runs_only_with_it(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "setstate_ran"
    archive = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(_SetstateWritesMarker(str(marker))), archive)
    assert not marker.exists()
    out = tmp_path / "out.onnx"
    before = tree_snapshot(tmp_path)
    line = cli(capsys, "export", archive, out, "--input-shape", "1x2").assert_one_line_error(
        "is a TorchScript archive", "runs code", "--trust-checkpoint")
    print(line)
    assert not marker.exists() and changed_paths(before, tree_snapshot(tmp_path)) == []
    assert fmt.identify(archive).kind == "torchscript"  # by member names, nothing loaded
    # the user opted in: torch.jit.load runs the archive's __setstate__, and the export works
    r = cli(capsys, "export", archive, out, "--input-shape", "1x2", "--trust-checkpoint", "--json")
    assert r.rc == 0 and json.loads(r.stdout)["checkpoint_format"] == "torchscript" and out.is_file()
    assert marker.exists()


def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    from edge_infer.models.architectures import MiniXception

    marker = tmp_path / "unpickled"
    model = MiniXception()
    model.trap = _Trap(marker)  # what an attacker's module would carry along
    ckpt = tmp_path / "module.pt"
    torch.save(model, ckpt)
    export_refused(ckpt, "needs pickle code execution", "a pickled nn.Module", "MiniXception", "--trust-checkpoint",
                   trust_hint=True)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------ not a checkpoint
def test_truncated_zoo_checkpoint_is_not_a_checkpoint(zoo_checkpoint: Path, tmp_path: Path) -> None:
    data = zoo_checkpoint.read_bytes()
    trunc = tmp_path / "truncated.pt"
    trunc.write_bytes(data[: len(data) * 2 // 3])
    export_refused(trunc, NOT_A_CHECKPOINT, "truncated", "truncated.pt")


@pytest.mark.parametrize("name, content, why", [
    ("random.pt", bytes(np.random.default_rng(19).integers(0, 256, 4096, dtype=np.uint8)), "unknown content"),
    ("empty.pt", b"", "empty"),
    ("notes.pt", b"these are not weights\n" * 20, "text file"),
    ("plain_pickle.pt", pickle.dumps({"w": [1.0, 2.0]}, protocol=2), "without torch's magic number"),
    ("arrays.pt", None, "without a <folder>/data.pkl"),  # a zip that is no torch archive (numpy's .npz)
])
def test_files_that_are_no_checkpoint_say_so(tmp_path: Path, capsys, name: str, content: bytes | None, why: str) -> None:
    path = tmp_path / name
    if content is None:
        np.savez(path.with_suffix(".npz"), w=np.ones(3))
        path.with_suffix(".npz").rename(path)
    else:
        path.write_bytes(content)
    before = tree_snapshot(tmp_path)
    line = cli(capsys, "export", path, tmp_path / "out.onnx").assert_one_line_error(NOT_A_CHECKPOINT, why)
    assert_no_trust_hint(line)
    assert changed_paths(before, tree_snapshot(tmp_path)) == []


def test_damaged_pickles_are_not_checkpoints(tmp_path: Path, capsys) -> None:
    """A torch.save layout whose pickle is garbage, and a truncated legacy (non-zip) torch.save file."""
    garbage = _torch_zip(tmp_path / "garbage.pt", b"\x80\x02" + bytes(range(33, 200)) + b".", {})
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(64)}, legacy, _use_new_zipfile_serialization=False)
    assert load_checkpoint(legacy).state_dict["w"].sum() == 64  # the legacy format itself still loads
    legacy.write_bytes(legacy.read_bytes()[:90])
    for path, why in ((garbage, "damaged"), (legacy, "truncated")):
        line = cli(capsys, "export", path, tmp_path / "out.onnx").assert_one_line_error(NOT_A_CHECKPOINT, why)
        assert_no_trust_hint(line)


# ------------------------------------------------------------------------------------------------ memory
def test_zip_bomb_is_refused_before_decompressing(tmp_path: Path) -> None:
    """2 MB on disk, a 512 MiB deflated tensor record: torch.load without mmap (the code before) inflated it
    (measured: +1028 MB peak RSS for a 1 GiB record, +179 MB for 256 MiB)."""
    bomb = _torch_zip(tmp_path / "bomb.pt", _pickle({"w": _TensorClaim(_StorageRef("0", 2**27), 2**27)}),
                      {"0": bytes(2**29)}, compression=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 3 * 2**20
    export_refused(bomb, NOT_A_CHECKPOINT, "'archive/data/0' is compressed")


def test_tensor_claims_beyond_the_file_are_refused(tmp_path: Path, capsys) -> None:
    """Zip: a 4 GB tensor over a 16-byte record. Legacy format: a 400 GB storage that torch allocates before reading
    (lazily: measured +2 MB), then refuses."""
    claim = _torch_zip(tmp_path / "claim.pt", _pickle({"w": _TensorClaim(_StorageRef("0", 10**9), 10**9)}),
                       {"0": bytes(16)})
    line = cli(capsys, "export", claim, tmp_path / "out.onnx").assert_one_line_error(NOT_A_CHECKPOINT, "claims more")
    assert_no_trust_hint(line)
    legacy = tmp_path / "legacy_claim.pt"
    with open(legacy, "wb") as f:
        for obj in (fmt.TORCH_MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True,
                                                   "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(obj, f, protocol=2)
        f.write(_pickle({"w": _TensorClaim(_StorageRef("0", 10**11), 10**11)}, legacy=True))
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", 4) + bytes(16))
    export_refused(legacy, NOT_A_CHECKPOINT, "claims more")


def test_archive_bounds(tmp_path: Path, capsys) -> None:
    """Bounds checked from the archive's directory, before any reader builds objects for what it claims."""
    # data.pkl over MAX_PICKLE_BYTES: a crafted 2 MiB pickle peaks at ~150 MB in torch's weights-only unpickler
    big = _torch_zip(tmp_path / "big_pickle.pt", b"\x80\x02(" + b"]" * fmt.MAX_PICKLE_BYTES + b"l.", {})
    cli(capsys, "export", big, tmp_path / "o.onnx").assert_one_line_error("MAX_PICKLE_BYTES", ".safetensors")
    # a central directory over MAX_ZIP_DIRECTORY_BYTES (zipfile keeps ~600 bytes per member): only its end record
    cd = fmt.MAX_ZIP_DIRECTORY_BYTES + 1
    many = tmp_path / "many.pt"
    many.write_bytes(b"PK\x03\x04" + bytes(cd + 16) + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF,
                                                                  cd, 20, 0))
    cli(capsys, "export", many, tmp_path / "o.onnx").assert_one_line_error("MAX_ZIP_DIRECTORY_BYTES")
    # a safetensors header over MAX_SAFETENSORS_HEADER_BYTES (safetensors takes ~15 bytes per header byte)
    header = b"{" + b" " * fmt.MAX_SAFETENSORS_HEADER_BYTES + b"}"
    st = tmp_path / "big_header.safetensors"
    st.write_bytes(struct.pack("<Q", len(header)) + header)
    cli(capsys, "export", st, tmp_path / "o.onnx").assert_one_line_error("MAX_SAFETENSORS_HEADER_BYTES")
    assert not (tmp_path / "o.onnx").exists()


# ------------------------------------------------------------------------------------------------ safetensors
def test_safetensors_export_matches_the_zoo_checkpoint(zoo_checkpoint: Path, models_dir: Path, tmp_path: Path,
                                                       capsys) -> None:
    from edge_infer.backends import create_backend
    from edge_infer.offline.inputs import model_inputs

    sd = torch.load(zoo_checkpoint, weights_only=True)["model_state_dict"]
    st = tmp_path / "emotion.safetensors"
    safetensors_torch.save_file(sd, st)
    r = cli(capsys, "export", st, tmp_path / "st.onnx", "--arch", "mini_xception", "--json")
    assert r.rc == 0, r.stderr
    assert json.loads(r.stdout)["checkpoint_format"] == "safetensors"
    r = cli(capsys, "export", zoo_checkpoint, tmp_path / "pt.onnx", "--json")  # the zoo's own .pt still exports
    assert r.rc == 0 and json.loads(r.stdout)["checkpoint_format"] == "model_state_dict", r.stderr
    st_be = create_backend("onnxruntime", str(tmp_path / "st.onnx"))
    pt_be = create_backend("onnxruntime", str(tmp_path / "pt.onnx"))
    feeds = model_inputs("emotion", "emotion", st_be.inputs, models_dir).feeds
    got = np.concatenate([st_be.run(f)["scores"] for f in feeds])
    want = np.concatenate([pt_be.run(f)["scores"] for f in feeds])
    assert len(got) >= 4 and np.allclose(got.sum(axis=1), 1.0, atol=1e-4)
    assert len(set(got.argmax(axis=1))) > 1 or got.std(axis=0).max() > 1e-3  # real, varied outputs
    assert np.abs(got - want).max() <= 1e-6
    # validate with the .safetensors as the torch reference (the torch backend reads it)
    r = cli(capsys, "validate", tmp_path / "st.onnx", st, "--arch", "mini_xception", "--name", "emotion",
            "--models-dir", models_dir, "--json")
    v = json.loads(r.stdout)
    assert r.rc == 0 and v["reference_kind"] == "torch" and v["metrics"]["max_abs"] <= 1e-5 and v["verdict"] == "pass"
    # the file's metadata may name a registry entry (then --arch is not needed), never an importable path
    safetensors_torch.save_file(sd, st, metadata={"architecture": "mini_xception"})
    assert load_checkpoint(st).config == {"architecture": "mini_xception"}
    safetensors_torch.save_file(sd, st, metadata={"architecture": "subprocess:run"})
    cli(capsys, "export", st, tmp_path / "x.onnx").assert_one_line_error("unknown architecture 'subprocess:run'")
    print(f"{len(got)} real face crops: max |safetensors export - .pt export| = {np.abs(got - want).max():.3g}; "
          f"validate vs the .safetensors: max |diff| {v['metrics']['max_abs']:.3g}")


def test_corrupt_safetensors_header_is_one_line(zoo_checkpoint: Path, models_dir: Path, tmp_path: Path) -> None:
    sd = torch.load(zoo_checkpoint, weights_only=True)["model_state_dict"]
    st = tmp_path / "corrupt.safetensors"
    safetensors_torch.save_file(sd, st)
    data = bytearray(st.read_bytes())
    data[8:24] = b'{"conv2d_1.weigh'[::-1]  # the JSON header no longer parses
    st.write_bytes(bytes(data))
    report = tmp_path / "report.json"
    before = tree_snapshot(tmp_path)
    r = run_cli(["validate", models_dir / "emotion.onnx", st, "--arch", "mini_xception", "--report", report],
                cwd=tmp_path)
    line = r.assert_one_line_error("is not a valid safetensors file", "header")
    print(line, f"(peak RSS +{r.peak_over_baseline_mb:.0f} MB)")
    assert_no_trust_hint(line)
    assert changed_paths(before, tree_snapshot(tmp_path), allowed=(report,)) == [] and not report.exists()
    r.assert_memory_bounded()
