"""mediapipe's own FaceMesh, run frame by frame on request: the peer of `edge-infer bench pipeline`.

This file runs as a script inside the bench venv (``.venv-bench``, requirements-bench.txt), never inside the
product's environment: it imports only numpy and mediapipe, nothing of edge_infer (whose dependencies that
venv does not have). :mod:`edge_infer.bench.peer` starts it and talks JSON lines over stdin/stdout:

* first line out: ``{"event": "ready", "mediapipe": VERSION}``
* in: ``{"cmd": "run", "set": NAME, "index": I, "static": BOOL, "max_faces": N}`` -> out:
  ``{"event": "ran", "ms": MS, "faces": N}``; ``set`` names an ``NAME.npy`` file ([frames,H,W,3] uint8 RGB) in
  the frames directory given on the command line (memory mapped; the frame is copied before the clock starts);
  ``ms`` is the time of ``FaceMesh.process`` alone, as the caller times its own pipeline's ``process``.
  One FaceMesh per (set, static, max_faces), kept across requests: video mode (static false) tracks from frame
  to frame as in a camera stream.
* in: ``{"cmd": "quit"}``.
"""

import json
import sys
import time


def _reply(**kwargs) -> None:
    sys.stdout.write(json.dumps(kwargs) + "\n")
    sys.stdout.flush()


def main(argv: list) -> int:
    import numpy as np  # the bench venv's own numpy, not the product's
    import mediapipe as mp

    frames_dir = argv[1]
    sets: dict = {}
    meshes: dict = {}
    _reply(event="ready", mediapipe=mp.__version__)
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        if req.get("cmd") == "quit":
            break
        try:
            name = req["set"]
            if name not in sets:
                sets[name] = np.load(f"{frames_dir}/{name}.npy", mmap_mode="r")
            frame = np.ascontiguousarray(sets[name][int(req["index"]) % len(sets[name])])
            key = (name, bool(req["static"]), int(req["max_faces"]))
            if key not in meshes:
                meshes[key] = mp.solutions.face_mesh.FaceMesh(static_image_mode=key[1], max_num_faces=key[2],
                                                              refine_landmarks=False)
            t0 = time.perf_counter()
            result = meshes[key].process(frame)
            ms = (time.perf_counter() - t0) * 1e3
            _reply(event="ran", ms=ms, faces=len(result.multi_face_landmarks or []))
        except Exception as e:  # the caller reports it; the worker keeps serving
            _reply(event="error", message=f"{type(e).__name__}: {e}")
    for m in meshes.values():
        m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
