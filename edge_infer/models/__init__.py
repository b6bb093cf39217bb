"""Model specs (config/models.yaml), per-model pre/post-processing and torch architectures (ROS-free)."""
