"""Multi-model pipelines (face, audio) and their latency accounting: pure Python + numpy, no ROS."""
