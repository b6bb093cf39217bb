"""Memory in use by this process, for ``/diagnostics`` and ``bench model``'s benchmark.json (Orin Nano has
8 GB shared between CPU and GPU: the first thing robot users ask is "how much does it take")."""

from __future__ import annotations

import os
import sys
from typing import Any


def host_rss_mb() -> float | None:
    """Resident set size of this process in MiB (Linux /proc; the peak from getrusage elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
        return round(resident_pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20), 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)
    except Exception:
        return None


def memory_usage() -> dict[str, Any]:
    """Host RSS and, when this process already uses a GPU through the CUDA layer, device memory in use."""
    out: dict[str, Any] = {"host_rss_mb": host_rss_mb(), "device_used_mb": None, "device_total_mb": None}
    cuda = sys.modules.get("edge_infer.backends.tensorrt.cuda")  # only when the CUDA layer is already loaded
    dev = cuda.device_memory_in_use() if cuda is not None else None
    if dev is None and "torch" in sys.modules:
        torch = sys.modules["torch"]
        try:
            if torch.cuda.is_initialized():
                free, total = torch.cuda.mem_get_info()
                dev = {"used_mb": (total - free) >> 20, "total_mb": total >> 20}
        except Exception:
            dev = None
    if dev is not None:
        out["device_used_mb"], out["device_total_mb"] = dev["used_mb"], dev["total_mb"]
    return out


def runtime_diagnostics() -> dict[str, Any]:
    """Key/values for a node's ``/diagnostics``: memory in use and every engine build in progress (model,
    precision, phase, elapsed, progress, engine path), so a long build on a Jetson does not look hung."""
    mem = memory_usage()
    values: dict[str, Any] = {k: v for k, v in mem.items() if v is not None}
    progress = sys.modules.get("edge_infer.backends.tensorrt.progress")
    for i, b in enumerate(progress.BUILDS.active() if progress is not None else []):
        pct = f" {b['progress'] * 100:.0f}%" if b["progress"] is not None else ""
        values[f"engine_build_{i}"] = (f"{b['model']} {b['precision']}: {b['phase']}{pct}, {b['elapsed_s']} s "
                                       f"-> {b['engine']}")
    return values
