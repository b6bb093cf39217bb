"""Precision by capability, not by version number: what a requested precision means on *this* TensorRT.

TensorRT 11 removed weak typing (``BuilderFlag.FP16/INT8``, calibrators, ``platform_has_fast_*``); from 10.12
it is deprecated. So the question is never "is this TensorRT 11" but "does this TensorRT have
``BuilderFlag.FP16``" (:class:`Capabilities`), and the answer picks a :class:`Route`:

===========  =============================  =============================================================
precision    TensorRT with weak typing       TensorRT without (11.x), or ``fp16_source: onnx``
===========  =============================  =============================================================
fp32         plain network                   strongly typed network of the fp32 ONNX
fp16         ``BuilderFlag.FP16``            strongly typed network of an FP16 ONNX made by the project's
                                             converter (fp32 I/O), validated first; fp32 with the reason
                                             logged and recorded when the FP16 graph fails validation
int8         QDQ ONNX only: 8.6 ``INT8+FP16`` flags; 10.x and 11.x strongly typed
===========  =============================  =============================================================

This module holds the one strongly-typed rule, the one int8-needs-QDQ rule and the FP16-ONNX cache.
The check that an FP16 graph is good enough is pluggable: the offline layer registers the project's task
validation (real inputs, task metrics) with :func:`register_fp16_validator`; without it a generic check
(ONNX Runtime CPU, seeded inputs, finite outputs within 5 % of the fp32 graph) runs, and says so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_infer.errors import EdgeInferError
from edge_infer.fileio import atomic_path, atomic_write_json
from edge_infer.backends.tensorrt.sidecar import onnx_digest

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
FP16_SOURCES = ("auto", "flag", "onnx")
GENERIC_TOLERANCE = 0.05  # max abs diff relative to the fp32 output's range


class BuildError(EdgeInferError, RuntimeError):
    """The engine could not be built; the message names the model and the cause."""


class PrecisionError(BuildError):
    """A precision / typing combination this TensorRT cannot build; the message says what to use instead."""


# ---------------------------------------------------------------------------------------------- capabilities
@dataclass(frozen=True)
class Capabilities:
    """What a TensorRT can do, read from its module (the real enums) or, for trtexec, its major version."""

    major: int
    weak_typing: bool  # BuilderFlag.FP16 / INT8 exist (8.6 .. 10.x)
    strongly_typed: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists (10.0 ..)
    explicit_batch_flag: bool  # EXPLICIT_BATCH must be set for ONNX (< 10)

    @classmethod
    def of_module(cls, trt: Any) -> "Capabilities":
        from edge_infer.backends.tensorrt.trt import trt_major

        major = trt_major(trt)
        return cls(major, hasattr(trt.BuilderFlag, "FP16"),
                   hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"), major < 10)

    @classmethod
    def of_major(cls, major: int) -> "Capabilities":
        """For a tool whose bindings are not loaded (trtexec, ``--print-command --trt-major``)."""
        return cls(major, major < 11, major >= 10, major < 10)


def as_capabilities(caps: "Capabilities | int") -> Capabilities:
    return caps if isinstance(caps, Capabilities) else Capabilities.of_major(int(caps))


# ---------------------------------------------------------------------------------------------- routes
@dataclass(frozen=True)
class Route:
    """How one engine gets its precision."""

    precision: str  # what was asked for
    kind: str  # fp32 | fp16-flag | fp16-onnx | int8-qdq
    strongly_typed: bool
    flags: tuple[str, ...] = ()  # BuilderFlag names to set (weak typing only)

    @property
    def needs_fp16_onnx(self) -> bool:
        return self.kind == "fp16-onnx"


def choose_route(precision: str, strongly_typed: str, fp16_source: str, caps: "Capabilities | int") -> Route:
    """The one rule. ``strongly_typed``: auto | on | off; ``fp16_source``: auto | flag | onnx."""
    caps = as_capabilities(caps)
    if strongly_typed == "on" and not caps.strongly_typed:
        raise PrecisionError(f"strongly typed networks need TensorRT >= 10 (this is TensorRT {caps.major}.x); "
                             "use --strongly-typed off")
    if strongly_typed == "off" and not caps.weak_typing:
        raise PrecisionError(f"TensorRT {caps.major}.x builds only strongly typed networks (weak typing was removed); "
                             "use --strongly-typed auto")
    if fp16_source == "flag" and precision == "fp16" and not caps.weak_typing:
        raise PrecisionError(f"TensorRT {caps.major}.x has no BuilderFlag.FP16 (weak typing was removed): fp16 comes "
                             "from an FP16 ONNX built strongly typed; use fp16_source auto or onnx")
    if fp16_source == "onnx" and precision == "fp16" and not caps.strongly_typed:
        raise PrecisionError(f"an FP16 ONNX must be built strongly typed, which TensorRT {caps.major}.x cannot; "
                             "use fp16_source auto or flag")
    plain_strong = strongly_typed == "on" or not caps.weak_typing
    if precision == "fp32":
        return Route("fp32", "fp32", plain_strong)
    if precision == "int8":  # QDQ only; explicit quantization
        if caps.strongly_typed and strongly_typed != "off":
            return Route("int8", "int8-qdq", True)
        return Route("int8", "int8-qdq", False, ("FP16", "INT8"))  # 8.6: INT8 + FP16 for unquantized layers
    if precision != "fp16":
        raise PrecisionError(f"unknown precision '{precision}'; use one of {PRECISIONS}")
    if fp16_source == "onnx" or strongly_typed == "on" or not caps.weak_typing:
        return Route("fp16", "fp16-onnx", True)
    return Route("fp16", "fp16-flag", False, ("FP16",))


def fallback_fp32(route: Route, caps: "Capabilities | int") -> Route:
    """The route used when the FP16 graph failed validation: fp32, typed as this TensorRT requires."""
    caps = as_capabilities(caps)
    return Route(route.precision, "fp32", not caps.weak_typing or route.strongly_typed and caps.strongly_typed)


def route_key(precision: str, strongly_typed: str, fp16_source: str, caps: "Capabilities | int") -> dict[str, Any]:
    """The part of the engine cache key that depends on the route: which kind, and which converter made the
    graph that is parsed (an ONNX Runtime upgrade may change the FP16 graph, so it changes the key)."""
    route = choose_route(precision, strongly_typed, fp16_source, caps)
    converter = None
    if route.needs_fp16_onnx:
        from edge_infer.backends.tensorrt.fp16_onnx import converter_id

        converter = converter_id()
    return {"route": route.kind, "fp16_converter": converter}


def has_qdq(onnx_path: str | Path) -> bool:
    """True when the model carries QuantizeLinear/DequantizeLinear nodes (explicit quantization)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        for n in g.node:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                return True
            graphs.extend(a.g for a in n.attribute if a.type == onnx.AttributeProto.GRAPH)
    return False


def require_qdq(onnx_path: str | Path, precision: str) -> bool:
    """The one int8 rule: int8 engines come only from QDQ models (explicit quantization). Returns has_qdq."""
    qdq = has_qdq(onnx_path)
    if precision == "int8" and not qdq:
        raise PrecisionError(f"{Path(onnx_path).name} has no QuantizeLinear/DequantizeLinear nodes: int8 engines are "
                             "built from QDQ models (explicit quantization). Run `edge-infer quantize --mode int8` "
                             "first, or use fp16")
    return qdq


# ---------------------------------------------------------------------------------------------- FP16 validation
@dataclass(frozen=True)
class Fp16Verdict:
    ok: bool
    detail: str  # why it failed, or what was checked


#: (fp32 onnx, fp16 onnx, profiles {input: (min, opt, max)}) -> verdict
Fp16Check = Callable[[Path, Path, Mapping[str, Any]], Fp16Verdict]
_validator: tuple[str, Fp16Check] | None = None


def register_fp16_validator(name: str, check: Fp16Check) -> None:
    """Install the check every FP16 graph must pass before it is built (the offline layer's task validation)."""
    global _validator
    _validator = (name, check)


def fp16_validator() -> tuple[str, Fp16Check]:
    return _validator or ("generic", generic_fp16_check)


def _seeded_feeds(session: Any, profiles: Mapping[str, Any]) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for i in session.get_inputs():
        prof = profiles.get(i.name)
        shape = list(prof[1]) if prof else [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        if "float" in i.type:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        elif "bool" in i.type:
            feeds[i.name] = np.zeros(shape, bool)
        else:
            feeds[i.name] = np.zeros(shape, np.int64 if "int64" in i.type else np.int32)
    return feeds


def generic_fp16_check(fp32_path: Path, fp16_path: Path, profiles: Mapping[str, Any]) -> Fp16Verdict:
    """No task knowledge: both graphs on ONNX Runtime CPU with seeded inputs at the profile's opt shapes."""
    import numpy as np
    import onnxruntime as ort

    ref = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    feeds = _seeded_feeds(ref, profiles)
    try:
        want = ref.run(None, feeds)
    except Exception as e:
        return Fp16Verdict(True, f"not validated: the fp32 graph does not run on seeded inputs ({str(e).splitlines()[0]})")
    try:
        got = ort.InferenceSession(str(fp16_path), providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception as e:
        return Fp16Verdict(False, f"the FP16 graph does not run on ONNX Runtime CPU: {str(e).splitlines()[0]}")
    for out, a, b in zip(ref.get_outputs(), want, got):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if not np.isfinite(b[np.isfinite(a)]).all():
            return Fp16Verdict(False, f"the FP16 graph gives NaN/inf in output '{out.name}'")
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        err = float(np.max(np.abs(a - b))) if a.size else 0.0
        if err > GENERIC_TOLERANCE * max(scale, 1e-3):
            return Fp16Verdict(False, f"output '{out.name}' differs by {err:.3g} (range {scale:.3g}) from fp32")
    return Fp16Verdict(True, "generic check: seeded inputs, finite outputs within "
                             f"{GENERIC_TOLERANCE:.0%} of fp32 on ONNX Runtime CPU")


# ---------------------------------------------------------------------------------------------- FP16 ONNX cache
@dataclass(frozen=True)
class Fp16Graph:
    """The result of making the FP16 ONNX of a model: use ``path`` when ``ok``; else build fp32, for ``reason``."""

    path: Path | None
    ok: bool
    reason: str  # the failure, or what validated it
    converter: str
    validator: str
    sha256: str | None = None


def _verdict_path(fp16_path: Path) -> Path:
    return fp16_path.with_name(fp16_path.name + ".json")


def fp16_graph_for(src: str | Path, fp16_path: str | Path, profiles: Mapping[str, Any]) -> Fp16Graph:
    """Make (or reuse) the FP16 ONNX of ``src`` at ``fp16_path`` and validate it; cached by the source
    digest, the converter and the validator, so a second build does neither conversion nor validation."""
    import onnx

    from edge_infer.backends.tensorrt.fp16_onnx import Fp16ConversionError, convert_fp16, converter_id

    src, fp16_path = Path(src), Path(fp16_path)
    source_sha, converter = onnx_digest(src), converter_id()
    name, check = fp16_validator()
    want = {"source_sha256": source_sha, "converter": converter, "validator": name}
    meta_path = _verdict_path(fp16_path)
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError):
        meta = {}
    if all(meta.get(k) == v for k, v in want.items()):
        if not meta.get("ok"):
            return Fp16Graph(None, False, meta.get("reason", "?"), converter, name)
        if fp16_path.is_file() and onnx_digest(fp16_path) == meta.get("sha256"):
            return Fp16Graph(fp16_path, True, meta.get("reason", ""), converter, name, meta["sha256"])
    try:
        model = convert_fp16(onnx.load(str(src)), src.name)
    except Fp16ConversionError as e:
        verdict, sha = Fp16Verdict(False, str(e)), None
    else:
        with atomic_path(fp16_path) as tmp:
            onnx.save(model, str(tmp))
        sha = onnx_digest(fp16_path)
        verdict = check(src, fp16_path, profiles)
    atomic_write_json(meta_path, {**want, "ok": verdict.ok, "reason": verdict.detail, "sha256": sha})
    if not verdict.ok:
        fp16_path.unlink(missing_ok=True)  # the verdict file keeps the reason; no rejected graph lying around
        log.warning("%s: FP16 graph rejected (%s); building fp32 instead", src.name, verdict.detail)
    return Fp16Graph(fp16_path if verdict.ok else None, verdict.ok, verdict.detail, converter, name, sha)
