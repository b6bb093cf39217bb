"""The layering promise, checked: imports go one way (top to bottom), and only ros/ and commands/ touch ROS
(plus web/robot.py, lazily: the web UI's robot page).

Every ``import`` in edge_infer/ counts, the lazy ones inside functions too: a lazy import is still a
dependency. See docs/ARCHITECTURE.md for why each floor sits where it does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edge_infer"

# floor of each top-level part; a module may import its own floor's lower neighbours and anything below
FLOORS = {
    "cli": 8, "commands": 8, "web": 8,
    "ros": 7,
    "bench": 6,
    "offline": 5,
    "bags": 4,
    "pipeline": 3, "samples": 3,
    "models": 2,
    "backends": 1,
    # bottom utilities, importable from everywhere: they import nothing above them
    "errors": 0, "fileio": 0, "paths": 0, "launch_description": 0,
}
# same-floor imports that are allowed: the `ui` verb is the thin argparse wrapper over the web app, as every
# verb is over its library (web/ never imports commands/)
SIDEWAYS_ALLOWED = {("commands", "web")}
ROS_MODULES = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "std_srvs", "diagnostic_msgs", "vision_msgs",
               "hri_msgs", "builtin_interfaces", "launch", "launch_ros", "lifecycle_msgs", "audio_common_msgs",
               "tf2_msgs", "tf2_ros", "geometry_msgs", "sros2")


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import in the package."""
    out = []
    for f in sorted(PKG.rglob("*.py")):
        mod = ".".join(("edge_infer", *f.relative_to(PKG).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.level == 0, f"{mod}:{node.lineno}: relative import (the package uses absolute ones)"
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                out += [(mod, n, node.lineno) for n in names]
            elif isinstance(node, ast.Import):
                out += [(mod, a.name, node.lineno) for a in node.names]
    return out


def test_every_part_has_a_floor() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PKG.iterdir() if p.name != "__init__.py"
             and not p.name.startswith("__") and (p.suffix == ".py" or p.is_dir())}
    assert parts <= set(FLOORS), f"parts without a floor: {parts - set(FLOORS)}"


def test_imports_go_one_way() -> None:
    edges = _imports()
    assert sum(d.startswith("edge_infer.") for _, d, _ in edges) > 200  # the walk really sees the package
    wrong = []
    for src, dst, line in edges:
        if not dst.startswith("edge_infer.") or _part(dst) not in FLOORS:
            continue
        a, b = _part(src), _part(dst)
        if a and a != b and FLOORS[b] > FLOORS[a]:
            wrong.append(f"{src}:{line} imports {dst} ({a} floor {FLOORS[a]} < {b} floor {FLOORS[b]})")
    assert not wrong, "\n".join(wrong)


def test_same_floor_parts_do_not_import_each_other() -> None:
    wrong = [f"{s}:{n} imports {d}" for s, d, n in _imports() if d.startswith("edge_infer.") and _part(d) in FLOORS
             and _part(s) != _part(d) and FLOORS[_part(s)] == FLOORS[_part(d)] and FLOORS[_part(s)] > 0
             and (_part(s), _part(d)) not in SIDEWAYS_ALLOWED]
    assert not wrong, "\n".join(wrong)
    ui = [(s, d) for s, d, _ in _imports() if _part(s) == "commands" and _part(d) == "web"]
    assert ui and all(s == "edge_infer.commands.ui" for s, _ in ui), ui  # the exception is used, by ui only
    assert not [d for s, d, _ in _imports() if _part(s) == "web" and _part(d) == "commands"]


@pytest.mark.parametrize("floor_max", [6])
def test_only_ros_and_commands_import_ros(floor_max: int) -> None:
    wrong = [f"{s}:{n} imports {d}" for s, d, n in _imports()
             if d.split(".")[0] in ROS_MODULES and FLOORS.get(_part(s), 99) <= floor_max]
    assert not wrong, "\n".join(wrong)


def _ros_imports_in(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, at module level) of every ROS import in one file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body}
    nested_in_def = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested_in_def |= {id(n) for n in ast.walk(fn)}
    out = []
    for node in ast.walk(tree):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                 [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for n in names:
            if n.split(".")[0] in ROS_MODULES or n.startswith("edge_infer.ros"):
                out.append((n, node.lineno, id(node) in top or id(node) not in nested_in_def))
    return out


def test_web_touches_ros_only_lazily_in_robot() -> None:
    """The web UI serves the model page on a machine without ROS: only web/robot.py imports rclpy, the message
    packages or edge_infer.ros, and only inside functions (when the first robot request arrives)."""
    web = PKG / "web"
    found = {f.name: _ros_imports_in(f) for f in sorted(web.rglob("*.py"))}
    assert found.get("robot.py"), "robot.py imports ROS (the walk sees its lazy imports)"
    wrong = [f"web/{f}:{line} imports {n}" + (" at module level" if top else "")
             for f, hits in found.items() for n, line, top in hits if f != "robot.py" or top]
    assert not wrong, "\n".join(wrong)
