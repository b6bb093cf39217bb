"""One inference interface for every runtime (ONNX Runtime, TensorRT, torch).

Pipelines only ever talk to :class:`Backend`, so swapping the runtime is a parameter, not a code change.
Inputs and outputs are addressed by tensor name, never by position, because exporters reorder outputs.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError
import abc
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

Dim = int | str | None  # int: fixed; str: named dynamic dim (e.g. "batch"); None: unnamed dynamic dim


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of one model input or output as the runtime reports it."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str  # numpy dtype name, e.g. "float32", "int64"

    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}[{dims}]:{self.dtype}"


def default_cpu_threads() -> int:
    """Threads a CPU runtime (ONNX Runtime intra-op, LiteRT/XNNPACK) gets when none is asked for (0).

    One less than the CPUs this process may run on, at least 1, at most 4. Why not every core (the runtimes'
    own default): a node is not alone on its machine (camera driver, DDS, the executor, other nodes), and a
    thread pool that spins on a core someone else needs is slower than one thread. Measured on the 2-core dev
    machine with other work running: RetinaFace 640x384 13.6-14 ms with 1 thread against 24-27 ms with 2;
    with the second core free, 2 threads were no faster (docs/PERFORMANCE.md). Small models gain nothing past 4.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus - 1))


class BackendError(EdgeInferError, RuntimeError):
    """A model could not be loaded or run; the message says which model and why."""


class Backend(abc.ABC):
    """A loaded model ready to run. Create through :func:`edge_infer.backends.create_backend`."""

    #: short runtime name reported in diagnostics, e.g. "onnxruntime[CPUExecutionProvider]"
    name: str = "backend"

    def __init__(self, model_path: str) -> None:
        self.model_path = model_path

    #: filled by each backend's constructor from what its runtime reports
    _inputs: Sequence[TensorInfo] = ()
    _outputs: Sequence[TensorInfo] = ()

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return self._inputs

    @property
    def outputs(self) -> Sequence[TensorInfo]:
        return self._outputs

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run one inference. ``feeds`` maps input name -> array (batch dim included)."""

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Fail with a message naming the tensor instead of the runtime's opaque error."""
        expected = {t.name: t for t in self.inputs}
        missing = set(expected) - set(feeds)
        extra = set(feeds) - set(expected)
        if missing or extra:
            raise BackendError(
                f"{self.model_path}: inputs mismatch: missing {sorted(missing)}, unexpected {sorted(extra)}; "
                f"model expects {[t.describe() for t in self.inputs]}"
            )
        for name, arr in feeds.items():
            info = expected[name]
            if len(arr.shape) != len(info.shape):
                raise BackendError(
                    f"{self.model_path}: input '{name}' has rank {arr.ndim} {tuple(arr.shape)}, "
                    f"model expects {info.describe()}"
                )
            for got, want in zip(arr.shape, info.shape):
                if isinstance(want, int) and want >= 0 and got != want:
                    raise BackendError(
                        f"{self.model_path}: input '{name}' has shape {tuple(arr.shape)}, model expects {info.describe()}"
                    )

    def close(self) -> None:
        """Release runtime resources (sessions, device buffers)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_backends(*owners: object, depth: int = 4) -> int:
    """Close every :class:`Backend` reachable from ``owners`` (a pipeline, its models, their lists and dicts),
    each once; returns how many. What a node calls on shutdown and on the old pipeline after an engine
    rebuild, so TensorRT engines, device buffers and CUDA contexts are freed, not leaked."""
    seen: set[int] = set()
    closed = 0

    def visit(obj: object, level: int) -> None:
        nonlocal closed
        if id(obj) in seen or level > depth or obj is None or isinstance(obj, (str, bytes, int, float)):
            return
        seen.add(id(obj))
        if isinstance(obj, Backend):
            obj.close()
            closed += 1
            return
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            children = list(obj)
        else:
            children = list(getattr(obj, "__dict__", {}).values())
        for child in children:
            visit(child, level + 1)

    for owner in owners:
        visit(owner, 0)
    return closed
