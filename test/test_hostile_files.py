"""Files in, files out (issue 19): crafted bundles, zoo files and rosbag2 bags against the commands that read
them, and `bundle -o` over what the command did not make.

Each command-level case runs the real CLI in a fresh python (test/hostile.py) and asserts: exit 2 with one
error line (no traceback), nothing outside the command's output changed, and peak RSS within the issue's
bound over the process's baseline. The many shapes of one malformed input are checked in-process against
every loader that reads it (a subprocess per shape would add only start-up time).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sqlite3
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_infer.bags import IMAGE
from edge_infer.errors import BagError
from edge_infer.models.spec import SpecError, load_zoo
from edge_infer.offline.bundle import BundleError, make_bundle, verify_bundle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import changed_paths, run_cli, tree_snapshot  # noqa: E402

MANIFEST_SCHEMA = "edge_infer/bundle"


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and text, f"not one line: {text!r}"
    return text


# ============================================================================================ bundles: -o
def _foreign_dir(root: Path) -> Path:
    d = root / "deploy"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("the user's own notes\n")
    (d / "sub" / "keep.bin").write_bytes(os.urandom(64))
    return d


def test_bundle_cli_refuses_a_foreign_directory_even_with_force(tmp_path, models_dir):
    """Before: `bundle emotion -o DIR` renamed DIR aside and deleted it (exit 0, the user's files gone)."""
    foreign = _foreign_dir(tmp_path)
    before = tree_snapshot(tmp_path, models_dir)
    run = run_cli(["bundle", "emotion", "-o", foreign, "--force", "--no-sample", "--models-dir", models_dir,
                   "--engine-dir", tmp_path / "no_engines"], cwd=tmp_path)
    run.assert_one_line_error(str(foreign), "not an edge-infer bundle", "refusing")
    run.assert_memory_bounded()
    assert changed_paths(before, tree_snapshot(tmp_path, models_dir)) == []
    assert (foreign / "notes.txt").read_text() == "the user's own notes\n"


def test_bundle_refuses_what_it_did_not_make(tmp_path, models_dir):
    onnx = models_dir / "emotion.onnx"
    foreign = _foreign_dir(tmp_path)
    # a previous bundle with a file the user added: not only a bundle any more, so not even --force replaces it
    prev = tmp_path / "prev"
    make_bundle(prev, [onnx])
    (prev / "my_notes.txt").write_text("mine")
    not_a_bundle_archive = tmp_path / "x.tar.gz"
    not_a_bundle_archive.write_bytes(gzip.compress(b"just some data"))
    tar_of_other_files = tmp_path / "other.tar.gz"
    with tarfile.open(tar_of_other_files, "w:gz") as t:
        t.add(foreign / "notes.txt", "notes.txt")
    link = tmp_path / "link_out"
    link.symlink_to(foreign, target_is_directory=True)
    plain_file = tmp_path / "plain"
    plain_file.write_text("x")
    before = tree_snapshot(tmp_path)
    cases = [(foreign, False, "not an edge-infer bundle"), (foreign, True, "not an edge-infer bundle"),
             (prev, True, "does not list (my_notes.txt)"),
             (not_a_bundle_archive, True, "not a readable bundle archive"),
             (tar_of_other_files, True, "not an edge-infer bundle"), (link, True, "symbolic link"),
             (plain_file, True, "not a directory")]
    for out, force, needle in cases:
        with pytest.raises(BundleError) as e:
            make_bundle(out, [onnx], force=force)
        assert needle in _one_line(e), (out, force)
    assert changed_paths(before, tree_snapshot(tmp_path)) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_force_replaces_a_previous_bundle_only(tmp_path, models_dir):
    onnx = models_dir / "emotion.onnx"
    (tmp_path / "unrelated.txt").write_text("stays")
    for out in (tmp_path / "emotion_bundle", tmp_path / "emotion.tar.gz"):
        make_bundle(out, [onnx], extra={"model": "old"})
        with pytest.raises(BundleError, match="previous bundle; pass --force"):
            make_bundle(out, [onnx])
        before = tree_snapshot(tmp_path)
        manifest = make_bundle(out, [onnx], sample_feeds={"input": np.ones((1, 1, 64, 64), np.float32)},
                               extra={"model": "new"}, force=True)
        assert manifest["model"] == "new" and verify_bundle(out) == []
        assert {f["name"] for f in manifest["files"]} == {"emotion.onnx", "sample_input.npz"}
        assert changed_paths(before, tree_snapshot(tmp_path), allowed=(out,)) == []
    assert (tmp_path / "unrelated.txt").read_text() == "stays"


# =================================================================================== bundles: verification
def _manifest(names: list[str], sha: str = "0" * 64, size: int = 1) -> bytes:
    return json.dumps({"schema": MANIFEST_SCHEMA, "version": 1,
                       "files": [{"name": n, "bytes": size, "sha256": sha} for n in names]}).encode()


def _tgz(path: Path, members: list[tuple]) -> Path:
    """(name, bytes) regular members, (name, 'sym'|'lnk', target) links, (name, 'fifo') fifos."""
    with tarfile.open(path, "w:gz") as t:
        for m in members:
            info = tarfile.TarInfo(m[0])
            if m[1] in ("sym", "lnk"):
                info.type, info.linkname = (tarfile.SYMTYPE if m[1] == "sym" else tarfile.LNKTYPE), m[2]
                t.addfile(info)
            elif m[1] == "fifo":
                info.type = tarfile.FIFOTYPE
                t.addfile(info)
            else:
                info.size = len(m[1])
                t.addfile(info, io.BytesIO(m[1]))
    return path


def _gzip_bomb(path: Path, size: int, manifest: bytes | None = None) -> Path:
    """A .tar.gz whose member ``model.onnx`` holds ``size`` zero bytes: one 1 MiB block of zeros is compressed
    once (~1 KB) and repeated as gzip members (a multi-member gzip is one stream), so 4 GiB costs ~4 MB and
    milliseconds to write."""
    block = 1 << 20
    zeros = gzip.compress(bytes(block), compresslevel=9)
    with open(path, "wb") as f:
        info = tarfile.TarInfo("model.onnx")
        info.size = size
        f.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(size // block):
            f.write(zeros)
        tail = bytes(size % block) + bytes(-size % 512)
        if manifest is not None:
            m = tarfile.TarInfo("manifest.json")
            m.size = len(manifest)
            tail += m.tobuf(format=tarfile.GNU_FORMAT) + manifest + bytes(-len(manifest) % 512)
        f.write(gzip.compress(tail + bytes(1024)))
    return path


def test_verify_refuses_paths_outside_links_and_duplicates(tmp_path):
    """Before: the manifest's names were joined unchecked and every member was read whole into memory."""
    d1 = tmp_path / "d_dotdot"
    d1.mkdir()
    (d1 / "manifest.json").write_bytes(_manifest(["../../etc/passwd"]))
    d2 = tmp_path / "d_abs"
    d2.mkdir()
    (d2 / "manifest.json").write_bytes(_manifest(["/etc/passwd"]))
    d3 = tmp_path / "d_link"
    d3.mkdir()
    (d3 / "manifest.json").write_bytes(_manifest(["x.onnx"]))
    (d3 / "x.onnx").symlink_to("/etc/passwd")
    cases = {
        d1: "climbs out", d2: "absolute path", d3: "outside",
        _tgz(tmp_path / "m_dotdot.tar.gz", [("manifest.json", _manifest(["../../etc/passwd"]))]): "climbs out",
        _tgz(tmp_path / "m_abs.tar.gz", [("manifest.json", _manifest(["/etc/passwd"]))]): "absolute path",
        _tgz(tmp_path / "sym.tar.gz", [("x", "sym", "/etc/passwd"), ("manifest.json", _manifest(["x"]))]):
            "symbolic link",
        _tgz(tmp_path / "lnk.tar.gz", [("x", "lnk", "/etc/passwd"), ("manifest.json", _manifest(["x"]))]):
            "hard link",
        _tgz(tmp_path / "fifo.tar.gz", [("x", "fifo")]): "device or fifo",
        _tgz(tmp_path / "up.tar.gz", [("../x", b"hi"), ("manifest.json", _manifest(["x"]))]): "climbs out",
        _tgz(tmp_path / "abs.tar.gz", [("/tmp/x", b"hi"), ("manifest.json", _manifest(["x"]))]): "absolute path",
        _tgz(tmp_path / "dup.tar.gz", [("x", b"good"), ("x", b"evil"), ("manifest.json", _manifest(["x"]))]):
            "appears twice",
    }
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(os.urandom(4096))
    cases[garbage] = "not a readable .tar.gz"
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes((tmp_path / "dup.tar.gz").read_bytes()[:60])
    cases[truncated] = "not a readable .tar.gz"
    for path, needle in cases.items():
        with pytest.raises(BundleError) as e:
            verify_bundle(path)
        assert needle in _one_line(e), path.name


def test_verify_caps_members_and_header_sizes(tmp_path):
    many = _tgz(tmp_path / "many.tar.gz", [(f"f{i}", b"x") for i in range(12)])
    with pytest.raises(BundleError, match="more than 10 members"):
        verify_bundle(many, max_members=10)
    # a pax header is read by tarfile in one piece, before any member: 3 GiB of zeros in ~3 MB
    pax = tmp_path / "pax.tar.gz"
    with open(pax, "wb") as f:
        info = tarfile.TarInfo("././@PaxHeader")
        info.type, info.size = tarfile.XHDTYPE, 3 << 30
        f.write(gzip.compress(info.tobuf(format=tarfile.USTAR_FORMAT)))
        zeros = gzip.compress(bytes(1 << 20), compresslevel=9)
        for _ in range(3 << 10):
            f.write(zeros)
    with pytest.raises(BundleError, match="tar header asks for 3221225472 bytes"):
        verify_bundle(pax)
    big_manifest = _tgz(tmp_path / "bigman.tar.gz", [("manifest.json", b" " * (2 << 20))])
    with pytest.raises(BundleError, match="manifest.json is 2097152 bytes"):
        verify_bundle(big_manifest)


def test_verify_gzip_bomb_over_the_limit(tmp_path):
    """4 GiB of zeros in a 4 MB archive: refused at the member's header, before any of it is inflated."""
    bomb = _gzip_bomb(tmp_path / "bomb.tar.gz", 4 << 30)
    assert bomb.stat().st_size < 8 << 20
    with pytest.raises(BundleError) as e:
        verify_bundle(bomb)
    assert "more than 1073741824 bytes uncompressed" in _one_line(e) and "MAX_TOTAL_BYTES" in str(e.value)


def test_verify_cli_gzip_bomb_under_the_limit_is_hashed_as_a_stream(tmp_path):
    """256 MiB of zeros under the limit: hashed in chunks (the old code read it whole: > the 200 MB bound)."""
    bomb = _gzip_bomb(tmp_path / "bomb.tar.gz", 256 << 20, manifest=_manifest(["model.onnx"], size=256 << 20))
    run = run_cli(["bundle", "--verify", bomb], cwd=tmp_path)
    run.assert_one_line_error("model.onnx sha256 mismatch")
    run.assert_memory_bounded()


# ==================================================================================================== zoo
def _zoo_text(**emotion_changes) -> str:
    from edge_infer.paths import config_file

    doc = yaml.safe_load(config_file("models.yaml").read_text())
    doc["models"]["emotion"].update(emotion_changes)
    return yaml.safe_dump(doc)


def test_zoo_fetch_cli_refuses_files_outside_the_models_dir(tmp_path):
    """Before: a `--zoo` file with `file: ../x.onnx` was accepted (fetch would write beside the models dir)."""
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text(_zoo_text(file="../x.onnx"))
    before = tree_snapshot(tmp_path)
    run = run_cli(["zoo", "fetch", "--zoo", zoo, "--models-dir", tmp_path / "models"], cwd=tmp_path)
    run.assert_one_line_error("zoo.yaml:models.emotion.file", "'../x.onnx'", "climbs out")
    run.assert_memory_bounded()
    assert changed_paths(before, tree_snapshot(tmp_path)) == []


@pytest.mark.parametrize("text,needle", [
    (_zoo_text(file="/etc/passwd"), "models.emotion.file: '/etc/passwd' is an absolute path"),
    (_zoo_text(checkpoint="../../x.pt"), "models.emotion.checkpoint: '../../x.pt' climbs out"),
    (_zoo_text(file=["a"]), "is not a file name"),
    (_zoo_text(inputs={"name": "x"}), "inputs / outputs must be a list"),
    (_zoo_text(preprocess=[1, 2]), "'preprocess' must be a mapping"),
    (_zoo_text(convert=["x"]), "'convert' must be a converter name"),
    ("- just\n- a list\n", "not an edge_infer zoo file"),
    ("a string\n", "not an edge_infer zoo file"),
    ("schema: edge_infer/models\nversion: 1\nmodels: [1, 2]\n", "'models' must be a mapping"),
    ("schema: edge_infer/models\nversion: 1\nmodels:\n  x: 5\n", "models.x: a model entry must be"),
    ("schema: edge_infer/models\nversion: 1\nsamples:\n  ../../evil.png: {source: {package: a, version: '1', "
     "member: m, sha256: '00'}}\n", "climbs out"),
    ("schema: edge_infer/models\nversion: 1\nsamples: {a.png: 3}\n", "a sample entry must be"),
    ("schema: [unclosed\n", "not valid YAML"),
])
def test_hostile_zoo_files_are_one_line_spec_errors(tmp_path, text, needle):
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text(text)
    with pytest.raises(SpecError) as e:
        load_zoo(zoo)
    assert needle in _one_line(e)


def test_zoo_litert_file_and_binary_and_symlinked_models(tmp_path, monkeypatch):
    zoo = tmp_path / "zoo.yaml"
    doc = yaml.safe_load(_zoo_text())
    doc["models"]["face_mesh"]["litert"]["file"] = "../up.tflite"
    zoo.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match="litert.file: '../up.tflite' climbs out"):
        load_zoo(zoo)
    zoo.write_bytes(os.urandom(2048))
    with pytest.raises(SpecError) as e:
        load_zoo(zoo)
    _one_line(e)
    import edge_infer.models.spec as spec

    monkeypatch.setattr(spec, "MAX_ZOO_BYTES", 100)
    zoo.write_text(_zoo_text())
    with pytest.raises(SpecError, match="bytes is more than .*MAX_ZOO_BYTES"):
        load_zoo(zoo)
    monkeypatch.undo()
    # a model file that is a symlink out of the models directory is not read through
    models = tmp_path / "models"
    models.mkdir()
    (models / "emotion.onnx").symlink_to("/etc/passwd")
    with pytest.raises(SpecError) as e:
        load_zoo().model("emotion").path(models)
    assert "outside" in _one_line(e)


# =================================================================================================== bags
def _frames(n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def good_bags(tmp_path_factory) -> dict[str, Path]:
    from edge_infer.bags.write import write_image_bag

    root = tmp_path_factory.mktemp("good_bags")
    out = {}
    for storage in ("sqlite3", "mcap"):
        out[storage] = root / storage
        write_image_bag(out[storage], _frames(), 10.0, storage=storage)
    return out


def _clone(src: Path, dst: Path) -> tuple[Path, dict]:
    """A copy of a bag, its storage file renamed after the new directory (as rosbag2 names it)."""
    shutil.copytree(src, dst)
    meta = yaml.safe_load((dst / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    for i, rel in enumerate(info["relative_file_paths"]):
        new = dst.name + Path(rel).suffix
        (dst / rel).rename(dst / new)
        info["relative_file_paths"][i] = new
        info["files"][i]["path"] = new
    _write_meta(dst, meta)
    return dst, meta


def _write_meta(bag: Path, meta) -> None:
    (bag / "metadata.yaml").write_text(meta if isinstance(meta, str) else yaml.safe_dump(meta))


def _storage(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))


def _hostile_bags(root: Path, good: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """name -> (bag, a word of the expected error)."""
    out: dict[str, tuple[Path, str]] = {}

    def meta_case(name, mutate, needle, storage="sqlite3"):
        bag, meta = _clone(good[storage], root / name)
        new = mutate(meta)
        _write_meta(bag, meta if new is None else new)
        out[name] = (bag, needle)

    info = "rosbag2_bagfile_information"
    meta_case("yaml_list", lambda m: "- a\n- b\n", "must be a mapping, got list")
    meta_case("yaml_string", lambda m: "hello\n", "must be a mapping, got str")
    meta_case("yaml_syntax", lambda m: "a: [unclosed\n", "metadata.yaml: not valid YAML")
    meta_case("info_list", lambda m: {info: [1, 2]}, "'rosbag2_bagfile_information' must be a mapping")
    meta_case("info_missing", lambda m: {"other": 1}, "'rosbag2_bagfile_information' is missing")
    meta_case("no_topics", lambda m: m[info].pop("topics_with_message_count") and None, "no 'topics_with")
    meta_case("topics_str", lambda m: m[info].update(topics_with_message_count="x"), "must be list")
    meta_case("topic_meta_int", lambda m: m[info]["topics_with_message_count"][0].update(topic_metadata=3),
              "topic_metadata' must be a mapping")
    meta_case("count_str", lambda m: m[info].update(message_count="many"), "'message_count' must be int")
    meta_case("storage_unknown", lambda m: m[info].update(storage_identifier="rosbag_v1"), "not supported")
    meta_case("compressed", lambda m: m[info].update(compression_mode="MESSAGE", compression_format="zstd"),
              "compressed rosbag2 bags")
    meta_case("path_dotdot", lambda m: m[info].update(relative_file_paths=["../sqlite3/sqlite3.db3"]),
              "climbs out")
    meta_case("path_abs", lambda m: m[info].update(relative_file_paths=["/etc/passwd"]), "absolute path")
    meta_case("path_not_str", lambda m: m[info].update(relative_file_paths=[{"a": 1}]), "not a file name")
    meta_case("path_empty", lambda m: m[info].update(relative_file_paths=[]), "lists no storage files")
    link, _ = _clone(good["sqlite3"], root / "storage_link")
    _storage(link).unlink()
    (link / "storage_link.db3").symlink_to(_storage(good["sqlite3"]))
    out["storage_link"] = (link, "outside")
    meta_link = root / "metadata_link"
    shutil.copytree(good["mcap"], meta_link)
    (meta_link / "metadata.yaml").unlink()
    (meta_link / "metadata.yaml").symlink_to(good["mcap"] / "metadata.yaml")
    out["metadata_link"] = (meta_link, "outside")
    no_meta = root / "no_meta"
    no_meta.mkdir()
    out["no_meta"] = (no_meta, "no metadata.yaml")
    for storage, suffix in (("sqlite3", ".db3"), ("mcap", ".mcap")):
        bag, _ = _clone(good[storage], root / f"garbage_{storage}")
        _storage(bag).write_bytes(os.urandom(8192))
        out[f"garbage_{storage}"] = (bag, "cannot read bag")
    bag, _ = _clone(good["mcap"], root / "truncated_mcap")
    data = _storage(bag).read_bytes()
    _storage(bag).write_bytes(data[: len(data) // 2])
    out["truncated_mcap"] = (bag, "cannot read bag")
    return out


def _readers():
    """Every loader that reads a bag for a command: bag info, bag play, bench bag, quantize --calib-bag."""
    from edge_infer.bags.read import (bag_info, calibration_frames_from_bag, image_topic, iter_messages,
                                      load_checked, load_image_topic, load_raw)
    from edge_infer.bench.camera_feed import CameraFeed
    from edge_infer.ros.bag_play import bag_qos, playable

    return {
        "bag info": bag_info, "load_raw": load_raw, "iter_messages": lambda b: list(iter_messages(b)),
        "load_checked": load_checked, "bag play": playable, "bag_qos": bag_qos,
        "bench bag topic": image_topic, "bench bag frames": load_image_topic,
        "bench camera feed": lambda b: CameraFeed(source="bag", bag=str(b)).load(),
        "quantize --calib-bag": lambda b: calibration_frames_from_bag(b, "/image", 3),
    }


def test_malformed_bags_are_one_line_bag_errors_in_every_loader(tmp_path, good_bags):
    """Before: tracebacks (TypeError, KeyError, rosbags' ReaderError) from bag info / play / bench / quantize."""
    readers = _readers()
    for name, (bag, needle) in _hostile_bags(tmp_path, good_bags).items():
        for reader_name, read in readers.items():
            if reader_name == "bag_qos" and "cannot read bag" in needle:
                continue  # QoS comes from metadata.yaml alone: a garbage storage file is found by the others
            with pytest.raises(BagError) as e:
                read(bag)
            assert needle in _one_line(e), (name, reader_name)
    # and the good bags still read
    for bag in good_bags.values():
        assert len(readers["quantize --calib-bag"](bag)) == 3


def test_bag_info_cli_non_mapping_metadata(tmp_path, good_bags):
    bag, _ = _clone(good_bags["sqlite3"], tmp_path / "list_meta")
    _write_meta(bag, "- not\n- a mapping\n")
    before = tree_snapshot(tmp_path)
    run = run_cli(["bag", "info", bag], cwd=tmp_path)
    run.assert_one_line_error(str(bag), "metadata.yaml must be a mapping")
    run.assert_memory_bounded()
    assert changed_paths(before, tree_snapshot(tmp_path)) == []


def _zstd():
    """The zstd module rosbags itself uses (compression.zstd on 3.14, backports.zstd before)."""
    from rosbags.rosbag2 import storage_mcap

    return storage_mcap.zstd


def _mcap_with_compressor(path: Path, frames: list[np.ndarray], compressor=None) -> Path:
    """An mcap bag with zstd chunk compression; ``compressor(raw) -> bytes`` replaces rosbags' own."""
    from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

    from edge_infer.bags.write import BagWriter, image_cdr

    w = BagWriter(path, "mcap")
    w.writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with w:
        if compressor is not None:
            w.writer.storage.compressor = compressor
        w.add_topic("/image", IMAGE)
        for i, f in enumerate(frames):
            t = 1_700_000_000_000_000_000 + i * 100_000_000
            w.write("/image", t, image_cdr(w.ts, f, t, "camera"))
    return path


def test_bag_play_cli_mcap_chunk_bomb(tmp_path):
    """A chunk that declares its real (small) size but inflates to 1 GiB more: rosbags' decompress() would
    inflate all of it before comparing sizes; the bounded inflater stops at the declared size."""
    zstd = _zstd()

    def bomb(raw: bytes) -> bytes:
        c = zstd.ZstdCompressor()
        zeros = bytes(1 << 20)
        return c.compress(raw) + b"".join(c.compress(zeros) for _ in range(1024)) + c.flush()

    bag = _mcap_with_compressor(tmp_path / "bomb", _frames(2), bomb)
    assert _storage(bag).stat().st_size < 1 << 20
    before = tree_snapshot(tmp_path)
    run = run_cli(["bag", "play", bag, "--fast", "--wait-subscribers", "0"], cwd=tmp_path)
    run.assert_one_line_error("cannot read bag", "inflates to more than")
    run.assert_memory_bounded()
    assert changed_paths(before, tree_snapshot(tmp_path)) == []


def test_mcap_chunk_limits(tmp_path, monkeypatch):
    import edge_infer.bags.read as read

    black = [np.zeros((480, 640, 3), np.uint8) for _ in range(6)]
    bag = _mcap_with_compressor(tmp_path / "black", black)
    assert len(read.load_raw(bag)) == 6  # compressed chunks read as before
    monkeypatch.setattr(read, "MAX_INFLATION", 1)
    monkeypatch.setattr(read, "MAX_CHUNK_BYTES", 1 << 20)
    with pytest.raises(BagError, match=r"over 1x its size \(MAX_INFLATION"):
        read.load_raw(bag)
    monkeypatch.setattr(read, "MAX_INFLATION", 10 ** 6)
    monkeypatch.setattr(read, "MAX_CHUNK_BYTES", 1000)
    with pytest.raises(BagError, match="over the limit of 1000"):
        read.load_raw(bag)


def _mixed_bag(path: Path, garbage_every: int = 2) -> Path:
    """Image messages where every ``garbage_every``-th one is random bytes instead of CDR."""
    from edge_infer.bags.write import BagWriter, image_cdr

    with BagWriter(path) as w:
        w.add_topic("/image", IMAGE)
        for i, f in enumerate(_frames(4)):
            t = 1_700_000_000_000_000_000 + i * 100_000_000
            w.write("/image", t, os.urandom(100) if i % garbage_every == garbage_every - 1 else image_cdr(w.ts, f, t, "camera"))
    return path


def test_garbage_cdr_is_skipped_and_counted(tmp_path):
    from edge_infer.bags.read import (calibration_frames_from_bag, iter_messages, load_checked, load_image_topic,
                                      load_raw)

    bag = _mixed_bag(tmp_path / "mixed")
    assert len(load_raw(bag)) == 4  # raw reading does not decode
    loaded = load_checked(bag)
    assert len(loaded.messages) == 2 and loaded.undecodable == {"/image": 2}
    assert len(list(iter_messages(bag))) == 2
    assert len(load_image_topic(bag)[2]) == 2
    assert len(calibration_frames_from_bag(bag, "/image", 10)) == 2
    only_garbage = _mixed_bag(tmp_path / "garbage", garbage_every=1)
    for read in (lambda b: load_image_topic(b), lambda b: calibration_frames_from_bag(b, "/image", 10)):
        with pytest.raises(BagError) as e:
            read(only_garbage)
        assert "decode" in _one_line(e)


def test_bag_types_import_only_ros_interface_packages(tmp_path, good_bags, capsys):
    """Before: `bag play` imported `<pkg>.msg` for whatever type the bag named: `this/msg/X` printed the Zen of
    Python (any installed module's import-time code ran), then a traceback."""
    from edge_infer.ros.bag_play import message_class, playable

    assert "this" not in sys.modules
    bag, meta = _clone(good_bags["sqlite3"], tmp_path / "evil_type")
    meta["rosbag2_bagfile_information"]["topics_with_message_count"][0]["topic_metadata"]["type"] = "this/msg/X"
    _write_meta(bag, meta)
    with sqlite3.connect(_storage(bag)) as db:
        db.execute("UPDATE topics SET type = 'this/msg/X'")
    with pytest.raises(BagError) as e:
        playable(bag)
    assert "no ROS interface package 'this'" in _one_line(e)
    for bad in ("antigravity/msg/X", "os/msg/Path", "a/b/c/d", "sensor_msgs/srv/X", "sensor_msgs/msg/NoSuch"):
        with pytest.raises(BagError):
            message_class(bad)
    assert "this" not in sys.modules and "antigravity" not in sys.modules
    assert "Beautiful is better" not in capsys.readouterr().out
    assert message_class(IMAGE).__name__ == "Image"


def test_bag_play_publishes_only_what_decodes(ros, tmp_path):
    from rclpy.node import Node

    from edge_infer.ros.bag_play import play

    node = Node("hostile_bag_player")
    try:
        stats = play(node, _mixed_bag(tmp_path / "mixed"), rate=None)
    finally:
        node.destroy_node()
    assert stats.published == 2 and stats.undecodable == {"/image": 2}


def test_quantize_cli_calibration_from_a_hostile_bag(tmp_path, good_bags, models_dir):
    bag, _ = _clone(good_bags["mcap"], tmp_path / "calib")
    _storage(bag).write_bytes(os.urandom(8192))
    out = tmp_path / "emotion_int8.onnx"
    before = tree_snapshot(tmp_path, models_dir)
    run = run_cli(["quantize", models_dir / "emotion.onnx", out, "--mode", "int8", "--name", "emotion",
                   "--calib-bag", bag, "--topic", "/image", "--models-dir", models_dir], cwd=tmp_path)
    run.assert_one_line_error(f"cannot read bag {bag}")
    run.assert_memory_bounded()
    assert not out.exists()
    assert changed_paths(before, tree_snapshot(tmp_path, models_dir)) == []



def test_bag_make_refuses_an_existing_path(tmp_path):
    from edge_infer.bags.write import write_image_bag

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("mine")
    with pytest.raises(BagError) as e:  # was a bare FileExistsError: a traceback from `bag make`
        write_image_bag(tmp_path / "taken", _frames(1), 10.0, progress=True)
    assert "exists" in _one_line(e) and isinstance(e.value, FileExistsError)
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["mine.txt"]
