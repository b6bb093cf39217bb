"""Optimization profiles: shapes from the command line (trtexec style), the model spec or the ONNX itself.

Pure Python (onnx only), so every decision about *which shapes* an engine accepts is tested without a GPU.
A profile is ``(min, opt, max)`` per dynamic input; inputs with only static dims need none.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

from edge_infer.backends.tensorrt.precision import BuildError

Shape = tuple[int, ...]
Profile = tuple[Shape, Shape, Shape]  # (min, opt, max)


def parse_shape(text: str) -> Shape:
    """``1x3x640x640`` (trtexec style) or ``1,3,640,640`` / ``[1,3,640,640]`` -> (1, 3, 640, 640)."""
    t = text.strip().strip("[]()")
    parts = re.split(r"[x,]", t) if t else []
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise BuildError(f"bad shape '{text}': use e.g. 1x3x640x640") from None
    if not shape or any(d <= 0 for d in shape):
        raise BuildError(f"bad shape '{text}': dimensions must be positive integers")
    return shape


def parse_range(text: str) -> tuple[int, int, int]:
    """``--batch``: ``1:4:8`` -> (1, 4, 8); ``1:8`` -> (1, 1, 8) (opt = min); ``8`` -> (8, 8, 8)."""
    try:
        vals = [int(v) for v in text.split(":")]
    except ValueError:
        raise BuildError(f"bad range '{text}': use MIN:OPT:MAX, e.g. 1:4:8") from None
    if len(vals) == 1:
        vals = vals * 3
    elif len(vals) == 2:
        vals = [vals[0], vals[0], vals[1]]
    if len(vals) != 3 or not (0 < vals[0] <= vals[1] <= vals[2]):
        raise BuildError(f"bad range '{text}': need 0 < MIN <= OPT <= MAX")
    return vals[0], vals[1], vals[2]


def parse_profile_arg(text: str) -> tuple[str, Profile]:
    """``name:MINxSHAPE:OPTxSHAPE:MAXxSHAPE`` (``--profile input:1x1x64x64:4x1x64x64:8x1x64x64``)."""
    parts = text.rsplit(":", 3)
    if len(parts) != 4 or not parts[0]:
        raise BuildError(f"bad --profile '{text}': use NAME:MIN:OPT:MAX with shapes like 1x3x640x640")
    name, lo, opt, hi = parts
    return name, _check_profile(name, (parse_shape(lo), parse_shape(opt), parse_shape(hi)))


def _check_profile(name: str, prof: Profile) -> Profile:
    lo, opt, hi = prof
    if not (len(lo) == len(opt) == len(hi)):
        raise BuildError(f"profile for '{name}': min/opt/max have different ranks {lo} {opt} {hi}")
    if any(not (a <= b <= c) for a, b, c in zip(lo, opt, hi)):
        raise BuildError(f"profile for '{name}': need min <= opt <= max in every dimension, got {lo} {opt} {hi}")
    return prof


def onnx_inputs(onnx_path: str | Path) -> list[tuple[str, tuple[int | str | None, ...]]]:
    """Graph inputs (initializers excluded) as (name, dims); a dim is an int, a symbolic name, or None."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = []
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or None)
        out.append((vi.name, tuple(dims)))
    return out


def derive_profiles(
    inputs: Sequence[tuple[str, tuple[int | str | None, ...]]],
    spec_profile: Mapping[str, Sequence[Sequence[int]]] | None = None,
    batch: tuple[int, int, int] | None = None,
    explicit: Mapping[str, Profile] | None = None,
) -> dict[str, Profile]:
    """Optimization profiles for the dynamic inputs of a model, most specific source first:

    1. ``explicit`` (``--profile name:MIN:OPT:MAX``) for that input;
    2. the model spec's ``profile`` (config/models.yaml): either {min, opt, max}, which describes the *first*
       input (spec tensor names may differ from the exported names, e.g. face_mesh ``input`` vs ``image``),
       or {input_name: {min, opt, max}, ...} for models with several dynamic inputs;
    3. static dimensions as they are, dynamic batch (dim 0) = ``batch`` or 1.
    ``batch`` (``--batch 1:4:8``) then overrides dim 0 of every input whose dim 0 is dynamic.
    Inputs with only static dims get no profile (TensorRT needs none). A profile that contradicts a
    static dimension, or a dynamic non-batch dimension with no source, is an error naming the input.
    """
    explicit = dict(explicit or {})
    unknown = set(explicit) - {n for n, _ in inputs}
    if unknown:
        raise BuildError(f"--profile names unknown inputs {sorted(unknown)}; the model's inputs are "
                         f"{[n for n, _ in inputs]}")
    profiles: dict[str, Profile] = {}
    for idx, (name, dims) in enumerate(inputs):
        dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
        if name in explicit:
            prof = explicit[name]
        elif not dynamic:
            continue
        elif spec_profile and name in spec_profile and isinstance(spec_profile[name], Mapping):
            prof = tuple(tuple(int(d) for d in spec_profile[name][k]) for k in ("min", "opt", "max"))
        elif idx == 0 and spec_profile and all(k in spec_profile for k in ("min", "opt", "max")):
            prof = tuple(tuple(int(d) for d in spec_profile[k]) for k in ("min", "opt", "max"))
        else:
            missing = [i for i in dynamic if i != 0]
            if missing:
                raise BuildError(f"input '{name}' {list(dims)} has dynamic dimensions {missing} besides the batch; "
                                 f"give its shapes with --profile {name}:MIN:OPT:MAX (e.g. 1x3x384x640)")
            one = tuple(1 if not isinstance(d, int) else d for d in dims)
            prof = (one, one, one)
        prof = tuple(tuple(s) for s in prof)
        if batch is not None and dims and not isinstance(dims[0], int) and name not in explicit:
            prof = tuple((b, *s[1:]) for b, s in zip(batch, prof))
        for s in prof:
            if len(s) != len(dims):
                raise BuildError(f"profile for input '{name}' has rank {len(s)} {list(s)}, the model input is "
                                 f"{list(dims)} (rank {len(dims)})")
            bad = [i for i, (want, got) in enumerate(zip(dims, s)) if isinstance(want, int) and want != got]
            if bad:
                raise BuildError(f"profile shape {list(s)} for input '{name}' contradicts its static dimensions "
                                 f"{list(dims)} at axes {bad}")
        profiles[name] = _check_profile(name, prof)  # type: ignore[arg-type]
    return profiles




def is_static(profile: Profile) -> bool:
    """min == opt == max: what DLA requires (it runs static shapes only)."""
    lo, opt, hi = profile
    return tuple(lo) == tuple(opt) == tuple(hi)
