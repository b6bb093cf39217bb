"""SROS2 for the nodes (issue 19): the shipped policy, config/sros2/edge_infer.policy.xml, with the real sros2
(0.13.0 from ../shared, built into each venv by setup/ros_packages.py) and the real nodes, on Kilted and Jazzy.

- The policy gives signed, schema-valid permissions for each enclave through sros2's own API (what
  `ros2 security create_keystore / create_enclave / create_permission / generate_artifacts` call; ros2cli,
  which carries those verbs, is not in the venvs).
- Each enclave's permissions allow exactly what its running node has in the ROS graph (publishers,
  subscriptions, services, read by another node), both ways, and nothing of the other node.
- With ROS_SECURITY_ENABLE=true the nodes fail closed with one line: the PyPI Fast DDS builds have no
  DDS-Security, so enforcement itself cannot run here (an apt ROS install has it). Checked for the console
  script, `edge-infer run --enclave` and `ros2 launch ... enclave:=` (the real launch system).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import require_ros_module
from hostile import run_cli
from ros_clients import wait_for

# sros2 0.13.0 reads cryptography's naive-datetime certificate properties (deprecated, same values)
pytestmark = [pytest.mark.ros, pytest.mark.filterwarnings("ignore:Properties that return a na.ve datetime")]

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "config" / "sros2" / "edge_infer.policy.xml"
ENCLAVES = {"face_pipeline": "/edge_infer/face_pipeline", "audio_node": "/edge_infer/audio_node"}
ONE_PROCESS = "/edge_infer/pipeline"
#: what rcl prints (INFO) before the middleware refuses: the folder it found; the refusal is our one line
RCL_FOUND = re.compile(r"^\[INFO\] \[[\d.]+\] \[rcl\]: Found security directory: ")


# ----------------------------------------------------------------------------------------------- keystore
@pytest.fixture(scope="module")
def sros2():
    """sros2's modules; it looks itself up in the ament index (share/sros2 in the venv prefix) on import."""
    require_ros_module("sros2")
    paths = [sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AMENT_PREFIX_PATH", os.pathsep.join(dict.fromkeys(paths)))
        import sros2.keystore
        import sros2.policy
        from sros2.api import _artifact_generation

        yield {"keystore": sros2.keystore, "policy": sros2.policy, "artifacts": _artifact_generation}


@pytest.fixture(scope="module")
def keystore(sros2, tmp_path_factory) -> Path:
    """The README steps: a keystore, the three enclaves, their permissions from the shipped policy."""
    ks = tmp_path_factory.mktemp("sros2") / "keystore"
    api = sros2["keystore"]
    api.create_keystore(ks)
    for enclave in [*ENCLAVES.values(), ONE_PROCESS]:
        api.create_enclave(ks, enclave)
        api.create_permission(ks, enclave, POLICY)
    return ks


def _grant(permissions: Path, enclave: str):
    from lxml import etree

    doc = etree.parse(str(permissions))
    grants = doc.findall("permissions/grant")
    assert [g.get("name") for g in grants] == [enclave]
    return grants[0]


def allowed(keystore: Path, enclave: str) -> dict[str, list[str]]:
    """The DDS topic patterns the enclave's permissions.xml allows: {'publish': [...], 'subscribe': [...]}."""
    grant = _grant(keystore / "enclaves" / enclave.strip("/") / "permissions.xml", enclave)
    assert grant.find("deny_rule") is None and grant.findtext("default") == "DENY"
    out: dict[str, list[str]] = {"publish": [], "subscribe": []}
    for rule in grant.findall("allow_rule"):
        assert [d.text for d in rule.findall("domains/id")] == [os.environ["ROS_DOMAIN_ID"]]
        for kind in out:
            out[kind] += [t.text for t in rule.findall(f"{kind}/topics/topic")]
    return out


def test_permissions_for_every_enclave_are_valid_and_signed(sros2, keystore):
    from cryptography import x509
    from lxml import etree

    assert sros2["keystore"].get_enclaves(keystore) == {*ENCLAVES.values(), ONE_PROCESS}
    schema = etree.XMLSchema(etree.parse(str(sros2["policy"].get_transport_schema("dds", "permissions.xsd"))))
    identity_ca = x509.load_pem_x509_certificate((keystore / "public" / "identity_ca.cert.pem").read_bytes())
    for enclave in [*ENCLAVES.values(), ONE_PROCESS]:
        folder = keystore / "enclaves" / enclave.strip("/")
        xml = folder / "permissions.xml"
        schema.assertValid(etree.parse(str(xml)))  # sros2's own schema of DDS permissions
        grant = _grant(xml, enclave)
        assert grant.findtext("subject_name") == f"CN={enclave}"
        cert = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
        cert.verify_directly_issued_by(identity_ca)  # the enclave's identity, signed by the keystore's CA
        assert cert.subject.rfc4514_string() == f"CN={enclave}"
        for name in ("key.pem", "governance.p7s", "identity_ca.cert.pem", "permissions_ca.cert.pem"):
            assert (folder / name).is_file(), name
        signed = (folder / "permissions.p7s").read_bytes()
        assert b"pkcs7-signature" in signed and b"CN=" + enclave.encode() in signed
        if shutil.which("openssl"):  # the signature itself: the CA signed exactly this permissions.xml
            out = _smime_verify(folder / "permissions.p7s", keystore)
            assert out.returncode == 0, out.stderr
            assert out.stdout.replace(b"\r\n", b"\n").strip() == xml.read_bytes().strip()
    if shutil.which("openssl"):  # and the check can fail: one changed rule breaks the signature
        signed = (keystore / "enclaves" / "edge_infer" / "audio_node" / "permissions.p7s").read_bytes()
        assert signed.count(b"<topic>rt/audio</topic>") == 1
        forged = keystore.parent / "forged.p7s"
        forged.write_bytes(signed.replace(b"<topic>rt/audio</topic>", b"<topic>rt/image</topic>"))
        assert _smime_verify(forged, keystore).returncode != 0


def _smime_verify(p7s: Path, keystore: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "smime", "-verify", "-text", "-in", str(p7s), "-CAfile",
                           str(keystore / "public" / "permissions_ca.cert.pem")], capture_output=True, timeout=30)


def test_generate_artifacts_gives_the_same_rules(sros2, keystore, tmp_path):
    """`ros2 security generate_artifacts -k <keystore> -p edge_infer.policy.xml`: every enclave of the policy in
    one step, with the same rules as the step-by-step keystore."""
    ks = tmp_path / "keystore"
    sros2["artifacts"].generate_artifacts(ks, [], [POLICY])
    assert sros2["keystore"].get_enclaves(ks) == {*ENCLAVES.values(), ONE_PROCESS}
    for enclave in [*ENCLAVES.values(), ONE_PROCESS]:
        assert allowed(ks, enclave) == allowed(keystore, enclave), enclave


def test_the_one_process_enclave_is_the_union_of_the_nodes(keystore):
    face, audio = (allowed(keystore, e) for e in ENCLAVES.values())
    both = allowed(keystore, ONE_PROCESS)
    for kind in both:
        assert set(both[kind]) == set(face[kind]) | set(audio[kind]), kind


# ----------------------------------------------------------------------------------------------- the graph
@pytest.fixture(scope="module")
def running(ros, models_dir, astronaut_rgb, tmp_path_factory):
    """Both nodes as `edge-infer run` builds them (the shipped YAML, with the compressed input on so that every
    input exists), a camera and a microphone, and a face in view (so the per-face topics exist)."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Int16MultiArray, String

    from edge_infer.ros.image_conversion import image_to_msg
    from edge_infer.ros.one_process import build_nodes
    from edge_infer.ros.runner import spinning

    config = tmp_path_factory.mktemp("config")
    doc = yaml.safe_load((ROOT / "config" / "face_pipeline.yaml").read_text())
    doc["face_pipeline"]["ros__parameters"]["subscribe_compressed"] = True
    (config / "face_pipeline.yaml").write_text(yaml.safe_dump(doc))
    shutil.copy(ROOT / "config" / "audio.yaml", config / "audio.yaml")
    nodes = build_nodes({"models_dir": str(models_dir)}, config)
    client = Node("sros2_graph_reader")
    with spinning(*nodes, client):
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        camera = client.create_publisher(Image, "/image", reliable)
        compressed = client.create_publisher(CompressedImage, "/image/compressed", reliable)
        microphone = client.create_publisher(Int16MultiArray, "/audio", 10)
        faces: list = []
        client.create_subscription(String, "/face_pipeline/faces", faces.append, 10)
        assert wait_for(lambda: all(p.get_subscription_count() for p in (camera, compressed, microphone)), 20)
        deadline = time.monotonic() + 30
        while not faces and time.monotonic() < deadline:
            camera.publish(image_to_msg(astronaut_rgb, "rgb8", "cam", client.get_clock().now().to_msg()))
            wait_for(lambda: faces, timeout=1.0)
        assert faces and json.loads(faces[-1].data)["faces"], "no face result"
        yield client


def graph_names(client, node: str) -> dict[str, set[str]]:
    """The DDS topics the node writes and reads, by ROS 2's naming (rmw_fastrtps, sros2's permissions.xsl):
    topics rt/<name>; a service server reads rq/<name>Request and writes rr/<name>Reply (a client the reverse)."""
    pubs = {n for n, _ in client.get_publisher_names_and_types_by_node(node, "/")}
    subs = {n for n, _ in client.get_subscriber_names_and_types_by_node(node, "/")}
    servers = {n for n, _ in client.get_service_names_and_types_by_node(node, "/")}
    clients = {n for n, _ in client.get_client_names_and_types_by_node(node, "/")}
    return {"publish": {f"rt{t}" for t in pubs} | {f"rr{s}Reply" for s in servers}
            | {f"rq{c}Request" for c in clients},
            "subscribe": {f"rt{t}" for t in subs} | {f"rq{s}Request" for s in servers}
            | {f"rr{c}Reply" for c in clients}}


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)  # DDS-Security: POSIX fnmatch, no FNM_PATHNAME


def test_each_enclave_allows_exactly_what_its_running_node_has(running, keystore):
    names = {node: graph_names(running, node) for node in ENCLAVES}
    face = names["face_pipeline"]
    assert "rt/image/compressed" in face["subscribe"] and any("/humans/faces/f" in n for n in face["publish"])
    assert "rq/face_pipeline/rebuild_enginesRequest" in face["subscribe"]
    for node, enclave in ENCLAVES.items():
        for where in (enclave, ONE_PROCESS):
            rules = allowed(keystore, where)
            for kind in rules:
                refused = sorted(n for n in names[node][kind] if not _matches(n, rules[kind]))
                assert refused == [], f"{where} does not allow {node} to {kind} {refused}"
        # nothing beyond: every rule of the node's own enclave is used by the running node (the wildcard rules
        # by at least one face); ros_discovery_info is rmw_fastrtps' own graph topic, added by sros2
        rules = allowed(keystore, enclave)
        for kind in rules:
            unused = sorted(p for p in rules[kind] if p != "ros_discovery_info" and
                            not any(fnmatch.fnmatchcase(n, p) for n in names[node][kind]))
            assert unused == [], f"{enclave} allows {kind} {unused}, which {node} does not have"
    # each node's own enclave allows none of what only the other node has (least privilege between them)
    for node, other in (("face_pipeline", "audio_node"), ("audio_node", "face_pipeline")):
        rules = allowed(keystore, ENCLAVES[other])
        for kind in rules:
            leaked = sorted(n for n in names[node][kind] - names[other][kind] if _matches(n, rules[kind]))
            assert leaked == [], f"{ENCLAVES[other]} allows {node}'s {kind} {leaked}"


# ----------------------------------------------------------------------------------------------- fail closed
def _pypi_fast_dds() -> str:
    """The PyPI Fast DDS wheel's version; elsewhere (apt ROS: DDS-Security works) these checks do not apply."""
    from importlib import metadata

    for dist in ("ros-fastdds", "ros-fastrtps"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    pytest.skip("not the PyPI Fast DDS (built without DDS-Security): security may work here; these check the "
                "fail-closed start-up where it cannot")


@pytest.fixture
def secure_env(keystore, models_dir) -> dict[str, str]:
    _pypi_fast_dds()
    env = dict(os.environ, ROS_SECURITY_ENABLE="true", ROS_SECURITY_STRATEGY="Enforce",
               ROS_SECURITY_KEYSTORE=str(keystore), EDGE_INFER_MODELS=str(models_dir), PYTHONUNBUFFERED="1")
    if env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):  # Jazzy warns (two rcl lines) when the Humble variable is set too
        env.pop("ROS_LOCALHOST_ONLY", None)
    return env


def _one_error_line(stderr: str, prefix: str) -> str:
    """The one line besides rcl's INFO line about the folder it found; no traceback, no warning."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not RCL_FOUND.match(ln)]
    assert len(lines) == 1 and lines[0].startswith(prefix), stderr
    return lines[0]


@pytest.mark.parametrize("enclave, needles", [
    (ENCLAVES["face_pipeline"], ("no security support", "does not start (fail closed)", "Enforce")),
    ("/edge_infer/not_created", ("has no folder", "/edge_infer/not_created", "create_enclave")),
])
def test_node_fails_closed_with_one_line(secure_env, keystore, enclave, needles):
    exe = Path(sys.prefix) / "bin" / "face_pipeline_node"
    proc = subprocess.run([str(exe), "--ros-args", "--enclave", enclave], env=secure_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = _one_error_line(proc.stderr, "face_pipeline_node: error: ROS security is on ")
    for needle in (*needles, f"enclave {enclave}", str(keystore)):
        assert needle in line, line
    assert "configured:" not in proc.stdout + proc.stderr  # refused before any model was loaded


def test_edge_infer_run_enclave_fails_closed_with_one_line(secure_env, keystore, tmp_path):
    with pytest.MonkeyPatch.context() as mp:  # run_cli adds env to os.environ: the same environment as above
        for k in set(os.environ) - set(secure_env):
            mp.delenv(k)
        run = run_cli(["run", "--enclave", "/edge_infer"], cwd=tmp_path, env=secure_env, timeout=120)
    assert run.rc == 2, run.stdout + run.stderr
    line = _one_error_line(run.stderr, "edge-infer run: error: ROS security is on ")
    assert f"enclave {ONE_PROCESS}" in line and "no security support" in line, line
    assert "running " not in run.stdout
    run.assert_memory_bounded()
    assert list(tmp_path.iterdir()) == []


def test_ros2_launch_enclave_argument_fails_closed_per_node(secure_env, launch_env, keystore):
    """`ros2 launch edge_infer pipeline.launch.py enclave:=/edge_infer` with security on: each node process is
    started with its own enclave and exits 2 with its one line; launch itself ends."""
    from test_launch_real import DRIVER, LAUNCH_FILE

    env = dict(launch_env, **{k: secure_env[k] for k in ("ROS_SECURITY_ENABLE", "ROS_SECURITY_STRATEGY",
                                                          "ROS_SECURITY_KEYSTORE", "EDGE_INFER_MODELS")})
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(LAUNCH_FILE), "enclave:=/edge_infer"], env=env,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    for exe, node in (("face_pipeline_node", "face_pipeline"), ("audio_node", "audio_node")):
        died = re.search(rf"\[{exe}-\d+\]: process has died \[pid \d+, exit code 2, cmd '([^']*)'", out)
        assert died, out
        assert f"--ros-args --enclave {ENCLAVES[node]}" in died.group(1), died.group(1)
        errors = [ln for ln in out.splitlines() if f"{exe}: error:" in ln]
        assert len(errors) == 1 and f"enclave {ENCLAVES[node]}" in errors[0], out
        assert "no security support" in errors[0]
    assert "Traceback" not in out and "RuntimeWarning" not in out, out
