"""Lifecycle nodes through the real lifecycle services (~/get_state, ~/change_state) from another node, and
the start-up / shutdown of the node processes (console scripts): a failed start shows its real error only,
a second Ctrl-C does not interrupt the teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ros_clients import change_state, get_state, wait_for


@pytest.fixture
def face_graph(ros, models_dir):
    """face_pipeline (autostart false, so the test drives every transition) + a client node, spinning."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from edge_infer.ros.face_node import FacePipelineNode
    from edge_infer.ros.runner import spinning

    node = FacePipelineNode(namespace="lifecycle_test", parameter_overrides=[
        Parameter("models_dir", value=str(models_dir)), Parameter("autostart", value=False),
        Parameter("tracking", value=False), Parameter("diagnostics_period_s", value=0.1)])
    client = Node("lifecycle_test_client")
    g = {"node": node, "client": client, "faces": [], "diags": [], "name": "/lifecycle_test/face_pipeline"}
    client.create_subscription(String, "/lifecycle_test/face_pipeline/faces", lambda m: g["faces"].append(json.loads(m.data)), 10)
    client.create_subscription(DiagnosticArray, "/diagnostics", lambda m: g["diags"].extend(
        s for s in m.status if s.hardware_id == g["name"]), 50)
    g["pub"] = client.create_publisher(Image, "/lifecycle_test/image", qos_profile_sensor_data)
    with spinning(node, client):
        yield g


def _last_diagnostic(g):
    """A face diagnostics status published a whole period after now."""
    n = len(g["diags"])
    wait_for(lambda: len(g["diags"]) > n + 1, timeout=5)  # one whole period after the call
    return g["diags"][-1]


def _frame(g, astronaut_rgb):
    from edge_infer.ros.image_conversion import image_to_msg

    return image_to_msg(astronaut_rgb, "rgb8", "cam", g["client"].get_clock().now().to_msg())


def _image_subscribers(g) -> int:
    return g["client"].count_subscribers("/lifecycle_test/image")


def test_transitions_through_the_lifecycle_services(face_graph, astronaut_rgb):
    g, client, name, node = face_graph, face_graph["client"], face_graph["name"], face_graph["node"]
    assert get_state(client, name) == "unconfigured"
    assert node.pipeline is None and _image_subscribers(g) == 0
    assert _last_diagnostic(g).message == "unconfigured"

    assert change_state(client, name, "configure")  # models load here
    assert get_state(client, name) == "inactive" and node.pipeline is not None
    assert _image_subscribers(g) == 0 and _last_diagnostic(g).message == "inactive"

    assert change_state(client, name, "activate")  # subscribes (auto QoS: to the camera that publishes)
    assert get_state(client, name) == "active"
    assert wait_for(lambda: _image_subscribers(g) == 1)
    g["pub"].publish(_frame(g, astronaut_rgb))
    assert wait_for(lambda: g["faces"], timeout=20) and len(g["faces"][-1]["faces"]) == 1
    assert "lifecycle_state" in {kv.key for kv in _last_diagnostic(g).values}

    assert change_state(client, name, "deactivate")  # no input, no inference
    assert get_state(client, name) == "inactive"
    assert wait_for(lambda: _image_subscribers(g) == 0)
    outputs, n_faces = node.stats.outputs, len(g["faces"])
    for _ in range(3):
        g["pub"].publish(_frame(g, astronaut_rgb))
        time.sleep(0.1)
    time.sleep(0.5)
    assert node.stats.outputs == outputs and len(g["faces"]) == n_faces
    assert node._workers == () and not [t for t in threading.enumerate() if t.name.startswith("face_pipeline_worker")]  # the inference threads are gone: no CPU time while inactive

    assert change_state(client, name, "activate")  # and back: a new stream
    assert wait_for(lambda: _image_subscribers(g) == 1)
    g["pub"].publish(_frame(g, astronaut_rgb))
    assert wait_for(lambda: len(g["faces"]) > n_faces, timeout=20)

    closed = []
    for backend in (node.pipeline.detector, node.pipeline.emotion, node.pipeline.mesh):
        backend.close = lambda b=backend: closed.append(b)
    assert change_state(client, name, "deactivate") and change_state(client, name, "cleanup")
    assert get_state(client, name) == "unconfigured" and node.pipeline is None
    assert len(closed) == 3  # every model released (engines, buffers, CUDA contexts on TensorRT)

    assert not change_state(client, name, "activate")  # not a transition of unconfigured
    assert change_state(client, name, "shutdown")
    assert get_state(client, name) == "finalized" and _last_diagnostic(g).message == "finalized"


def test_shutdown_from_active_stops_everything(face_graph):
    g, client, name, node = face_graph, face_graph["client"], face_graph["name"], face_graph["node"]
    assert change_state(client, name, "configure") and change_state(client, name, "activate")
    assert wait_for(lambda: _image_subscribers(g) == 1)
    assert change_state(client, name, "shutdown")
    assert get_state(client, name) == "finalized"
    assert node.pipeline is None and node._workers == () and _image_subscribers(g) == 0


def test_configure_failure_is_reported_and_the_node_stays_unconfigured(ros, models_dir):
    """backend tensorrt where TensorRT is absent: configure fails with the real reason (log + diagnostics)."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from edge_infer.backends.tensorrt.trt import availability
    from edge_infer.ros.face_node import FacePipelineNode
    from edge_infer.ros.runner import spinning

    if availability()[0]:
        pytest.skip("TensorRT works here: this checks the failure where it does not")
    node = FacePipelineNode(namespace="lifecycle_fail", parameter_overrides=[
        Parameter("models_dir", value=str(models_dir)), Parameter("autostart", value=False),
        Parameter("backend", value="tensorrt"), Parameter("diagnostics_period_s", value=0.1)])
    client = Node("lifecycle_fail_client")
    with spinning(node, client):
        assert not change_state(client, "/lifecycle_fail/face_pipeline", "configure")
        assert get_state(client, "/lifecycle_fail/face_pipeline") == "unconfigured"
        assert wait_for(lambda: node._configure_error is not None)
        assert "TensorRT" in str(node._configure_error)


@pytest.mark.ros
def test_a_failed_construction_destroys_cleanly(models_dir):
    """autostart with an unusable backend: the constructor raises the real error; shutting rclpy down
    afterwards (which destroys the nodes it still tracks) raises nothing else (was: AttributeError '_cv')."""
    import rclpy
    from rclpy.parameter import Parameter

    from edge_infer.backends.tensorrt.trt import availability
    from edge_infer.errors import EdgeInferError
    from edge_infer.ros.audio_node import AudioNode
    from edge_infer.ros.face_node import FacePipelineNode

    if availability()[0]:
        pytest.skip("TensorRT works here: this checks the failure where it does not")
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        observer = rclpy.create_node("failed_construction_observer", context=context)
        for cls in (FacePipelineNode, AudioNode):
            with pytest.raises(EdgeInferError, match="TensorRT"):
                cls(context=context, namespace="failed_construction", parameter_overrides=[
                    Parameter("models_dir", value=str(models_dir)), Parameter("backend", value="tensorrt")])
        with pytest.raises(EdgeInferError, match="score_threshold"):  # a bad value: refused before any model
            FacePipelineNode(context=context, namespace="failed_construction",
                             parameter_overrides=[Parameter("score_threshold", value=7.0)])

        def leftovers() -> list:
            return [n for n in observer.get_node_names_and_namespaces() if n[1] == "/failed_construction"]

        # gone from the graph at once (rclpy's lifecycle state machine would keep them until garbage collection)
        assert wait_for(lambda: not leftovers(), timeout=5), leftovers()
    finally:
        context.try_shutdown()


def test_audio_node_lifecycle_and_last_segment_on_deactivate(ros, models_dir):
    """audio_node: configure/activate through the services; deactivate ends the stream (an open speech
    segment is closed and published) and unsubscribes."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Int16MultiArray, String

    from audio_clips import clip, padded, to_int16
    from edge_infer.ros.audio_node import AudioNode
    from edge_infer.ros.runner import spinning

    node = AudioNode(namespace="lifecycle_audio", parameter_overrides=[
        Parameter("models_dir", value=str(models_dir)), Parameter("autostart", value=False)])
    client = Node("lifecycle_audio_client")
    segments = []
    client.create_subscription(String, "/lifecycle_audio/audio_node/speech_segments",
                               lambda m: segments.append(json.loads(m.data)), 10)
    pub = client.create_publisher(Int16MultiArray, "/lifecycle_audio/audio", QoSProfile(
        depth=200, reliability=ReliabilityPolicy.RELIABLE))
    name = "/lifecycle_audio/audio_node"
    with spinning(node, client):
        assert get_state(client, name) == "unconfigured" and node.input is None
        assert change_state(client, name, "configure") and change_state(client, name, "activate")
        assert get_state(client, name) == "active"
        assert wait_for(lambda: pub.get_subscription_count() == 1)
        speech = padded(clip("please open the door", "flite", "kal16"), 0.5, 0.0)  # ends while speaking
        for i in range(0, len(speech), 1600):
            pub.publish(Int16MultiArray(data=to_int16(speech[i:i + 1600]).tolist()))
            time.sleep(0.002)
        stats = node.pipeline.stream.stats
        assert wait_for(lambda: stats.chunks >= len(speech) // 1600, timeout=30)
        assert segments == []  # still speaking: no segment end yet
        assert change_state(client, name, "deactivate")
        assert wait_for(lambda: segments, timeout=5) and segments[-1]["complete"] is False
        assert wait_for(lambda: pub.get_subscription_count() == 0) and node.input is None
        assert change_state(client, name, "cleanup") and node.pipeline is None


# ------------------------------------------------------------------------------------ node processes
def _node_env(models_dir) -> dict[str, str]:
    return dict(os.environ, EDGE_INFER_MODELS=str(models_dir), PYTHONUNBUFFERED="1")


def _console_script(name: str) -> list[str]:
    """The installed console script (what `ros2 run edge_infer <name>` runs), with this interpreter."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return [sys.executable, path] if os.path.isfile(path) else [sys.executable, "-m", f"edge_infer.ros.{name}"]


@pytest.mark.ros
def test_console_script_with_an_unusable_backend_exits_with_its_real_error_only(models_dir):
    from edge_infer.backends.tensorrt.trt import availability

    if availability()[0]:
        pytest.skip("TensorRT works here: this checks the failure where it does not")
    proc = subprocess.run(_console_script("face_pipeline_node") + ["--ros-args", "-p", "backend:=tensorrt"],
                          env=_node_env(models_dir), capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "error: the TensorRT Python bindings are not installed" in out, out
    assert out.count("TensorRT Python bindings") == 1, out  # once, not also from a second failure
    assert "Traceback" not in out and "AttributeError" not in out, out


@pytest.mark.ros
@pytest.mark.parametrize("second_signal_after_s", [None, 0.0, 0.05])
def test_console_script_comes_up_active_and_stops_cleanly_on_sigint(ros, models_dir, second_signal_after_s):
    """`face_pipeline_node`: active after start (autostart); one SIGINT -> clean exit 0 within seconds; a second
    SIGINT during the teardown (a terminal's Ctrl-C plus ros2 launch's) changes nothing: no traceback."""
    from rclpy.node import Node

    from edge_infer.ros.runner import spinning

    proc = subprocess.Popen(_console_script("face_pipeline_node") + ["--ros-args", "-r", "__ns:=/sigint_test"],
                            env=_node_env(models_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        client = Node("sigint_test_client")
        with spinning(client):
            assert get_state(client, "/sigint_test/face_pipeline", timeout=60) == "active"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        if second_signal_after_s is not None:
            time.sleep(second_signal_after_s)
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert elapsed < 5.0, f"took {elapsed:.1f} s to stop"


def test_faces_end_on_deactivate_and_ids_are_never_reused(face_graph, astronaut_rgb):
    """Issue 20 (1, 2, 3, 6): after deactivate a ROS4HRI consumer gets an empty `tracked` list and the node no
    longer has the last face's topics; after cleanup -> configure -> activate the ids continue (f00001 is not
    issued again); ~/label_info follows a live score_threshold; ~/rebuild_engines names every model."""
    from hri_msgs.msg import IdsList
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_srvs.srv import Trigger
    from vision_msgs.msg import LabelInfo

    from ros_clients import call

    g, client, name, node = face_graph, face_graph["client"], face_graph["name"], face_graph["node"]
    tracked, labels = [], []
    client.create_subscription(IdsList, "/humans/faces/tracked", lambda m: tracked.append(list(m.ids)), 10)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.create_subscription(LabelInfo, f"{name}/label_info", lambda m: labels.append(m.threshold), latched)

    def face_topics() -> set[str]:
        pubs = client.get_publisher_names_and_types_by_node("face_pipeline", "/lifecycle_test")
        return {t for t, _ in pubs if t.startswith("/humans/faces/f")}

    def one_face() -> str:
        n = len(g["faces"])
        assert wait_for(lambda: _image_subscribers(g) == 1)
        g["pub"].publish(_frame(g, astronaut_rgb))
        assert wait_for(lambda: len(g["faces"]) > n, timeout=20)
        return g["faces"][-1]["faces"][0]["id"]

    assert change_state(client, name, "configure") and change_state(client, name, "activate")
    first = one_face()
    assert wait_for(lambda: f"/humans/faces/{first}/roi" in face_topics())
    assert wait_for(lambda: tracked and tracked[-1] == [first])

    assert change_state(client, name, "deactivate")
    assert wait_for(lambda: tracked[-1] == [], timeout=5), f"no empty tracked list after deactivate: {tracked[-3:]}"
    assert wait_for(lambda: not face_topics(), timeout=5), f"per-face topics outlive their face: {face_topics()}"

    assert change_state(client, name, "cleanup") and change_state(client, name, "configure")
    assert change_state(client, name, "activate")
    second = one_face()
    assert second != first and int(second[1:]) > int(first[1:]), (first, second)

    reply = call(client, Trigger, f"{name}/rebuild_engines", Trigger.Request())
    assert not reply.success and all(m in reply.message for m in ("face_detector", "emotion", "face_mesh"))

    assert wait_for(lambda: labels, timeout=5)
    start = labels[-1]
    node.set_parameters([Parameter("score_threshold", value=0.8)])  # the same path as ~/set_parameters
    assert wait_for(lambda: labels[-1] == pytest.approx(0.8), timeout=5), (start, labels)
    assert change_state(client, name, "shutdown")
    assert not face_topics()
