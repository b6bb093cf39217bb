"""A consumer of the face node's typed topics in its own process (test_typed_outputs.py starts it).

Subscribes to ``<node>/detections``, ``<node>/label_info``, ``<node>/faces`` and ``/humans/faces/tracked``;
for every id that appears in ``tracked``, also to that face's roi, landmarks, expression, cropped and aligned.
Prints one JSON line per message received (topic, header, the fields the test checks), and a ``graph`` line
whenever the number of publishers of a seen id's ``roi`` topic changes (so the test sees publishers of
vanished ids disappear from another process). ``--bag DIR``: also records every message received, as raw
CDR, into a rosbag2 bag with edge_infer's bag writer. Stops on SIGINT / SIGTERM.

    python test/typed_listener.py --node /typed_pub [--bag DIR]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

import rclpy
import rclpy.executors
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions


def _header(msg) -> dict:
    return {"stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec], "frame_id": msg.header.frame_id}


def _summary(kind: str, msg) -> dict:
    if kind == "detections":
        return {"detections": [{"id": d.id, "cx": d.bbox.center.position.x, "cy": d.bbox.center.position.y,
                                "sx": d.bbox.size_x, "sy": d.bbox.size_y, "class_id": d.results[0].hypothesis.class_id,
                                "score": d.results[0].hypothesis.score, "header": _header(d)} for d in msg.detections]}
    if kind == "label_info":
        return {"class_map": [[c.class_id, c.class_name] for c in msg.class_map], "threshold": msg.threshold}
    if kind == "faces":
        doc = json.loads(msg.data)
        return {"stamp": [doc["header"]["stamp"]["sec"], doc["header"]["stamp"]["nanosec"]],
                "faces": [{"id": f.get("id"), "bbox": f["bbox"]} for f in doc["faces"]]}
    if kind == "tracked":
        return {"ids": list(msg.ids)}
    if kind == "roi":
        return {"roi": [msg.xmin, msg.ymin, msg.xmax, msg.ymax, msg.c]}
    if kind == "landmarks":
        return {"n": len(msg.landmarks), "width": msg.width, "height": msg.height,
                "points": [[p.x, p.y, p.c] for p in msg.landmarks]}
    if kind == "expression":
        return {"expression": msg.expression, "confidence": msg.confidence}
    return {"width": msg.width, "height": msg.height, "encoding": msg.encoding, "bytes": len(msg.data)}


class Listener(Node):
    def __init__(self, node_ns: str, bag_writer=None) -> None:
        super().__init__("typed_listener")
        from hri_msgs.msg import Expression, FacialLandmarks, IdsList, NormalizedRegionOfInterest2D
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from vision_msgs.msg import Detection2DArray, LabelInfo

        self.types = {"detections": Detection2DArray, "label_info": LabelInfo, "faces": String, "tracked": IdsList,
                      "roi": NormalizedRegionOfInterest2D, "landmarks": FacialLandmarks, "expression": Expression,
                      "cropped": Image, "aligned": Image}
        self.bag = bag_writer
        self.lock = threading.Lock()
        self.seen_ids: dict[str, int] = {}
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._subscribe("detections", f"{node_ns}/detections")
        self._subscribe("label_info", f"{node_ns}/label_info", latched)
        self._subscribe("faces", f"{node_ns}/faces")
        self._subscribe("tracked", "/humans/faces/tracked")
        self.create_timer(0.1, self._report_graph)

    def _subscribe(self, kind: str, topic: str, qos=10) -> None:
        msgtype = self.types[kind]
        if self.bag is not None:
            self.bag.add_topic(topic, _type_name(msgtype), reliable=True)
        self.create_subscription(msgtype, topic, lambda data: self._on(kind, topic, data), qos, raw=True)

    def _on(self, kind: str, topic: str, data: bytes) -> None:
        msg = deserialize_message(data, self.types[kind])
        if self.bag is not None:  # receive time, as rosbag2 records
            self.bag.write(topic, self.get_clock().now().nanoseconds, data)
        if kind == "tracked":
            for face_id in msg.ids:
                if face_id not in self.seen_ids:
                    self.seen_ids[face_id] = -1
                    for sub in ("roi", "landmarks", "expression", "cropped", "aligned"):
                        self._subscribe(sub, f"/humans/faces/{face_id}/{sub}")
        line = {"kind": kind, "topic": topic, **_summary(kind, msg)}
        if hasattr(msg, "header"):
            line["header"] = _header(msg)
        _emit(line)

    def _report_graph(self) -> None:
        for face_id, before in list(self.seen_ids.items()):
            now = self.count_publishers(f"/humans/faces/{face_id}/roi")
            if now != before:
                self.seen_ids[face_id] = now
                _emit({"kind": "graph", "id": face_id, "roi_publishers": now})


def _type_name(msgtype) -> str:
    module = msgtype.__module__.split(".")  # e.g. vision_msgs.msg._detection2_d_array
    return f"{module[0]}/msg/{msgtype.__name__}"


def _emit(line: dict) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True, help="the publishing node's fully qualified name")
    parser.add_argument("--bag", help="record everything received into this rosbag2 directory")
    args = parser.parse_args()
    stop = threading.Event()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # our handlers: stop, then close the bag
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    writer = None
    if args.bag:
        from edge_infer.bags.msgdefs import interface_types
        from edge_infer.bags.write import BagWriter

        writer = BagWriter(args.bag)
        writer.ts.register(interface_types(["vision_msgs", "hri_msgs"]))  # not in rosbags' built-in stores
        writer.__enter__()
    node = Listener(args.node, writer)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    _emit({"kind": "ready"})
    while not stop.is_set():  # in this thread: the sqlite3 bag may only be written from the thread that opened it
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    if writer is not None:
        writer.__exit__(None, None, None)
    node.destroy_node()
    rclpy.try_shutdown()
    _emit({"kind": "stopped"})


if __name__ == "__main__":
    main()
