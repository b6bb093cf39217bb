"""The cameras of one face node: their names (and the topics they give), and the input scheduling across them,
one one-frame slot per camera and a fair take for the worker.

Names: ``''`` is the one camera on the node's own topics (``image``, ``camera_info``, ``~/detections``...:
a single-camera node's topics stay what they always were); a named camera ``head`` has ``head/image``,
``head/camera_info`` and ``~/head/detections``... A name is one ROS name token, so the topics stay valid,
remappable names.

Why a slot and not a queue: a frame that arrives while the previous one of the same camera still waits
replaces it (counted as dropped by the caller), so latency stays bounded instead of a queue growing behind a
slow model. Why fair: the worker takes at most one frame per camera per round, least recently served camera
first, so a 30 Hz camera cannot starve a 10 Hz one (its extra frames are the ones replaced), and a camera that
sends nothing costs nothing (it has no slot to look at).

Several workers (the node runs one per CPU core) may take rounds at the same time: a camera whose frame is being
processed is not handed out again until :meth:`CameraSlots.done` (its tracking state is used by one worker at a
time, and its frames stay in order).

``batch``: a round takes the frames of every camera that has one waiting (the models then run once on all of
them, :mod:`edge_infer.pipeline.face_batch`); otherwise one camera per round. ``batch_timeout_s`` bounds how long
the first waiting frame may be held for frames of the other cameras that are sending (a camera that sent nothing
for :data:`ACTIVE_WINDOW_S` is not waited for). 0: never wait, take what is there (latency first).

ROS-free and clock-injectable so tests drive it deterministically.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

from edge_infer.errors import ConfigError

#: a camera that sent a frame within this many seconds is expected to send again (a batch may wait for it)
ACTIVE_WINDOW_S = 1.0


#: the most cameras one node serves (the detector batch the TensorRT profiles allow, the diagnostics it lists)
MAX_CAMERAS = 8
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def check_camera_names(names: Sequence[str]) -> list[str]:
    """``names`` as a list if they can be this node's cameras, else :class:`ConfigError` with the reason."""
    names = [str(n) for n in names]
    if not names:
        raise ConfigError("cameras: give at least one camera (['']: the node's own image topic)")
    if len(names) > MAX_CAMERAS:
        raise ConfigError(f"cameras: {len(names)} cameras, at most {MAX_CAMERAS} per node")
    if "" in names and len(names) > 1:
        raise ConfigError("cameras: '' (the node's own image topic) cannot be mixed with named cameras")
    bad = [n for n in names if n and not _NAME.fullmatch(n)]
    if bad:
        raise ConfigError(f"cameras: {bad[0]!r} is not a ROS name token (a letter, then letters, digits or _)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"cameras: {repeated[0]!r} is given more than once")
    return names


def camera_topic(camera: str, topic: str, private: bool = False) -> str:
    """The topic ``topic`` of ``camera``: ``image`` / ``head/image``; private ``~/detections`` / ``~/head/detections``."""
    name = f"{camera}/{topic}" if camera else topic
    return f"~/{name}" if private else name


class CameraSlots:
    """One-frame slots of the node's cameras; :meth:`offer` from the input callbacks, :meth:`take` from the worker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cv = threading.Condition()
        self._slots: dict[str, tuple[float, Any]] = {}  # camera -> (arrival time, item)
        self._cameras: list[str] = []
        self._last_arrival: dict[str, float] = {}
        self._served_round: dict[str, int] = {}
        self._busy: set[str] = set()  # cameras whose frame a worker is processing now
        self._round = 0
        self._running = False

    # ------------------------------------------------------------------------------------------ setup
    def set_cameras(self, names: Iterable[str]) -> list[str]:
        """The cameras served from now on; returns the removed ones (their waiting frames are discarded)."""
        names = list(names)
        with self._cv:
            removed = [n for n in self._cameras if n not in names]
            for n in removed:
                self._slots.pop(n, None)
                self._last_arrival.pop(n, None)
                self._served_round.pop(n, None)
                self._busy.discard(n)
            self._cameras = names
            self._cv.notify_all()
        return removed

    @property
    def cameras(self) -> list[str]:
        with self._cv:
            return list(self._cameras)

    def start(self) -> None:
        with self._cv:
            self._running = True
            self._slots.clear()
            self._busy.clear()

    def stop(self) -> None:
        """Wake the worker and make :meth:`take` return None; waiting frames are discarded."""
        with self._cv:
            self._running = False
            self._slots.clear()
            self._busy.clear()
            self._cv.notify_all()

    # ------------------------------------------------------------------------------------------ input
    def offer(self, camera: str, item: Any) -> bool:
        """Put ``item`` in ``camera``'s slot; True when it replaced a frame still waiting (the caller counts it
        as dropped). An item for a camera that is not served (removed meanwhile) is refused: False, not kept."""
        with self._cv:
            if camera not in self._cameras:
                return False
            now = self._clock()
            replaced = camera in self._slots
            self._slots[camera] = (now, item)
            self._last_arrival[camera] = now
            self._cv.notify_all()
            return replaced

    def waiting(self) -> list[str]:
        with self._cv:
            return list(self._slots)

    # ------------------------------------------------------------------------------------------ worker
    def _order(self, cameras: Iterable[str]) -> list[str]:
        """Least recently served first (never served: first of all, in camera order)."""
        position = {n: i for i, n in enumerate(self._cameras)}
        return sorted(cameras, key=lambda n: (self._served_round.get(n, -1), position.get(n, 0)))

    def _expected(self, now: float) -> list[str]:
        """Cameras without a waiting frame, not in a worker's hands, that are sending (a frame within
        ACTIVE_WINDOW_S): a batch may wait for them."""
        return [n for n in self._cameras if n not in self._slots and n not in self._busy
                and now - self._last_arrival.get(n, -1e18) <= ACTIVE_WINDOW_S]

    def _ready(self) -> list[str]:
        return [n for n in self._slots if n not in self._busy]

    def take(self, batch: bool, batch_timeout_s: float = 0.0, idle_timeout_s: float = 0.5) -> list[tuple[str, Any]] | None:
        """The next round: [(camera, item)], fairly ordered, its cameras now busy until :meth:`done`; [] after
        ``idle_timeout_s`` without frames (so the worker can look at its stop flag); None once stopped."""
        with self._cv:
            deadline = self._clock() + idle_timeout_s
            while self._running and not self._ready():
                left = deadline - self._clock()
                if left <= 0:
                    return []
                self._cv.wait(left)
            if not self._running:
                return None
            if batch and batch_timeout_s > 0:
                oldest = min(self._slots[n][0] for n in self._ready())
                while self._running and self._expected(self._clock()):
                    left = oldest + batch_timeout_s - self._clock()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                if not self._running:
                    return None
            chosen = self._order(self._ready())
            if not batch:
                chosen = chosen[:1]
            self._round += 1
            out = []
            for n in chosen:
                _, item = self._slots.pop(n)
                self._served_round[n] = self._round
                self._busy.add(n)
                out.append((n, item))
            return out

    def done(self, cameras: Iterable[str]) -> None:
        """The worker finished these cameras' frames: their next frames may be taken."""
        with self._cv:
            self._busy.difference_update(cameras)
            self._cv.notify_all()


class RoundGate:
    """Worker rounds run side by side; a live change (parameters, cameras, engines) waits until the rounds in
    flight are done and holds new ones until it is applied, so a change always lands between frames."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._rounds = 0
        self._changing = False

    @contextmanager
    def round(self) -> Iterator[None]:
        with self._cv:
            while self._changing:
                self._cv.wait()
            self._rounds += 1
        try:
            yield
        finally:
            with self._cv:
                self._rounds -= 1
                self._cv.notify_all()

    @contextmanager
    def change(self) -> Iterator[None]:
        with self._cv:
            while self._changing:
                self._cv.wait()
            self._changing = True
            while self._rounds:
                self._cv.wait()
        try:
            yield
        finally:
            with self._cv:
                self._changing = False
                self._cv.notify_all()
