"""`edge-infer inspect model.engine`: I/O and optimization profiles of a TensorRT engine (like
`trtexec --dumpProfile`), with the build sidecar when present. Needs TensorRT (the robot)."""

from __future__ import annotations

from edge_infer.errors import MissingFileError
from pathlib import Path
from typing import Any

from edge_infer.backends.tensorrt.cache import read_sidecar


def inspect_engine(path: str | Path) -> dict[str, Any]:
    from edge_infer.backends.tensorrt.runtime import describe_engine

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"engine not found: {path}")
    info = {"path": str(path), "size_bytes": path.stat().st_size, "format": "tensorrt", "sidecar": read_sidecar(path)}
    info.update(describe_engine(str(path)))
    return info
