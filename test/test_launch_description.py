"""The launch description (ROS-free) and `edge-infer run` (the same description in one process) with real
rclpy. launch/pipeline.launch.py itself runs under the real launch system in test_launch_real.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edge_infer import launch_description as desc
from edge_infer.errors import ConfigError, MissingFileError
from hostile import changed_paths, run_cli, tree_snapshot

ROOT = Path(__file__).resolve().parent.parent


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
    assert names == {"camera_topic", "cameras", "audio_topic", "backend", "models_dir", "enable_face", "enable_audio",
                     "namespace", "dds_profile", "autostart", "enclave"}
    r = {x.description.key: x for x in desc.resolve(
        {"camera_topic": "/cam/image_raw", "audio_topic": "/mic", "backend": "tensorrt", "enable_audio": "false",
         "namespace": "robot1"}, config_dir=ROOT / "config")}
    assert r["face"].remappings == [("image", "/cam/image_raw"), ("image/compressed", "/cam/image_raw/compressed"),
                                    ("camera_info", "/cam/camera_info")]
    assert r["audio"].remappings == [("audio", "/mic")]
    assert r["face"].overrides == {"backend": "tensorrt"} and r["face"].namespace == "robot1"
    assert r["face"].enabled and not r["audio"].enabled
    defaults = {x.description.key: x for x in desc.resolve(config_dir=ROOT / "config")}
    assert defaults["face"].remappings == [] and defaults["face"].overrides == {}  # '' keeps the YAML values
    off = desc.resolve({"autostart": "false"}, config_dir=ROOT / "config")
    assert all(x.overrides == {"autostart": False} for x in off)  # typed: rclpy refuses a string for a bool
    # cameras:=[head,left] is the face node's string array (the audio node has no cameras)
    several = {x.description.key: x for x in desc.resolve({"cameras": "[head, left]"}, config_dir=ROOT / "config")}
    assert several["face"].overrides == {"cameras": ["head", "left"]} and several["audio"].overrides == {}
    assert desc.camera_list("head,'left'") == ["head", "left"]
    with pytest.raises(ValueError):
        desc.resolve({"no_such_argument": "1"})
    with pytest.raises(ValueError):
        desc.is_true("yes please")


def test_load_node_parameters_flattens_like_rcl():
    face = desc.NODES[0]
    p = desc.load_node_parameters(face, ROOT / "config" / "face_pipeline.yaml")
    assert p["input_qos.reliability"] == "auto" and p["detect_every"] == 10


def test_dds_profile_argument(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_INFER_CONFIG_DIR", str(ROOT / "config"))
    shipped = str(ROOT / "config" / desc.LARGE_DATA_PROFILE)
    assert desc.node_environment({}, {}) == dict.fromkeys(desc.profile_env_names({}), shipped)
    # the name each Fast DDS reads: 2.x (Humble, Jazzy) FASTRTPS_, 3.x (Kilted+) FASTDDS_
    assert desc.node_environment({}, {"ROS_DISTRO": "jazzy"}) == {"FASTRTPS_DEFAULT_PROFILES_FILE": shipped}
    assert desc.node_environment({}, {"ROS_DISTRO": "humble"}) == {"FASTRTPS_DEFAULT_PROFILES_FILE": shipped}
    assert desc.node_environment({}, {"ROS_DISTRO": "kilted"}) == {"FASTDDS_DEFAULT_PROFILES_FILE": shipped}
    assert desc.node_environment({}, {desc.DDS_PROFILE_ENV: "/robot/own.xml"}) == {}  # the robot's own wins
    assert desc.node_environment({}, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/robot/own.xml"}) == {}
    assert desc.node_environment({"dds_profile": "none"}, {}) == {}
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    assert desc.node_environment({"dds_profile": str(mine)}, {}) == dict.fromkeys(desc.profile_env_names({}), str(mine))
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


@pytest.mark.ros
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
        time.sleep(0.02)
        p.send_signal(signal.SIGINT)  # a second signal during the teardown changes nothing
        rest, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, "".join(out) + rest
    assert "terminate called" not in rest and "Traceback" not in rest, rest


# ------------------------------------------------------------------------------------------ SROS2 enclave
def test_enclave_argument_gives_each_node_process_its_enclave():
    r = {x.description.key: x for x in desc.resolve({"enclave": "/edge_infer"}, config_dir=ROOT / "config")}
    assert r["face"].ros_arguments == ["--enclave", "/edge_infer/face_pipeline"]
    assert r["audio"].ros_arguments == ["--enclave", "/edge_infer/audio_node"]
    assert desc.one_process_ros_arguments({"enclave": "/edge_infer"}) == ["--enclave", "/edge_infer/pipeline"]
    assert desc.resolve({"enclave": "/"}, config_dir=ROOT / "config")[0].enclave == "/face_pipeline"
    default = desc.resolve(config_dir=ROOT / "config")  # '' (the default): no enclave, no ros args
    assert [x.ros_arguments for x in default] == [[], []] and desc.one_process_ros_arguments({}) == []
    for bad in ("edge_infer", "/edge_infer/", "/edge-infer", "/1robot", "//x"):
        with pytest.raises(ConfigError, match="enclave"):
            desc.resolve({"enclave": bad})
    # the shipped policy has exactly these enclaves (test_sros2.py checks their rules against the nodes)
    from lxml import etree

    policy = etree.parse(str(ROOT / "config" / desc.POLICY_FILE))
    assert sorted(e.get("path") for e in policy.findall("enclaves/enclave")) == sorted(
        [x.enclave for x in r.values()] + ["/edge_infer/pipeline"])
    assert f"config/{desc.POLICY_FILE.rsplit('/', 1)[0]}/*.xml" in (ROOT / "setup.py").read_text()  # installed


@pytest.mark.ros  # launch_ros of the distro (Jazzy too), no nodes started
def test_launch_file_node_actions_carry_the_enclave():
    """The real launch_ros Node actions pipeline.launch.py generates: `--ros-args --enclave <root>/<node>`."""
    pytest.importorskip("launch_ros")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch.substitutions import TextSubstitution
    from launch.utilities import perform_substitutions

    def commands(**arguments):
        description = get_launch_description_from_python_launch_file(str(ROOT / "launch" / "pipeline.launch.py"))
        context = LaunchContext()
        for entity in description.entities:
            if isinstance(entity, DeclareLaunchArgument):
                context.launch_configurations[entity.name] = arguments.get(
                    entity.name, perform_substitutions(context, entity.default_value))
        nodes = description.entities[-1].execute(context)  # the OpaqueFunction: the Node actions
        # the command line after the executable, up to launch_ros's own (substituted at execution) arguments
        out = {}
        for node in nodes:
            words = []
            for part in node.cmd[1:]:
                if not all(isinstance(s, TextSubstitution) for s in part):
                    break
                words.append(perform_substitutions(context, part))
            out[node.node_executable] = " ".join(words)
        return out

    secure = commands(enclave="/edge_infer")
    assert secure.keys() == {"face_pipeline_node", "audio_node"}
    assert secure["face_pipeline_node"].startswith("--ros-args --enclave /edge_infer/face_pipeline "), secure
    assert secure["audio_node"].startswith("--ros-args --enclave /edge_infer/audio_node "), secure
    assert not any("--enclave" in words for words in commands().values())


def test_edge_infer_run_print_shows_the_one_process_enclave(capsys):
    from edge_infer.cli import main

    assert main(["run", "--print", "--enclave", "/edge_infer", "--enable-audio", "false"]) == 0
    nodes = json.loads(capsys.readouterr().out)
    assert [(n["name"], n["enabled"], n["ros_arguments"]) for n in nodes] == [
        ("face_pipeline", True, ["--enclave", "/edge_infer/pipeline"]),
        ("audio_node", False, ["--enclave", "/edge_infer/pipeline"])]
    assert main(["run", "--print", "--enclave", "edge_infer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-infer run: error: enclave 'edge_infer': expected an absolute") and err.count("\n") == 1


# ------------------------------------------------------------------------------------------ hostile parameter files
def _alias_bomb(levels: int = 24) -> str:
    """~700 bytes of YAML aliases that name 2**levels parameters."""
    lines = ["a0: &a0 {x: 1, y: 1}"] + [f"a{i}: &a{i} {{x: *a{i - 1}, y: *a{i - 1}}}" for i in range(1, levels + 1)]
    return "\n".join(lines + ["face_pipeline:", f"  ros__parameters: *a{levels}"]) + "\n"


PARAMS_FILE_CASES = {  # name -> (face_pipeline.yaml text, words of the one-line error)
    "list": ("- detect_every\n- 10\n", ("is a mapping of node names", "got a list")),
    "string": ("just some text\n", ("is a mapping of node names", "got the string 'just some text'")),
    "section_list": ("face_pipeline: [1, 2]\n", ("face_pipeline: the node section must be a mapping", "got a list")),
    "section_number": ("/**: 5\n", ("/**: the node section must be a mapping", "got an integer")),
    "ros_parameters_string": ("face_pipeline:\n  ros__parameters: fast\n",
                              ("face_pipeline.ros__parameters: must be a mapping", "got the string 'fast'")),
    "value_mapping_in_list": ("face_pipeline:\n  ros__parameters:\n    providers: [cpu, {a: 1}]\n",
                              ("ros__parameters.providers", "not a ROS parameter value")),
    "mixed_list": ("face_pipeline:\n  ros__parameters:\n    providers: [cpu, 1]\n",
                   ("ros__parameters.providers", "values of one type")),
    "not_yaml": ("face_pipeline: [\n", ("not valid YAML",)),
    "python_tag": ("face_pipeline:\n  ros__parameters:\n    detect_every: !!python/object/apply:os.system "
                   "['touch PWNED']\n", ("not valid YAML", "python/object/apply")),
    "alias_bomb": (_alias_bomb(), ("more than 10000 parameters",)),
    "deep": ("face_pipeline:\n  ros__parameters:\n" + "".join(f"{'  ' * (i + 2)}k{i}:\n" for i in range(40))
             + "  " * 42 + "leaf: 1\n", ("nested more than 32 levels",)),
}


@pytest.mark.parametrize("case", sorted(PARAMS_FILE_CASES))
def test_hostile_params_file_is_a_config_error_naming_file_and_key(case, tmp_path):
    text, needles = PARAMS_FILE_CASES[case]
    path = tmp_path / "face_pipeline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        desc.load_node_parameters(desc.NODES[0], path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    assert not (tmp_path / "PWNED").exists()


def test_params_file_bounds(tmp_path):
    path = tmp_path / "face_pipeline.yaml"
    path.write_text("face_pipeline:\n  ros__parameters:\n    models_dir: '" + "x" * desc.MAX_PARAMS_FILE_BYTES + "'\n")
    with pytest.raises(ConfigError, match="bytes is more than .*MAX_PARAMS_FILE_BYTES"):
        desc.load_node_parameters(desc.NODES[0], path)
    big = "x" * 100_000  # a 100 KB string named 20 times by an alias: 2 MB once rclpy copies it
    path.write_text(f"s: &s '{big}'\nface_pipeline:\n  ros__parameters:\n"
                    + "".join(f"    p{i}: *s\n" for i in range(20)))
    with pytest.raises(ConfigError, match="values add up to more than"):
        desc.load_node_parameters(desc.NODES[0], path)
    with pytest.raises(MissingFileError, match="parameter file not found"):
        desc.load_node_parameters(desc.NODES[0], tmp_path / "missing.yaml")
    path.write_text("")  # empty: no parameters (the node's defaults), as rcl
    assert desc.load_node_parameters(desc.NODES[0], path) == {}
    path.write_text("face_pipeline:\n  ros__parameters:\n    providers: []\n    score_threshold: 0.5\n")
    assert desc.load_node_parameters(desc.NODES[0], path) == {"providers": [], "score_threshold": 0.5}


@pytest.mark.parametrize("case", ["list", "section_list", "alias_bomb", "python_tag"])
def test_edge_infer_run_with_a_hostile_params_file_is_one_line(case, tmp_path):
    """`edge-infer run --config-dir <folder>`: exit 2, one line naming the file, before rclpy or a model; no
    code from the file, nothing changed, memory bounded (the alias bomb named 2**24 parameters: before this
    check, 2**21 of them took +368 MB and 30 s to flatten, and then went to rclpy one by one)."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "face_pipeline.yaml").write_text(PARAMS_FILE_CASES[case][0])
    shutil.copy(ROOT / "config" / "audio.yaml", config / "audio.yaml")
    before = tree_snapshot(tmp_path)
    run = run_cli(["run", "--config-dir", str(config)], cwd=tmp_path)
    line = run.assert_one_line_error("edge-infer run: error: " + str(config / "face_pipeline.yaml"),
                                     *PARAMS_FILE_CASES[case][1])
    assert "running" not in run.stdout, line
    run.assert_memory_bounded()
    assert changed_paths(before, tree_snapshot(tmp_path)) == []
