"""edge_infer: multi-model inference for ROS 2 robots (ONNX Runtime everywhere, TensorRT on the robot).

The core (models, backends, pipeline, offline) never imports rclpy; only ``edge_infer.ros`` does.
"""

__version__ = "0.1.0"
