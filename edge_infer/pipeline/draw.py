"""Annotated debug image: boxes, keypoints, emotion label and mesh points (BGR, OpenCV drawing)."""

from __future__ import annotations

import cv2
import numpy as np

from edge_infer.pipeline.face_pipeline import FaceFrameResult


def draw_faces(image_bgr: np.ndarray, result: FaceFrameResult) -> np.ndarray:
    out = np.ascontiguousarray(image_bgr).copy()
    thick = max(1, round(max(out.shape[:2]) / 500))
    for f in result.faces:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        color = (0, 200, 255) if f.tracked else (0, 255, 0)
        if f.mesh is not None:
            for x, y in f.mesh[:, :2].astype(np.int32):
                cv2.circle(out, (int(x), int(y)), 1, (255, 200, 0), -1)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        for x, y in f.keypoints.astype(np.int32):
            cv2.circle(out, (int(x), int(y)), 2 * thick, (0, 0, 255), -1)
        label = f"{f.score:.2f}" + (f" {f.emotion} {f.emotion_scores[f.emotion]:.2f}" if f.emotion else "")
        cv2.putText(out, label, (x1, max(12, y1 - 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * thick, color, max(1, thick - 1))
    return out
