"""face_pipeline_node: camera images -> faces (detection, emotion, 468-point mesh) as JSON + diagnostics.

Thin over :class:`edge_infer.pipeline.face_pipeline.FacePipeline`. Inference runs on a worker thread fed by
a one-frame slot: a frame that arrives while the previous one is still being processed replaces the
waiting one (counted as dropped), so latency stays bounded instead of a queue growing behind a slow model.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from edge_infer.backends import close_backends
from edge_infer.backends.memory import runtime_diagnostics
from edge_infer.paths import default_models_dir
from edge_infer.pipeline.draw import draw_faces
from edge_infer.pipeline.face_pipeline import FacePipeline
from edge_infer.pipeline.face_results import face_result_to_json
from edge_infer.pipeline.frames import BadFrame
from edge_infer.pipeline.latency import FrameTimer
from edge_infer.pipeline.stream_health import StreamHealth
from edge_infer.ros.diagnostics import diagnostic_array
from edge_infer.ros.image_conversion import compressed_to_image, image_to_msg, msg_to_image
from edge_infer.ros.param_table import FACE_PARAMS, face_config, health_bounds
from edge_infer.ros.input_qos import InputSubscription
from edge_infer.ros.params import declare_params


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class FacePipelineNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("face_pipeline", **kwargs)
        v = declare_params(self, FACE_PARAMS)
        models_dir, backend = v["models_dir"], v["backend"]
        self.engine_build = v["engine_build"]
        config = face_config(v)
        self.debug_enabled = v["publish_debug_image"]
        self.max_lag_ns = int(v["max_stamp_lag_s"] * 1e9)
        self.bounds = health_bounds(v)

        options = {"providers": list(v["providers"]), "intra_op_threads": v["intra_op_threads"], "engine_build": self.engine_build}
        self._make_pipeline = lambda **over: FacePipeline.from_models_dir(
            Path(models_dir) if models_dir else default_models_dir(), backend=backend, config=config,
            **{**options, **over})
        self.pipeline = self._make_pipeline()
        self.create_service(Trigger, "~/rebuild_engines", self._rebuild_engines)
        self.stats = StreamHealth()
        self.faces_pub = self.create_publisher(String, "~/faces", 10)
        self.debug_pub = self.create_publisher(Image, "~/debug_image", qos_profile_sensor_data)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        log = lambda text: self.get_logger().info(text)  # noqa: E731
        self.inputs = [InputSubscription(self, Image, "image", lambda m: self._offer(m, False),
                                         v["input_qos.reliability"], v["input_qos.depth"], self.stats.on_lost, log)]
        if v["subscribe_compressed"]:
            self.inputs.append(InputSubscription(self, CompressedImage, "image/compressed",
                                                 lambda m: self._offer(m, True), v["input_qos.reliability"],
                                                 v["input_qos.depth"], self.stats.on_lost, log))
        self.create_timer(v["diagnostics_period_s"], self._publish_diagnostics)

        self._slot: tuple | None = None
        self._newest_ns = 0
        self._cv = threading.Condition()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="face_pipeline_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"face pipeline ready: backend {self.pipeline.backend_name}, detector {config.detector_size}, "
            f"emotion={config.enable_emotion}, mesh={config.enable_mesh}, tracking={config.tracking}")

    # ------------------------------------------------------------------------------------------ input
    def _bad(self, reason: str, detail: str) -> None:
        self.stats.on_bad(reason)
        self.get_logger().warning(f"bad input ({reason}): {detail}", throttle_duration_sec=5.0)

    def _offer(self, msg, compressed: bool) -> None:
        self.stats.on_input()
        stamp = _stamp_ns(msg)
        if stamp and self._newest_ns and self._newest_ns - stamp > self.max_lag_ns:
            self._bad("stale_stamp", f"stamp {(self._newest_ns - stamp) / 1e9:.2f} s older than the newest frame")
            return
        self._newest_ns = max(self._newest_ns, stamp)
        timer = FrameTimer()
        frame = None
        if not compressed:  # a raw image is only a view: check it here so every bad one is counted
            frame = self._convert(msg, False, timer)
            if frame is None:
                return
        with self._cv:
            if self._slot is not None:
                self.stats.on_drop()
            self._slot = (msg, frame, timer)
            self._cv.notify()

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._slot is None and self._running:
                    self._cv.wait(0.5)
                if not self._running:
                    return
                msg, frame, timer = self._slot
                self._slot = None
            try:
                self._process(msg, frame, timer)
            except Exception as e:  # never let one frame kill the worker
                self._bad("processing_error", f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------------------------------------ frame
    def _convert(self, msg, compressed: bool, timer: FrameTimer):
        """The message as a Frame, or None after counting it as bad input."""
        try:
            with timer.stage("convert"):
                return compressed_to_image(msg) if compressed else msg_to_image(msg)
        except BadFrame as e:
            self._bad(e.reason, str(e))
            return None

    def _process(self, msg, frame, timer: FrameTimer) -> None:
        if frame is None:  # compressed: decode only the frames that are actually processed
            frame = self._convert(msg, True, timer)
            if frame is None:
                return
        result = self.pipeline.process(frame, timer)
        stamp = _stamp_ns(msg)
        e2e_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6 if stamp else None
        latency = dict(timer.stages, processing=timer.total_ms)
        if e2e_ms is not None:
            latency["end_to_end"] = e2e_ms
        self.faces_pub.publish(String(data=face_result_to_json(
            result, msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id,
            self.pipeline.backend_name, latency)))
        if self.debug_enabled and self.debug_pub.get_subscription_count():
            out = image_to_msg(draw_faces(frame.bgr(), result), "bgr8", msg.header.frame_id)
            out.header.stamp = msg.header.stamp
            self.debug_pub.publish(out)
        self.stats.on_output(timer, e2e_ms)

    def _rebuild_engines(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """std_srvs/Trigger: rebuild every TensorRT engine (engine_build: force) and swap them in."""
        if not self.pipeline.backend_name.startswith("tensorrt"):
            response.success = False
            response.message = f"backend is {self.pipeline.backend_name}: there are no TensorRT engines to rebuild"
            return response
        try:
            new = self._make_pipeline(engine_build="force")
        except Exception as e:
            response.success, response.message = False, f"rebuild failed, old engines kept: {e}"
            return response
        with self._cv:  # the worker takes frames under this lock: swap between frames
            old, self.pipeline = self.pipeline, new
        close_backends(old)  # free the old engines, buffers and contexts
        response.success, response.message = True, "engines rebuilt"
        return response

    def _publish_diagnostics(self) -> None:
        self.diag_pub.publish(diagnostic_array(
            self, f"{self.get_name()}: face pipeline", self.get_fully_qualified_name(), self.stats, self.bounds,
            {"backend": self.pipeline.backend_name, "models": "face_detector, emotion, face_mesh",
             "input_qos": ", ".join(i.describe() for i in self.inputs), **runtime_diagnostics()}))

    def destroy_node(self) -> None:
        with self._cv:
            self._running = False
            self._cv.notify_all()
        self._worker.join(timeout=5.0)
        close_backends(self.pipeline)
        super().destroy_node()


def main(args=None) -> None:
    from edge_infer.ros.runner import run_nodes

    run_nodes([FacePipelineNode], args)


if __name__ == "__main__":
    main()
