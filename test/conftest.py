"""Shared fixtures: the real model zoo and an isolated real ROS 2 graph.

ROS isolation: every test session picks its own ROS_DOMAIN_ID and localhost-only discovery before rclpy
is imported, so parallel CI runs and a developer's running nodes never see each other.
"""

from __future__ import annotations

import os
import random
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
