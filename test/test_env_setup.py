"""The setup scripts `make` runs (setup/): upstream fetch, the cmake-path fix, stamps, the ament prefix.

The upstream git path cannot reach GitHub here (registries only), so it is exercised on local repositories
shaped like the upstream ones: pinned ref, release tag, and the release-commit fallback.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT

SETUP_DIR = REPO_ROOT / "setup"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"edge_infer_setup_{name}", SETUP_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ros_packages = load("ros_packages")
ament_prefix_script = load("ament_prefix")

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def commit_version(repo: Path, subdir: str, version: str) -> str:
    pkg = repo / subdir
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "package.xml").write_text(f"<package format=\"3\">\n  <version>{version}</version>\n</package>\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", version)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A repository with releases 1.0.0, 1.1.0 (tagged) and 1.2.0 on branch `main`, the package in `pkg/`."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_version(repo, "pkg", "1.0.0")
    commit_version(repo, "pkg", "1.1.0")
    git(repo, "tag", "1.1.0")
    commit_version(repo, "pkg", "1.2.0")
    return repo


def package(version: str, refs: tuple[str, ...]):
    return ros_packages.RosPackage("pkg", "cmake", "nowhere/pkg", "https://invalid.example/pkg.git", refs,
                                   "main", "pkg", version)


@needs_git
def test_upstream_release_tag_is_checked_out(upstream: Path, tmp_path: Path):
    pkg_dir = ros_packages.fetch_upstream(package("1.1.0", ("0000000", "1.1.0")), tmp_path / "cache",
                                         repo_url=str(upstream))
    assert ros_packages.package_xml_version(pkg_dir) == "1.1.0"
    assert pkg_dir == tmp_path / "cache" / "pkg-1.1.0" / "pkg"


@needs_git
def test_upstream_pinned_commit_wins_over_the_tag(upstream: Path, tmp_path: Path):
    first = git(upstream, "rev-list", "--max-parents=0", "HEAD")
    pkg_dir = ros_packages.fetch_upstream(package("1.0.0", (first[:7], "1.0.0")), tmp_path / "cache",
                                         repo_url=str(upstream))
    assert ros_packages.package_xml_version(pkg_dir) == "1.0.0"


@needs_git
def test_untagged_release_is_found_on_the_branch(upstream: Path, tmp_path: Path):
    pkg_dir = ros_packages.fetch_upstream(package("1.0.0", ("1.0.0",)), tmp_path / "cache",
                                         repo_url=str(upstream))
    assert ros_packages.package_xml_version(pkg_dir) == "1.0.0"
    # a second call reuses the clone (no git at all: the URL is not even looked at)
    again = ros_packages.fetch_upstream(package("1.0.0", ("1.0.0",)), tmp_path / "cache",
                                        repo_url=str(tmp_path / "gone"))
    assert again == pkg_dir


@needs_git
def test_missing_release_is_an_error(upstream: Path, tmp_path: Path):
    with pytest.raises(ros_packages.SetupError, match="9.9.9"):
        ros_packages.fetch_upstream(package("9.9.9", ("9.9.9",)), tmp_path / "cache", repo_url=str(upstream))


@needs_git
def test_tag_with_another_version_is_rejected(upstream: Path, tmp_path: Path):
    git(upstream, "tag", "2.0.0", "HEAD~1")  # a tag pointing at 1.1.0: must not pass as 2.0.0
    with pytest.raises(ros_packages.SetupError, match="checked out version 1.1.0, expected 2.0.0"):
        ros_packages.fetch_upstream(package("2.0.0", ("2.0.0",)), tmp_path / "cache", repo_url=str(upstream))


def test_shared_sources_are_preferred(tmp_path: Path):
    shared = tmp_path / "shared"
    (shared / "nowhere" / "pkg").mkdir(parents=True)
    (shared / "nowhere" / "pkg" / "package.xml").write_text("<version>1.0.0</version>")
    assert ros_packages.source_dir(package("1.0.0", ()), shared, tmp_path / "cache") == shared / "nowhere/pkg"


def test_every_pinned_package_matches_its_shared_copy(shared_dir: Path):
    for pkg in ros_packages.PACKAGES:
        assert ros_packages.package_xml_version(shared_dir / pkg.shared_dir) == pkg.version, pkg.name


def test_exported_cmake_paths_are_fixed_once(tmp_path: Path):
    import numpy

    export = tmp_path / "share" / "std_msgs" / "cmake" / "export_std_msgs__rosidl_generator_pyExport.cmake"
    export.parent.mkdir(parents=True)
    export.write_text('  INTERFACE_INCLUDE_DIRECTORIES "/opt/python/cp311-cp311/include/python3.11;'
                      '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"\n')
    assert ros_packages.fix_exported_cmake_paths(tmp_path) == 1
    text = export.read_text()
    assert "/opt/python" not in text
    assert f'"{sysconfig.get_paths()["include"]};{numpy.get_include()}"' in text
    assert ros_packages.fix_exported_cmake_paths(tmp_path) == 0
    assert export.read_text() == text


def test_this_venvs_exported_cmake_files_point_at_real_headers():
    """After `make`, no ros wheel in this venv points the generators at the wheel builder's paths."""
    exports = sorted((Path(sys.prefix) / "share").glob("*/cmake/export_*__rosidl_generator_pyExport.cmake"))
    if not exports or not (Path(sys.prefix) / ".edge_infer_ros").is_dir():
        pytest.skip(f"{sys.prefix} has no ros wheels built by setup/ros_packages.py (apt ROS or not set up)")
    assert [p for p in exports if "/opt/python/" in p.read_text()] == []


def test_second_run_is_stamped_and_quick(shared_dir: Path):
    """`make` re-runs the step every time: with nothing changed it must build nothing, in seconds."""
    if not (Path(sys.prefix) / ".edge_infer_ros").is_dir():
        pytest.skip(f"setup/ros_packages.py never ran for {sys.prefix}")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(SETUP_DIR / "ros_packages.py"), "--check", "--build-dir",
                           str(REPO_ROOT / "build" / "unused"), "--shared", str(shared_dir)],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("up to date") == len(ros_packages.PACKAGES), proc.stdout
    assert elapsed < 10


def test_ament_prefix_links_every_console_script(tmp_path: Path):
    venv = Path(sys.prefix)
    try:
        names = ament_prefix_script.make_prefix(tmp_path / "prefix", REPO_ROOT, venv, pointer=False)
    except SystemExit as err:  # edge_infer is not pip-installed into this interpreter
        pytest.skip(str(err))
    prefix = tmp_path / "prefix"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "edge_infer").is_file()
    # file links in real folders (ros2launch's os.walk does not enter a linked folder), as colcon's --symlink-install
    for rel in ("package.xml", "launch/pipeline.launch.py", "config/face_pipeline.yaml",
                "config/fastdds_large_data.xml", "config/sros2/edge_infer.policy.xml"):
        assert (prefix / "share" / "edge_infer" / rel).resolve() == (REPO_ROOT / rel).resolve()
    assert not (prefix / "share" / "edge_infer" / "launch").is_symlink()
    assert {"face_pipeline_node", "audio_node", "edge-infer"} <= set(names)
    for name in names:
        exe = prefix / "lib" / "edge_infer" / name
        assert exe.resolve() == (venv / "bin" / name).resolve()
        assert os.access(exe, os.X_OK)
    # idempotent: a second run replaces the prefix, a stale executable disappears
    (prefix / "lib" / "edge_infer" / "removed_script").touch()
    ament_prefix_script.make_prefix(prefix, REPO_ROOT, venv, pointer=False)
    assert not (prefix / "lib" / "edge_infer" / "removed_script").exists()
