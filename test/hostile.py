"""Shared checks of the hostile-input suites (test_hostile_*.py): run one `edge-infer` command on a crafted
file in a fresh process and report what the issue's "done means" asks for:

- the exit code and the error output (one line, exit 2: the CLI's user-error path, no traceback);
- whether anything outside the command's output changed (a snapshot of the folders around it);
- the peak RSS above the process's baseline. The baseline is taken after the heavy libraries a verb may
  import (torch, onnx, onnxruntime, cv2, numpy, rosbags, yaml) are loaded, so what is measured is what the
  crafted file made the command allocate, not the size of the libraries.

The probe runs `edge_infer.cli.main(argv)` in a child python (tests/rss_probe below) and writes a JSON
line with the numbers to a file; VmHWM from /proc is the peak (reset is not needed: a fresh process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RSS_BOUND_MB = 200.0  # the bound: peak RSS within 200 MB of the baseline

_PROBE = r"""
import json, sys
def kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1])
    return 0
for mod in PRELOAD:
    try:
        __import__(mod)
    except ImportError:
        pass
base = kb('VmRSS')
from edge_infer import cli
rc = 99
try:
    rc = cli.main(ARGV)
except SystemExit as e:
    rc = e.code if isinstance(e.code, int) else 1
finally:
    with open(REPORT, 'w') as f:
        json.dump({'rc': rc, 'baseline_kb': base, 'peak_kb': kb('VmHWM')}, f)
sys.exit(rc)
"""

PRELOAD = ("numpy", "torch", "onnx", "onnxruntime", "cv2", "yaml", "rosbags.rosbag2", "safetensors", "tarfile")


@dataclass
class CliRun:
    rc: int
    stdout: str
    stderr: str
    peak_over_baseline_mb: float

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    def assert_one_line_error(self, *needles: str) -> str:
        """Exit 2, exactly one non-empty stderr line (no traceback), containing every needle (case-insensitive)."""
        assert self.rc == 2, f"exit {self.rc}, expected 2\nstdout: {self.stdout}\nstderr: {self.stderr}"
        lines = [ln for ln in self.error_lines if not ln.startswith(("WARNING", "INFO"))]
        assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{self.stderr}"
        assert "Traceback" not in self.stderr
        for n in needles:
            assert n.lower() in lines[0].lower(), f"{n!r} not in {lines[0]!r}"
        return lines[0]

    def assert_memory_bounded(self, bound_mb: float = RSS_BOUND_MB) -> None:
        assert self.peak_over_baseline_mb <= bound_mb, (
            f"peak RSS {self.peak_over_baseline_mb:.0f} MB over the baseline (bound {bound_mb:.0f} MB)")


def run_cli(args: list[str], cwd: str | Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> CliRun:
    """`edge-infer <args>` in a fresh python with the RSS probe; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="rss_probe_") as tmp:
        report = Path(tmp) / "report.json"
        code = (f"PRELOAD = {PRELOAD!r}\nARGV = {list(map(str, args))!r}\nREPORT = {str(report)!r}\n" + _PROBE)
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
        data = json.loads(report.read_text()) if report.is_file() else {"baseline_kb": 0, "peak_kb": 0}
    over = max(0.0, (data["peak_kb"] - data["baseline_kb"]) / 1024.0)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, over)


def tree_snapshot(*roots: str | Path) -> dict[str, tuple[int, int, str]]:
    """{path: (size, mtime_ns, kind)} of everything below the roots: compare before/after a command to show that
    nothing outside its output changed (new, removed or modified files all show)."""
    snap: dict[str, tuple[int, int, str]] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                kind = "dir" if p.is_dir() and not p.is_symlink() else ("link" if p.is_symlink() else "file")
                snap[str(p)] = (0 if kind == "dir" else st.st_size, 0 if kind == "dir" else st.st_mtime_ns, kind)
    return snap


def changed_paths(before: dict, after: dict, allowed: tuple[str | Path, ...] = ()) -> list[str]:
    """Paths added, removed or modified between two snapshots, except those under an allowed output path."""
    allowed_s = tuple(str(a) for a in allowed)
    diff = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    return sorted(p for p in diff if not any(p == a or p.startswith(a + os.sep) for a in allowed_s))
