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
from edge_infer.pipeline.audio_pipeline import AudioPipeline, SpeechSegmentEvent, VadEvent, WakeWordEvent
from edge_infer.pipeline.stream_health import OK, WARN
from edge_infer.ros.diagnostics import status_array
from edge_infer.ros.param_table import AUDIO_PARAMS, audio_config, stream_config
from edge_infer.ros.input_qos import InputSubscription
from edge_infer.ros.params import declare_params

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


# PortAudio sample formats, as mgonzs13's audio_common_msgs/AudioInfo.format carries them
_PORTAUDIO_FIELDS = {1: ("float32_data", "f32le"), 2: ("int32_data", "s32le"), 4: ("int24_data", "s24"),
                     8: ("int16_data", "s16le"), 16: ("int8_data", "s8"), 32: ("uint8_data", "u8")}


def audio_payload(msg, type_string: str) -> tuple[object, float | None, dict]:
    """(samples or raw bytes, header stamp in s or None, per-message format overrides) of one audio message.

    Supported: std_msgs Int16/Float32/UInt8MultiArray; audio_common_msgs (ros-drivers) AudioData and
    AudioDataStamped (raw PCM in ``sample_format``); audio_common_msgs/AudioStamped (mgonzs13's
    audio_common: header + typed sample arrays + AudioInfo with PortAudio format, channels and rate).
    """
    stamp = None
    if type_string.endswith("AudioDataStamped"):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        msg = msg.audio
    if type_string.endswith("AudioStamped"):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        info, data = msg.audio.info, msg.audio.audio_data
        if int(info.format) not in _PORTAUDIO_FIELDS:
            raise ValueError(f"AudioInfo.format {info.format} is not a PortAudio format this node reads "
                             f"({sorted(_PORTAUDIO_FIELDS)})")
        field_name, fmt = _PORTAUDIO_FIELDS[int(info.format)]
        samples = np.asarray(getattr(data, field_name))
        over = {"channels": int(info.channels) or None, "sample_rate": int(info.rate) or None}
        if fmt == "s24":  # 24-bit values held in int32: scale to [-1, 1] floats here
            return samples.astype(np.float32) / 8388608.0, stamp, {**over, "sample_format": "f32le"}
        if fmt == "u8":
            return samples.astype(np.uint8).tobytes(), stamp, {**over, "sample_format": "u8"}
        return samples, stamp, {**over, "sample_format": fmt}
    if type_string.endswith("Int16MultiArray"):
        return np.frombuffer(msg.data, dtype=np.int16), stamp, {}
    if type_string.endswith("Float32MultiArray"):
        return np.frombuffer(msg.data, dtype=np.float32), stamp, {}
    return bytes(msg.data), stamp, {}  # UInt8MultiArray / AudioData: raw PCM in `sample_format`


class AudioNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("audio_node", **kwargs)
        v = declare_params(self, AUDIO_PARAMS)
        models_dir, backend, keywords = v["models_dir"], v["backend"], v["keywords"]
        self.engine_build = v["engine_build"]
        self.type_string = v["message_type"]
        stream, config = stream_config(v), audio_config(v)
        period = v["diagnostics_period_s"]
        self.max_rtf = v["max_real_time_factor"]
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
        self.input = InputSubscription(self, msg_class, "audio", self._on_audio, v["input_qos.reliability"],
                                       v["input_qos.depth"], self._on_lost, lambda t: self.get_logger().info(t))
        self.max_loss_ratio = v["max_loss_ratio"]
        self._period_counts = (0, 0)  # (chunks, lost) at the previous diagnostics
        self.create_timer(period, self._publish_diagnostics)
        self.frame_id = ""
        self.last_detection_delay_ms: float | None = None
        self.get_logger().info(f"audio node ready: {self.type_string}, {stream.sample_rate} Hz x {stream.channels}, "
                               f"keywords {list(keywords)}, backends {self.pipeline.backends()}")

    def _on_audio(self, msg) -> None:
        try:
            data, stamp, fmt = audio_payload(msg, self.type_string)
        except Exception as e:  # wrong layout: count, log once, keep going
            self.pipeline.stream.stats.bad_chunks += 1
            self.get_logger().warning(f"bad audio message: {type(e).__name__}: {e}", throttle_duration_sec=5.0)
            return
        if hasattr(msg, "header"):
            self.frame_id = msg.header.frame_id
        issues_before = self.pipeline.stream.stats.last_issue
        for event in self.pipeline.process(data, stamp=stamp, **{k: v for k, v in fmt.items() if v}):
            self._publish(event)
        issue = self.pipeline.stream.stats.last_issue
        if issue and issue != issues_before:
            self.get_logger().warning(f"audio input: {issue}", throttle_duration_sec=5.0)

    def _on_lost(self, count: int) -> None:
        """Chunks the transport lost (DDS message_lost): a hole in the audio, reported like a gap."""
        self.pipeline.stream.stats.lost_chunks += count
        self.get_logger().warning(f"{count} audio chunk(s) lost in transport", throttle_duration_sec=5.0)

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
                  "pipeline_errors": diag["counters"]["pipeline_errors"], "input_qos": self.input.describe()}
        for k in ("chunks", "lost_chunks", "bad_chunks", "gaps", "gap_seconds", "nonfinite_samples", "clipped_samples",
                  "partial_frame_chunks", "dtype_mismatches", "rate_changes", "discontinuities"):
            values[k] = st[k]
        for model, ms in diag["latency_ms_per_inference"].items():
            values[f"{model}_ms"] = ms
        chunks, lost = st["chunks"] - self._period_counts[0], st["lost_chunks"] - self._period_counts[1]
        self._period_counts = (st["chunks"], st["lost_chunks"])
        loss_ratio = lost / (chunks + lost) if chunks + lost else 0.0
        values["lost_chunks_last_period"], values["loss_ratio_last_period"] = lost, f"{loss_ratio:.3f}"
        values.update(runtime_diagnostics())
        level, message = OK, "ok" if st["chunks"] else "waiting for audio"
        if self.max_loss_ratio and loss_ratio > self.max_loss_ratio:
            level, message = WARN, f"transport lost {lost}/{chunks + lost} audio chunks"
        elif rtf is not None and rtf > self.max_rtf:
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
