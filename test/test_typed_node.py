"""The face node as a robot runs it (console script, own process), a 6-face camera in another process, and
this process consuming the typed topics: vision_msgs detections and ROS4HRI faces carry the input header and
agree with the JSON mirror (issue "Typed ROS interfaces", done means)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from edge_infer.ros.driver_check import CameraCase, FaceNodeObserver, node_process, play_camera


def test_six_faces_from_another_process_arrive_typed_with_the_input_header(ros, models_dir, tmp_path):
    from hri_msgs.msg import Expression, FacialLandmarks, IdsList, NormalizedRegionOfInterest2D
    from vision_msgs.msg import Detection2DArray

    from edge_infer.ros.runner import Spinner

    got: dict = {"det": {}, "tracked": {}, "per_id": []}
    lock = threading.Lock()
    observer = FaceNodeObserver()  # also subscribes ~/faces (the JSON mirror) and /diagnostics
    node = observer.node
    jsons: dict[int, dict] = {}

    def stamp(h) -> int:
        return h.stamp.sec * 1_000_000_000 + h.stamp.nanosec

    def on_faces(msg) -> None:
        doc = json.loads(msg.data)
        s = doc["header"]["stamp"]
        with lock:
            jsons[s["sec"] * 1_000_000_000 + s["nanosec"]] = doc

    def on_tracked(msg: IdsList) -> None:
        with lock:
            got["tracked"][stamp(msg.header)] = list(msg.ids)
            for fid in msg.ids:
                if fid not in got.setdefault("subscribed", set()):
                    got["subscribed"].add(fid)
                    for kind, typ in (("roi", NormalizedRegionOfInterest2D), ("expression", Expression),
                                      ("landmarks", FacialLandmarks)):
                        node.create_subscription(
                            typ, f"/humans/faces/{fid}/{kind}",
                            lambda m, k=kind, f=fid: got["per_id"].append((f, k, stamp(m.header))), 10)

    from std_msgs.msg import String

    node.create_subscription(String, "/face_pipeline/faces", on_faces, 50)
    node.create_subscription(Detection2DArray, "/face_pipeline/detections",
                             lambda m: got["det"].__setitem__(stamp(m.header), m), 50)
    node.create_subscription(IdsList, "/humans/faces/tracked", on_tracked, 50)
    with node_process("face_pipeline_node", {"models_dir": str(models_dir)}, log_path=tmp_path / "node.log"), \
            Spinner(node):
        assert observer.wait_node(), (tmp_path / "node.log").read_text()[-2000:]
        play_camera(CameraCase(1280, 720, 4.0, 12, "reliable", profile=True, faces=6), models_dir)
        time.sleep(2.0)
    with lock:
        stamps = sorted(s for s, d in jsons.items() if len(d["faces"]) == 6)
    assert len(stamps) >= 8, {s: len(d["faces"]) for s, d in jsons.items()}
    for s in stamps:
        det = got["det"][s]  # one Detection2DArray per frame, with the input's stamp
        assert det.header.frame_id == jsons[s]["header"]["frame_id"] == "camera"
        assert len(det.detections) == 6
        boxes = sorted((d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y)
                       for d in det.detections)
        ref = sorted(((f["bbox"][0] + f["bbox"][2]) / 2, (f["bbox"][1] + f["bbox"][3]) / 2,
                      f["bbox"][2] - f["bbox"][0], f["bbox"][3] - f["bbox"][1]) for f in jsons[s]["faces"])
        assert [v for b in boxes for v in b] == pytest.approx([v for b in ref for v in b], abs=0.11)  # JSON rounds corners to 0.1
        assert {d.id for d in det.detections} == {f["id"] for f in jsons[s]["faces"]}
        assert len(got["tracked"][s]) == 6
    # after subscribing to each id's topics, later frames deliver them with the input stamp
    late = {(f, k) for f, k, s in got["per_id"] if s in stamps}
    ids = {f for f, _ in late}
    assert len(ids) >= 6 and {k for _, k in late} == {"roi", "expression", "landmarks"}
