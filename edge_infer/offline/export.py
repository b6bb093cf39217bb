"""PyTorch checkpoint (.safetensors or torch.save) -> ONNX with the legacy TorchScript exporter (dynamo=False).

Why legacy: torch 2.13's default dynamo exporter needs onnxscript and may split weights into a
``.onnx.data`` side file, which TensorRT's trtexec and copy-one-file deploys trip over; the legacy exporter
writes one self-contained file at any opset 7..20, including JetPack 4.6's opset 13.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from edge_infer.backends.torch_checkpoint import build_module, load_checkpoint
from edge_infer.errors import OfflineError
from edge_infer.fileio import atomic_path, sha256_file
from edge_infer.offline.onnx_info import load_onnx, opset as onnx_opset, signature
from edge_infer.offline.targets import get_target

def arch_io(arch: str) -> dict[str, Any]:
    """I/O defaults of a registry architecture (used when the command line does not give them): the names and
    size of the zoo model it implements, from config/models.yaml."""
    if arch == "mini_xception":
        from edge_infer.models import emotion

        return {"input_names": [emotion.INPUT_NAME], "input_shapes": [[1, 1, emotion.INPUT_SIZE, emotion.INPUT_SIZE]],
                "output_names": [emotion.OUTPUT_NAME]}
    return {}


def parse_shape(text: str) -> list[int]:
    """'1x3x224x224' or '1,3,224,224' -> [1, 3, 224, 224]."""
    try:
        dims = [int(d) for d in text.replace("x", ",").replace(" ", "").split(",") if d]
    except ValueError:
        raise OfflineError(f"bad shape '{text}'; write it like 1x3x224x224") from None
    if not dims or any(d <= 0 for d in dims):
        raise OfflineError(f"bad shape '{text}'; every dimension must be a positive integer")
    return dims


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    architecture: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
    input_shapes: Sequence[Sequence[int]] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    target: str | None = None,
    opset: int | None = None,
    dynamic_batch: bool = True,
    constant_folding: bool = True,
    trust_checkpoint: bool = False,
) -> dict[str, Any]:
    """Export and check; returns path, size, opset, I/O signature, sha256, architecture.

    ``checkpoint``: a ``.safetensors`` state_dict (preferred: no pickle), a torch.save file (weights-only) or,
    with ``trust_checkpoint``, a TorchScript archive / pickled module. The architecture is ``architecture``
    (a registry name, or ``package.module:Class`` with ``trust_checkpoint``) or the registry entry the file names.
    """
    import torch

    from edge_infer.models.architectures import ARCHITECTURES

    t0 = time.perf_counter()
    tgt = get_target(target)
    opset = int(opset or tgt.opset)
    ckpt = load_checkpoint(checkpoint, trust=trust_checkpoint)
    model, arch = build_module(ckpt, ARCHITECTURES, architecture, kwargs, trust=trust_checkpoint)
    defaults = arch_io(arch)
    shapes = [list(s) for s in (input_shapes or defaults.get("input_shapes") or [])]
    if not shapes:
        raise OfflineError(f"architecture '{arch}' has no default input shape; pass --input-shape (e.g. 1x3x224x224)")
    in_names = list(input_names or defaults.get("input_names") or [f"input_{i}" if len(shapes) > 1 else "input"
                                                                    for i in range(len(shapes))])
    if len(in_names) != len(shapes):
        raise OfflineError(f"{len(in_names)} input names {in_names} for {len(shapes)} input shapes {shapes}")
    dummies = tuple(torch.zeros(*s) for s in shapes)
    try:
        with torch.no_grad():
            probe = model(*dummies)
    except Exception as e:
        raise OfflineError(f"input shape mismatch: architecture '{arch}' rejected input shape(s) {shapes}: "
                           f"{str(e).splitlines()[0]}") from None
    n_out = len(probe) if isinstance(probe, (tuple, list)) else 1
    out_names = list(output_names or defaults.get("output_names") or
                     ([f"output_{i}" for i in range(n_out)] if n_out > 1 else ["output"]))
    if len(out_names) != n_out:
        raise OfflineError(f"the model returns {n_out} outputs but {len(out_names)} output names were given: {out_names}")
    dynamic_axes = {n: {0: "batch"} for n in in_names + out_names} if dynamic_batch else None
    output = Path(output)
    with atomic_path(output) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            try:
                torch.onnx.export(model, dummies, str(tmp), dynamo=False, opset_version=opset,
                                  input_names=in_names, output_names=out_names, dynamic_axes=dynamic_axes,
                                  do_constant_folding=constant_folding)
            except Exception as e:
                raise OfflineError(f"torch.onnx.export of '{arch}' at opset {opset} failed: {str(e).splitlines()[0]}") from None
        onnx_model = load_onnx(tmp)  # checker runs before the file becomes visible
    return {
        "path": str(output), "size_bytes": output.stat().st_size, "sha256": sha256_file(output),
        "opset": onnx_opset(onnx_model), "target": tgt.name, "architecture": arch,
        "checkpoint": str(checkpoint), "checkpoint_format": ckpt.format, "dynamic_batch": dynamic_batch,
        "constant_folding": constant_folding, **signature(onnx_model), "seconds": round(time.perf_counter() - t0, 2),
    }
