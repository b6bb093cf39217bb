"""The launch description (ROS-free) and `edge-infer run` (the same description in one process) with real
rclpy. launch/pipeline.launch.py itself runs under the real launch system in test_launch_real.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edge_infer import launch_description as desc

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
    assert names == {"camera_topic", "audio_topic", "backend", "models_dir", "enable_face", "enable_audio", "namespace",
                     "dds_profile", "autostart"}
    r = {x.description.key: x for x in desc.resolve(
        {"camera_topic": "/cam/image_raw", "audio_topic": "/mic", "backend": "tensorrt", "enable_audio": "false",
         "namespace": "robot1"}, config_dir=ROOT / "config")}
    assert r["face"].remappings == [("image", "/cam/image_raw"), ("image/compressed", "/cam/image_raw/compressed")]
    assert r["audio"].remappings == [("audio", "/mic")]
    assert r["face"].overrides == {"backend": "tensorrt"} and r["face"].namespace == "robot1"
    assert r["face"].enabled and not r["audio"].enabled
    defaults = {x.description.key: x for x in desc.resolve(config_dir=ROOT / "config")}
    assert defaults["face"].remappings == [] and defaults["face"].overrides == {}  # '' keeps the YAML values
    off = desc.resolve({"autostart": "false"}, config_dir=ROOT / "config")
    assert all(x.overrides == {"autostart": False} for x in off)  # typed: rclpy refuses a string for a bool
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
