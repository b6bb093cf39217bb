"""Fatigue signals per tracked face from the 468-point face mesh: eye openness (EAR), blinks and blink rate,
PERCLOS, long eye closures and yawns (MAR). ROS-free, numpy only; the face node publishes the results.

Measures
--------
**Eye aspect ratio** (EAR; Soukupová & Čech, "Real-Time Eye Blink Detection using Facial Landmarks", CVWW 2016):
``(|p2-p6| + |p3-p5|) / (2 |p1-p4|)`` over six eyelid points per eye, p1/p4 the eye corners, p2/p3 on the
upper lid, p6/p5 the lower-lid points under them. Taken from the mesh vertices that the commonly used MediaPipe
EAR sets name, which are also the dlib 68-point eye points in :mod:`edge_infer.pipeline.hri_mapping`
(36-47). In Google's face-mesh contour annotations (``rightEyeUpper0`` = 246 161 160 159 158 157 173,
``rightEyeLower0`` = 33 7 163 144 145 153 154 155 133 and the mirrored ``left*`` contours) they are:

==========  ============  =====================  ============  =====================
eye         p1 corner     p2, p3 upper lid       p4 corner     p5, p6 lower lid
==========  ============  =====================  ============  =====================
right       33 (outer)    160, 158               133 (inner)   153, 144
left        362 (inner)   385, 387               263 (outer)   373, 380
==========  ============  =====================  ============  =====================

"Right" is the subject's right (the image's left for a face looking at the camera), as in MediaPipe.
``test_fatigue.py`` checks on the real mesh of a real photo that p2/p3 lie above p6/p5 in the face's own
frame, at the same position along the eye, and p1/p4 at the ends of the eye.
The face's EAR is the mean of both eyes (as Soukupová & Čech average them). Distances are Euclidean in the
image plane (x, y): the ratio does not change with scale or in-plane rotation (head roll), which the tests
measure. Out-of-plane rotation is not corrected: looking down (pitch) shortens the vertical distances and
lowers EAR like a closing eye; yaw shortens the eye width and raises it.

**Mouth aspect ratio** (MAR), the same construction on the inner lip contour (``lipsUpperInner`` /
``lipsLowerInner``): mean of the three vertical gaps 81-178, 13-14, 311-402 over the inner corner distance
78-308. Low with the lips together (0.08-0.17 on the sample faces, smiling ones included), about 1 for a mouth
as tall as it is wide.

Signals and their definitions
-----------------------------
- **eye closure** ``1 - EAR / EAR_open`` (0 open, 1 shut): EAR relative to the face's own open-eye EAR, since
  open EARs differ between people and between landmark sets. ``EAR_open`` is the ``ear_open_quantile`` (90 %)
  of the face's EAR over the window, time-weighted (it stays at the open value as long as the eyes were open
  for more than 10 % of the window), never below ``ear_open_floor``; before any history, the current EAR.
  Why not the absolute EAR < 0.2 of Soukupová & Čech: that threshold is for dlib landmarks, whose open eyes
  give ~0.3 (0.2 is a third closed); on this mesh the open eyes of the sample faces give 0.22-0.25 (the smiling
  astronaut 0.22) and the same eye moves by up to 0.045 between frames rolled or scaled, so 0.2 would sit
  inside the noise of an open eye.
- **eyes closed / blink**: closure at least ``blink_closure`` (50 %: the half-amplitude point, a common
  reference for timing blinks in oculography; a design choice here, not fitted to data), open again below ``blink_closure - closure_hysteresis``. A closure that lasted
  ``blink_min_s``..``blink_max_s`` (by stamps: from the first closed frame to the first open one) is a blink; a
  longer one is a *long closure* (microsleep candidate); shorter ones are noise. Durations come from the
  stamps, never frame counts: camera rates vary, and the node drops stale frames.
- **blink rate**: blinks per minute of observed time in the last ``window_s``.
- **PERCLOS** (Wierwille et al. 1994; Dinges & Grace 1998, FHWA-MCRT-98-006: "P80"): the fraction of the last
  ``window_s`` (60 s: "the proportion of time in a minute") in which the eye is at least ``perclos_closure``
  (80 %) closed. Time-weighted by stamps: each measurement holds until the next one, at most ``max_gap_s``.
- **yawn**: MAR above ``mar_yawn`` for at least ``yawn_min_s``; counted once, when it has lasted that long.

Thresholds and windows live in :class:`FatigueConfig` (each field's ``metadata``: description and range, for
the node's parameter table). Accuracy against labelled drowsiness data has NOT been measured here: there are
none in this repository. What the tests measure: the mesh's own geometry (a synthetic closing eye, an
opening mouth), invariance to scale and roll, and real open-eyed photos reporting no closure.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

import numpy as np

#: (p1, p2, p3, p4, p5, p6) mesh vertices of each eye, see the module docstring (subject's right / left eye)
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
#: inner-lip (corner, corner) and (upper, lower) vertical pairs for MAR
MOUTH_CORNERS = (78, 308)
MOUTH_PAIRS = ((81, 178), (13, 14), (311, 402))

#: the 20 vertices read, in this order: right eye p1-p6, left eye p1-p6, mouth corners, upper, lower inner lip
_POINTS = np.array([*RIGHT_EYE, *LEFT_EYE, *MOUTH_CORNERS, *(p[0] for p in MOUTH_PAIRS),
                    *(p[1] for p in MOUTH_PAIRS)])

#: EAR histogram of the open-eye reference: bins of this width from 0 to _EAR_BINS * width (higher values clip)
_EAR_BIN = 0.005
_EAR_BINS = 160


def _param(default: Any, description: str, low: float, high: float):
    """A config field whose metadata the node's parameter table can read (description, allowed range)."""
    return field(default=default, metadata={"description": description, "range": (low, high)})


@dataclass
class FatigueConfig:
    """Thresholds and windows of :class:`FatigueTracker`; every field may change between updates (live)."""

    # Half closed: the half-amplitude point that oculography commonly times blinks at (a design choice, not fitted
    # to data here); relative to the face's own open EAR (see the module docstring for why not Soukupová &
    # Čech's absolute EAR 0.2, which is about a third closed on their dlib landmarks).
    blink_closure: float = _param(0.5, "Eye closure (1 - EAR/EAR_open) from which an eye counts as closed.",
                                  0.0, 1.0)
    # Debounce: mesh noise around the threshold must not count two blinks. Measured here (test_fatigue.py): open
    # eyes read a closure up to 0.08 in the tracked 6-face scene; EAR moves up to 20 % between rolled renderings.
    closure_hysteresis: float = _param(0.1, "A closed eye is open again below blink_closure - this.", 0.0, 1.0)
    # A spontaneous blink lasts ~100-400 ms (Schiffman 2001, Sensation and Perception); blinks lengthen with
    # drowsiness (Caffier, Erdmann & Ullsperger 2003, Eur J Appl Physiol 89:319) and a closure well beyond
    # 400 ms is a "long closure". 50 ms is shorter than any blink: one noisy 30 Hz frame (33 ms) is rejected,
    # while at 15 Hz one frame (67 ms) already counts.
    blink_min_s: float = _param(0.05, "Shortest closure counted as a blink (s; shorter: noise).", 0.0, 10.0)
    blink_max_s: float = _param(0.5, "Longest closure counted as a blink (s); longer ones are long closures.",
                                0.0, 60.0)
    # PERCLOS P80 over one minute (Wierwille et al. 1994; Dinges & Grace 1998); also the blink-rate window
    # (spontaneous blink rates are quoted per minute, ~15-20/min at rest: Bentivoglio et al. 1997).
    window_s: float = _param(60.0, "Window of PERCLOS, blink rate, long closures and yawn counts (s).", 1.0, 3600.0)
    perclos_closure: float = _param(0.8, "PERCLOS counts time with the eye at least this much closed (0.8 = P80).",
                                    0.0, 1.0)
    ear_open_quantile: float = _param(0.9, "Quantile of the window's EAR taken as the face's open-eye EAR.",
                                      0.5, 1.0)
    # below every open-eye EAR measured on the sample faces (0.218 the lowest): only matters for a face whose
    # eyes were closed most of the window, which then still reads as closed
    ear_open_floor: float = _param(0.2, "Lowest open-eye EAR (EAR_open) used for closure.", 0.0, 1.0)
    # Rates and PERCLOS need some observed time to mean anything: null until then.
    min_observed_s: float = _param(10.0, "Observed time before blink rate and PERCLOS are reported (s).",
                                   0.0, 3600.0)
    # Yawns: MAR ~0.6 on this construction means an inner-lip gap over half the mouth width, which speech rarely
    # reaches (common in landmark yawn detectors; not validated on labelled data here). Yawns last ~6 s
    # (Provine 1986, Ethology 72:109), speech opens the mouth per syllable (~0.2 s): 1 s separates them.
    mar_yawn: float = _param(0.6, "Inner-lip MAR above which the mouth is open wide (yawn candidate).", 0.0, 5.0)
    mar_hysteresis: float = _param(0.05, "The mouth closes again once MAR falls below mar_yawn - this.", 0.0, 1.0)
    yawn_min_s: float = _param(1.0, "Shortest wide-open mouth counted as a yawn (s).", 0.0, 60.0)
    # Time-weighting: a measurement holds until the next one, but not longer than this (a stalled stream or a
    # frame the node skipped must not weigh seconds); a longer gap also ends a closure / yawn uncounted.
    max_gap_s: float = _param(0.5, "Longest time one measurement stands for; longer gaps are not observed (s).",
                              0.001, 60.0)
    min_mesh_confidence: float = _param(0.5, "Meshes below this confidence are not measured.", 0.0, 1.0)
    # Bounded memory: face ids are never reused and a face missed for one frame comes back with a new id
    # (face_pipeline.py), so a face not seen for a few seconds is gone for good.
    forget_after_s: float = _param(5.0, "A face not seen for this long is forgotten (s).", 0.0, 3600.0)
    max_faces: int = _param(64, "Most faces tracked at once; the least recently seen go first.", 1, 10000)
    max_samples: int = _param(4096, "Most stored window samples per face (consecutive equal ones are merged); "
                              "also the most stored blink, long-closure and yawn stamps each.", 16, 1_000_000)

    def check(self) -> None:
        """ValueError naming every field outside its range, or an inconsistent combination."""
        problems = []
        for f in fields(self):
            low, high = f.metadata["range"]
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
                problems.append(f"{f.name}={value!r} is outside [{low}, {high}]")
        if self.blink_min_s > self.blink_max_s:
            problems.append(f"blink_min_s={self.blink_min_s} is above blink_max_s={self.blink_max_s}")
        if self.min_observed_s > self.window_s:
            problems.append(f"min_observed_s={self.min_observed_s} is above window_s={self.window_s} (never reported)")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class FatigueSignals:
    """One face's signals at one update. ``None``: not measurable (no mesh, or too little observed time)."""

    face_id: str
    measured: bool  # this update's mesh was measured (False: no mesh / low confidence; windows kept)
    ear: float | None  # mean of both eyes
    ear_right: float | None  # subject's right eye (image left)
    ear_left: float | None
    mar: float | None  # inner lips
    eye_closure: float | None  # 1 - ear / ear_open, clipped to 0..1
    eyes_closed: bool  # eye_closure at least blink_closure now (hysteresis applied)
    closed_s: float  # duration of the current closure (0 when open)
    blinks: int  # in the window
    blink_rate_per_min: float | None
    long_closures: int  # closures longer than blink_max_s in the window
    perclos: float | None  # fraction of observed window time at least perclos_closure closed
    ear_open: float | None  # the face's open-eye EAR that eye_closure is relative to (None before a measurement)
    yawning: bool  # a wide-open mouth that has lasted yawn_min_s
    yawns: int  # in the window
    observed_s: float  # measured time in the window (the denominator of the rate and PERCLOS)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (floats rounded to 4 decimals, ``None`` stays null); see :data:`JSON_SCHEMA`."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


_NUM_OR_NULL = {"type": ["number", "null"]}
#: JSON Schema (draft 2020-12) of :meth:`FatigueSignals.as_dict`, for the node's JSON mirror
JSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": [f.name for f in fields(FatigueSignals)],
    "additionalProperties": False,
    "properties": {
        "face_id": {"type": "string"}, "measured": {"type": "boolean"},
        "ear": _NUM_OR_NULL, "ear_right": _NUM_OR_NULL, "ear_left": _NUM_OR_NULL, "mar": _NUM_OR_NULL,
        "eye_closure": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "eyes_closed": {"type": "boolean"}, "closed_s": {"type": "number", "minimum": 0},
        "blinks": {"type": "integer", "minimum": 0},
        "blink_rate_per_min": {"type": ["number", "null"], "minimum": 0},
        "long_closures": {"type": "integer", "minimum": 0},
        "perclos": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "ear_open": _NUM_OR_NULL, "yawning": {"type": "boolean"}, "yawns": {"type": "integer", "minimum": 0},
        "observed_s": {"type": "number", "minimum": 0},
    },
}


# ------------------------------------------------------------------------------------------------- geometry
def _ratio(p: list, a: int, b: int, pairs: tuple[tuple[int, int], ...]) -> float:
    """Mean distance of the ``pairs`` over the distance a-b, of rows of ``p`` ([x, y] lists); NaN if degenerate
    (a-b under 1e-6 of the coordinates' magnitude, or points not finite)."""
    width = math.hypot(p[a][0] - p[b][0], p[a][1] - p[b][1])
    gap = sum(math.hypot(p[i][0] - p[j][0], p[i][1] - p[j][1]) for i, j in pairs) / len(pairs)
    scale = max(1.0, abs(p[a][0]), abs(p[a][1]))
    if not (math.isfinite(width) and math.isfinite(gap)) or width <= 1e-6 * scale:
        return math.nan
    return gap / width


def measure_mesh(mesh: np.ndarray) -> tuple[float, float, float]:
    """(EAR right, EAR left, MAR) of one [468, 2|3] mesh, from the image-plane (x, y) positions; NaN where
    degenerate. Only the 20 points used are read (plain floats: ~10 us a face instead of ~100 us in numpy)."""
    p = np.asarray(mesh)[_POINTS, :2].tolist()
    # EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) = mean of the two lid gaps over the eye width
    right = _ratio(p, 0, 3, ((1, 5), (2, 4)))
    left = _ratio(p, 6, 9, ((7, 11), (8, 10)))
    mar = _ratio(p, 12, 13, ((14, 17), (15, 18), (16, 19)))
    return right, left, mar


def eye_aspect_ratios(mesh: np.ndarray) -> tuple[float, float]:
    """(right, left) EAR of one [468, 2|3] mesh in pixels (see :func:`measure_mesh`)."""
    right, left, _ = measure_mesh(mesh)
    return right, left


def mouth_aspect_ratio(mesh: np.ndarray) -> float:
    """Inner-lip MAR of one [468, 2|3] mesh: mean vertical gap over the corner distance (see :func:`measure_mesh`)."""
    return measure_mesh(mesh)[2]


# ------------------------------------------------------------------------------------------------- state
class _FaceState:
    """One face's windows. Intervals ``[start, end, ear_bin, closed80]`` (lists: the oldest is trimmed in place)
    with running totals, so an update costs O(1) amortised plus one pass over the EAR histogram."""

    __slots__ = ("last_seen", "last_stamp", "last_ear", "last_closed80", "closure", "open_ref", "intervals", "hist",
                 "observed",
                 "closed80_time", "eyes_closed", "closed_since", "blinks", "long_closures", "mouth_open_since",
                 "yawn_counted", "yawns")

    def __init__(self, stamp: float, max_events: int) -> None:
        self.last_seen = stamp
        self.last_stamp: float | None = None  # of the last measured sample
        self.last_ear = math.nan
        self.last_closed80 = False
        self.closure = math.nan  # of the last measurement
        self.open_ref: float | None = None  # EAR_open at the last measurement
        self.intervals: deque[list] = deque()
        self.hist = np.zeros(_EAR_BINS, np.float64)  # time per EAR bin in the window
        self.observed = 0.0
        self.closed80_time = 0.0
        self.eyes_closed = False
        self.closed_since: float | None = None
        self.blinks: deque[float] = deque(maxlen=max_events)  # stamps of blink ends
        self.long_closures: deque[float] = deque(maxlen=max_events)
        self.mouth_open_since: float | None = None
        self.yawn_counted = False
        self.yawns: deque[float] = deque(maxlen=max_events)

    # -------- the window
    def _remove(self, iv: list, duration: float) -> None:
        self.observed -= duration
        self.hist[iv[2]] -= duration
        if iv[3]:
            self.closed80_time -= duration

    def _add(self, start: float, end: float, ear: float, closed80: bool, max_samples: int) -> None:
        duration = end - start
        if duration <= 0:
            return
        b = min(int(ear / _EAR_BIN), _EAR_BINS - 1)
        last = self.intervals[-1] if self.intervals else None
        if last is not None and last[2] == b and last[3] == closed80 and last[1] == start:
            last[1] = end  # merged: a steady eye costs one entry however long it stays
        else:
            self.intervals.append([start, end, b, closed80])
        self.observed += duration
        self.hist[b] += duration
        if closed80:
            self.closed80_time += duration
        while len(self.intervals) > max_samples:
            old = self.intervals.popleft()
            self._remove(old, old[1] - old[0])

    def trim(self, now: float, window: float) -> None:
        start = now - window
        while self.intervals and self.intervals[0][1] <= start:
            old = self.intervals.popleft()
            self._remove(old, old[1] - old[0])
        if self.intervals and self.intervals[0][0] < start:
            head = self.intervals[0]
            self._remove(head, start - head[0])
            head[0] = start
        for events in (self.blinks, self.long_closures, self.yawns):
            while events and events[0] <= start:
                events.popleft()
        if not self.intervals:  # no float residue from the running sums
            self.observed = self.closed80_time = 0.0
            self.hist[:] = 0.0

    def ear_open(self, c: FatigueConfig, ear_now: float = math.nan) -> float:
        """The open-eye EAR: the ``ear_open_quantile`` of the window's time-weighted EAR (no window yet: the
        current EAR), at least the floor."""
        total = self.observed
        if total <= 0:
            return max(ear_now, c.ear_open_floor) if math.isfinite(ear_now) else c.ear_open_floor
        cum = np.cumsum(self.hist)
        b = int(np.searchsorted(cum, c.ear_open_quantile * total))
        return max((min(b, _EAR_BINS - 1) + 1) * _EAR_BIN, c.ear_open_floor)

    def reset_events(self) -> None:
        """A gap or a jump back in time: closures and mouth openings in progress end uncounted."""
        self.eyes_closed, self.closed_since = False, None
        self.mouth_open_since, self.yawn_counted = None, False

    # -------- one measurement
    def measure(self, t: float, ear: float, mar: float, c: FatigueConfig) -> None:
        if self.last_stamp is not None and t < self.last_stamp:  # time went back (bag loop, sim clock reset)
            self.__init__(t, self.blinks.maxlen)
        if self.last_stamp is not None:
            gap = t - self.last_stamp
            if math.isfinite(self.last_ear):  # the previous measurement holds until now (at most max_gap_s)
                end = min(t, self.last_stamp + c.max_gap_s)
                self._add(self.last_stamp, end, self.last_ear, self.last_closed80, c.max_samples)
            if gap > c.max_gap_s:
                self.reset_events()
        self.trim(t, c.window_s)
        if math.isfinite(ear):
            self.open_ref = self.ear_open(c, ear)
            self.closure = min(max(1.0 - ear / self.open_ref, 0.0), 1.0)
            self._eyes(t, self.closure, c)
            self.last_closed80 = self.closure >= c.perclos_closure
        else:
            self.closure = math.nan
        if math.isfinite(mar):
            self._mouth(t, mar, c)
        self.last_stamp, self.last_ear = t, ear

    def _eyes(self, t: float, closure: float, c: FatigueConfig) -> None:
        if not self.eyes_closed and closure >= c.blink_closure:
            self.eyes_closed, self.closed_since = True, t
        elif self.eyes_closed and closure < c.blink_closure - c.closure_hysteresis:
            duration = t - self.closed_since
            if c.blink_min_s <= duration <= c.blink_max_s:
                self.blinks.append(t)
            elif duration > c.blink_max_s:
                self.long_closures.append(t)
            self.eyes_closed, self.closed_since = False, None

    def _mouth(self, t: float, mar: float, c: FatigueConfig) -> None:
        if self.mouth_open_since is None:
            if mar > c.mar_yawn:
                self.mouth_open_since, self.yawn_counted = t, False
        elif mar < c.mar_yawn - c.mar_hysteresis:
            self.mouth_open_since, self.yawn_counted = None, False
        if self.mouth_open_since is not None and not self.yawn_counted and t - self.mouth_open_since >= c.yawn_min_s:
            self.yawns.append(t)
            self.yawn_counted = True

    def signals(self, face_id: str, t: float, measured: bool, values: tuple[float, float, float, float],
                c: FatigueConfig) -> FatigueSignals:
        """``values``: this update's (EAR, EAR right, EAR left, MAR)."""
        ear, right, left, mar = (v if measured and math.isfinite(v) else None for v in values)
        enough = self.observed >= c.min_observed_s and self.observed > 0
        return FatigueSignals(
            face_id=face_id, measured=measured, ear=ear, ear_right=right, ear_left=left, mar=mar,
            eye_closure=self.closure if measured and math.isfinite(self.closure) else None,
            eyes_closed=self.eyes_closed, closed_s=t - self.closed_since if self.eyes_closed else 0.0,
            blinks=len(self.blinks),
            blink_rate_per_min=60.0 * len(self.blinks) / self.observed if enough else None,
            long_closures=len(self.long_closures),
            perclos=min(max(self.closed80_time / self.observed, 0.0), 1.0) if enough else None,
            ear_open=self.open_ref,
            yawning=self.mouth_open_since is not None and self.yawn_counted,
            yawns=len(self.yawns), observed_s=max(self.observed, 0.0))


# ------------------------------------------------------------------------------------------------- tracker
class FatigueTracker:
    """Per-face fatigue state keyed by face id (``Face.id`` of the face pipeline). Not thread-safe: one caller.

    ``update(stamp_s, faces)`` takes the faces of one frame (anything with ``id``, ``mesh`` and
    ``mesh_confidence``, e.g. :class:`edge_infer.pipeline.face_pipeline.Face`) and the frame's stamp in seconds
    (the input header's, so that bags and live streams time the same way), and returns each face's signals.
    Faces without an id are skipped (there is nothing to keep their history under).

    Live parameters: assign a new, :meth:`FatigueConfig.check`-ed config to ``tracker.config``; it applies from
    the next update (windows are trimmed to a shorter ``window_s`` then; ``max_samples`` bounds the event stamps
    of faces first seen after the change).
    """

    def __init__(self, config: FatigueConfig | None = None) -> None:
        self.config = config or FatigueConfig()
        self.config.check()
        self._faces: dict[str, _FaceState] = {}  # insertion order = least recently seen first

    def __len__(self) -> int:
        return len(self._faces)

    @property
    def face_ids(self) -> list[str]:
        return list(self._faces)

    def samples(self) -> int:
        """Stored window intervals over all faces (at most max_faces * max_samples; for tests, diagnostics)."""
        return sum(len(s.intervals) for s in self._faces.values())

    def events(self) -> int:
        """Stored blink, long-closure and yawn stamps over all faces (each kind bounded by max_samples per face)."""
        return sum(len(s.blinks) + len(s.long_closures) + len(s.yawns) for s in self._faces.values())

    def reset(self) -> None:
        self._faces.clear()

    def retain(self, face_ids: Iterable[str]) -> None:
        """Forget every face not in ``face_ids`` now. For a caller whose ids are never reused (the face node):
        a face that left the image will not come back under its id, so its state is dropped at once instead of
        after ``forget_after_s``."""
        keep = set(face_ids)
        for face_id in [i for i in self._faces if i not in keep]:
            del self._faces[face_id]

    def update(self, stamp_s: float, faces: Iterable[Any]) -> dict[str, FatigueSignals]:
        stamp = float(stamp_s)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp_s must be finite, not {stamp_s!r}")
        c = self.config
        out: dict[str, FatigueSignals] = {}
        for face in faces:
            face_id = str(getattr(face, "id", "") or "")
            if not face_id or face_id in out:
                continue  # no id (nothing to keep state under), or the id twice in one frame
            mesh, conf = getattr(face, "mesh", None), getattr(face, "mesh_confidence", None)
            measured = mesh is not None and (conf is None or float(conf) >= c.min_mesh_confidence)
            right, left, mar = measure_mesh(mesh) if measured else (math.nan,) * 3
            finite = [e for e in (right, left) if math.isfinite(e)]
            ear = sum(finite) / len(finite) if finite else math.nan  # both eyes' mean, or the one measurable
            measured = measured and (bool(finite) or math.isfinite(mar))
            state = self._faces.pop(face_id, None) or _FaceState(stamp, c.max_samples)
            state.last_seen = stamp
            if measured:
                state.measure(stamp, ear, mar, c)
            else:
                state.trim(stamp, c.window_s)
            self._faces[face_id] = state  # (re-)inserted last: the most recently seen
            out[face_id] = state.signals(face_id, stamp, measured, (ear, right, left, mar), c)
        self._forget(stamp)
        return out

    def _forget(self, now: float) -> None:
        c = self.config
        for face_id in [i for i, s in self._faces.items() if now - s.last_seen > c.forget_after_s
                        or s.last_seen > now + c.forget_after_s]:  # also a clock that jumped back for good
            del self._faces[face_id]
        while len(self._faces) > c.max_faces:
            del self._faces[next(iter(self._faces))]

