"""The code must run on Python 3.10 (ROS 2 Humble); PyPI's ROS wheels are for 3.11, so tests alone would not
notice a 3.11-only feature. vermin (pinned) checks it statically with setup/vermin.ini; `make vermin`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

CONFIG = REPO_ROOT / "setup" / "vermin.ini"


def vermin(paths: list[str], cwd: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("vermin", reason="vermin is pinned in requirements-common.txt: run `make test`")
    command = "import sys, vermin; sys.exit(vermin.main())"  # its console script, with this interpreter
    return subprocess.run([sys.executable, "-c", command, "--config-file", str(CONFIG), *paths], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def project_paths() -> list[str]:
    """Every top-level folder and .py file but the hidden ones (.venv*, .git); vermin.ini excludes build/."""
    return sorted(p.name for p in REPO_ROOT.iterdir()
                  if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".py"))


def test_project_needs_no_python_newer_than_3_10():
    proc = vermin(project_paths(), REPO_ROOT)
    assert proc.returncode == 0, f"code needs a Python newer than 3.10 (ROS 2 Humble):\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("source, feature", [
    ("import tomllib\n", "tomllib"),
    ("try:\n    pass\nexcept* ValueError:\n    pass\n", "except*"),
    ("from datetime import UTC\n", "datetime.UTC"),
])
def test_check_catches_3_11_features(tmp_path: Path, source: str, feature: str):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(source)
    proc = vermin(["pkg"], tmp_path)
    assert proc.returncode != 0
    assert feature in proc.stdout


def test_marked_fallback_passes(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        "try:\n    import tomllib  # novermin\nexcept ImportError:\n    tomllib = None\n")
    assert vermin(["pkg"], tmp_path).returncode == 0
