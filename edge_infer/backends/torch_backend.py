"""PyTorch backend: the reference column of the benchmark, and a fallback runtime for models kept in torch.

Loads, by file type:
- ``*.onnx`` through ``onnx2torch`` when that package is installed (the zoo's detector and face mesh exist
  only as ONNX / TFLite; onnx2torch rebuilds them as torch modules so torch can be benchmarked on them);
- anything else as a checkpoint (:mod:`edge_infer.backends.torch_checkpoint`): ``.safetensors`` state_dicts
  (no pickle at all), torch.save state_dicts and the project's ``{"model_state_dict", "config":
  {"architecture": ...}}`` layout (what ``edge-infer zoo fetch`` writes for the emotion model), built into a
  module from the ``architectures`` registry the caller passes (:data:`edge_infer.models.architectures.
  ARCHITECTURES` for the zoo's models; this runtime layer does not import the model layer) or the
  ``architecture`` the user named. torch.save files load weights-only; TorchScript archives, pickled modules
  and a ``package.module:Class`` architecture need ``trust_checkpoint`` (``--trust-checkpoint``): they run
  code from the file or the named module.
torch is imported only when this backend is created.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.backends.base import Backend, BackendError, TensorInfo
from edge_infer.backends.torch_checkpoint import Architectures, build_module, load_checkpoint

log = logging.getLogger(__name__)

TORCH_HINT = ("torch is not installed: pip install torch==2.13.0 (CPU wheel; an unpinned torch pulls GBs of CUDA "
              "packages); on Jetson use NVIDIA's JetPack torch wheel")
ONNX2TORCH_HINT = "running an .onnx model with the torch backend needs onnx2torch: pip install onnx2torch"


def import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise BackendError(f"{TORCH_HINT} ({e})") from e
    return torch


class TorchBackend(Backend):
    """A torch module in eval mode run under ``torch.inference_mode`` on CPU (or ``device``)."""

    def __init__(
        self,
        model_path: str | None = None,
        module: Any = None,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        input_shapes: Sequence[Sequence[Any]] | None = None,
        device: str = "cpu",
        threads: int = 0,
        intra_op_threads: int | None = None,
        architectures: Architectures | None = None,
        architecture: str | None = None,
        arch_kwargs: Mapping[str, Any] | None = None,
        trust_checkpoint: bool = False,
        **_: Any,
    ) -> None:
        super().__init__(str(model_path) if model_path else "<module>")
        self._architectures = dict(architectures or {})
        self._architecture, self._arch_kwargs, self._trust = architecture, dict(arch_kwargs or {}), trust_checkpoint
        torch = import_torch()
        self.torch = torch
        threads = intra_op_threads if intra_op_threads is not None else threads
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        shapes: list[tuple[Any, ...]] = [tuple(s) for s in input_shapes] if input_shapes else []
        out_names = list(output_names) if output_names else []
        in_names = list(input_names) if input_names else []
        if module is None:
            if not model_path:
                raise BackendError("torch backend: give a model path or a module")
            module, in_names2, out_names2, shapes2 = self._load(Path(model_path))
            in_names, out_names, shapes = in_names or in_names2, out_names or out_names2, shapes or shapes2
        self.module = module.eval().to(self.device) if hasattr(module, "eval") else module
        in_names = in_names or ["input"]
        out_names = out_names or ["output"]
        shapes = shapes or [(None,)] * len(in_names)
        self._inputs = [TensorInfo(n, tuple(s), "float32") for n, s in zip(in_names, shapes)]
        self._outputs = [TensorInfo(n, (None,), "float32") for n in out_names]
        self.name = f"torch[{torch.__version__},{self.device.type},{torch.get_num_threads()}t]"

    def _load(self, path: Path) -> tuple[Any, list[str], list[str], list[tuple]]:
        if not path.is_file():
            raise BackendError(f"torch model not found: {path}")
        if path.suffix == ".onnx":
            try:
                from onnx2torch import convert
            except ImportError as e:
                raise BackendError(f"{ONNX2TORCH_HINT} ({e})") from e
            import onnx

            model = onnx.load(str(path))
            inits = {i.name for i in model.graph.initializer}
            ins = [i for i in model.graph.input if i.name not in inits]
            shapes = [tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                            for d in i.type.tensor_type.shape.dim) for i in ins]
            try:
                module = convert(model)
            except Exception as first:  # weights behind Constant/Cast nodes: fold them like `sanitize` does
                try:
                    import onnx_graphsurgeon as gs

                    graph = gs.import_onnx(model)
                    graph.fold_constants().cleanup()
                    module = convert(gs.export_onnx(graph))
                    log.info("onnx2torch needed constant folding for %s", path.name)
                except Exception as e:
                    raise BackendError(f"onnx2torch could not convert {path}: {first} (after constant folding: {e})") from e
            return module, [i.name for i in ins], [o.name for o in model.graph.output], shapes
        module, _ = build_module(load_checkpoint(path, trust=self._trust), self._architectures, self._architecture,
                                 self._arch_kwargs, trust=self._trust)
        return module, [], [], []

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        torch = self.torch
        missing = [t.name for t in self._inputs if t.name not in feeds]
        if missing:
            raise BackendError(f"{self.model_path}: missing inputs {missing}; model expects {self.input_names}")
        args = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])).to(self.device) for t in self._inputs]
        try:
            with torch.inference_mode():
                out = self.module(*args)
        except Exception as e:
            raise BackendError(f"{self.model_path}: torch inference failed: {e}") from e
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if len(outs) != len(self._outputs):
            self._outputs = [TensorInfo(f"output_{i}", (None,), "float32") for i in range(len(outs))]
        result = {t.name: o.detach().cpu().numpy() for t, o in zip(self._outputs, outs)}
        return {n: result[n] for n in output_names} if output_names else result
