"""face_pipeline_node: camera images -> faces (detection, emotion, 468-point mesh) as vision_msgs detections,
ROS4HRI face topics, head-pose frames on /tf (face_<id>, gaze_<id>; camera_info intrinsics), fatigue signals
and a JSON mirror, with the input header, + diagnostics. One node serves one or several cameras.

Thin over :class:`edge_infer.pipeline.face_pipeline.FacePipeline`; a lifecycle node with live parameters
(:mod:`edge_infer.ros.pipeline_node`).

Cameras (parameter ``cameras``, live): ``['']`` (the default) is one camera on the node's own topics (``image``,
``camera_info``, ``~/detections``...); ``[head, left]`` subscribes ``head/image``, ``left/image``... and
publishes ``~/head/detections``, ``~/left/detections``... The models are loaded once for all cameras; each
camera has its own tracking, intrinsics, fatigue and health (:class:`edge_infer.ros.face_cameras.CameraStream`).
The ROS4HRI graph is one for the node: ``/humans/faces/tracked`` lists every camera's faces, ids come from one
counter (unique across cameras, never reused).

Scheduling (:class:`edge_infer.pipeline.cameras.CameraSlots`): each camera has a one-frame slot (a frame that
arrives while the previous one still waits replaces it, counted as dropped), and a worker takes at most one frame
per camera per round, least recently served first: fair, and an idle camera costs nothing. ``workers`` threads
(default: one per CPU core) take rounds side by side, a camera in one worker's hands at a time; the models are
shared (ONNX Runtime runs concurrently, LiteRT and TensorRT take turns). Why several: measured with 4 cameras on
2 cores, one worker answered half the frames 4 separate nodes did (Python pre/post-processing of one frame
overlaps the models of another only across threads). With batching (``batching``: ``auto`` = always when a
model runs on a GPU, never on a CPU) the round's frames go through the models together (:mod:`edge_infer.pipeline.face_batch`: one
detector call, one mesh call over all faces...); ``batch_timeout_ms`` bounds how long a frame may wait for other
cameras' frames (0: never waits). Workers run only while the node is active; live parameter changes, camera
changes and engine swaps wait at the :class:`~edge_infer.pipeline.cameras.RoundGate` and land between rounds.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from edge_infer.pipeline.frames import BadFrame, CompressedHeader, Frame
from edge_infer.backends.memory import runtime_diagnostics
from edge_infer.errors import ConfigError
from edge_infer.paths import default_models_dir
from edge_infer.pipeline.cameras import MAX_CAMERAS, CameraSlots, RoundGate, check_camera_names
from edge_infer.pipeline.draw import draw_faces
from edge_infer.pipeline.face_batch import BatchStats, process_frames
from edge_infer.pipeline.face_pipeline import FaceFrameResult, FaceIds, FacePipeline
from edge_infer.pipeline.head_pose import CameraInfoError
from edge_infer.pipeline.latency import FrameTimer
from edge_infer.pipeline.stream_health import StreamHealth
from edge_infer.ros.diagnostics import diagnostic_array
from edge_infer.ros.face_cameras import CameraStream
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
    _workers: tuple[threading.Thread, ...] = ()
    outputs: TypedFaceOutputs | None = None

    def __init__(self, **kwargs) -> None:
        # worker state before the node exists: destroy_node may run from any point of a failed construction
        self.stats = StreamHealth()  # the node's totals over all cameras
        self.cameras: dict[str, CameraStream] = {}
        self.slots = CameraSlots()
        self.batch_stats = BatchStats()
        self._stats_lock = threading.Lock()
        self._gate = RoundGate()
        self._running = False
        self._face_ids = FaceIds()  # the node's for its life: a reconfigured or rebuilt pipeline never reuses an id
        super().__init__(FACE_NODE, FACE_PARAMS, **kwargs)

    @property
    def signals(self):
        """The first camera's head pose + fatigue state (a single-camera node's)."""
        return next(iter(self.cameras.values())).signals

    def _setup(self, values: dict[str, Any]) -> None:
        # every result topic (vision_msgs, ROS4HRI, the JSON mirror) with the input header, built only for
        # topics someone subscribes to; published by the worker, which runs only while the node is active
        names = check_camera_names(values["cameras"])
        self.outputs = TypedFaceOutputs(self, ros4hri=values["ros4hri"], json_output=values["json_output"],
                                        publish_cropped=values["publish_cropped"],
                                        score_threshold=values["score_threshold"], cameras=())
        for name in names:
            self._add_camera(name)
        self.slots.set_cameras(names)

    def _use(self, values: dict[str, Any]) -> None:
        check_camera_names(values["cameras"])  # ConfigError: refused (live) / no start
        self.debug_enabled = bool(values["publish_debug_image"])
        self.max_image_pixels = int(values["max_image_pixels"])
        self.max_lag_ns = int(values["max_stamp_lag_s"] * 1e9)
        self.bounds = health_bounds(values)
        self.publish_tf = bool(values["publish_tf"])
        self.batching = str(values["batching"])
        self.batch_timeout_s = float(values["batch_timeout_ms"]) / 1e3
        config = fatigue_config(values)  # ConfigError: refused (live) / no start
        for camera in self.cameras.values():
            camera.signals.fatigue.config = config

    def _load(self, **overrides: Any) -> FacePipeline:
        v = self.values
        options = {"providers": list(v["providers"]), "intra_op_threads": v["intra_op_threads"],
                   "engine_build": v["engine_build"], **overrides}
        return FacePipeline.from_models_dir(Path(v["models_dir"]) if v["models_dir"] else default_models_dir(),
                                            backend=v["backend"], config=face_config(v), ids=self._face_ids,
                                            cameras=len(v["cameras"]), **options)

    def _describe(self) -> str:
        c = self.pipeline.config
        return (f"backend {self.pipeline.backend_name}, detector {c.detector_size}, emotion={c.enable_emotion}, "
                f"mesh={c.enable_mesh}, tracking={c.tracking}, cameras {self._camera_list()}")

    def _camera_list(self) -> str:
        return ", ".join(repr(n) for n in self.cameras) or "none"

    def _backend_names(self) -> dict[str, str]:
        return self.pipeline.backends()

    def _apply_live(self, values: dict[str, Any], changed: set[str]) -> None:
        config = face_config(values)
        fatigue_config(values)  # refuse fatigue values that do not go together before anything changes
        names = check_camera_names(values["cameras"])
        pipeline = self.pipeline
        if pipeline is not None and changed & {"detector_width", "detector_height"} \
                and pipeline.backend_name.startswith("tensorrt"):
            raise ConfigError(f"detector size {config.detector_size}: the TensorRT engines are built for "
                              f"{pipeline.config.detector_size}; set detector_width/height at start-up")
        if pipeline is not None and "cameras" in changed and pipeline.backend_name.startswith("tensorrt") \
                and len(names) > len(self.values["cameras"]) and len(names) > 1:
            self.get_logger().info(f"{len(names)} cameras: the TensorRT engines' batch profile was built for "
                                   f"{len(self.values['cameras'])}; larger rounds run camera by camera")
        with self._gate.change():  # between rounds
            if pipeline is not None:
                pipeline.config = config
            for camera in self.cameras.values():  # each camera takes the node's config at its next frame
                if camera.pipeline is not None and changed & DETECTOR_PARAMS:
                    camera.pipeline.reset()
            if "cameras" in changed:
                self._set_cameras(names)
            self._use(values)
        if "score_threshold" in changed and self.outputs is not None:
            self.outputs.set_score_threshold(values["score_threshold"])  # ~/label_info follows the live value

    def _swap_pipeline(self, new: FacePipeline) -> FacePipeline:
        with self._gate.change():
            return super()._swap_pipeline(new)

    @property
    def batch_cameras(self) -> bool:
        """Whether a round takes every waiting camera's frame (``batching``; auto: when a model runs on a GPU)."""
        if self.batching != "auto":
            return self.batching == "always"
        names = self.pipeline.backends().values() if self.pipeline is not None else ()
        return any(("tensorrt" in n.lower() or "cuda" in n.lower()) for n in names)

    def worker_count(self) -> int:
        """``workers``, 0 = one per CPU core (at most MAX_CAMERAS: a camera is in one worker's hands at a time)."""
        return int(self.values["workers"]) or min(os.cpu_count() or 1, MAX_CAMERAS)

    # ------------------------------------------------------------------------------------------ cameras
    def _add_camera(self, name: str) -> CameraStream:
        camera = CameraStream(name)
        camera.signals.fatigue.config = fatigue_config(self.values)
        camera.debug_pub = output_publisher(self, Image, camera.topic("debug_image", True), qos_profile_sensor_data)
        self.outputs.add_camera(name)
        self.cameras[name] = camera
        return camera

    def _set_cameras(self, names: list[str]) -> None:
        """Serve exactly ``names`` from the next round (live ``cameras``): a removed camera's subscriptions and
        topics go and its faces leave /humans/faces/tracked; an added one is subscribed at once when active."""
        removed = [n for n in self.cameras if n not in names]
        for name in removed:
            camera = self.cameras.pop(name)
            self._unsubscribe(camera)
            self.destroy_publisher(camera.debug_pub)
            self.outputs.remove_camera(name)
        added = [self._add_camera(n) for n in names if n not in self.cameras]
        self.cameras = {n: self.cameras[n] for n in names}  # parameter order
        self.slots.set_cameras(names)
        if self.active:
            for camera in added:
                self.inputs = self.inputs + tuple(self._subscribe_camera(camera))
                self._subscribe_camera_info(camera)
        self.get_logger().info(f"cameras: {self._camera_list()}"
                               + (f" (added {[c.name for c in added]})" if added else "")
                               + (f" (removed {removed})" if removed else ""))

    def _unsubscribe(self, camera: CameraStream) -> None:
        for sub in camera.inputs:
            sub.destroy()
        self.inputs = tuple(i for i in self.inputs if i not in camera.inputs)
        camera.inputs = []
        if camera.info_sub is not None:
            self.destroy_subscription(camera.info_sub)
            camera.info_sub = None

    # ------------------------------------------------------------------------------------------ activity
    def _subscribe_camera(self, camera: CameraStream) -> list[InputSubscription]:
        v = self.values
        log = lambda text: self.get_logger().info(text)  # noqa: E731

        def lost(count: int) -> None:
            camera.stats.on_lost(count)
            self.stats.on_lost(count)

        camera.inputs = [InputSubscription(self, Image, camera.topic("image"), lambda m: self._offer(camera, m, False),
                                           v["input_qos.reliability"], v["input_qos.depth"], lost, log)]
        if v["subscribe_compressed"]:
            camera.inputs.append(InputSubscription(self, CompressedImage, camera.topic("image/compressed"),
                                                   lambda m: self._offer(camera, m, True), v["input_qos.reliability"],
                                                   v["input_qos.depth"], lost, log))
        return camera.inputs

    def _subscribe_camera_info(self, camera: CameraStream) -> None:
        camera.info_sub = self.create_subscription(CameraInfo, camera.topic("camera_info"),
                                                   lambda m: self._on_camera_info(camera, m), CAMERA_INFO_QOS)

    def _subscribe(self) -> list[InputSubscription]:
        return [sub for camera in self.cameras.values() for sub in self._subscribe_camera(camera)]

    def _start_work(self) -> None:
        for camera in self.cameras.values():
            camera.newest_ns = 0
            camera.warned_intrinsics, camera.defaults_since_ns = False, 0
            self._subscribe_camera_info(camera)
        self.slots.start()
        self._running = True
        self._workers = tuple(threading.Thread(target=self._work, args=(i,), name=f"face_pipeline_worker_{i}",
                                               daemon=True) for i in range(self.worker_count()))
        for worker in self._workers:
            worker.start()

    def _stop_work(self) -> None:
        self._running = False
        self.slots.stop()
        for worker in self._workers:
            worker.join(timeout=5.0)
        self._workers = ()
        for camera in self.cameras.values():
            camera.inputs = []  # destroyed with self.inputs by the base class
            if camera.info_sub is not None:
                self.destroy_subscription(camera.info_sub)
                camera.info_sub = None
            camera.reset()  # the next activation is a new stream: no tracks, fatigue or camera_info from before
        if self.outputs is not None:  # the worker has stopped: the faces it published are gone
            self.outputs.end_stream()

    # ------------------------------------------------------------------------------------------ input
    def _on_camera_info(self, camera: CameraStream, msg: CameraInfo) -> None:
        """Keep the camera's latest intrinsics (the worker reads them); a changed calibration is logged once."""
        try:
            changed = camera.signals.set_camera_info(msg.k, msg.d, msg.distortion_model, msg.width, msg.height)
        except CameraInfoError as e:  # counted and logged once per distinct bad calibration: defaults are used
            self._bad(camera, "camera_info", f"{e}; head poses use default intrinsics")
            return
        if changed:
            self.get_logger().info(f"{camera.label} camera_info: {msg.width}x{msg.height}, K "
                                   f"{[round(float(v), 2) for v in msg.k]}, {msg.distortion_model or 'no'} "
                                   f"distortion {[float(v) for v in msg.d]}")

    def _bad(self, camera: CameraStream, reason: str, detail: str) -> None:
        camera.stats.on_bad(reason)
        self.stats.on_bad(reason)
        where = f" on {camera.label}" if camera.name else ""
        self.get_logger().warning(f"bad input ({reason}){where}: {detail}", throttle_duration_sec=5.0)

    def _offer(self, camera: CameraStream, msg, compressed: bool) -> None:
        received_ns = self.get_clock().now().nanoseconds
        camera.stats.on_input()
        self.stats.on_input()
        stamp = _stamp_ns(msg)
        if stamp and camera.newest_ns and camera.newest_ns - stamp > self.max_lag_ns:
            self._bad(camera, "stale_stamp",
                      f"stamp {(camera.newest_ns - stamp) / 1e9:.2f} s older than the newest frame")
            return
        camera.newest_ns = max(camera.newest_ns, stamp)
        timer = FrameTimer()
        frame = None  # raw: the Frame (a view); compressed: its checked header, decoded by the worker
        if not compressed:  # a raw image is only a view: check it here so every bad one is counted
            frame = self._convert(camera, msg, False, timer)
            if frame is None:
                return
        else:  # the header only (format, size): a bad one is counted even when a newer frame replaces it
            try:
                frame = check_compressed(msg, self.max_image_pixels)
            except BadFrame as e:
                self._bad(camera, e.reason, str(e))
                return
        if self.slots.offer(camera.name, (msg, frame, timer, received_ns)):
            camera.stats.on_drop()
            self.stats.on_drop()

    def _warn_default_intrinsics(self, camera: CameraStream, now_ns: int) -> None:
        """WARN once per activation and camera that head poses use default intrinsics: at once for an unusable
        camera_info, after 2 s of frames when none came at all (a camera_info published with the first image may
        arrive just after it: no warning for that)."""
        if not camera.signals.has_camera_info:
            if not camera.defaults_since_ns:
                camera.defaults_since_ns = now_ns
            if now_ns - camera.defaults_since_ns < 2_000_000_000:
                return
        camera.warned_intrinsics = True
        topic = camera.info_sub.topic_name if camera.info_sub is not None else camera.topic("camera_info")
        self.get_logger().warning(f"head pose: no usable camera_info on {topic}; intrinsics "
                                  f"{camera.signals.intrinsics_source}: distances are only as right as that focal "
                                  f"length (logged once per activation)")

    def _work(self, index: int = 0) -> None:
        while self._running:
            if index and self.batch_cameras:
                # batched rounds are made by the first worker alone: each takes every waiting camera, so a second
                # batching worker would serve whichever camera came back first again (measured: 11.8 vs 5.8 Hz)
                time.sleep(0.2)
                continue
            round_ = self.slots.take(self.batch_cameras, self.batch_timeout_s)
            if round_ is None:
                return
            try:
                with self._gate.round():
                    if round_:
                        self._process_round(round_)
                    if self.outputs is not None:  # a camera whose frames stopped: its faces leave the graph
                        self.outputs.expire()
            except Exception as e:  # never let one round kill the worker
                for name, _ in round_:
                    camera = self.cameras.get(name)
                    if camera is not None:
                        self._bad(camera, "processing_error", f"{type(e).__name__}: {e}")
            finally:
                self.slots.done(name for name, _ in round_)

    # ------------------------------------------------------------------------------------------ frame
    def _convert(self, camera: CameraStream, msg, compressed: bool, timer: FrameTimer,
                 header: CompressedHeader | None = None):
        """The message as a Frame, or None after counting it as bad input (``header``: already checked)."""
        try:
            with timer.stage("convert"):
                if compressed:
                    return compressed_to_image(msg, self.max_image_pixels, header)
                return msg_to_image(msg, self.max_image_pixels)
        except BadFrame as e:
            self._bad(camera, e.reason, str(e))
            return None

    def _process_round(self, round_: list[tuple[str, tuple]]) -> None:
        """One frame of each camera in ``round_`` through the models (together when batching), then each
        camera's signals and outputs, all between two live changes."""
        started_ns = self.get_clock().now().nanoseconds
        work = []
        for name, (msg, frame, timer, received_ns) in round_:
            camera = self.cameras.get(name)
            if camera is None:  # removed while its frame waited
                continue
            if not isinstance(frame, Frame):  # compressed: decode only the frames that are actually processed
                frame = self._convert(camera, msg, True, timer, frame)
                if frame is None:
                    continue
            work.append((camera, msg, frame, timer, received_ns))
        if not work:
            return
        jobs = [(camera.pipeline_over(self.pipeline), frame, timer) for camera, _, frame, timer, _ in work]
        stats = BatchStats()
        results = process_frames(jobs, stats)
        with self._stats_lock:
            self.batch_stats.add(stats)
        for (camera, msg, frame, timer, received_ns), result in zip(work, results):
            if isinstance(result, BaseException):
                self._bad(camera, "processing_error", f"{type(result).__name__}: {result}")
                continue
            try:
                self._finish(camera, msg, frame, timer, received_ns, started_ns, result)
            except Exception as e:  # this camera's frame; the others go on
                self._bad(camera, "processing_error", f"{type(e).__name__}: {e}")

    def _finish(self, camera: CameraStream, msg, frame: Frame, timer: FrameTimer, received_ns: int,
                started_ns: int, result: FaceFrameResult) -> None:
        """Head pose, fatigue and every output of one camera's processed frame."""
        stamp = _stamp_ns(msg)
        # head pose (publish_tf) and fatigue, timed by the input stamp (the arrival time if it has none)
        camera.signals.annotate(result, (stamp or received_ns) / 1e9, head_pose=self.publish_tf)
        if self.publish_tf and camera.signals.assumed and not camera.warned_intrinsics:
            self._warn_default_intrinsics(camera, received_ns)
        e2e_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6 if stamp else None
        # transport: stamp -> our callback (the middleware, rclpy's take); queued: callback -> worker start
        latency = dict(timer.stages, processing=timer.total_ms, queued=max(0.0, (started_ns - received_ns) / 1e6))
        if e2e_ms is not None:
            latency["end_to_end"] = e2e_ms
            latency["transport"] = (received_ns - stamp) / 1e6
        self.outputs.publish(msg.header, result, frame, self.pipeline.backend_name, latency, camera.name)
        if self.debug_enabled and camera.debug_pub.get_subscription_count():
            out = image_to_msg(draw_faces(frame.bgr(), result), "bgr8", msg.header.frame_id)
            out.header.stamp = msg.header.stamp
            camera.debug_pub.publish(out)
        camera.stats.on_output(timer, e2e_ms)
        self.stats.on_output(timer, e2e_ms)

    def destroy_node(self) -> None:
        self._deactivate()  # the worker stops first: outputs are never closed under a publish
        if self.outputs is not None:
            self.outputs.close()
        super().destroy_node()

    def _active_diagnostics(self) -> DiagnosticArray:
        cameras = list(self.cameras.values())
        fatigue_faces = sum(len(c.signals.fatigue) for c in cameras)
        intrinsics = ("off (publish_tf false)" if not self.publish_tf else
                      "; ".join(f"{c.name}: {c.signals.intrinsics_source}" if c.name else c.signals.intrinsics_source
                                for c in cameras))
        b = self.batch_stats
        array = diagnostic_array(
            self, f"{self.get_name()}: {self.DIAGNOSTICS_NAME}", self.get_fully_qualified_name(), self.stats,
            self.bounds, {"lifecycle_state": "active", "backend": self.pipeline.backend_name,
                          "models": "face_detector, emotion, face_mesh",
                          "cameras": ", ".join(c.name or "''" for c in cameras),
                          "batching": (f"{self.batching}: " + (f"on, timeout {self.batch_timeout_s * 1e3:g} ms"
                                       if self.batch_cameras else "off (one camera per round)")),
                          "workers": str(len(self._workers)),
                          "model_calls": str(b.calls), "batched_calls": str(b.batched_calls),
                          "frames_in_batches": str(b.frames_in_batches), "batch_fallbacks": str(b.fallbacks),
                          "intrinsics": intrinsics,
                          "fatigue_faces": str(fatigue_faces),
                          "input_qos": ", ".join(i.describe() for i in self.inputs), **runtime_diagnostics()})
        if any(c.name for c in cameras):  # named cameras: one status each
            node_name = self.get_name()
            array.status.extend(c.status(node_name, self.get_fully_qualified_name(), self.bounds,
                                         {"input_qos": ", ".join(i.describe() for i in c.inputs),
                                          "intrinsics": c.signals.intrinsics_source}) for c in cameras)
        return array


def main(args=None) -> None:
    from edge_infer.ros.runner import node_main

    node_main([FacePipelineNode], args)


if __name__ == "__main__":
    main()
