"""audio_node: audio chunks -> voice activity (~/vad, ~/speech_segments) and wake words (~/wake_word).

Thin over :class:`edge_infer.pipeline.audio_pipeline.AudioPipeline` (a lifecycle node with live parameters,
:mod:`edge_infer.ros.pipeline_node`): this file only turns messages into
``process(samples, stamp)`` calls and events into messages. The message type is a parameter because robots
publish audio in many shapes; audio_common_msgs is imported by type string so it stays optional.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from std_msgs.msg import Bool, String

from edge_infer.backends.memory import runtime_diagnostics
from edge_infer.errors import ConfigError
from edge_infer.paths import default_models_dir
from edge_infer.pipeline.audio_pipeline import (AudioPipeline, AudioPipelineConfig, SpeechSegmentEvent, VadEvent,
                                                VadSegmenter, WakeWordEvent)
from edge_infer.pipeline.stream_health import OK, WARN
from edge_infer.ros.diagnostics import status_array
from edge_infer.ros.input_qos import InputSubscription
from edge_infer.ros.message_types import message_class
from edge_infer.ros.output_publisher import output_publisher
from edge_infer.ros.param_table import AUDIO_NODE, AUDIO_PARAMS, audio_config, stream_config
from edge_infer.ros.pipeline_node import PipelineNode


def import_message(type_string: str):
    """The ``message_type`` parameter -> the message class; only installed ROS interface packages are imported
    (the parameter is settable from the DDS domain: :mod:`edge_infer.ros.message_types`)."""
    return message_class(type_string, ConfigError)


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


def apply_audio_config(pipeline: AudioPipeline, config: AudioPipelineConfig) -> None:
    """Give a running pipeline new thresholds between two chunks, keeping its stream state (an open speech
    segment, the wake-word buffers): the VAD segmenter derives sample counts from its config, so those are
    recomputed with it."""
    fresh = VadSegmenter(config.vad)
    seg = pipeline.segmenter
    seg.config, seg.min_speech, seg.min_silence, seg.pad = fresh.config, fresh.min_speech, fresh.min_silence, fresh.pad
    pipeline.config = config


class AudioNode(PipelineNode):
    """Chunks are processed in the subscription callback on the executor thread; parameter changes and engine
    swaps are served by the same executor (default, mutually exclusive callback group), so they land between
    two chunks."""

    DIAGNOSTICS_NAME = "audio pipeline"

    def __init__(self, **kwargs) -> None:
        self.frame_id = ""
        self.last_detection_delay_ms: float | None = None
        self._period_counts = (0, 0)  # (chunks, lost) at the previous diagnostics
        super().__init__(AUDIO_NODE, AUDIO_PARAMS, **kwargs)

    def _setup(self, values: dict[str, Any]) -> None:
        self.type_string = values["message_type"]
        self.msg_class = import_message(self.type_string)
        self.vad_pub = output_publisher(self, Bool, "~/vad", 10, lifecycle=True)
        self.segment_pub = output_publisher(self, String, "~/speech_segments", 10, lifecycle=True)
        self.wake_pub = output_publisher(self, String, "~/wake_word", 10, lifecycle=True)
        # typed, with the input header: a keyword spotter is a (one-phrase) speech recogniser, so the wake word
        # is also an hri_msgs/LiveSpeech (final = the keyword, confidence = its score), as ROS4HRI voices use
        try:
            from hri_msgs.msg import LiveSpeech
        except ImportError:
            self.speech_pub = None
            self.get_logger().warning("~/wake_word/speech (hri_msgs/LiveSpeech) off: hri_msgs is not installed; "
                                      "enable with: sudo apt install ros-$ROS_DISTRO-hri-msgs")
        else:
            self._live_speech = LiveSpeech
            self.speech_pub = output_publisher(self, LiveSpeech, "~/wake_word/speech", 10, lifecycle=True)

    def _use(self, values: dict[str, Any]) -> None:
        self.max_rtf = values["max_real_time_factor"]
        self.max_loss_ratio = values["max_loss_ratio"]

    def _load(self, **overrides: Any) -> AudioPipeline:
        v = self.values
        backend = v["backend"]
        options = {"engine_build": v["engine_build"], **overrides} if backend != "onnxruntime" else {}
        return AudioPipeline.from_models_dir(Path(v["models_dir"]) if v["models_dir"] else default_models_dir(),
                                             keywords=list(v["keywords"]), backend=backend, config=audio_config(v),
                                             stream=stream_config(v), **options)

    def _describe(self) -> str:
        s = self.pipeline.stream.config
        return (f"{self.type_string}, {s.sample_rate} Hz x {s.channels}, keywords {list(self.values['keywords'])}, "
                f"backends {self.pipeline.backends()}")

    def _backend_names(self) -> dict[str, str]:
        return self.pipeline.backends()

    def _apply_live(self, values: dict[str, Any], changed: set[str]) -> None:
        if self.pipeline is not None:
            apply_audio_config(self.pipeline, audio_config(values))
        self._use(values)

    def _subscribe(self) -> list[InputSubscription]:
        v = self.values
        return [InputSubscription(self, self.msg_class, "audio", self._on_audio, v["input_qos.reliability"],
                                  v["input_qos.depth"], self._on_lost, lambda t: self.get_logger().info(t))]

    @property
    def input(self) -> InputSubscription | None:
        """The audio subscription (active state only)."""
        return self.inputs[0] if self.inputs else None

    def _stop_work(self) -> None:
        """The stream ends here: an open speech segment is closed and published, the next activation starts afresh."""
        if self.pipeline is None:
            return
        try:
            for event in self.pipeline.flush():
                self._publish(event)
        except Exception as e:  # the process is exiting (context already shut down): nobody to tell
            self.get_logger().debug(f"last events not published: {type(e).__name__}: {e}")
        self.pipeline.reset()

    def _on_audio(self, msg) -> None:
        try:
            data, stamp, fmt = audio_payload(msg, self.type_string)
        except Exception as e:  # wrong layout: count, log once, keep going
            self.pipeline.stream.stats.count_bad("layout", f"bad audio message: {type(e).__name__}: {e}")
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
            if self.speech_pub is not None:
                self.speech_pub.publish(self._wake_speech(event))
            self.get_logger().info(f"wake word '{event.keyword}' score {event.score:.2f} at {event.stream_time:.2f} s")

    def _wake_speech(self, event: WakeWordEvent):
        """The wake word as hri_msgs/LiveSpeech stamped with the input clock at the keyword's end."""
        msg = self._live_speech()
        if event.stamp is not None:
            msg.header.stamp.sec = int(event.stamp)
            msg.header.stamp.nanosec = int(round((event.stamp - int(event.stamp)) * 1e9)) % 1_000_000_000
        else:  # headerless audio types: the node clock at detection
            msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        msg.final = event.keyword
        msg.confidence = float(event.score)
        msg.language = "en"
        return msg

    def _active_diagnostics(self):
        diag = self.pipeline.diagnostics()
        st = diag["stream"]
        rtf = diag["real_time_factor"]
        values = {"lifecycle_state": "active", "backends": ", ".join(f"{k}={v}" for k, v in diag["backends"].items()),
                  "real_time_factor": rtf, "audio_seconds": diag["audio_seconds"],
                  "detection_latency_ms": self.last_detection_delay_ms,
                  "wake_words": diag["counters"]["wake_words"], "speech_segments": diag["counters"]["speech_segments"],
                  "pipeline_errors": diag["counters"]["pipeline_errors"], "input_qos": ", ".join(i.describe() for i in self.inputs)}
        for k in ("chunks", "lost_chunks", "bad_chunks", "gaps", "gap_seconds", "nonfinite_samples", "clipped_samples",
                  "partial_frame_chunks", "dtype_mismatches", "rate_changes", "discontinuities"):
            values[k] = st[k]
        for reason, n in sorted(st["bad_reasons"].items()):  # bad_chunks by reason, as the face node reports
            values[f"bad_{reason}"] = n
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
        return status_array(self, f"{self.get_name()}: {self.DIAGNOSTICS_NAME}", self.get_fully_qualified_name(),
                            level, message, values)


def main(args=None) -> None:
    from edge_infer.ros.runner import node_main

    node_main([AudioNode], args)


if __name__ == "__main__":
    main()
