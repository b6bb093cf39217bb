"""Message definitions of ROS interface packages that rosbags' built-in typestores lack (vision_msgs,
hri_msgs), read from the packages' installed ``.msg`` files, so bags of typed topics can be written and read.

rosidl installs every package's definitions in ``<prefix>/share/<package>/msg/*.msg``: ``/opt/ros/<distro>``
on a robot (apt), the venv here (setup/ros_packages.py). Bags written with them carry the definitions
(rosbags stores them), so :func:`edge_infer.bags.read.iter_messages` decodes such bags without this module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable

from edge_infer.errors import BagError


def _prefixes() -> list[Path]:
    paths = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(p) for p in dict.fromkeys(paths)]


def msg_dir(package: str, prefixes: Iterable[Path] | None = None) -> Path:
    """``share/<package>/msg`` in the first prefix that has it (AMENT_PREFIX_PATH, then this Python's prefix)."""
    searched = list(prefixes) if prefixes is not None else _prefixes()
    for prefix in searched:
        d = Path(prefix) / "share" / package / "msg"
        if any(d.glob("*.msg")):
            return d
    raise BagError(f"no .msg files of {package} under {[str(p) for p in searched]}: install "
                   f"ros-$ROS_DISTRO-{package.replace('_', '-')} (or run `make`, which builds it into the venv)")


def interface_types(packages: Iterable[str], prefixes: Iterable[Path] | None = None) -> dict:
    """rosbags type definitions ({"pkg/msg/Name": ...}) of every message of ``packages``, for
    ``typestore.register``."""
    from rosbags.typesys import get_types_from_msg

    types: dict = {}
    for package in packages:
        for f in sorted(msg_dir(package, prefixes).glob("*.msg")):
            types.update(get_types_from_msg(f.read_text(), f"{package}/msg/{f.stem}"))
    return types
