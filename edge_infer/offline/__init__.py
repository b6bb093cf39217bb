"""Offline model tools (ROS-free): zoo fetch, export, import, sanitize, quantize, validate, inspect, convert-all,
bundle, selftest; one real-input factory (``inputs``) and one comparator with its tolerance table (``compare``).
Every model they run goes through :func:`edge_infer.backends.create_backend`."""
