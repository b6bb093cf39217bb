"""rosbag2 bags without ROS installed, over `rosbags` (pure-Python CDR): write (:mod:`.write`, `bag make`),
read (:mod:`.read`, `bag info`, INT8 calibration) and patch serialized messages (:mod:`.cdr`).

Everything here is ROS-free. Publishing a bag lives in ``edge_infer.ros.bag_play`` (`bag play`), and the
playback benchmark in ``edge_infer.bench.bag`` (ROS-free half) and ``edge_infer.ros.bag_bench`` (ROS half).
"""

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
AUDIO_TYPES = ("std_msgs/msg/Int16MultiArray", "std_msgs/msg/Float32MultiArray", "std_msgs/msg/UInt8MultiArray")
STORAGES = ("sqlite3", "mcap")
