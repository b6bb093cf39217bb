"""PyTorch checkpoint files -> an nn.Module in eval mode, without running code from the file unless trusted.

Forms read: safetensors (no pickle at all: the preferred form for files from elsewhere), a plain state_dict,
``{'state_dict': ...}``, ``{'model_state_dict': ..., 'config': {...}}`` (the project's own layout, written by
``edge-infer zoo fetch`` for the emotion model), and, only with ``trust`` (``--trust-checkpoint``), TorchScript
archives and whole pickled modules: loading those runs code stored in the file.

What the file decides and what it does not (the trust boundary):
- its structure is checked first (:mod:`edge_infer.backends.checkpoint_format`): a file that is no checkpoint
  says so and never mentions ``--trust-checkpoint``;
- pickles load with ``torch.load(weights_only=True, mmap=True)``: the unpickler builds tensors and containers
  only, and tensor data stays in the mapped file; a pickle that needs other globals is refused, naming them;
- the architecture comes from the caller's registry (name -> class, e.g.
  :data:`edge_infer.models.architectures.ARCHITECTURES`; this runtime layer knows no model) or from the command
  line. A name in the file may select a registry entry, never an importable path: ``package.module:Class``
  is accepted only as an explicit ``architecture`` and only with ``trust``;
- constructor keyword arguments from the file's config reach registry classes only, only for parameters the
  constructor names, and only as plain JSON values (numbers, strings, booleans, null and lists of them).

torch and safetensors are imported only inside the functions that need them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_infer.backends.checkpoint_format import (CheckpointError, CheckpointFile, check_weights_only_bounds,
                                                   identify, main_pickle, not_a_checkpoint, pickle_globals)

__all__ = ["Architectures", "Checkpoint", "CheckpointError", "load_checkpoint", "build_module",
           "resolve_architecture", "is_torchscript"]

Architectures = Mapping[str, Callable[..., Any]]
TRUST_FLAG = "--trust-checkpoint"


@dataclass
class Checkpoint:
    format: str  # "state_dict", "state_dict_wrapped", "model_state_dict", "safetensors", "torchscript", "pickled_module"
    state_dict: dict | None = None
    config: dict = field(default_factory=dict)
    module: Any = None  # torch.nn.Module for torchscript / pickled modules (trusted files only)
    source: str = ""  # the file, for messages


def is_torchscript(path: str | Path) -> bool:
    """True for a ``torch.jit.save`` archive, recognised by its member names without loading it."""
    try:
        return identify(path).kind == "torchscript"
    except (CheckpointError, OSError):
        return False


# ------------------------------------------------------------------------------------------------ loading
def load_checkpoint(path: str | Path, trust: bool = False) -> Checkpoint:
    """Read ``path``: safetensors without pickle; torch.save files weights-only unless ``trust``; TorchScript
    only with ``trust``. Raises CheckpointError with one line saying what the file is and what to do."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    cf = identify(path)
    if cf.kind == "safetensors":
        return _load_safetensors(path)
    if cf.kind == "torchscript":
        if not trust:
            raise CheckpointError(f"{path} is a TorchScript archive: loading it runs code stored in the file; pass "
                                  f"{TRUST_FLAG} only if you trust where it came from (or save its weights as "
                                  ".safetensors)")
        import torch

        try:
            return Checkpoint("torchscript", module=torch.jit.load(str(path), map_location="cpu").eval(),
                              source=str(path))
        except Exception as e:  # a trusted file's own code may raise anything
            raise CheckpointError(f"{path}: TorchScript archive could not be loaded: {_first_line(e)}") from None
    if not trust:
        check_weights_only_bounds(cf)
    obj = _torch_load(cf, trust)
    return _interpret(obj, path)


def _torch_load(cf: CheckpointFile, trust: bool) -> Any:
    """torch.load, mapped (zip archives) so that tensor data is not read into memory; errors -> one line."""
    import torch

    accepts = inspect.signature(torch.load).parameters
    options: dict[str, Any] = {"weights_only": not trust} if "weights_only" in accepts else {}
    if not trust and not options:  # torch < 1.13 (JetPack 4.6's wheel) would unpickle anything
        raise CheckpointError(f"torch {torch.__version__} cannot load {cf.path} weights-only (torch >= 1.13 can); "
                              "save the state_dict as .safetensors and load that")
    if cf.kind == "zip" and "mmap" in accepts:  # torch >= 2.1; older ones read the (stored, bounded) records
        options["mmap"] = True
    try:
        return torch.load(str(cf.path), map_location="cpu", **options)
    except Exception as e:
        if trust:  # the file's own code may raise anything
            raise CheckpointError(f"{cf.path} could not be loaded: {type(e).__name__}: {_first_line(e)}") from None
        raise _untrusted_load_error(cf, e) from None


def _untrusted_load_error(cf: CheckpointFile, e: Exception) -> CheckpointError:
    """A weights-only load failed: a pickle that needs code (names the globals) or a file that is no checkpoint."""
    if isinstance(e, pickle.UnpicklingError):
        needed = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if needed:
            return CheckpointError(_needs_code_message(cf, needed.group(1)))
        return not_a_checkpoint(cf.path, f"its pickle is damaged or uses what torch.save never writes: "
                                         f"{_weights_only_reason(str(e))}")
    # torch's readers raise RuntimeError, EOFError, IndexError, KeyError... on bad bytes
    if any(s in str(e) for s in ("not resizable", "wrong byte size", "can't allocate memory")):
        return not_a_checkpoint(cf.path, "a tensor claims more bytes than the file holds for it")
    return not_a_checkpoint(cf.path, f"torch cannot read it: {type(e).__name__}: {_first_line(e)}")


def _needs_code_message(cf: CheckpointFile, first_global: str) -> str:
    names = pickle_globals(main_pickle(cf))
    what = ("a pickled nn.Module" if any(n.startswith("torch.nn.modules.") for n in names)
            else "a pickle of Python objects")
    return (f"{cf.path} needs pickle code execution to load: it is {what} (it names {first_global}), and "
            f"loading it runs code from the file; pass {TRUST_FLAG} only if you trust where it came from, or save "
            "its state_dict as .safetensors")


def _weights_only_reason(message: str) -> str:
    """The line of torch's weights-only error that says what failed (torch wraps it in paragraphs of advice)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error:" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else "unknown")
    return lines[0] if lines else "unknown"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _load_safetensors(path: Path) -> Checkpoint:
    """A safetensors state_dict (memory-mapped by safetensors); its ``__metadata__`` may name a registry entry."""
    try:
        from safetensors import safe_open
    except ImportError as e:
        raise CheckpointError(f"reading {path} needs safetensors: pip install safetensors ({e})") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state_dict = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors' SafetensorError, and torch's errors on dtypes it lacks
        raise CheckpointError(f"{path} is not a valid safetensors file ({_first_line(e)})") from None
    config = {"architecture": meta["architecture"]} if isinstance(meta.get("architecture"), str) else {}
    return Checkpoint("safetensors", state_dict, config, source=str(path))


def _interpret(obj: Any, path: Path) -> Checkpoint:
    """The loaded object -> Checkpoint: one of the layouts in the module docstring, or a one-line error."""
    import torch

    if isinstance(obj, torch.nn.Module):  # only reachable with trust: weights_only never builds a module
        return Checkpoint("pickled_module", module=obj.eval(), source=str(path))
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: checkpoint holds a {type(obj).__name__}, expected a state_dict or a dict with one")
    if "model_state_dict" in obj:
        return Checkpoint("model_state_dict", _state_dict(obj["model_state_dict"], path), _config(obj.get("config")),
                          source=str(path))
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        cfg = obj.get("config") or obj.get("hyper_parameters")
        return Checkpoint("state_dict_wrapped", _state_dict(obj["state_dict"], path), _config(cfg), source=str(path))
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return Checkpoint("state_dict", _state_dict(obj, path), source=str(path))
    raise CheckpointError(f"{path}: dict checkpoint without 'model_state_dict' or 'state_dict' and not a plain "
                          f"state_dict (keys: {sorted(map(str, obj))[:8]})")


def _state_dict(sd: Any, path: Path) -> dict:
    """A mapping of str -> tensor, with DataParallel's 'module.' prefix dropped (multi-GPU training saves it)."""
    import torch

    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{path}: its state_dict is a {type(sd).__name__}, not a mapping of names to tensors")
    bad = next((k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointError(f"{path}: state_dict entry {str(bad)[:80]!r} is a {type(sd[bad]).__name__}, not a "
                              "tensor under a string name")
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def _config(cfg: Any) -> dict:
    """The checkpoint's config as a dict (a JSON string is parsed); anything else counts as no config."""
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except ValueError:
            return {}
    return dict(cfg) if isinstance(cfg, Mapping) else {}


# ------------------------------------------------------------------------------------------------ building
def resolve_architecture(name: str, architectures: Architectures, allow_import: bool = False) -> Callable[..., Any]:
    """A registry name (``mini_xception``), or ``package.module:Class`` when ``allow_import`` (the user gave
    that path on the command line together with ``--trust-checkpoint``: importing it runs its code)."""
    if name in architectures:
        return architectures[name]
    known = sorted(architectures) or "none (no architecture registry was given)"
    if ":" not in name:
        raise CheckpointError(f"unknown architecture '{name}'; known: {known}, or give package.module:Class "
                              f"with {TRUST_FLAG}")
    if not allow_import:
        raise CheckpointError(f"--arch '{name}' would import and run Python code: a package.module:Class "
                              f"architecture needs {TRUST_FLAG} too (or use a registry name: {known})")
    mod_name, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise CheckpointError(f"cannot import architecture '{name}': {e}") from None
    if not callable(obj):
        raise CheckpointError(f"architecture '{name}' is not a class or factory")
    return obj


def _is_plain_json(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(_is_plain_json(v) for v in value)


def _config_kwargs(cls: Callable[..., Any], config: Mapping[str, Any], arch: str) -> dict:
    """The config entries that the registry class's constructor names as parameters (not via ``**kwargs``),
    each a plain JSON value: a file's config may tune a known model, never feed it objects."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    named = {n for n, p in params.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    kw = {}
    for k, v in config.items():
        if k not in named:
            continue
        if not _is_plain_json(v):
            raise CheckpointError(f"the checkpoint's config gives '{arch}' parameter '{k}' a {type(v).__name__}; "
                                  "only JSON numbers, strings, booleans and lists of them are accepted")
        kw[k] = list(v) if isinstance(v, tuple) else v
    return kw


def _architecture_name(ckpt: Checkpoint, architectures: Architectures, architecture: str | None) -> str:
    """The explicit ``architecture`` (the command line), else the file's config naming a registry entry."""
    if architecture:
        return architecture
    named = ckpt.config.get("architecture")
    known = sorted(architectures) or "none (no architecture registry was given)"
    if named is None:
        raise CheckpointError(f"the checkpoint ({ckpt.format}) does not name its architecture; pass --arch "
                              f"(one of {known})")
    if not isinstance(named, str) or named not in architectures:
        raise CheckpointError(f"unknown architecture {str(named)[:80]!r} named by the checkpoint {ckpt.source}; "
                              f"known: {known}. A checkpoint may only select a registry entry; pass --arch")
    return named


def build_module(ckpt: Checkpoint, architectures: Architectures, architecture: str | None = None,
                 kwargs: Mapping[str, Any] | None = None, trust: bool = False) -> tuple[Any, str]:
    """(module in eval mode, architecture name) for a loaded checkpoint.

    ``architecture`` and ``kwargs`` come from the user (``--arch``, ``--kwargs``); ``trust`` is
    ``--trust-checkpoint``, needed for a ``package.module:Class`` architecture.
    """
    if ckpt.module is not None:
        return ckpt.module, architecture or f"{ckpt.format}:{type(ckpt.module).__name__}"
    arch = _architecture_name(ckpt, architectures, architecture)
    cls = resolve_architecture(arch, architectures, allow_import=trust and bool(architecture))
    kw = _config_kwargs(cls, ckpt.config, arch) if arch in architectures else {}
    kw.update(kwargs or {})
    try:
        model = cls(**kw)
    except TypeError as e:
        raise CheckpointError(f"cannot build architecture '{arch}' with kwargs {kw}: {e}") from None
    try:
        result = model.load_state_dict(ckpt.state_dict, strict=False)
    except RuntimeError as e:  # size mismatches raise even with strict=False
        lines = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
        detail = "; ".join(lines[:3]) or " ".join(str(e).split())[:300]
        raise CheckpointError(f"checkpoint weights do not fit architecture '{arch}': {detail}") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}")
    if result.unexpected_keys:
        problems.append(f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}")
    if problems:
        raise CheckpointError(f"checkpoint weights do not fit architecture '{arch}': {'; '.join(problems)}")
    return model.eval(), arch
