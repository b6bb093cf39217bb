"""`edge-infer ui`: a web page and a REST API over the offline tools (as jobs) and the running nodes.

Floor 8, beside ``commands/``: every model operation runs the existing ``edge-infer <verb> --json`` in a
subprocess (``jobs.py``), so the server itself never loads a model or an uploaded file; only ``robot.py``
touches ROS, lazily, so the model page works on a machine without ROS.
"""
