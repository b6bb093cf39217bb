"""One camera of the face node: its input subscriptions, its own tracking state, signals and health.

The node (:mod:`edge_infer.ros.face_node`) holds one :class:`CameraStream` per name of its ``cameras``
parameter; the models are the node's, shared by every camera (``FacePipeline.for_camera``). Why per camera:
tracking, stamps, intrinsics (head pose) and fatigue histories belong to one image stream; mixing two cameras'
frames in one tracker would match faces across images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus

from edge_infer.pipeline.cameras import camera_topic
from edge_infer.pipeline.face_pipeline import FacePipeline
from edge_infer.pipeline.face_signals import FaceSignals
from edge_infer.pipeline.stream_health import HealthBounds, StreamHealth
from edge_infer.ros.diagnostics import health_status


@dataclass
class CameraStream:
    """A camera's state in the face node. Subscriptions exist only while the node is active."""

    name: str
    stats: StreamHealth = field(default_factory=StreamHealth)
    signals: FaceSignals = field(default_factory=FaceSignals)
    inputs: list = field(default_factory=list)  # InputSubscription (image, image/compressed)
    info_sub: Any = None  # camera_info
    debug_pub: Any = None  # ~/<name>/debug_image
    pipeline: FacePipeline | None = None  # this camera's tracking over the node's models
    newest_ns: int = 0  # newest input stamp (stale-stamp check)
    warned_intrinsics: bool = False
    defaults_since_ns: int = 0

    def topic(self, topic: str, private: bool = False) -> str:
        return camera_topic(self.name, topic, private)

    @property
    def label(self) -> str:
        """How logs name this camera ('' : the node's own image topic)."""
        return f"camera {self.name}" if self.name else "camera"

    def pipeline_over(self, models: FacePipeline) -> FacePipeline:
        """This camera's pipeline over ``models`` (the node's loaded pipeline): made on first use and again when
        the models were replaced (configure after cleanup, rebuilt engines); the config is always the node's."""
        if self.pipeline is None or self.pipeline.detector is not models.detector:
            self.pipeline = models.for_camera()
        self.pipeline.config = models.config
        return self.pipeline

    def reset(self) -> None:
        """A new stream (deactivate): no tracks, stamps, fatigue histories or camera_info from before."""
        if self.pipeline is not None:
            self.pipeline.reset()
        self.signals.reset()
        self.newest_ns = 0
        self.warned_intrinsics, self.defaults_since_ns = False, 0

    def status(self, node_name: str, hardware_id: str, bounds: HealthBounds, extra: dict[str, str]) -> DiagnosticStatus:
        """This camera's /diagnostics status (rates, latency, drops, losses, bad inputs by reason)."""
        return health_status(f"{node_name}: face pipeline camera {self.name}", hardware_id, self.stats, bounds, extra)
