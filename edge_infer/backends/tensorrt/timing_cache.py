"""The TensorRT timing cache: one file per TensorRT version and GPU, merged and written atomically.

A timing cache records measured tactic timings; reusing it makes a rebuild take seconds instead of minutes.
It is only valid for the TensorRT build and the GPU that measured it, so the file name carries both
(``timing.trt10.3.0.sm87.cache``): an upgrade or another GPU starts its own file instead of being
rejected. ``set_timing_cache``'s answer is checked (a rejected cache is reported and the build goes on with
an empty one), and the result is merged under a lock with whatever another process wrote meanwhile
(``ITimingCache.combine``) before the atomic write, so concurrent builds never lose each other's timings.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_infer.backends.tensorrt.precision import BuildError
from edge_infer.fileio import atomic_write_bytes, file_lock

log = logging.getLogger(__name__)


def keyed_path(path: str | Path, identity: Mapping[str, str]) -> Path:
    """``engines/timing.cache`` -> ``engines/timing.trt10.3.0.sm87.cache`` (a directory gets ``timing.…``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "timing.cache"
    tag = f"trt{identity.get('tensorrt', 'unknown')}.sm{str(identity.get('compute_capability', 'unknown')).replace('.', '')}"
    tag = re.sub(r"[^A-Za-z0-9._-]", "_", tag)
    return p.with_name(f"{p.stem}.{tag}{p.suffix or '.cache'}")


class TimingCache:
    """One build's use of a timing-cache file: :meth:`attach` before building, :meth:`save` after."""

    def __init__(self, path: str | Path, echo: Callable[[str], None] = log.info) -> None:
        self.path = Path(path)
        self.echo = echo
        self.loaded = b""

    def attach(self, config: Any) -> Any:
        """Load the file into ``config``; a cache TensorRT rejects is replaced by an empty one, loudly."""
        self.loaded = self.path.read_bytes() if self.path.is_file() else b""
        cache = config.create_timing_cache(self.loaded)
        if config.set_timing_cache(cache, False):  # ignore_mismatch=False: never use another GPU's timings
            if self.loaded:
                self.echo(f"[build] reusing timing cache {self.path} ({len(self.loaded)} bytes)")
            return cache
        self.echo(f"[build] warning: TensorRT rejected the timing cache {self.path} (another TensorRT or GPU, or "
                  "damaged); building with an empty one, the file will be replaced")
        self.loaded = b""
        cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, False):
            raise BuildError("TensorRT rejected even an empty timing cache; use --timing-cache none")
        return cache

    def save(self, config: Any) -> bool:
        """Merge the build's cache with the file as it is now (another build may have written it), then
        write atomically under the file lock. Returns whether the file changed."""
        cache = config.get_timing_cache()
        with file_lock(self.path):
            current = self.path.read_bytes() if self.path.is_file() else b""
            if current and current != self.loaded:
                other = config.create_timing_cache(current)
                if not cache.combine(other, False):
                    self.echo(f"[build] warning: could not merge {self.path} written meanwhile (other TensorRT/GPU); "
                              "keeping this build's timings")
            data = bytes(cache.serialize())
            if data == current:
                return False
            atomic_write_bytes(self.path, data)
            return True
