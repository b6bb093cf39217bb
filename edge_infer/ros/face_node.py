"""face_pipeline_node: camera images -> faces (detection, emotion, 468-point mesh) as vision_msgs detections,
ROS4HRI face topics, head-pose frames on /tf (face_<id>, gaze_<id>; camera_info intrinsics), fatigue signals
and a JSON mirror, with the input header, + diagnostics.

Thin over :class:`edge_infer.pipeline.face_pipeline.FacePipeline`; a lifecycle node with live parameters
(:mod:`edge_infer.ros.pipeline_node`). Inference runs on a worker thread fed by a one-frame slot: a frame
that arrives while the previous one is still being processed replaces the waiting one (counted as dropped),
so latency stays bounded instead of a queue growing behind a slow model. The worker runs only while the node
is active; it holds ``_frame_lock`` while it processes a frame, so live parameter changes and engine swaps
take that lock and land between two frames. Head pose and fatigue (:class:`FaceSignals`) are computed by the
worker too, under the same lock, so a live fatigue threshold also lands between two frames.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from edge_infer.pipeline.frames import BadFrame, CompressedHeader, Frame
from edge_infer.backends.memory import runtime_diagnostics
from edge_infer.errors import ConfigError
from edge_infer.paths import default_models_dir
from edge_infer.pipeline.draw import draw_faces
from edge_infer.pipeline.face_pipeline import FaceFrameResult, FaceIds, FacePipeline
from edge_infer.pipeline.face_signals import FaceSignals
from edge_infer.pipeline.head_pose import CameraInfoError
from edge_infer.pipeline.latency import FrameTimer
from edge_infer.pipeline.stream_health import StreamHealth
from edge_infer.ros.diagnostics import diagnostic_array
from edge_infer.ros.image_conversion import check_compressed, compressed_to_image, image_to_msg, msg_to_image
from edge_infer.ros.input_qos import InputSubscription
from edge_infer.ros.output_publisher import output_publisher
from edge_infer.ros.param_table import FACE_NODE, FACE_PARAMS, face_config, fatigue_config, health_bounds
from edge_infer.ros.pipeline_node import PipelineNode
from edge_infer.ros.typed import TypedFaceOutputs

#: changes of these re-run the detector on the next frame (tracked faces would hide the new values)
DETECTOR_PARAMS = frozenset({"detector_width", "detector_height", "score_threshold", "nms_threshold", "max_faces"})
#: camera_info: best effort keep-last 1 matches every publisher (reliable or not); only the latest K/D matter
CAMERA_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class FacePipelineNode(PipelineNode):
    DIAGNOSTICS_NAME = "face pipeline"
    _worker: threading.Thread | None = None

    def __init__(self, **kwargs) -> None:
        # worker state before the node exists: destroy_node may run from any point of a failed construction
        self.stats = StreamHealth()
        self._slot: tuple | None = None
        self._newest_ns = 0
        self._cv = threading.Condition()
        self._frame_lock = threading.Lock()
        self._running = False
        self._face_ids = FaceIds()  # the node's for its life: a reconfigured or rebuilt pipeline never reuses an id
        self.signals = FaceSignals()  # head pose + fatigue of the stream's faces (worker thread)
        self._info_sub = None
        self._warned_intrinsics = False
        self._defaults_since_ns = 0
        super().__init__(FACE_NODE, FACE_PARAMS, **kwargs)

    def _setup(self, values: dict[str, Any]) -> None:
        # every result topic (vision_msgs, ROS4HRI, the JSON mirror) with the input header, built only for
        # topics someone subscribes to; published by the worker, which runs only while the node is active
        self.outputs = TypedFaceOutputs(self, ros4hri=values["ros4hri"], json_output=values["json_output"],
                                        publish_cropped=values["publish_cropped"],
                                        score_threshold=values["score_threshold"])
        self.debug_pub = output_publisher(self, Image, "~/debug_image", qos_profile_sensor_data, lifecycle=True)

    def _use(self, values: dict[str, Any]) -> None:
        self.debug_enabled = bool(values["publish_debug_image"])
        self.max_image_pixels = int(values["max_image_pixels"])
        self.max_lag_ns = int(values["max_stamp_lag_s"] * 1e9)
        self.bounds = health_bounds(values)
        self.publish_tf = bool(values["publish_tf"])
        self.signals.fatigue.config = fatigue_config(values)  # ConfigError: refused (live) / no start

    def _load(self, **overrides: Any) -> FacePipeline:
        v = self.values
        options = {"providers": list(v["providers"]), "intra_op_threads": v["intra_op_threads"],
                   "engine_build": v["engine_build"], **overrides}
        return FacePipeline.from_models_dir(Path(v["models_dir"]) if v["models_dir"] else default_models_dir(),
                                            backend=v["backend"], config=face_config(v), ids=self._face_ids,
                                            **options)

    def _describe(self) -> str:
        c = self.pipeline.config
        return (f"backend {self.pipeline.backend_name}, detector {c.detector_size}, emotion={c.enable_emotion}, "
                f"mesh={c.enable_mesh}, tracking={c.tracking}")

    def _backend_names(self) -> dict[str, str]:
        return self.pipeline.backends()

    def _apply_live(self, values: dict[str, Any], changed: set[str]) -> None:
        config = face_config(values)
        fatigue_config(values)  # refuse fatigue values that do not go together before anything changes
        pipeline = self.pipeline
        if pipeline is not None and changed & {"detector_width", "detector_height"} \
                and pipeline.backend_name.startswith("tensorrt"):
            raise ConfigError(f"detector size {config.detector_size}: the TensorRT engines are built for "
                              f"{pipeline.config.detector_size}; set detector_width/height at start-up")
        with self._frame_lock:  # between two frames
            if pipeline is not None:
                pipeline.config = config
                if changed & DETECTOR_PARAMS:
                    pipeline.reset()
            self._use(values)
        if "score_threshold" in changed and getattr(self, "outputs", None) is not None:
            self.outputs.set_score_threshold(values["score_threshold"])  # ~/label_info follows the live value

    def _swap_pipeline(self, new: FacePipeline) -> FacePipeline:
        with self._frame_lock:
            return super()._swap_pipeline(new)

    # ------------------------------------------------------------------------------------------ activity
    def _subscribe(self) -> list[InputSubscription]:
        v = self.values
        log = lambda text: self.get_logger().info(text)  # noqa: E731
        inputs = [InputSubscription(self, Image, "image", lambda m: self._offer(m, False),
                                    v["input_qos.reliability"], v["input_qos.depth"], self.stats.on_lost, log)]
        if v["subscribe_compressed"]:
            inputs.append(InputSubscription(self, CompressedImage, "image/compressed", lambda m: self._offer(m, True),
                                            v["input_qos.reliability"], v["input_qos.depth"], self.stats.on_lost, log))
        return inputs

    def _start_work(self) -> None:
        self._newest_ns = 0
        self._warned_intrinsics, self._defaults_since_ns = False, 0
        self._info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, CAMERA_INFO_QOS)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="face_pipeline_worker", daemon=True)
        self._worker.start()

    def _stop_work(self) -> None:
        with self._cv:
            self._running = False
            self._slot = None
            self._cv.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None
        if self._info_sub is not None:
            self.destroy_subscription(self._info_sub)
            self._info_sub = None
        if self.pipeline is not None:
            self.pipeline.reset()  # the next activation is a new stream: no tracks from before
        self.signals.reset()  # nor fatigue histories or a camera_info from before
        outputs = getattr(self, "outputs", None)
        if outputs is not None:  # the worker has stopped: the faces it published are gone
            outputs.end_stream()

    # ------------------------------------------------------------------------------------------ input
    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Keep the latest intrinsics (the worker reads them); a changed calibration is logged once."""
        try:
            changed = self.signals.set_camera_info(msg.k, msg.d, msg.distortion_model, msg.width, msg.height)
        except CameraInfoError as e:  # counted and logged once per distinct bad calibration: defaults are used
            self._bad("camera_info", f"{e}; head poses use default intrinsics")
            return
        if changed:
            self.get_logger().info(f"camera_info: {msg.width}x{msg.height}, K {[round(float(v), 2) for v in msg.k]}, "
                                   f"{msg.distortion_model or 'no'} distortion {[float(v) for v in msg.d]}")

    def _bad(self, reason: str, detail: str) -> None:
        self.stats.on_bad(reason)
        self.get_logger().warning(f"bad input ({reason}): {detail}", throttle_duration_sec=5.0)

    def _offer(self, msg, compressed: bool) -> None:
        received_ns = self.get_clock().now().nanoseconds
        self.stats.on_input()
        stamp = _stamp_ns(msg)
        if stamp and self._newest_ns and self._newest_ns - stamp > self.max_lag_ns:
            self._bad("stale_stamp", f"stamp {(self._newest_ns - stamp) / 1e9:.2f} s older than the newest frame")
            return
        self._newest_ns = max(self._newest_ns, stamp)
        timer = FrameTimer()
        frame = None  # raw: the Frame (a view); compressed: its checked header, decoded by the worker
        if not compressed:  # a raw image is only a view: check it here so every bad one is counted
            frame = self._convert(msg, False, timer)
            if frame is None:
                return
        else:  # the header only (format, size): a bad one is counted even when a newer frame replaces it
            try:
                frame = check_compressed(msg, self.max_image_pixels)
            except BadFrame as e:
                self._bad(e.reason, str(e))
                return
        with self._cv:
            if self._slot is not None:
                self.stats.on_drop()
            self._slot = (msg, frame, timer, received_ns)
            self._cv.notify()

    def _warn_default_intrinsics(self, now_ns: int) -> None:
        """WARN once per activation that head poses use default intrinsics: at once for an unusable camera_info,
        after 2 s of frames when none came at all (a camera_info published with the first image may arrive just
        after it: no warning for that)."""
        if not self.signals.has_camera_info:
            if not self._defaults_since_ns:
                self._defaults_since_ns = now_ns
            if now_ns - self._defaults_since_ns < 2_000_000_000:
                return
        self._warned_intrinsics = True
        topic = self._info_sub.topic_name if self._info_sub is not None else "camera_info"
        self.get_logger().warning(f"head pose: no usable camera_info on {topic}; intrinsics "
                                  f"{self.signals.intrinsics_source}: distances are only as right as that focal "
                                  f"length (logged once per activation)")

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._slot is None and self._running:
                    self._cv.wait(0.5)
                if not self._running:
                    return
                msg, frame, timer, received_ns = self._slot
                self._slot = None
            try:
                self._process(msg, frame, timer, received_ns)
            except Exception as e:  # never let one frame kill the worker
                self._bad("processing_error", f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------------------------------------ frame
    def _convert(self, msg, compressed: bool, timer: FrameTimer, header: CompressedHeader | None = None):
        """The message as a Frame, or None after counting it as bad input (``header``: already checked)."""
        try:
            with timer.stage("convert"):
                if compressed:
                    return compressed_to_image(msg, self.max_image_pixels, header)
                return msg_to_image(msg, self.max_image_pixels)
        except BadFrame as e:
            self._bad(e.reason, str(e))
            return None

    def _process(self, msg, frame, timer: FrameTimer, received_ns: int) -> None:
        started_ns = self.get_clock().now().nanoseconds
        if not isinstance(frame, Frame):  # compressed: decode only the frames that are actually processed
            frame = self._convert(msg, True, timer, frame)
            if frame is None:
                return
        stamp = _stamp_ns(msg)
        with self._frame_lock:  # live parameter changes and engine swaps wait for the end of this frame
            result = self.pipeline.process(frame, timer)
            # head pose (publish_tf) and fatigue, timed by the input stamp (the arrival time if it has none)
            self.signals.annotate(result, (stamp or received_ns) / 1e9, head_pose=self.publish_tf)
        if self.publish_tf and self.signals.assumed and not self._warned_intrinsics:
            self._warn_default_intrinsics(received_ns)
        e2e_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6 if stamp else None
        # transport: stamp -> our callback (the middleware, rclpy's take); queued: callback -> worker start
        latency = dict(timer.stages, processing=timer.total_ms, queued=(started_ns - received_ns) / 1e6)
        if e2e_ms is not None:
            latency["end_to_end"] = e2e_ms
            latency["transport"] = (received_ns - stamp) / 1e6
        self._publish_results(result, msg.header, latency, frame)
        if self.debug_enabled and self.debug_pub.get_subscription_count():
            out = image_to_msg(draw_faces(frame.bgr(), result), "bgr8", msg.header.frame_id)
            out.header.stamp = msg.header.stamp
            self.debug_pub.publish(out)
        self.stats.on_output(timer, e2e_ms)

    def _publish_results(self, result: FaceFrameResult, header, latency: dict[str, float], frame=None) -> None:
        """Every result output of one frame: ~/detections, /humans/faces/..., the ~/faces JSON mirror.

        Runs on the worker thread, only while active."""
        self.outputs.publish(header, result, frame, self.pipeline.backend_name, latency)

    def destroy_node(self) -> None:
        self._deactivate()  # the worker stops first: outputs are never closed under a publish
        outputs = getattr(self, "outputs", None)
        if outputs is not None:
            outputs.close()
        super().destroy_node()

    def _active_diagnostics(self):
        return diagnostic_array(
            self, f"{self.get_name()}: {self.DIAGNOSTICS_NAME}", self.get_fully_qualified_name(), self.stats,
            self.bounds, {"lifecycle_state": "active", "backend": self.pipeline.backend_name,
                          "models": "face_detector, emotion, face_mesh",
                          "intrinsics": self.signals.intrinsics_source if self.publish_tf
                          else "off (publish_tf false)",
                          "fatigue_faces": str(len(self.signals.fatigue)),
                          "input_qos": ", ".join(i.describe() for i in self.inputs), **runtime_diagnostics()})


def main(args=None) -> None:
    from edge_infer.ros.runner import node_main

    node_main([FacePipelineNode], args)


if __name__ == "__main__":
    main()
