"""Camera-like frames made from the real sample photos: the embedded default input for the demo,
the pipeline benchmark, bag making and tests (no camera needed, deterministic).

A "scene" pastes real face photos onto a 1280x720 (or any) canvas at positions and scales that change
smoothly from frame to frame, like a person moving in front of a robot; some scenes hold several faces.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np


def load_samples(models_dir: Path) -> dict[str, np.ndarray]:
    """The zoo's sample photos as BGR arrays (``edge-infer zoo fetch`` puts them in ``models_dir/samples``)."""
    out = {}
    for name in ("astronaut.png", "camera.png"):
        path = Path(models_dir) / "samples" / name
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"sample photo {path} missing: run `edge-infer zoo fetch`")
        out[name] = img
    return out


def _paste(canvas: np.ndarray, img: np.ndarray, cx: float, cy: float, scale: float) -> None:
    h, w = img.shape[:2]
    nw, nh = max(8, int(w * scale)), max(8, int(h * scale))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    x0, y0 = int(cx - nw / 2), int(cy - nh / 2)
    H, W = canvas.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(W, x0 + nw), min(H, y0 + nh)
    if dx1 > dx0 and dy1 > dy0:
        canvas[dy0:dy1, dx0:dx1] = small[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]


def scene(samples: dict[str, np.ndarray], i: int, n_faces: int = 1, size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    """Frame ``i`` of a smooth sequence with ``n_faces`` pasted photos (1 = the astronaut moving/scaling)."""
    W, H = size
    canvas = np.full((H, W, 3), 40, np.uint8)
    t = i / 30.0
    photos = [samples["astronaut.png"]]
    if n_faces == 1:
        _paste(canvas, photos[0], W / 2 + 0.25 * W * math.sin(t), H / 2 + 0.05 * H * math.cos(1.3 * t),
               0.9 + 0.25 * math.sin(0.7 * t))
        return canvas
    mirrored = np.ascontiguousarray(photos[0][:, ::-1])
    cols = math.ceil(n_faces / 2) if n_faces > 2 else n_faces
    rows = math.ceil(n_faces / cols)
    cell_w, cell_h = W / cols, H / rows
    scale = 0.95 * min(cell_w, cell_h) / 512
    for k in range(n_faces):
        r, c = divmod(k, cols)
        jitter = 0.05 * cell_w * math.sin(t + k)
        photo = photos[0] if k % 2 == 0 else mirrored  # the camera man's face is mostly hidden: astronauts only
        _paste(canvas, photo, (c + 0.5) * cell_w + jitter, (r + 0.5) * cell_h,
               scale * (1 + 0.05 * math.sin(0.5 * t + k)))
    return canvas


def demo_sequence(samples: dict[str, np.ndarray], n_frames: int, size: tuple[int, int] = (1280, 720)) -> Iterator[np.ndarray]:
    """The demo's stream: mostly one moving face, with stretches of 2- and 4-face scenes."""
    for i in range(n_frames):
        phase = (i // 60) % 4
        yield scene(samples, i, n_faces=(1, 2, 1, 4)[phase], size=size)
