"""PyTorch checkpoint files -> an nn.Module in eval mode, safely by default.

Forms read: a plain state_dict, ``{'state_dict': ...}``, ``{'model_state_dict': ..., 'config': {...}}`` (the
project's own layout, written by ``edge-infer zoo fetch`` for the emotion model) and TorchScript archives.
``torch.load(weights_only=True)`` never runs code stored in the file; a checkpoint that needs pickle code
execution (a whole pickled nn.Module, custom classes) is refused with a message naming ``--trust-checkpoint``
instead of being opened silently.

A state_dict needs a module class to load into. This runtime layer knows no model: the caller passes the
registry (name -> class), e.g. :data:`edge_infer.models.architectures.ARCHITECTURES`; ``package.module:Class``
names resolve without one. torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_infer.backends.base import BackendError

Architectures = Mapping[str, Callable[..., Any]]


class CheckpointError(BackendError):
    """A checkpoint is missing, unreadable, unsafe to unpickle or does not fit its architecture."""


@dataclass
class Checkpoint:
    format: str  # "state_dict", "state_dict_wrapped", "model_state_dict", "torchscript", "pickled_module"
    state_dict: dict | None = None
    config: dict = field(default_factory=dict)
    module: Any = None  # torch.nn.Module for torchscript / pickled modules


def is_torchscript(path: str | Path) -> bool:
    """True for a ``torch.jit.save`` archive (a zip with TorchScript code), whatever its suffix."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def resolve_architecture(name: str, architectures: Architectures) -> Callable[..., Any]:
    """A registry name (``mini_xception``) or ``package.module:Class``."""
    if name in architectures:
        return architectures[name]
    if ":" not in name:
        known = sorted(architectures) or "none (no architecture registry was given)"
        raise CheckpointError(f"unknown architecture '{name}'; known: {known}, or give package.module:Class")
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


def _strip_prefix(sd: Mapping[str, Any]) -> dict:
    """Drop DataParallel's 'module.' prefix so checkpoints saved from multi-GPU training load."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def load_checkpoint(path: str | Path, trust: bool = False) -> Checkpoint:
    """Read ``path`` with ``weights_only=not trust``; TorchScript archives through ``torch.jit.load``."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if is_torchscript(path):
        try:
            return Checkpoint("torchscript", module=torch.jit.load(str(path), map_location="cpu").eval())
        except Exception as e:
            raise CheckpointError(f"{path}: TorchScript archive could not be loaded: {e}") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        detail = str(e).strip().splitlines()
        why = next((line for line in detail if "Unsupported global" in line), detail[0] if detail else "")
        why = why.split(" was not an allowed global")[0].replace("WeightsUnpickler error: ", "")
        raise CheckpointError(
            f"{path} needs pickle code execution to load ({why.strip()}). Loading it "
            "can run arbitrary code; pass --trust-checkpoint only if you trust where it came from") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {str(e).splitlines()[0]}") from None
    if isinstance(obj, torch.nn.Module):
        return Checkpoint("pickled_module", module=obj.eval())
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: checkpoint holds a {type(obj).__name__}, expected a state_dict or a dict with one")
    if "model_state_dict" in obj:
        cfg = obj.get("config") or {}
        if isinstance(cfg, str):
            cfg = json.loads(cfg)
        return Checkpoint("model_state_dict", _strip_prefix(obj["model_state_dict"]), dict(cfg))
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        cfg = obj.get("config") or obj.get("hyper_parameters") or {}
        return Checkpoint("state_dict_wrapped", _strip_prefix(obj["state_dict"]), dict(cfg) if isinstance(cfg, Mapping) else {})
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return Checkpoint("state_dict", _strip_prefix(obj))
    raise CheckpointError(f"{path}: dict checkpoint without 'model_state_dict' or 'state_dict' and not a plain "
                          f"state_dict (keys: {sorted(map(str, obj))[:8]})")


def _constructor_kwargs(cls: Callable[..., Any], config: Mapping[str, Any], explicit: Mapping[str, Any]) -> dict:
    """Explicit kwargs win; config entries are used where the constructor takes a parameter of that name."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kw = {k: v for k, v in config.items() if k in params or (takes_any and k != "architecture")}
    kw.update(explicit)
    return kw


def build_module(ckpt: Checkpoint, architectures: Architectures, architecture: str | None = None,
                 kwargs: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """(module in eval mode, architecture name) for a loaded checkpoint."""
    if ckpt.module is not None:
        return ckpt.module, architecture or f"{ckpt.format}:{type(ckpt.module).__name__}"
    arch = architecture or ckpt.config.get("architecture")
    if not arch:
        raise CheckpointError(f"the checkpoint ({ckpt.format}) does not name its architecture; pass --arch "
                              f"(one of {sorted(architectures)} or package.module:Class)")
    cls = resolve_architecture(arch, architectures)
    kw = _constructor_kwargs(cls, ckpt.config, kwargs or {})
    try:
        model = cls(**kw)
    except TypeError as e:
        raise CheckpointError(f"cannot build architecture '{arch}' with kwargs {kw}: {e}") from None
    try:
        result = model.load_state_dict(ckpt.state_dict, strict=False)
    except RuntimeError as e:  # size mismatches raise even with strict=False
        lines = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
        raise CheckpointError(f"checkpoint weights do not fit architecture '{arch}': {'; '.join(lines[:3]) or e}") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}")
    if result.unexpected_keys:
        problems.append(f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}")
    if problems:
        raise CheckpointError(f"checkpoint weights do not fit architecture '{arch}': {'; '.join(problems)}")
    return model.eval(), arch
