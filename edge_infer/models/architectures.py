"""mini-Xception (fer's emotion classifier) as a torch module, with weights read from the Keras .hdf5.

Why a hand-written module instead of a converter: the only source is a Keras 2.0.5 h5 file, and neither
TensorFlow nor an h5->ONNX converter is installable here. The graph is small and fixed, so we rebuild it
exactly (Keras layer names kept as attribute names so weights map one to one) and read the weights with
h5py, which never executes anything stored in the file (unlike keras.models.load_model, which may
deserialize Lambda layers).
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

KERAS_BN_EPS = 1e-3  # Keras' BatchNormalization default; torch's 1e-5 would shift every output
INPUT_SIZE = 64
NUM_CLASSES = 7


def keras_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of Keras/TF 'same': the odd pixel goes after (bottom/right), unlike torch."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SeparableConv2d(nn.Module):
    """Keras SeparableConv2D (depth_multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class KerasMaxPool(nn.MaxPool2d):
    """MaxPooling2D(3, strides=2, padding='same') as one plain MaxPool op.

    TF puts the odd padding cell after; torch pads symmetrically, so the extra trailing cell is obtained
    with ceil_mode (a window overhanging the end, its missing cells ignored like TF's -inf padding).
    This avoids a Pad(-inf) node, which the legacy exporter emits with non-folded pad arithmetic.
    """

    def __init__(self, in_size: int, kernel: int = 3, stride: int = 2) -> None:
        before, after = keras_same_padding(in_size, kernel, stride)
        super().__init__(kernel, stride, padding=before, ceil_mode=after > before)
        out = (in_size + 2 * before - kernel + (stride - 1 if after > before else 0)) // stride + 1
        if out != -(-in_size // stride):  # pragma: no cover - guards the derivation above
            raise ValueError(f"cannot express Keras 'same' pooling for size {in_size} in torch")


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=KERAS_BN_EPS)


class MiniXception(nn.Module):
    """Input [N,1,64,64] preprocessed as (x/255-0.5)*2; output [N,7] softmax probabilities (fer's order).

    Layer names follow the Keras file (conv2d_1, batch_normalization_4, ...), so `load_keras_h5` needs no
    hand-kept mapping table. The pooling padding is computed for a 64x64 input, the only size the weights
    were trained for; other sizes are rejected rather than silently padded differently.
    """

    # Keras layer numbers in each residual block: sep_a, bn_a, sep_b, bn_b, res_conv, res_bn, channels out
    _BLOCKS = (
        (1, 4, 2, 5, 3, 3, 16),
        (3, 7, 4, 8, 4, 6, 32),
        (5, 10, 6, 11, 5, 9, 64),
        (7, 13, 8, 14, 6, 12, 128),
    )

    def __init__(self, input_size: int = INPUT_SIZE, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.input_size = input_size
        self.conv2d_1 = nn.Conv2d(1, 8, 3, bias=False)
        self.batch_normalization_1 = _bn(8)
        self.conv2d_2 = nn.Conv2d(8, 8, 3, bias=False)
        self.batch_normalization_2 = _bn(8)
        size, cin = input_size - 4, 8  # two 'valid' 3x3 convs
        self._plan: list[tuple[str, ...]] = []
        for sa, ba, sb, bb, rc, rb, cout in self._BLOCKS:
            names = (f"separable_conv2d_{sa}", f"batch_normalization_{ba}", f"separable_conv2d_{sb}",
                     f"batch_normalization_{bb}", f"conv2d_{rc}", f"batch_normalization_{rb}", f"pool_{rc}")
            setattr(self, names[0], SeparableConv2d(cin, cout))
            setattr(self, names[1], _bn(cout))
            setattr(self, names[2], SeparableConv2d(cout, cout))
            setattr(self, names[3], _bn(cout))
            # 1x1 stride-2 'same' conv never needs padding (total = (out-1)*2 + 1 - size <= 0)
            setattr(self, names[4], nn.Conv2d(cin, cout, 1, stride=2, bias=False))
            setattr(self, names[5], _bn(cout))
            setattr(self, names[6], KerasMaxPool(size))
            self._plan.append(names)
            size, cin = -(-size // 2), cout
        self.conv2d_7 = nn.Conv2d(cin, num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and tuple(x.shape[1:]) != (1, self.input_size, self.input_size):
            raise ValueError(f"MiniXception expects [N,1,{self.input_size},{self.input_size}], got {list(x.shape)}")
        x = F.relu(self.batch_normalization_1(self.conv2d_1(x)))
        x = F.relu(self.batch_normalization_2(self.conv2d_2(x)))
        for sa, ba, sb, bb, rc, rb, pool in self._plan:
            m = self._modules
            residual = m[rb](m[rc](x))
            y = F.relu(m[ba](m[sa](x)))
            y = m[pool](m[bb](m[sb](y)))
            x = y + residual
        x = self.conv2d_7(x).mean(dim=(2, 3))
        return torch.softmax(x, dim=1)


ARCHITECTURES: dict[str, type[nn.Module]] = {"mini_xception": MiniXception}


class KerasH5Error(EdgeInferError, ValueError):
    """The file is not a Keras h5 model with the mini-Xception weights this module can read."""


def _decode(v: object) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _layer_weights(group, layer: str) -> dict[str, np.ndarray]:
    """Weights of one Keras layer keyed by short name ('kernel', 'gamma', ...), in stored order."""
    if layer not in group:
        raise KerasH5Error(f"layer '{layer}' is missing from the h5 weights")
    g = group[layer]
    names = [_decode(n) for n in g.attrs.get("weight_names", [])]
    out = {}
    for n in names:
        short = n.rsplit("/", 1)[-1].split(":")[0]
        out[short] = np.asarray(g[n], dtype=np.float32)
    return out


def load_keras_h5(path: str | Path) -> dict[str, torch.Tensor]:
    """Read fer's emotion_model.hdf5 into a MiniXception state_dict, with h5py only.

    Keras stores kernels HWIO (channels last); torch wants OIHW, depthwise as [C,1,H,W]. Shapes are
    checked against the torch module, so a different Keras model fails here with the layer named, not
    later with wrong predictions.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Keras h5 file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise KerasH5Error(f"{path} is not an HDF5 file ({e}); expected a Keras .h5/.hdf5 model") from e
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs:
            raise KerasH5Error(
                f"{path} has no Keras 'layer_names' attribute: not a Keras 2 / tf.keras legacy h5 model "
                "(Keras 3 '.keras' zip files and '.weights.h5' files are not supported)"
            )
        if "model_config" in f.attrs:
            cfg = json.loads(_decode(f.attrs["model_config"]))
            layers = cfg.get("config", {}).get("layers", [])
            shape = next((l["config"].get("batch_input_shape") for l in layers if l.get("class_name") == "InputLayer"), None)
            if shape is not None and list(shape[1:]) != [INPUT_SIZE, INPUT_SIZE, 1]:
                raise KerasH5Error(f"{path}: input shape {shape} is not mini-Xception's [None, 64, 64, 1]")
        model = MiniXception()
        expected = model.state_dict()
        sd: dict[str, torch.Tensor] = {}
        for name, module in model.named_modules():
            if not name or "." in name:
                continue
            w = None
            if isinstance(module, nn.BatchNorm2d):
                w = _layer_weights(group, name)
                try:
                    vals = {"weight": w["gamma"], "bias": w["beta"], "running_mean": w["moving_mean"],
                            "running_var": w["moving_variance"]}
                except KeyError as e:
                    raise KerasH5Error(f"{path}: layer '{name}' lacks BatchNormalization weight {e}") from e
            elif isinstance(module, SeparableConv2d):
                w = _layer_weights(group, name)
                if "depthwise_kernel" not in w or "pointwise_kernel" not in w:
                    raise KerasH5Error(f"{path}: layer '{name}' is not a SeparableConv2D (has {sorted(w)})")
                dk = w["depthwise_kernel"]  # [kh, kw, C, M]
                vals = {"depthwise.weight": dk.transpose(2, 3, 0, 1).reshape(-1, 1, *dk.shape[:2]),
                        "pointwise.weight": w["pointwise_kernel"].transpose(3, 2, 0, 1)}
            elif isinstance(module, nn.Conv2d):
                w = _layer_weights(group, name)
                if "kernel" not in w:
                    raise KerasH5Error(f"{path}: layer '{name}' has no kernel (has {sorted(w)})")
                vals = {"weight": w["kernel"].transpose(3, 2, 0, 1)}
                if "bias" in w:
                    vals["bias"] = w["bias"]
            else:
                continue
            for k, v in vals.items():
                key = f"{name}.{k}"
                if key not in expected or tuple(expected[key].shape) != v.shape:
                    want = tuple(expected[key].shape) if key in expected else "absent"
                    raise KerasH5Error(f"{path}: weight {key} has shape {v.shape}, mini-Xception needs {want}")
                sd[key] = torch.from_numpy(np.ascontiguousarray(v))
        for key, t in expected.items():
            if key.endswith("num_batches_tracked"):
                sd[key] = torch.zeros_like(t)
        missing = sorted(set(expected) - set(sd))
        if missing:
            raise KerasH5Error(f"{path}: no weights found for {missing}")
        return sd


def load_mini_xception(h5_path: str | Path) -> MiniXception:
    """A MiniXception in eval mode (BatchNorm uses the stored moving statistics) with the h5 weights."""
    model = MiniXception()
    model.load_state_dict(load_keras_h5(h5_path))
    return model.eval()


__all__: Sequence[str] = ("MiniXception", "ARCHITECTURES", "KerasH5Error", "load_keras_h5", "load_mini_xception",
                          "keras_same_padding")
