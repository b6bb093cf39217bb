"""What the benchmark camera publishes, in plain values: the same description loads the frames in the
harness's own process or travels as command-line arguments to a camera in another process
(``python -m edge_infer.ros.camera_player``), as a real camera driver is a separate process.

ROS-free: frames become serialized (CDR) messages here, with a zero stamp; the player sets a fresh stamp
on each one at send time.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from edge_infer.bags import COMPRESSED, IMAGE
from edge_infer.errors import ConfigError
from edge_infer.pipeline.frames import ENCODINGS

SOURCES = ("scenes", "bag")


@dataclass(frozen=True)
class CameraFeed:
    """A camera stream: sample-photo scenes (the embedded default) or the image topic of a bag."""

    source: str = "scenes"
    models_dir: str | None = None        # scenes: where the zoo's sample photos are
    frames: int = 100                    # scenes: distinct frames (the player cycles through them)
    faces: int = 0                       # scenes: faces in every frame; 0 = the demo sequence (1, 2 and 4 faces)
    size: tuple[int, int] = (1280, 720)  # scenes: WxH
    encoding: str = "rgb8"               # scenes: any camera encoding (pipeline.frames.ENCODINGS)
    compressed: bool = False             # scenes: CompressedImage (JPEG) instead of Image
    frame_id: str = "camera"
    bag: str | None = None               # bag: rosbag2 path
    topic: str | None = None             # bag: image topic (None = the only one)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"camera feed source must be one of {SOURCES}, got {self.source!r}")
        if self.source == "scenes" and not self.models_dir:
            raise ConfigError("a scenes camera feed needs models_dir (the zoo's sample photos)")
        if self.source == "bag" and not self.bag:
            raise ConfigError("a bag camera feed needs the bag path")

    @property
    def msgtype(self) -> str:
        if self.source == "bag":
            from edge_infer.bags.read import image_topic

            return image_topic(Path(self.bag), self.topic)[1]
        return COMPRESSED if self.compressed else IMAGE

    def load(self) -> tuple[str, list[bytes]]:
        """(message type, serialized messages) in publishing order."""
        if self.source == "bag":
            from edge_infer.bags.read import load_image_topic

            _, msgtype, raw = load_image_topic(Path(self.bag), self.topic)
            return msgtype, [m.data for m in raw]
        from edge_infer.bags.write import image_messages
        from edge_infer.samples.scenes import demo_sequence, load_samples, scene

        samples = load_samples(Path(self.models_dir))
        frames = (demo_sequence(samples, self.frames, size=self.size) if self.faces == 0 else
                  (scene(samples, i, self.faces, size=self.size) for i in range(self.frames)))
        return self.msgtype, image_messages(frames, compressed=self.compressed, encoding=self.encoding,
                                            frame_id=self.frame_id)

    # ---- the same feed on a command line (camera in another process)
    def argv(self) -> list[str]:
        out = ["--source", self.source, "--frame-id", self.frame_id]
        if self.source == "bag":
            out += ["--bag", str(self.bag)] + (["--bag-topic", self.topic] if self.topic else [])
        else:
            out += ["--models-dir", str(self.models_dir), "--frames", str(self.frames), "--faces", str(self.faces),
                    "--size", f"{self.size[0]}x{self.size[1]}", "--encoding", self.encoding]
            out += ["--compressed"] if self.compressed else []
        return out

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        d = CameraFeed.__dataclass_fields__
        p.add_argument("--source", choices=SOURCES, default=d["source"].default,
                       help="scenes: moving faces made from the zoo's sample photos; bag: a bag's image topic")
        p.add_argument("--models-dir", default=None, help="scenes: models directory holding samples/")
        p.add_argument("--frames", type=int, default=d["frames"].default, help="scenes: distinct frames")
        p.add_argument("--faces", type=int, default=d["faces"].default,
                       help="scenes: faces per frame (0 = demo sequence of 1, 2 and 4 faces)")
        p.add_argument("--size", default="1280x720", help="scenes: WxH")
        p.add_argument("--encoding", choices=ENCODINGS, default=d["encoding"].default)
        p.add_argument("--compressed", action="store_true", help="scenes: CompressedImage (JPEG)")
        p.add_argument("--frame-id", default=d["frame_id"].default)
        p.add_argument("--bag", default=None, help="bag: rosbag2 path")
        p.add_argument("--bag-topic", default=None, help="bag: image topic (default: the only one)")

    @staticmethod
    def from_args(a: argparse.Namespace) -> "CameraFeed":
        w, h = (int(v) for v in a.size.lower().split("x"))
        return CameraFeed(source=a.source, models_dir=a.models_dir, frames=a.frames, faces=a.faces, size=(w, h),
                          encoding=a.encoding, compressed=a.compressed, frame_id=a.frame_id, bag=a.bag,
                          topic=a.bag_topic)
