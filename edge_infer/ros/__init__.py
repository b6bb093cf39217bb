"""ROS 2 layer: nodes, message conversion, diagnostics, QoS. The only package that imports rclpy / *_msgs."""

from edge_infer.offline.fp16_check import install as _install_fp16_task_validation  # noqa: E402

# FP16 graphs the nodes' engine builds make (TensorRT 11) must pass the project's own task validation.
_install_fp16_task_validation()
