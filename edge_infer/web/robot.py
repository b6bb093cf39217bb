"""The robot page's bridge to ROS 2: one rclpy node in its own context, spun on its own thread.

Lazy by design: rclpy and the message packages are imported when the first robot request arrives (a server on a
machine without ROS serves the model page; the robot endpoints then answer 503 with the reason), and the ROS
participant only joins the domain then. The node subscribes ``/diagnostics`` (latest status per node), calls the
lifecycle services ``~/get_state`` / ``~/change_state`` and ``~/rebuild_engines`` (std_srvs/Trigger), and
subscribes a node's ``~/debug_image`` only while the page asks for it: the face node draws the image only
while someone subscribes, so an idle page costs the robot nothing.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from typing import Any

from edge_infer.errors import EdgeInferError

ROS_MODULES = ("rclpy", "lifecycle_msgs", "diagnostic_msgs", "std_srvs", "sensor_msgs")
TRANSITIONS = ("configure", "activate", "deactivate", "cleanup", "shutdown")
LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}
DEBUG_IMAGE_IDLE_S = 5.0
CALL_TIMEOUT_S = 10.0
CHANGE_STATE_TIMEOUT_S = 120.0  # configure loads models (and may build TensorRT engines)
DIAGNOSTICS_FORGET_S = 60.0  # a node silent this long on /diagnostics (and without lifecycle services) is gone


class RobotUnavailable(EdgeInferError):
    """No ROS here (503 with the reason)."""


class RobotCallError(EdgeInferError):
    """A node did not answer or does not exist (404 / 504)."""


def ros_availability() -> tuple[bool, str | None]:
    """(importable, reason if not) without importing rclpy (cheap: for api/health)."""
    missing = []
    for m in ROS_MODULES:
        try:
            if importlib.util.find_spec(m) is None:
                missing.append(m)
        except (ImportError, ValueError):
            missing.append(m)
    if missing:
        return False, f"ROS 2 Python packages not importable here ({', '.join(missing)}): source your ROS 2 setup"
    return True, None


def node_path(node: str) -> str:
    """``face_pipeline`` or ``ns/face_pipeline`` (from a URL) -> ``/ns/face_pipeline``; refuses odd names."""
    parts = [p for p in node.strip("/").split("/")]
    if not parts or not all(p and (p[0].isalpha() or p[0] == "_") and p.replace("_", "a").isalnum() for p in parts):
        raise RobotCallError(f"'{node[:80]}' is not a ROS node name")
    return "/" + "/".join(parts)


class RobotBridge:
    """Started on first use; thread-safe. ``stop()`` at server exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = False
        self._error: str | None = None
        self._diag: dict[str, dict[str, Any]] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._images: dict[str, dict[str, Any]] = {}  # node -> {"sub", "jpeg", "asked"}

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            if self._error:
                raise RobotUnavailable(self._error)
            ok, reason = ros_availability()
            if not ok:
                self._error = reason
                raise RobotUnavailable(reason)
            try:
                self._start_ros()
            except Exception as e:  # rmw / DDS start-up problems: the reason, not a traceback
                self._error = f"cannot start a ROS 2 node: {' '.join(str(e).split())[:300]}"
                raise RobotUnavailable(self._error) from None
            self._started = True

    def _start_ros(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        self._rclpy = rclpy
        self._context = rclpy.Context()
        rclpy.init(args=[], context=self._context)
        self.node = rclpy.create_node("edge_infer_ui", context=self._context)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.node.create_timer(1.0, self._drop_idle_images)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="edge_infer_ui_ros", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self._context.ok():
                self._executor.spin_once(timeout_sec=0.2)
        except Exception:  # the context was shut down under us (stop())
            pass

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
        self._context.try_shutdown()
        self._thread.join(5)
        self._executor.shutdown(1.0)
        self.node.destroy_node()

    # ------------------------------------------------------------------ diagnostics
    def _on_diagnostics(self, msg) -> None:
        for s in msg.status:
            level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level)
            self._diag[s.hardware_id or s.name] = {
                "level": LEVELS.get(level, str(level)), "message": s.message, "name": s.name,
                "values": {kv.key: kv.value for kv in s.values}, "t": time.monotonic()}

    def nodes(self) -> list[dict[str, Any]]:
        """Every lifecycle node in the graph (by its ~/get_state service) and every node seen on /diagnostics."""
        self.start()
        lifecycle = sorted({name.removesuffix("/get_state") for name, types in self.node.get_service_names_and_types()
                            if name.endswith("/get_state") and "lifecycle_msgs/srv/GetState" in types})
        now = time.monotonic()
        recent = sorted(k for k, d in list(self._diag.items()) if k.startswith("/") and now - d["t"] < DIAGNOSTICS_FORGET_S)
        names = list(dict.fromkeys([*lifecycle, *recent]))
        out = []
        for name in names:
            state = None
            if name in lifecycle:
                try:
                    state = self.get_state(name, timeout_s=3.0)
                except RobotCallError:
                    state = None
            d = self._diag.get(name)
            out.append({"name": name, "state": state, "lifecycle": name in lifecycle,
                        "diagnostics": dict(d["values"]) if d else {}, "message": d["message"] if d else None,
                        "level": d["level"] if d else None,
                        "age_s": round(time.monotonic() - d["t"], 2) if d else None})
        return out

    # ------------------------------------------------------------------ services
    def _call(self, srv_type, service: str, request, timeout_s: float):
        self.start()
        key = (service, srv_type.__name__)
        with self._clients_lock:  # one client per service, kept (a new client's first answer can be lost)
            client = self._clients.get(key)
            if client is None:
                client = self.node.create_client(srv_type, service)
                self._clients[key] = client
        if not client.wait_for_service(timeout_sec=min(timeout_s, 5.0)):
            raise RobotCallError(f"no service {service}: is the node running?")
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout_s):
            future.cancel()
            raise RobotCallError(f"{service} did not answer within {timeout_s:g} s")
        return future.result()

    def get_state(self, node: str, timeout_s: float = CALL_TIMEOUT_S) -> str:
        from lifecycle_msgs.srv import GetState

        return self._call(GetState, f"{node_path(node)}/get_state", GetState.Request(), timeout_s).current_state.label

    def change_state(self, node: str, transition: str) -> dict[str, Any]:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        if transition not in TRANSITIONS:
            raise RobotCallError(f"transition '{transition[:40]}': choose one of {', '.join(TRANSITIONS)}")
        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
               "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
        request = ChangeState.Request()
        request.transition.id = ids[transition]
        if transition == "shutdown":  # the label picks the shutdown transition of whatever state the node is in
            request.transition.label = "shutdown"
        name = node_path(node)
        ok = bool(self._call(ChangeState, f"{name}/change_state", request, CHANGE_STATE_TIMEOUT_S).success)
        return {"success": ok, "state": self.get_state(name)}

    def rebuild_engines(self, node: str) -> dict[str, Any]:
        from std_srvs.srv import Trigger

        r = self._call(Trigger, f"{node_path(node)}/rebuild_engines", Trigger.Request(), CHANGE_STATE_TIMEOUT_S)
        return {"success": bool(r.success), "message": r.message}

    # ------------------------------------------------------------------ debug image (subscribed while asked for)
    def debug_image(self, node: str) -> bytes | None:
        """The latest ~/debug_image as JPEG (None until one arrived); keeps the subscription for a few seconds."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        self.start()
        name = node_path(node)
        with self._lock:
            entry = self._images.get(name)
            if entry is None:
                entry = {"jpeg": None, "asked": time.monotonic()}
                entry["sub"] = self.node.create_subscription(
                    Image, f"{name}/debug_image", lambda msg, e=entry: self._on_image(e, msg), qos_profile_sensor_data)
                self._images[name] = entry
            entry["asked"] = time.monotonic()
            return entry["jpeg"]

    def subscribed_images(self) -> list[str]:
        with self._lock:
            return sorted(self._images)

    def _on_image(self, entry: dict[str, Any], msg) -> None:
        import cv2

        from edge_infer.ros.image_conversion import msg_to_image

        try:
            frame = msg_to_image(msg)
            ok, buf = cv2.imencode(".jpg", frame.bgr(), [cv2.IMWRITE_JPEG_QUALITY, 80])
        except Exception:  # a bad frame: keep the previous one
            return
        if ok:
            entry["jpeg"] = buf.tobytes()

    def _drop_idle_images(self) -> None:
        now = time.monotonic()
        with self._lock:
            for name in [n for n, e in self._images.items() if now - e["asked"] > DEBUG_IMAGE_IDLE_S]:
                self.node.destroy_subscription(self._images.pop(name)["sub"])
