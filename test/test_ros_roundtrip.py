"""A real sensor_msgs/Image crosses a real DDS graph and arrives bit-exact."""

from __future__ import annotations

import time

import numpy as np


def test_image_roundtrip_between_two_nodes(ros):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from edge_infer.ros.image_conversion import image_to_msg, msg_to_image

    pub_node, sub_node = Node("rt_pub"), Node("rt_sub")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    received: list[Image] = []
    sub_node.create_subscription(Image, "rt_image", received.append, qos)
    pub = pub_node.create_publisher(Image, "rt_image", qos)
    ex = SingleThreadedExecutor()
    ex.add_node(pub_node)
    ex.add_node(sub_node)
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    msg = image_to_msg(frame, "rgb8", frame_id="camera", stamp=pub_node.get_clock().now().to_msg())
    deadline = time.monotonic() + 15
    while not received and time.monotonic() < deadline:
        if pub.get_subscription_count():
            pub.publish(msg)
        ex.spin_once(timeout_sec=0.1)
    ex.shutdown()
    pub_node.destroy_node()
    sub_node.destroy_node()
    assert received, "no Image arrived within 15 s"
    got = received[0]
    assert (got.width, got.height, got.encoding, got.header.frame_id) == (640, 480, "rgb8", "camera")
    image = msg_to_image(got)
    assert image.encoding == "rgb8"
    np.testing.assert_array_equal(image.rgb(), frame)
