"""What the face node adds to each face after :meth:`FacePipeline.process`: its head pose (:mod:`.head_pose`,
from the mesh and the camera's intrinsics) and its fatigue signals (:mod:`.fatigue`, from the mesh and the
frame's stamp). ROS-free; the node feeds it camera_info values and publishes what it fills in.

Why not inside :class:`FacePipeline`: these need what the models do not, the camera's intrinsics and the stamp,
and they belong to the node's stream rather than to the loaded models: a pipeline rebuilt by
``~/rebuild_engines`` continues the same face ids, and so the same fatigue histories.

Intrinsics: the latest camera_info's K and D when it describes an image of the frame's size; otherwise
:func:`head_pose.default_intrinsics` (no camera_info yet, an uncalibrated one with K all zero, or one for
another image size, e.g. a resized stream), and :attr:`FaceSignals.intrinsics_source` says which and why.
"""

from __future__ import annotations

import math
from typing import Sequence

from edge_infer.pipeline.face_pipeline import FaceFrameResult
from edge_infer.pipeline.fatigue import FatigueConfig, FatigueTracker
from edge_infer.pipeline.head_pose import CameraIntrinsics, default_intrinsics, estimate_head_pose, \
    intrinsics_from_camera_info

class FaceSignals:
    """Head pose and fatigue of the faces of one stream. ``annotate`` runs on one thread (the node's worker);
    ``set_camera_info`` may run on another (the executor): it replaces one tuple, which Python assigns atomically.
    """

    def __init__(self, fatigue: FatigueConfig | None = None) -> None:
        self.fatigue = FatigueTracker(fatigue)
        # (intrinsics or None, width, height, why None): from the latest camera_info
        self._camera: tuple[CameraIntrinsics | None, int, int, str] = (None, 0, 0, "no camera_info")
        self._camera_key: tuple = ()
        self.intrinsics_source = "none yet (no frame with a face mesh)"  # for diagnostics
        self.assumed = False  # the last frame's poses used default intrinsics

    @property
    def has_camera_info(self) -> bool:
        """A camera_info has been received (usable or not) since the last reset."""
        return bool(self._camera_key)

    def set_camera_info(self, k: Sequence[float], d: Sequence[float], distortion_model: str, width: int,
                        height: int) -> bool:
        """Take a camera_info's calibration; True when it changed. Raises :class:`head_pose.CameraInfoError` for
        values that cannot describe a pinhole camera (then the previous calibration is dropped: defaults)."""
        key = (tuple(k), tuple(d), distortion_model, int(width), int(height))
        if key == self._camera_key:  # the same calibration with every frame: nothing to redo
            return False
        self._camera_key = key
        if not any(float(v) for v in k):  # sensor_msgs: K all zero = an uncalibrated camera
            self._camera = (None, int(width), int(height), "camera_info uncalibrated: K all zero")
            return True
        try:
            camera = intrinsics_from_camera_info(k, d, distortion_model, int(width), int(height))
        except ValueError:
            self._camera = (None, int(width), int(height), "camera_info invalid")
            raise
        self._camera = (camera, int(width), int(height), "")
        return True

    def intrinsics_for(self, width: int, height: int) -> CameraIntrinsics:
        """The intrinsics for a frame of this size (see the module docstring); sets :attr:`intrinsics_source`."""
        camera, w, h, why = self._camera
        if camera is not None and (w, h) not in ((0, 0), (width, height)):
            camera, why = None, f"camera_info is for {w}x{h}, the image is {width}x{height}"
        if camera is None:
            self.intrinsics_source = f"default ({why}): fx = fy = image width = {width}, principal point at the centre"
            return default_intrinsics(width, height)
        self.intrinsics_source = (f"camera_info: fx {camera.fx:.1f} fy {camera.fy:.1f} cx {camera.cx:.1f} "
                                  f"cy {camera.cy:.1f}, {camera.model}"
                                  + (f" D[{len(camera.distortion)}]" if camera.distortion else " no distortion"))
        return camera

    def annotate(self, result: FaceFrameResult, stamp_s: float, head_pose: bool = True) -> None:
        """Fill in ``face.head_pose`` (when ``head_pose``; faces with a mesh) and ``face.fatigue`` (every face
        with an id) of one frame, ``stamp_s`` its stamp in seconds. Fatigue state of faces that are not in this
        frame is dropped (the node's ids are never reused). Stage times go to ``result.timer``."""
        faces = result.faces
        if head_pose and any(f.mesh is not None for f in faces):
            with result.timer.stage("head_pose"):
                intrinsics = self.intrinsics_for(result.width, result.height)
                self.assumed = intrinsics.assumed
                for face in faces:
                    if face.mesh is not None:
                        face.head_pose = estimate_head_pose(face.mesh, intrinsics)
        with result.timer.stage("fatigue"):
            if not math.isfinite(stamp_s):
                raise ValueError(f"stamp_s must be finite, not {stamp_s!r}")
            signals = self.fatigue.update(stamp_s, faces)
            self.fatigue.retain(signals)
            for face in faces:
                face.fatigue = signals.get(face.id)

    def reset(self) -> None:
        """A new stream (the node deactivated): no fatigue history, no camera_info until one arrives."""
        self.fatigue.reset()
        self._camera, self._camera_key = (None, 0, 0, "no camera_info"), ()
        self.intrinsics_source = "none yet (no frame with a face mesh)"
        self.assumed = False
