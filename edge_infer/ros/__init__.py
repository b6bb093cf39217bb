"""ROS 2 layer: nodes, message conversion, diagnostics, QoS. The only package that imports rclpy / *_msgs."""
