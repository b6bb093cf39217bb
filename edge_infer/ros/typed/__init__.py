"""Typed result topics of the face node: vision_msgs ``~/detections`` + ``~/label_info``, ROS4HRI
``/humans/faces/...`` and the ``~/faces`` JSON mirror (:class:`TypedFaceOutputs`). Topic table: README "Face result topics".

Only :mod:`.outputs` is safe to import without vision_msgs / hri_msgs; it imports :mod:`.vision` and
:mod:`.hri` when their packages are installed.
"""

from edge_infer.ros.typed.outputs import TypedFaceOutputs

__all__ = ["TypedFaceOutputs"]
