"""audio_node: audio chunks -> voice activity (~/vad, ~/speech_segments) and wake words (~/wake_word).

Thin over :class:`edge_infer.pipeline.audio_pipeline.AudioPipeline`: this file only turns messages into
``process(samples, stamp)`` calls and events into messages. The message type is a parameter because robots
publish audio in many shapes; audio_common_msgs is imported by type string so it stays optional.
"""

from __future__ import annotations

from edge_infer.errors import ConfigError
import importlib
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from edge_infer.backends import close_backends
from edge_infer.backends.memory import runtime_diagnostics
from edge_infer.paths import default_models_dir
from edge_infer.pipeline.audio_pipeline import AudioPipeline, AudioPipelineConfig, SpeechSegmentEvent, VadConfig, VadEvent, WakeWordEvent
from edge_infer.pipeline.audio_stream import StreamConfig
from edge_infer.pipeline.stream_stats import OK, WARN
from edge_infer.ros.diagnostics import status_array
from edge_infer.ros.params import declare, declare_qos

MESSAGE_TYPES = (
    "std_msgs/msg/Int16MultiArray",
    "std_msgs/msg/Float32MultiArray",
    "std_msgs/msg/UInt8MultiArray",
    "audio_common_msgs/msg/AudioData",
    "audio_common_msgs/msg/AudioDataStamped",
)


def import_message(type_string: str):
    """'pkg/msg/Type' -> the message class, with an error that says which package to install."""
    try:
        pkg, kind, name = type_string.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except ValueError:
        raise ConfigError(f"message_type must look like 'pkg/msg/Type', got {type_string!r}") from None
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"message type {type_string} is not available ({e}); install it, e.g. "
                           f"sudo apt install ros-$ROS_DISTRO-{type_string.split('/')[0].replace('_', '-')}") from e


def audio_payload(msg, type_string: str) -> tuple[object, float | None]:
    """(samples or raw bytes, header stamp in s or None) of one audio message."""
    stamp = None
    if type_string.endswith("AudioDataStamped"):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        msg = msg.audio
    if type_string.endswith("Int16MultiArray"):
        return np.frombuffer(msg.data, dtype=np.int16), stamp
    if type_string.endswith("Float32MultiArray"):
        return np.frombuffer(msg.data, dtype=np.float32), stamp
    return bytes(msg.data), stamp  # UInt8MultiArray / AudioData: raw PCM in `sample_format`


class AudioNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("audio_node", **kwargs)
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        models_dir = d("models_dir", "", "Models directory; empty = $EDGE_INFER_MODELS or the user cache.", read_only=True)
        backend = d("backend", "onnxruntime", "Inference runtime.", choices=("onnxruntime", "tensorrt", "torch", "auto"),
                    read_only=True)
        self.engine_build = d("engine_build", "auto", "TensorRT engine policy.", choices=("auto", "never", "force"),
                              read_only=True)
        self.type_string = d("message_type", MESSAGE_TYPES[0], "Audio message type.", choices=MESSAGE_TYPES,
                             read_only=True)
        sample_format = d("sample_format", "s16le", "Raw PCM format of byte messages (s16le, f32le, u8, s32le).",
                          read_only=True)
        stream = StreamConfig(sample_rate=d("sample_rate", 16000, "Input sample rate (Hz).", int_range=(1000, 384000),
                                            read_only=True),
                              channels=d("channels", 1, "Interleaved input channels.", int_range=(1, 32), read_only=True),
                              sample_format="f32le" if self.type_string.endswith("Float32MultiArray") else (
                                  "s16le" if self.type_string.endswith("Int16MultiArray") else sample_format))
        keywords = d("keywords", ["hey_jarvis"], "Wake-word heads (<name>.onnx in the models dir).", read_only=True)
        config = AudioPipelineConfig(
            vad=VadConfig(threshold=d("vad_threshold", 0.5, "VAD speech start threshold.", float_range=(0.0, 1.0)),
                          min_speech_ms=d("min_speech_ms", 250.0, "Shorter speech is ignored.", float_range=(0.0, 1e5)),
                          min_silence_ms=d("min_silence_ms", 100.0, "Silence that ends speech.", float_range=(0.0, 1e5)),
                          speech_pad_ms=d("speech_pad_ms", 30.0, "Padding around segments.", float_range=(0.0, 1e4))),
            wake_threshold=d("wake_threshold", 0.5, "Wake-word score threshold.", float_range=(0.0, 1.0)),
            refractory_s=d("refractory_s", 2.0, "Minimum time between detections of a keyword.", float_range=(0.0, 60.0)),
            vad_gating=d("vad_gating", False, "Run wake word only around voice activity.", read_only=True),
        )
        period = d("diagnostics_period_s", 1.0, "Diagnostics period.", float_range=(0.05, 60.0), read_only=True)
        self.max_rtf = d("max_real_time_factor", 0.5, "WARN above this real-time factor.", float_range=(0.0, 100.0))
        qos = declare_qos(self, "input_qos", "reliable", 50)
        msg_class = import_message(self.type_string)
        self._make_pipeline = lambda **over: AudioPipeline.from_models_dir(
            Path(models_dir) if models_dir else default_models_dir(), keywords=list(keywords), backend=backend,
            config=config, stream=stream, **({"engine_build": self.engine_build, **over} if backend != "onnxruntime" else {}))
        self.pipeline = self._make_pipeline()
        self.create_service(Trigger, "~/rebuild_engines", self._rebuild_engines)
        self.vad_pub = self.create_publisher(Bool, "~/vad", 10)
        self.segment_pub = self.create_publisher(String, "~/speech_segments", 10)
        self.wake_pub = self.create_publisher(String, "~/wake_word", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(msg_class, "audio", self._on_audio, qos)
        self.create_timer(period, self._publish_diagnostics)
        self.frame_id = ""
        self.last_detection_delay_ms: float | None = None
        self.get_logger().info(f"audio node ready: {self.type_string}, {stream.sample_rate} Hz x {stream.channels}, "
                               f"keywords {list(keywords)}, backends {self.pipeline.backends()}")

    def _on_audio(self, msg) -> None:
        try:
            data, stamp = audio_payload(msg, self.type_string)
        except Exception as e:  # wrong layout: count, log once, keep going
            self.pipeline.stream.stats.bad_chunks += 1
            self.get_logger().warning(f"bad audio message: {type(e).__name__}: {e}", throttle_duration_sec=5.0)
            return
        if hasattr(msg, "header"):
            self.frame_id = msg.header.frame_id
        issues_before = self.pipeline.stream.stats.last_issue
        for event in self.pipeline.process(data, stamp=stamp):
            self._publish(event)
        issue = self.pipeline.stream.stats.last_issue
        if issue and issue != issues_before:
            self.get_logger().warning(f"audio input: {issue}", throttle_duration_sec=5.0)

    def _publish(self, event) -> None:
        wall = self.get_clock().now().nanoseconds / 1e9
        text = event.to_json(frame_id=self.frame_id, wall_stamp=wall)
        if isinstance(event, VadEvent):
            self.vad_pub.publish(Bool(data=bool(event.speaking)))
        elif isinstance(event, SpeechSegmentEvent):
            self.segment_pub.publish(String(data=text))
        elif isinstance(event, WakeWordEvent):
            self.last_detection_delay_ms = event.pipeline_delay_ms
            self.wake_pub.publish(String(data=text))
            self.get_logger().info(f"wake word '{event.keyword}' score {event.score:.2f} at {event.stream_time:.2f} s")

    def _rebuild_engines(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """std_srvs/Trigger: rebuild the TensorRT engines (engine_build: force); a new stream starts after it."""
        names = self.pipeline.backends()
        if not any(v.startswith("tensorrt") for v in names.values()):
            response.success = False
            response.message = f"backends are {names}: there are no TensorRT engines to rebuild"
            return response
        try:
            new = self._make_pipeline(engine_build="force")
        except Exception as e:
            response.success, response.message = False, f"rebuild failed, old engines kept: {e}"
            return response
        old, self.pipeline = self.pipeline, new
        close_backends(old)  # free the old engines, buffers and contexts
        response.success, response.message = True, "engines rebuilt"
        return response

    def _publish_diagnostics(self) -> None:
        diag = self.pipeline.diagnostics()
        st = diag["stream"]
        rtf = diag["real_time_factor"]
        values = {"backends": ", ".join(f"{k}={v}" for k, v in diag["backends"].items()),
                  "real_time_factor": rtf, "audio_seconds": diag["audio_seconds"],
                  "detection_latency_ms": self.last_detection_delay_ms,
                  "wake_words": diag["counters"]["wake_words"], "speech_segments": diag["counters"]["speech_segments"],
                  "pipeline_errors": diag["counters"]["pipeline_errors"]}
        for k in ("chunks", "bad_chunks", "gaps", "gap_seconds", "nonfinite_samples", "clipped_samples",
                  "partial_frame_chunks", "dtype_mismatches", "rate_changes", "discontinuities"):
            values[k] = st[k]
        for model, ms in diag["latency_ms_per_inference"].items():
            values[f"{model}_ms"] = ms
        values.update(runtime_diagnostics())
        level, message = OK, "ok" if st["chunks"] else "waiting for audio"
        if rtf is not None and rtf > self.max_rtf:
            level, message = WARN, f"real-time factor {rtf:.2f} > {self.max_rtf}"
        elif st["bad_chunks"] or diag["counters"]["pipeline_errors"]:
            level, message = WARN, f"bad input: {st['last_issue']}"
        self.diag_pub.publish(status_array(self, f"{self.get_name()}: audio pipeline", self.get_fully_qualified_name(),
                                           level, message, values))

    def destroy_node(self) -> None:
        close_backends(self.pipeline)
        super().destroy_node()


def main(args=None) -> None:
    from edge_infer.ros.runner import run_nodes

    run_nodes([AudioNode], args)


if __name__ == "__main__":
    main()
