"""Shared fixtures: the real model zoo and an isolated real ROS 2 graph.

ROS isolation: every test session picks its own ROS_DOMAIN_ID and localhost-only discovery before rclpy
is imported, so parallel CI runs and a developer's running nodes never see each other.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(30, 99)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # Jazzy and newer
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble
os.environ.setdefault("RCUTILS_LOGGING_USE_STDOUT", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The real zoo; `make test` fetches and verifies it (edge-infer zoo fetch) before pytest runs."""
    from edge_infer.models.spec import load_zoo
    from edge_infer.paths import default_models_dir

    path = default_models_dir()
    zoo = load_zoo()
    missing = [m.file for m in zoo.models.values() if not m.path(path).is_file()]
    missing += [f"samples/{s}" for s in zoo.samples if not (path / "samples" / s).is_file()]
    if missing:
        pytest.fail(f"models missing in {path}: {missing}; run `make models` (edge-infer zoo fetch)")
    return path


@pytest.fixture(scope="session")
def samples_dir(models_dir: Path) -> Path:
    return models_dir / "samples"


@pytest.fixture(scope="session")
def astronaut_rgb(samples_dir: Path):
    import cv2

    bgr = cv2.imread(str(samples_dir / "astronaut.png"), cv2.IMREAD_COLOR)
    assert bgr is not None, "astronaut.png could not be read"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def ros():
    """rclpy initialised once per session (real rclpy, real DDS on localhost)."""
    import rclpy

    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


# ---- build/test infrastructure (Makefile, setup/): ../shared sources, the colcon-style prefix, `ros` mark

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("EDGE_INFER_SHARED", REPO_ROOT.parent / "shared"))
AMENT_PREFIX_POINTER = ".edge_infer_ament_prefix"  # written into the venv by setup/ament_prefix.py


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection
def pytest_collection_modifyitems(items) -> None:
    """A test that uses the real ROS graph (the `ros` fixture, directly or through another fixture) gets the
    `ros` mark, so `pytest -m ros` (the Jazzy pass of `make test`) selects it without every file repeating
    the mark. Tests that start ROS processes without the fixture mark themselves `pytest.mark.ros`."""
    for item in items:
        if "ros" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ros)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (upstream ROS packages for building here); skipped with the reason where it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent (only dev machines and CI have it); `make` then takes the ROS "
                    "packages from upstream git or apt")
    return SHARED_DIR


def require_ros_module(name: str) -> None:
    """Skip with the reason if `name` (built by setup/ros_packages.py, or apt) cannot be imported and there is
    nothing here to build it from; fail if it could have been built (`make` was skipped or broke)."""
    import importlib.util

    if importlib.util.find_spec(name) is not None:
        return
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{name} is not installed and {SHARED_DIR} is absent: install ros-$ROS_DISTRO-"
                    f"{name.replace('_', '-')} or run `make` with network access")
    pytest.fail(f"{name} is not importable in {sys.prefix}: run `make test` (setup/ros_packages.py builds it)")


@pytest.fixture(scope="session")
def ament_prefix() -> Path:
    """The colcon-style install prefix of edge_infer that launch_ros resolves executables in.

    EDGE_INFER_AMENT_PREFIX, else the prefix `make` built for this venv (setup/ament_prefix.py), else an
    installed edge_infer on AMENT_PREFIX_PATH (colcon on a ROS machine)."""
    require_ros_module("launch_ros")
    pointer = Path(sys.prefix) / AMENT_PREFIX_POINTER
    if os.environ.get("EDGE_INFER_AMENT_PREFIX"):
        prefix = Path(os.environ["EDGE_INFER_AMENT_PREFIX"])
    elif pointer.is_file():
        prefix = Path(pointer.read_text().strip())
    else:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix

        try:
            prefix = Path(get_package_prefix("edge_infer"))
        except PackageNotFoundError:
            pytest.fail(f"no edge_infer ament prefix for {sys.prefix}: run `make test` (setup/ament_prefix.py)")
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "edge_infer"
    if not marker.is_file():
        pytest.fail(f"{prefix} has no ament index marker for edge_infer: run `make test`")
    return prefix


@pytest.fixture(scope="session")
def launch_env(ament_prefix: Path) -> dict[str, str]:
    """Environment for a subprocess that runs the real launch system: the edge_infer prefix, then this venv
    (where the ros wheels and the packages setup/ros_packages.py built live), then what was there."""
    paths = [str(ament_prefix), sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return dict(os.environ, AMENT_PREFIX_PATH=os.pathsep.join(dict.fromkeys(paths)))
