"""Offline model tools: export, import, sanitize, quantize, validate, inspect (ROS-free)."""
