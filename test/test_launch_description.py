"""The launch description (ROS-free), launch/pipeline.launch.py against stand-in launch modules, and
`edge-infer run` (the same description in one process) with real rclpy."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from edge_infer import launch_description as desc

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILE = ROOT / "launch" / "pipeline.launch.py"


def test_both_nodes_with_parameter_files_and_executables():
    by_key = {n.key: n for n in desc.NODES}
    assert set(by_key) == {"face", "audio"}
    setup = (ROOT / "setup.py").read_text()
    for n in desc.NODES:
        path = ROOT / "config" / n.params_file
        assert path.is_file(), path
        assert n.name in yaml.safe_load(path.read_text()), f"{path} has no section for node {n.name}"
        assert f"{n.executable} = {n.module}:main" in setup, f"console_scripts lacks {n.executable}"
    resolved = {r.description.key: r for r in desc.resolve(config_dir=ROOT / "config")}
    assert resolved["face"].params_file == ROOT / "config" / "face_pipeline.yaml"
    assert resolved["audio"].params_file == ROOT / "config" / "audio.yaml"
    assert all(r.enabled for r in resolved.values())


def test_arguments_remap_override_and_enable():
    names = {a.name for a in desc.LAUNCH_ARGUMENTS}
    assert names == {"camera_topic", "audio_topic", "backend", "models_dir", "enable_face", "enable_audio", "namespace",
                     "dds_profile"}
    r = {x.description.key: x for x in desc.resolve(
        {"camera_topic": "/cam/image_raw", "audio_topic": "/mic", "backend": "tensorrt", "enable_audio": "false",
         "namespace": "robot1"}, config_dir=ROOT / "config")}
    assert r["face"].remappings == [("image", "/cam/image_raw"), ("image/compressed", "/cam/image_raw/compressed")]
    assert r["audio"].remappings == [("audio", "/mic")]
    assert r["face"].overrides == {"backend": "tensorrt"} and r["face"].namespace == "robot1"
    assert r["face"].enabled and not r["audio"].enabled
    defaults = {x.description.key: x for x in desc.resolve(config_dir=ROOT / "config")}
    assert defaults["face"].remappings == [] and defaults["face"].overrides == {}
    with pytest.raises(ValueError):
        desc.resolve({"no_such_argument": "1"})
    with pytest.raises(ValueError):
        desc.is_true("yes please")


def test_load_node_parameters_flattens_like_rcl():
    face = desc.NODES[0]
    p = desc.load_node_parameters(face, ROOT / "config" / "face_pipeline.yaml")
    assert p["input_qos.reliability"] == "auto" and p["detect_every"] == 10


def test_launch_file_parses_and_uses_the_description():
    tree = ast.parse(LAUNCH_FILE.read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("launch_ros.actions", "Node") in imported and ("launch.conditions", "IfCondition") in imported
    assert ("launch.actions", "DeclareLaunchArgument") in imported and ("edge_infer", "launch_description") in imported
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def _fake_launch_modules():
    """Minimal stand-ins with the launch / launch_ros call signatures the file uses (not installable here)."""
    calls: dict = {"nodes": [], "args": []}

    class LaunchConfiguration:
        def __init__(self, name, default=None):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class DeclareLaunchArgument:
        def __init__(self, name, *, default_value=None, description=None, choices=None):
            calls["args"].append((name, default_value, description))

    class OpaqueFunction:
        def __init__(self, *, function, args=None, kwargs=None):
            self.function = function

    class IfCondition:
        def __init__(self, predicate_expression):
            self.expr = predicate_expression

    class Node:
        def __init__(self, *, package=None, executable=None, name=None, namespace=None, parameters=None,
                     remappings=None, output="log", emulate_tty=False, condition=None, additional_env=None, **kw):
            calls["nodes"].append(dict(package=package, executable=executable, name=name, namespace=namespace,
                                       parameters=parameters, remappings=remappings, condition=condition,
                                       env=additional_env))

    class LaunchDescription:
        def __init__(self, entities=None):
            self.entities = list(entities or [])

    mods = {
        "launch": types.SimpleNamespace(LaunchDescription=LaunchDescription),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=DeclareLaunchArgument, OpaqueFunction=OpaqueFunction),
        "launch.conditions": types.SimpleNamespace(IfCondition=IfCondition),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=Node),
    }
    return mods, calls


def test_launch_file_builds_the_nodes(monkeypatch):
    for k in desc.DDS_PROFILE_ENVS:
        monkeypatch.delenv(k, raising=False)
    mods, calls = _fake_launch_modules()
    for k, v in mods.items():
        monkeypatch.setitem(sys.modules, k, v)
    monkeypatch.setenv("EDGE_INFER_CONFIG_DIR", str(ROOT / "config"))
    ns: dict = {"__name__": "pipeline_launch"}
    exec(compile(LAUNCH_FILE.read_text(), str(LAUNCH_FILE), "exec"), ns)
    ld = ns["generate_launch_description"]()
    assert [a[0] for a in calls["args"]] == [a.name for a in desc.LAUNCH_ARGUMENTS]
    context = {**desc.argument_defaults(), "namespace": "robot1", "camera_topic": "/cam", "backend": "torch"}
    ld.entities[-1].function(context)
    nodes = {n["name"]: n for n in calls["nodes"]}
    assert set(nodes) == {"face_pipeline", "audio_node"}
    face = nodes["face_pipeline"]
    assert face["package"] == "edge_infer" and face["executable"] == "face_pipeline_node"
    assert face["parameters"][0] == str(ROOT / "config" / "face_pipeline.yaml")
    assert face["parameters"][1]["detect_every"] == 10  # YAML values as a dict under a namespace
    assert face["parameters"][-1] == {"backend": "torch"}
    assert ("image", "/cam") in face["remappings"] and face["namespace"] == "robot1"
    assert face["condition"].expr.name == "enable_face"
    assert nodes["audio_node"]["parameters"][0] == str(ROOT / "config" / "audio.yaml")
    assert face["env"] == dict.fromkeys(desc.DDS_PROFILE_ENVS, str(ROOT / "config" / desc.LARGE_DATA_PROFILE))


def test_dds_profile_argument(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_INFER_CONFIG_DIR", str(ROOT / "config"))
    shipped = str(ROOT / "config" / desc.LARGE_DATA_PROFILE)
    assert desc.node_environment({}, {}) == dict.fromkeys(desc.DDS_PROFILE_ENVS, shipped)  # Fast DDS 3.x and 2.x names
    assert desc.node_environment({}, {desc.DDS_PROFILE_ENV: "/robot/own.xml"}) == {}  # the robot's own wins
    assert desc.node_environment({}, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/robot/own.xml"}) == {}
    assert desc.node_environment({"dds_profile": "none"}, {}) == {}
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    assert desc.node_environment({"dds_profile": str(mine)}, {}) == dict.fromkeys(desc.DDS_PROFILE_ENVS, str(mine))
    with pytest.raises(FileNotFoundError):
        desc.node_environment({"dds_profile": str(tmp_path / "missing.xml")}, {})


def test_one_process_builds_face_node_with_yaml_namespace_and_remap(ros, models_dir, tmp_path):
    from edge_infer.ros.one_process import build_nodes

    cfg = tmp_path / "config"
    cfg.mkdir()
    doc = yaml.safe_load((ROOT / "config" / "face_pipeline.yaml").read_text())
    doc["face_pipeline"]["ros__parameters"]["detect_every"] = 7
    (cfg / "face_pipeline.yaml").write_text(yaml.safe_dump(doc))
    (cfg / "audio.yaml").write_text((ROOT / "config" / "audio.yaml").read_text())
    nodes = build_nodes({"enable_audio": "false", "namespace": "bench_ns", "camera_topic": "/cam/image",
                         "models_dir": str(models_dir)}, cfg)
    try:
        assert len(nodes) == 1
        node = nodes[0]
        assert node.get_fully_qualified_name() == "/bench_ns/face_pipeline"
        assert node.get_parameter("detect_every").value == 7  # YAML applies under a namespace
        assert node.get_parameter("models_dir").value == str(models_dir)
        # input QoS auto: the remapped topic is watched, subscribed once a camera publishes there
        assert node.inputs[0].resolved_topic == "/cam/image" and "waiting for a publisher" in node.inputs[0].describe()
    finally:
        for n in nodes:
            n.destroy_node()


def test_edge_infer_run_stops_cleanly_on_sigterm(models_dir):
    env = dict(os.environ, EDGE_INFER_MODELS=str(models_dir), PYTHONUNBUFFERED="1")
    env.setdefault("ROS_DOMAIN_ID", "97")
    p = subprocess.Popen([sys.executable, "-m", "edge_infer.cli", "run", "--enable-audio", "false"], cwd=ROOT,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("running "):
                break
        assert any(line.startswith("running /face_pipeline") for line in out), "".join(out)
        p.send_signal(signal.SIGTERM)
        rest, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, "".join(out) + rest
    assert "terminate called" not in rest
