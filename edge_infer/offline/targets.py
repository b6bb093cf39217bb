"""Deployment targets (JetPack releases): default ONNX opset and what their TensorRT parser accepts.

Why per target: a JetPack image pins its TensorRT, and an ONNX file with a newer opset or an op its
onnx-tensorrt parser lacks fails on the robot, after the model was shipped. Choosing the opset from the
target and warning about ops here moves that failure to the workstation.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_infer.errors import OfflineError


@dataclass(frozen=True)
class Target:
    name: str
    jetpack: str
    tensorrt: str
    opset: int  # default export opset (newest one that target's onnx-tensorrt parser supports well)
    unsupported_ops: frozenset[str]  # ops its TensorRT ONNX parser rejects (onnx-tensorrt operators.md)


# Ops no TensorRT ONNX parser imports natively (up to 10.x), per onnx-tensorrt's operators.md.
_NEVER = frozenset({
    "StringNormalizer", "TfIdfVectorizer", "Unique", "Bernoulli", "Optional", "OptionalGetElement",
    "OptionalHasElement", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SplitToSequence", "ConcatFromSequence", "SequenceMap", "MelWeightMatrix", "Col2Im",
    "ImageDecoder", "RegexFullMatch", "StringConcat", "StringSplit", "CenterCropPad",
    # ONNX Runtime contrib / quantized-operator ops (QOperator format): TensorRT wants QDQ instead
    "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear",
})
# Added in later TensorRT releases (so unsupported on the older targets).
_ADDED_TRT_85 = frozenset({"STFT", "DFT", "BlackmanWindow", "HannWindow", "HammingWindow", "GridSample",
                           "LayerNormalization", "GroupNormalization", "AffineGrid", "Mish"})
_ADDED_TRT_82 = frozenset({"NonMaxSuppression", "RoiAlign"})

TARGETS: dict[str, Target] = {
    "jetpack4.6": Target("jetpack4.6", "4.6", "8.0", 13, _NEVER | _ADDED_TRT_82 | _ADDED_TRT_85),
    "jetpack5": Target("jetpack5", "5.1", "8.5", 16, _NEVER | {"LayerNormalization", "GroupNormalization",
                                                               "AffineGrid", "STFT", "DFT"}),
    "jetpack6": Target("jetpack6", "6.x", "8.6/10.x", 17, _NEVER),
}
DEFAULT_TARGET = "jetpack6"


def get_target(name: str | None) -> Target:
    key = (name or DEFAULT_TARGET).lower().replace("jp", "jetpack").replace("_", "").replace("-", "")
    key = {"jetpack46": "jetpack4.6", "jetpack4": "jetpack4.6", "jetpack51": "jetpack5", "jetpack60": "jetpack6",
           "jetpack61": "jetpack6"}.get(key, key)
    if key not in TARGETS:
        raise OfflineError(f"unknown target '{name}'; choose one of {sorted(TARGETS)}")
    return TARGETS[key]
