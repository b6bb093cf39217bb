"""Frames of several cameras through the face models together: each model runs once per round on the inputs of
every frame that needs it (one detector call for all cameras due a detection, one mesh call over all faces of
all cameras, one emotion call), as NVIDIA DeepStream's stream muxer batches frames of N sources.

Each camera keeps its own :class:`~edge_infer.pipeline.face_pipeline.FacePipeline` (its own tracking state) over
the same backends; a frame's logic is the one in ``FacePipeline.steps``, which yields the model calls it needs.
This module only runs those calls: calls for the same backend and input shape are concatenated along the batch
axis, run once, and the outputs are split back. Rounds follow the model order (detector, then mesh, then
emotion): a frame already at its mesh step waits while another camera's frame is detected, so both meshes go
in one call; that changes when a call runs, never what it computes.

If a batched call fails (e.g. a TensorRT engine whose profile allows fewer images), each frame's call is run
alone, so one frame's error stays that frame's (a stage can still handle it, as the small re-detection does).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge_infer.pipeline.face_pipeline import FaceFrameResult, FacePipeline, ModelCall
from edge_infer.pipeline.frames import Frame
from edge_infer.pipeline.latency import FrameTimer

log = logging.getLogger(__name__)

#: the order rounds follow: a call waits while a call of an earlier model is pending for another frame
STAGE_ORDER = {"detector": 0, "mesh": 1, "emotion": 2}


@dataclass
class BatchStats:
    """What one :func:`process_frames` did: model calls run, and how many frames' calls they carried."""

    calls: int = 0
    batched_calls: int = 0  # calls that carried the inputs of more than one frame
    frames_in_batches: int = 0  # frames' calls carried by those
    fallbacks: int = 0  # batched calls that failed and were re-run frame by frame

    def add(self, other: "BatchStats") -> None:
        self.calls += other.calls
        self.batched_calls += other.batched_calls
        self.frames_in_batches += other.frames_in_batches
        self.fallbacks += other.fallbacks


def _key(call: ModelCall) -> tuple:
    """Calls that can share one run: same backend, same inputs except the batch size."""
    return (id(call.backend), call.stage, call.output_names and tuple(call.output_names),
            tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(call.feeds.items())))


def _run_one(call: ModelCall) -> dict[str, np.ndarray] | BaseException:
    try:
        return call.backend.run(call.feeds, call.output_names)
    except Exception as e:  # handed to the frame's stage, which may handle it
        return e


def _run_together(calls: list[ModelCall], stats: BatchStats) -> list[dict[str, np.ndarray] | BaseException]:
    """One run for ``calls`` (same key), outputs split back per call; frame by frame if the batch fails."""
    stats.calls += 1
    if len(calls) == 1:
        return [_run_one(calls[0])]
    sizes = [c.batch for c in calls]
    feeds = {name: np.concatenate([c.feeds[name] for c in calls]) for name in calls[0].feeds}
    total = sum(sizes)
    try:
        out = calls[0].backend.run(feeds, calls[0].output_names)
        if any(np.asarray(v).shape[:1] != (total,) for v in out.values()):
            raise ValueError(f"outputs {({k: np.asarray(v).shape for k, v in out.items()})} do not have the batch "
                             f"axis {total} first")
    except Exception as e:
        stats.fallbacks += 1
        log.warning("batched %s call over %d frames failed (%s: %s); running them one by one",
                    calls[0].stage, len(calls), type(e).__name__, e)
        stats.calls += len(calls) - 1
        return [_run_one(c) for c in calls]
    stats.batched_calls += 1
    stats.frames_in_batches += len(calls)
    bounds = np.cumsum([0, *sizes])
    return [{k: v[a:b] for k, v in out.items()} for a, b in zip(bounds[:-1], bounds[1:])]


def process_frames(jobs: Sequence[tuple[FacePipeline, Frame, FrameTimer]],
                   stats: BatchStats | None = None) -> list[FaceFrameResult | BaseException]:
    """Results of one frame per job (a pipeline may appear once), in job order.

    A job whose frame failed gets its exception in its place; the other jobs are not affected. Each frame's
    timer gets its own pre/post-processing time and the whole time of every model run that carried its inputs
    (the latency that frame saw).
    """
    stats = stats if stats is not None else BatchStats()
    steps = [pipeline.steps(frame, timer) for pipeline, frame, timer in jobs]
    results: list[FaceFrameResult | BaseException | None] = [None] * len(jobs)
    pending: dict[int, ModelCall] = {}

    def advance(i: int, value=None) -> None:
        try:
            call = steps[i].throw(value) if isinstance(value, BaseException) else steps[i].send(value)
        except StopIteration as done:
            results[i] = done.value
        except Exception as e:  # this frame failed; the others go on
            results[i] = e
        else:
            pending[i] = call

    for i in range(len(jobs)):
        advance(i)
    while pending:
        first = min(STAGE_ORDER.get(c.stage, len(STAGE_ORDER)) for c in pending.values())
        now = [i for i, c in pending.items() if STAGE_ORDER.get(c.stage, len(STAGE_ORDER)) == first]
        groups: dict[tuple, list[int]] = {}
        for i in now:
            groups.setdefault(_key(pending[i]), []).append(i)
        for members in groups.values():
            calls = [pending.pop(i) for i in members]
            t0 = time.perf_counter()
            outputs = _run_together(calls, stats)
            ms = (time.perf_counter() - t0) * 1e3
            for i, call, out in zip(members, calls, outputs):
                jobs[i][2].add(call.stage, ms)
                advance(i, out)
    return results  # type: ignore[return-value]
