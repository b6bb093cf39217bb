"""The one table of node parameters: name, default, description, constraints, read-only, and where it goes.

Why one table: the defaults used to be written three times (config/*.yaml, each node's ``declare()`` calls and
the pipeline's config dataclass) and could drift. Now the pipeline dataclasses (``FaceConfig``,
``AudioPipelineConfig``, ``VadConfig``, ``StreamConfig``, ``HealthBounds``) own the defaults of what they
configure, this table owns the rest, nodes declare every parameter from it (with its descriptor), and a test
checks that ``config/*.yaml`` says exactly the same. Live changes are validated against the same table.
This module is plain data (no rclpy) so launch tooling and tests can read it without ROS.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from edge_infer.backends import ONNX_BACKEND_NAMES
from edge_infer.backends.tensorrt.cache import POLICIES as ENGINE_BUILD_POLICIES
from edge_infer.pipeline.audio_pipeline import AudioPipelineConfig, VadConfig
from edge_infer.pipeline.audio_stream import CHUNK_SAMPLES_CEILING, MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, \
    StreamConfig
from edge_infer.errors import ConfigError
from edge_infer.pipeline.face_pipeline import FaceConfig
from edge_infer.pipeline.fatigue import FatigueConfig
from edge_infer.pipeline.frames import MAX_IMAGE_PIXELS, PIXEL_CEILING
from edge_infer.pipeline.stream_health import HealthBounds

QOS_RELIABILITIES = ("auto", "reliable", "best_effort")  # auto: match the publishers, like ros2 bag record
AUDIO_MESSAGE_TYPES = (
    "std_msgs/msg/Int16MultiArray",
    "std_msgs/msg/Float32MultiArray",
    "std_msgs/msg/UInt8MultiArray",
    "audio_common_msgs/msg/AudioData",
    "audio_common_msgs/msg/AudioDataStamped",
    "audio_common_msgs/msg/AudioStamped",  # mgonzs13/audio_common (header + typed samples + AudioInfo)
)
SAMPLE_FORMATS = ("s16le", "f32le", "u8", "s32le")


@dataclass(frozen=True)
class Param:
    """One node parameter. ``read_only``: fixed after start (the node says so when a change is refused); every
    other parameter is live: a change through the parameter service applies from the next frame/chunk."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> str | None:
        """The reason ``value`` is not acceptable, or None."""
        if self.choices and value not in self.choices:
            return f"{self.name}={value!r} is not one of {', '.join(self.choices)}"
        if self.int_range and not (self.int_range[0] <= value <= self.int_range[1]):
            return f"{self.name}={value!r} is outside [{self.int_range[0]}, {self.int_range[1]}]"
        if self.float_range and not (self.float_range[0] <= value <= self.float_range[1]):
            return f"{self.name}={value!r} is outside [{self.float_range[0]}, {self.float_range[1]}]"
        return None


_face, _audio, _vad, _stream, _bounds = FaceConfig(), AudioPipelineConfig(), VadConfig(), StreamConfig(), HealthBounds()

_COMMON = (
    Param("models_dir", "", "Models directory; empty = $EDGE_INFER_MODELS or the user cache.", read_only=True),
    Param("engine_build", "auto", "TensorRT engine policy (build when missing/stale, never, always).", read_only=True,
          choices=ENGINE_BUILD_POLICIES),
    Param("autostart", True, "Configure and activate at start-up (lifecycle node); false: wait unconfigured for "
          "`ros2 lifecycle set <node> configure` / activate.", read_only=True),
)

#: FatigueConfig fields that are node parameters ``fatigue.<name>`` (live). Not parameters: ``forget_after_s`` and
#: ``max_faces`` (the node drops a face's state in the frame its id leaves, and holds at most ``max_faces`` faces)
#: and ``max_samples`` (a memory bound, not a setting of the signals).
FATIGUE_FIELDS = ("blink_closure", "closure_hysteresis", "blink_min_s", "blink_max_s", "window_s", "perclos_closure",
                  "ear_open_quantile", "ear_open_floor", "min_observed_s", "mar_yawn", "mar_hysteresis",
                  "yawn_min_s", "max_gap_s", "min_mesh_confidence")
FATIGUE_PREFIX = "fatigue."


def _fatigue_params() -> tuple[Param, ...]:
    """The fatigue parameters with FatigueConfig's defaults, descriptions and ranges (its field metadata)."""
    by_name = {f.name: f for f in fields(FatigueConfig)}
    out = []
    for name in FATIGUE_FIELDS:
        f = by_name[name]
        low, high = f.metadata["range"]
        out.append(Param(FATIGUE_PREFIX + name, float(f.default), f.metadata["description"],
                         float_range=(float(low), float(high))))
    return tuple(out)


FACE_NODE = "face_pipeline"
FACE_PARAMS: tuple[Param, ...] = _COMMON + (
    Param("cameras", [""], "Cameras this node serves, one copy of the models for all: [''] = one camera on the "
          "node's own topics (image, camera_info; ~/detections...); [head, left] = head/image, head/camera_info -> "
          "~/head/detections... (names: ROS name tokens, at most 8). Live: cameras are added or removed without a "
          "restart."),
    Param("batching", "auto", "Run the models once on the waiting frames of all cameras (one detector call, one "
          "mesh call over all faces...): always | never (one camera per round) | auto (always when a model runs on a "
          "GPU, never on a CPU, where it measured slower and larger: README 'Several cameras').",
          choices=("auto", "always", "never")),
    Param("batch_timeout_ms", 0.0, "How long a frame may wait for frames of the other sending cameras to batch "
          "with (0 = never: latency first).", float_range=(0.0, 1000.0)),
    Param("workers", 0, "Worker threads taking frames side by side (a camera in one worker's hands at a time; the "
          "models shared); 0 = one per CPU core.", read_only=True, int_range=(0, 8)),
    Param("backend", "auto", "Inference runtime; auto = TensorRT with a GPU, else ONNX Runtime with the face mesh "
          "under LiteRT/XNNPACK (2.5x faster on a CPU, bench pipeline).", read_only=True, choices=ONNX_BACKEND_NAMES),
    Param("providers", ["cpu"], "ONNX Runtime execution providers, in order (cpu, cuda, tensorrt).", read_only=True),
    Param("intra_op_threads", 0, "ONNX Runtime intra-op threads (0 = default).", read_only=True, int_range=(0, 64)),
    Param("detector_width", _face.detector_size[0], "Detector input width (letterboxed).", int_range=(32, 4096)),
    Param("detector_height", _face.detector_size[1], "Detector input height.", int_range=(32, 4096)),
    Param("score_threshold", _face.score_threshold, "Detector score threshold.", float_range=(0.0, 1.0)),
    Param("nms_threshold", _face.nms_threshold, "Detector NMS IoU threshold.", float_range=(0.0, 1.0)),
    Param("max_faces", _face.max_faces, "Most faces processed per frame.", int_range=(1, 64)),
    Param("enable_emotion", _face.enable_emotion, "Run the emotion classifier on every face.", read_only=True),
    Param("enable_mesh", _face.enable_mesh, "Run the 468-point face mesh on every face.", read_only=True),
    Param("tracking", _face.tracking, "Track faces with the mesh between detector runs."),
    Param("detect_every", _face.detect_every, "Run the detector at least every N frames.", int_range=(1, 1000)),
    Param("redetect_width", _face.redetect_size[0] if _face.redetect_size else 0, "Input width of scheduled "
          "re-detections on a tracked stream (near faces, ~4x cheaper; 0 = detector_width).", int_range=(0, 4096)),
    Param("redetect_height", _face.redetect_size[1] if _face.redetect_size else 0, "Input height of scheduled "
          "re-detections (0 = detector_height).", int_range=(0, 4096)),
    Param("full_detect_every", _face.full_detect_every, "Every Nth scheduled re-detection runs at the detector's "
          "full size (far faces); 1 = always.", int_range=(1, 1000)),
    Param("mesh_min_confidence", _face.mesh_min_confidence, "Mesh confidence below which a face is lost.",
          float_range=(0.0, 1.0)),
    Param("ros4hri", True, "Publish the ROS4HRI (REP-155) /humans/faces topics (needs hri_msgs).", read_only=True),
    Param("json_output", True, "Publish the ~/faces JSON mirror (468-point mesh, 5 keypoints); false: no JSON work.",
          read_only=True),
    Param("publish_cropped", True, "Publish per-face cropped and aligned images (built only while subscribed).",
          read_only=True),
    Param("subscribe_compressed", False, "Also subscribe image/compressed.", read_only=True),
    Param("publish_tf", True, "Estimate each face's head pose from its mesh (solvePnP, camera_info intrinsics) and "
          "publish the REP-155 frames face_<id> and gaze_<id> on /tf; false: no pose work (head_pose null)."),
    Param("max_image_pixels", MAX_IMAGE_PIXELS, "Largest width*height of an input image (raw, or a PNG/JPEG "
          "header, checked before decoding); larger ones are dropped and counted as bad_too_large. Read-only: "
          "the parameter services are open to the whole DDS domain (without SROS2).", read_only=True,
          int_range=(1, PIXEL_CEILING)),
    Param("publish_debug_image", True, "Publish ~/debug_image while someone subscribes."),
    Param("max_stamp_lag_s", 1.0, "Reject frames stamped this much older than the newest.", float_range=(0.0, 3600.0)),
    Param("diagnostics_period_s", 1.0, "Diagnostics period.", read_only=True, float_range=(0.05, 60.0)),
    Param("min_output_rate_hz", _bounds.min_output_rate_hz, "Diagnostics WARN below this output rate (0 = off).",
          float_range=(0.0, 1000.0)),
    Param("max_latency_ms", 500.0, "Diagnostics WARN when end-to-end p99 exceeds this, ERROR above 2x (0 = off).",
          float_range=(0.0, 1e6)),
    Param("max_loss_ratio", _bounds.max_loss_ratio, "Diagnostics WARN when more than this share of input messages "
          "was lost in transport over the last period (0 = off).", float_range=(0.0, 1.0)),
    Param("input_qos.reliability", "auto", "Input QoS reliability; auto = the publishers' (reliable only when every "
          "publisher is), re-checked every second.", read_only=True, choices=QOS_RELIABILITIES),
    Param("input_qos.depth", 5, "Input QoS history depth. Small on purpose: the node's one-frame slot drops (and "
          "counts) stale frames; a depth of 1 would let DDS replace frames uncounted while a callback runs.",
          read_only=True, int_range=(1, 100)),
) + _fatigue_params()

AUDIO_NODE = "audio_node"
AUDIO_PARAMS: tuple[Param, ...] = _COMMON + (
    Param("backend", "onnxruntime", "Inference runtime (the audio models are small: ONNX Runtime on the CPU).",
          read_only=True, choices=ONNX_BACKEND_NAMES),
    Param("message_type", AUDIO_MESSAGE_TYPES[0], "Audio message type.", read_only=True, choices=AUDIO_MESSAGE_TYPES),
    Param("sample_rate", _stream.sample_rate, "Input sample rate (Hz); resampled to 16 kHz.", read_only=True,
          int_range=(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)),
    Param("channels", _stream.channels, "Interleaved input channels, mixed down to mono.", read_only=True,
          int_range=(1, MAX_CHANNELS)),
    Param("max_chunk_samples", _stream.max_chunk_samples, "Most samples (all channels) in one audio message; "
          "larger ones are dropped before decoding and counted as bad_too_large.", read_only=True,
          int_range=(1, CHUNK_SAMPLES_CEILING)),
    Param("sample_format", _stream.sample_format, "Raw PCM format of byte messages.", read_only=True,
          choices=SAMPLE_FORMATS),
    Param("keywords", ["hey_jarvis"], "Wake-word heads from config/models.yaml (<name>.onnx in the models dir).",
          read_only=True),
    Param("wake_threshold", _audio.wake_threshold, "Wake-word score threshold.", float_range=(0.0, 1.0)),
    Param("refractory_s", _audio.refractory_s, "No second detection of a keyword within this time.",
          float_range=(0.0, 60.0)),
    Param("vad_gating", _audio.vad_gating, "Run the wake-word models only around voice activity.", read_only=True),
    Param("vad_threshold", _vad.threshold, "VAD speech start threshold.", float_range=(0.0, 1.0)),
    Param("min_speech_ms", _vad.min_speech_ms, "Shorter speech is ignored.", float_range=(0.0, 1e5)),
    Param("min_silence_ms", _vad.min_silence_ms, "Silence that ends speech.", float_range=(0.0, 1e5)),
    Param("speech_pad_ms", _vad.speech_pad_ms, "Padding around segments.", float_range=(0.0, 1e4)),
    Param("diagnostics_period_s", 1.0, "Diagnostics period.", read_only=True, float_range=(0.05, 60.0)),
    Param("max_real_time_factor", 0.5, "Diagnostics WARN above this processing/audio time ratio.",
          float_range=(0.0, 100.0)),
    Param("max_loss_ratio", _bounds.max_loss_ratio, "Diagnostics WARN when more than this share of audio chunks "
          "was lost in transport over the last period (0 = off).", float_range=(0.0, 1.0)),
    Param("input_qos.reliability", "auto", "Input QoS reliability; auto = the publishers' (reliable only when every "
          "publisher is; microphone nodes often publish best effort), re-checked every second.", read_only=True,
          choices=QOS_RELIABILITIES),
    Param("input_qos.depth", 50, "Input QoS history depth.", read_only=True, int_range=(1, 1000)),
)

NODE_PARAMS: dict[str, tuple[Param, ...]] = {FACE_NODE: FACE_PARAMS, AUDIO_NODE: AUDIO_PARAMS}


def defaults(node_name: str) -> dict[str, Any]:
    """name -> default of every parameter of ``node_name`` (dotted names flat, as ROS reports them)."""
    return {p.name: p.default for p in NODE_PARAMS[node_name]}


def face_config(v: dict[str, Any]) -> FaceConfig:
    """The face pipeline's config from parameter values (start-up and every live change)."""
    return FaceConfig(detector_size=(int(v["detector_width"]), int(v["detector_height"])),
                      score_threshold=float(v["score_threshold"]), nms_threshold=float(v["nms_threshold"]),
                      max_faces=int(v["max_faces"]), enable_emotion=bool(v["enable_emotion"]),
                      enable_mesh=bool(v["enable_mesh"]), tracking=bool(v["tracking"]),
                      detect_every=int(v["detect_every"]), mesh_min_confidence=float(v["mesh_min_confidence"]),
                      redetect_size=((int(v["redetect_width"]), int(v["redetect_height"]))
                                     if v["redetect_width"] and v["redetect_height"] else None),
                      full_detect_every=int(v["full_detect_every"]))


def fatigue_config(v: dict[str, Any]) -> FatigueConfig:
    """The fatigue tracker's config from parameter values; ConfigError (the reason) for values that do not go
    together (e.g. blink_min_s above blink_max_s), which the table's ranges alone cannot catch."""
    config = FatigueConfig(**{name: float(v[FATIGUE_PREFIX + name]) for name in FATIGUE_FIELDS})
    try:
        config.check()
    except ValueError as e:
        raise ConfigError(f"fatigue parameters: {e}") from None
    return config


def health_bounds(v: dict[str, Any]) -> HealthBounds:
    """Diagnostics bounds from parameter values."""
    return HealthBounds(min_output_rate_hz=float(v.get("min_output_rate_hz", 0.0)),
                        max_latency_ms=float(v.get("max_latency_ms", 0.0)),
                        max_loss_ratio=float(v.get("max_loss_ratio", HealthBounds.max_loss_ratio)))


def audio_config(v: dict[str, Any]) -> AudioPipelineConfig:
    """The audio pipeline's config from parameter values."""
    return AudioPipelineConfig(
        vad=VadConfig(threshold=float(v["vad_threshold"]), min_speech_ms=float(v["min_speech_ms"]),
                      min_silence_ms=float(v["min_silence_ms"]), speech_pad_ms=float(v["speech_pad_ms"])),
        wake_threshold=float(v["wake_threshold"]), refractory_s=float(v["refractory_s"]),
        vad_gating=bool(v["vad_gating"]))


def stream_config(v: dict[str, Any]) -> StreamConfig:
    """How audio messages decode: typed arrays carry their own format, byte messages use ``sample_format``."""
    t = v["message_type"]
    fmt = "f32le" if t.endswith("Float32MultiArray") else "s16le" if t.endswith("Int16MultiArray") else v["sample_format"]
    return StreamConfig(sample_rate=int(v["sample_rate"]), channels=int(v["channels"]), sample_format=fmt,
                        max_chunk_samples=int(v["max_chunk_samples"]))
