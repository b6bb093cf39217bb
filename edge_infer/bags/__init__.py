"""rosbag2 bags without ROS installed: write (make), read, play and benchmark playback, over `rosbags`.

Writing and reading are ROS-free (rosbags' pure-Python CDR). Playing and the benchmark publish with rclpy,
imported lazily inside those functions (like the other benchmarks), so importing this package needs no ROS.
"""

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
AUDIO_TYPES = ("std_msgs/msg/Int16MultiArray", "std_msgs/msg/Float32MultiArray", "std_msgs/msg/UInt8MultiArray")
STORAGES = ("sqlite3", "mcap")
