"""Model specs, the model zoo and per-model pre/post-processing (ROS-free)."""
