"""The real launch system (launch 3.4.3 / launch_ros 0.26.6, installed by `make`) finds edge_infer's
executables in the colcon-style prefix `make` builds, as `ros2 launch edge_infer ...` does on a robot.

Each check runs `launch.LaunchService` in a subprocess with AMENT_PREFIX_PATH=<prefix>:<venv> (the
`launch_env` fixture), so nothing of this test process leaks into it. Runs on Kilted and Jazzy (`ros`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

RESOLVE = r"""
import json, sys
import launch
from launch.actions import OpaqueFunction
from launch.utilities import perform_substitutions
from launch_ros.actions import Node
from ament_index_python.packages import get_package_share_directory

found = {}

def resolve(context):
    for name in sys.argv[1:]:
        node = Node(package="edge_infer", executable=name)  # cmd[0] is launch_ros's ExecutableInPackage
        found[name] = perform_substitutions(context, node.cmd[0])
    return []

service = launch.LaunchService(argv=[], noninteractive=True)
service.include_launch_description(launch.LaunchDescription([OpaqueFunction(function=resolve)]))
rc = service.run()
print(json.dumps({"rc": rc, "found": found, "share": get_package_share_directory("edge_infer")}))
"""

RUN_HELP = r"""
import launch
from launch.actions import RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch_ros.actions import Node

codes = []
node = Node(package="edge_infer", executable="edge-infer", arguments=["--help"], output="screen")
service = launch.LaunchService(argv=[], noninteractive=True)
service.include_launch_description(launch.LaunchDescription([
    node,
    RegisterEventHandler(OnProcessExit(target_action=node, on_exit=lambda event, ctx: codes.append(event.returncode))),
]))
rc = service.run()
print("RESULT", rc, codes, flush=True)
"""


def console_scripts() -> list[str]:
    return sorted(ep.name for ep in distribution("edge_infer").entry_points if ep.group == "console_scripts")


def test_launch_ros_node_resolves_every_executable_from_the_prefix(ament_prefix: Path, launch_env):
    names = console_scripts()
    proc = subprocess.run([sys.executable, "-c", RESOLVE, *names], env=launch_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0
    assert Path(result["share"]) == ament_prefix / "share" / "edge_infer"
    assert sorted(result["found"]) == names
    for name, path in result["found"].items():
        assert Path(path).parent == ament_prefix / "lib" / "edge_infer", name
        assert os.access(path, os.X_OK), path
    share = Path(result["share"])
    assert (share / "launch" / "pipeline.launch.py").is_file()
    assert (share / "package.xml").is_file()
    assert any((share / "config").glob("*.yaml"))


def test_launch_ros_node_runs_an_edge_infer_executable(ament_prefix: Path, launch_env):
    """A Node action starts the real console script through the prefix (`edge-infer --help` exits at once)."""
    proc = subprocess.run([sys.executable, "-c", RUN_HELP], env=launch_env, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "RESULT 0 [0]" in out, out
    assert "usage: edge-infer" in out, out
    assert "[edge-infer-1]: process has finished cleanly" in out, out
