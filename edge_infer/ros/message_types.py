"""``pkg/msg/Type`` -> the rclpy message class, importing only installed ROS interface packages.

Type names come from untrusted places: a bag's metadata (`bag play`), the audio node's ``message_type``
parameter (settable by anyone on the DDS domain), a bench driver's command. Importing ``<pkg>.msg`` runs
``<pkg>/__init__.py``, so a name must not choose which installed module gets imported: only a rosidl-generated
package (its ``msg/`` folder beside its ``<pkg>_s__rosidl_typesupport_*`` libraries, found without importing
anything) is imported. One place for every caller (bag playback, camera player, audio node).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

from edge_infer.errors import ConfigError, EdgeInferError

_MSGTYPE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)/msg/([A-Z][A-Za-z0-9]*)$")


def is_interface_package(pkg: str) -> bool:
    """A rosidl-generated Python package, found without importing it."""
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        return False
    roots = list(spec.submodule_search_locations or []) if spec else []
    return any((Path(r) / "msg").is_dir() and any(Path(r).glob(f"{pkg}_s__rosidl_typesupport_*")) for r in roots)


def message_class(msgtype: str, error: type[EdgeInferError] = ConfigError, hint: str = "install it"):
    """The message class for ``msgtype``; ``error`` (one line, says what to install) otherwise."""
    m = _MSGTYPE.match(msgtype)
    if not m:
        raise error(f"'{msgtype:.100}' is not a ROS message type name (package/msg/Type)")
    pkg, name = m.groups()
    apt = f"sudo apt install ros-$ROS_DISTRO-{pkg.replace('_', '-')}"
    if not is_interface_package(pkg):
        raise error(f"message type {msgtype} is not installed (no ROS interface package '{pkg}'); {hint} ({apt})")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        raise error(f"message type {msgtype} is not installed (package {pkg} has no {name}); {hint}") from None
