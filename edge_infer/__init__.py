"""edge_infer: multi-model inference for ROS 2 robots (ONNX Runtime everywhere, TensorRT on the robot).

The core (models, backends, pipeline, offline) never imports rclpy; only ``edge_infer.ros`` does.
"""

import os as _os

__version__ = "0.1.0"

#: OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, when cv2 is first imported, and then refuses any image header
#: above it (cv2.error instead of an allocation; OpenCV's own default is 2^30). Set here, before any submodule
#: can import cv2, so every edge_infer process (nodes, CLI, tools) has it; a value the user set wins. The
#: precise check is pipeline/frames.py's header parser (``max_image_pixels``); this is the second line.
OPENCV_PIXEL_CEILING = 1 << 28
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(OPENCV_PIXEL_CEILING))
