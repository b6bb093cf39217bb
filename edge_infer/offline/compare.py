"""The one comparator: a model's outputs against a reference's, numbers and task agreement, judged by one table.

Numbers alone mislead both ways: FP16 differs by 1e-3 yet gives the same emotions, and a 1e-6 difference
can flip a face score at the threshold. So a comparison reports max/mean absolute differences per output *and*
what the robot consumes: detector boxes (IoU, score), emotion top-1 and probabilities, mesh normalised mean
error (by inter-ocular distance), VAD / wake-word decisions. Each metric is checked against the threshold of
the chosen level in :data:`LEVELS`, the only tolerance table: ``validate`` and ``sanitize`` (a model against
its source), ``selftest`` (a TensorRT engine against ONNX Runtime) and ``bench model`` (``max_abs_diff``
column) all go through this module.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from edge_infer.errors import OfflineError

Outputs = Mapping[str, np.ndarray]

# metric -> (comparison, threshold) per level; metrics a task does not produce are skipped.
# exact: same graph transformed (export, sanitize): equal to float rounding.
# fp32:  the same fp32 model on another runtime or device (TensorRT may use TF32 on Ampere and newer).
# fp16 / int8: reduced precision variants; judged by what the robot consumes, numbers where the task is unknown.
LEVELS: dict[str, dict[str, tuple[str, float]]] = {
    "exact": {"finite_outputs": (">=", 1.0), "max_abs": ("<=", 1e-5), "top1_agreement": (">=", 1.0),
              "face_count_agreement": (">=", 1.0), "presence_agreement": (">=", 1.0),
              "decision_agreement": (">=", 1.0)},
    "fp32": {"finite_outputs": (">=", 1.0), "max_abs": ("<=", 1e-3), "top1_agreement": (">=", 1.0),
             "face_count_agreement": (">=", 1.0), "presence_agreement": (">=", 1.0),
             "decision_agreement": (">=", 1.0)},
    "fp16": {"finite_outputs": (">=", 1.0), "rel_rms_error": ("<=", 0.01), "top1_agreement": (">=", 1.0),
             "prob_diff_max": ("<=", 2e-2), "face_count_agreement": (">=", 1.0), "box_iou_min": (">=", 0.95),
             "score_diff_max": ("<=", 0.01), "mesh_nme_mean": ("<=", 0.01), "presence_agreement": (">=", 1.0),
             "decision_agreement": (">=", 1.0)},
    "int8": {"finite_outputs": (">=", 1.0), "rel_rms_error": ("<=", 0.1), "top1_agreement": (">=", 0.8),
             "prob_diff_max": ("<=", 1e-1), "face_count_agreement": (">=", 1.0), "box_iou_min": (">=", 0.8),
             "score_diff_max": ("<=", 0.1), "mesh_nme_mean": ("<=", 0.05), "presence_agreement": (">=", 1.0),
             "decision_agreement": (">=", 0.9)},
}
EXACT_ATOL = LEVELS["exact"]["max_abs"][1]


# ------------------------------------------------------------------------------------------------ task metrics
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a [4] with boxes b [K,4]."""
    lt, rb = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def detection_metrics(feeds: Sequence[Outputs], refs: Sequence[Outputs], tests: Sequence[Outputs]) -> dict[str, float]:
    """Faces decoded from both: count agreement per input, worst box IoU and score difference."""
    from edge_infer.models import retinaface as rf

    same, ious, sdiffs, faces = 0, [], [], 0
    for feed, r, t in zip(feeds, refs, tests):
        h, w = next(iter(feed.values())).shape[2:]
        anchors = rf.anchors_for((int(w), int(h)))
        dr = rf.decode(r[rf.LOC][0], r[rf.CONF][0], r[rf.LANDMARKS][0], anchors)
        dt = rf.decode(t[rf.LOC][0], t[rf.CONF][0], t[rf.LANDMARKS][0], anchors)
        same += len(dr) == len(dt)
        faces += len(dr)
        for box, score in zip(dr.boxes, dr.scores):
            if len(dt) == 0:
                ious.append(0.0)
                sdiffs.append(float(score))
                continue
            iou = _iou(box, dt.boxes)
            j = int(iou.argmax())
            ious.append(float(iou[j]))
            sdiffs.append(float(abs(score - dt.scores[j])))
    return {"faces_reference": faces, "face_count_agreement": same / max(len(refs), 1),
            "box_iou_min": min(ious) if ious else 1.0, "box_iou_mean": float(np.mean(ious)) if ious else 1.0,
            "score_diff_max": max(sdiffs) if sdiffs else 0.0}


def _cat(outs: Sequence[Outputs], name: str) -> np.ndarray:
    return np.concatenate([np.asarray(o[name]).reshape(len(o[name]) if np.ndim(o[name]) else 1, -1) for o in outs])


def emotion_metrics(refs: Sequence[Outputs], tests: Sequence[Outputs], name: str) -> dict[str, float]:
    r, t = _cat(refs, name), _cat(tests, name)
    return {"samples": len(r), "top1_agreement": float(np.mean(r.argmax(1) == t.argmax(1))),
            "prob_diff_max": float(np.abs(r - t).max())}


def mesh_metrics(refs: Sequence[Outputs], tests: Sequence[Outputs], names: Sequence[str]) -> dict[str, float]:
    from edge_infer.models.face_mesh import EYE_CORNERS, NUM_LANDMARKS

    lm = next(n for n in names if _cat(refs, n).shape[1] % 3 == 0 and _cat(refs, n).shape[1] >= NUM_LANDMARKS * 3)
    r, t = _cat(refs, lm), _cat(tests, lm)
    r, t = r.reshape(len(r), -1, 3), t.reshape(len(t), -1, 3)
    iod = np.linalg.norm(r[:, EYE_CORNERS[0], :2] - r[:, EYE_CORNERS[1], :2], axis=1)
    nme = np.linalg.norm(r[..., :2] - t[..., :2], axis=2).mean(1) / np.maximum(iod, 1e-6)
    out = {"samples": len(r), "mesh_nme_mean": float(nme.mean()), "mesh_nme_max": float(nme.max())}
    flag = next((n for n in names if n != lm and _cat(refs, n).shape[1] == 1), None)
    if flag:
        out["presence_agreement"] = float(np.mean((_cat(refs, flag) > 0) == (_cat(tests, flag) > 0)))
    return out


def decision_metrics(refs: Sequence[Outputs], tests: Sequence[Outputs], name: str, threshold: float = 0.5) -> dict[str, float]:
    r, t = _cat(refs, name), _cat(tests, name)
    return {"samples": len(r), "decision_agreement": float(np.mean((r > threshold) == (t > threshold))),
            "positives_reference": int((r > threshold).sum()), "prob_diff_max": float(np.abs(r - t).max())}


def task_metrics(task: str, feeds: Sequence[Outputs], refs: Sequence[Outputs], tests: Sequence[Outputs],
                 output_names: Sequence[str]) -> dict[str, float]:
    """What the robot consumes, compared; {} for a task without a known meaning."""
    from edge_infer.models import retinaface as rf

    if task == "face_detection" and {rf.LOC, rf.CONF, rf.LANDMARKS} <= set(output_names):
        return detection_metrics(feeds, refs, tests)
    if task == "emotion":
        return emotion_metrics(refs, tests, output_names[0])
    if task == "face_mesh":
        return mesh_metrics(refs, tests, output_names)
    if task in ("vad", "wake_word"):
        return decision_metrics(refs, tests, output_names[0])
    return {}


# ------------------------------------------------------------------------------------------------ numbers
def numeric_diffs(refs: Sequence[Outputs], tests: Sequence[Outputs], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per output: max/mean |diff|, relative RMS error (rms diff / rms reference) and whether all are finite."""
    out = {}
    for n in names:
        ref = np.concatenate([np.asarray(r[n], np.float64).ravel() for r in refs])
        test = np.concatenate([np.asarray(t[n], np.float64).ravel() for t in tests])
        d = np.abs(ref - test)
        rms_ref = float(np.sqrt(np.mean(ref ** 2))) if ref.size else 0.0
        out[n] = {"max_abs": float(d.max()) if d.size else 0.0, "mean_abs": float(d.mean()) if d.size else 0.0,
                  "rel_rms_error": float(np.sqrt(np.mean(d ** 2)) / rms_ref) if rms_ref > 0 else float(d.max(initial=0)),
                  "finite": bool(np.isfinite(test).all())}
    return out


def max_abs_diff(out: Outputs, ref: Outputs) -> float | None:
    """Largest |difference| over the outputs both have (by name, else by position); None if none compare."""
    pairs = [(out[k], ref[k]) for k in ref if k in out] or list(zip(out.values(), ref.values()))
    diffs = [float(np.max(np.abs(np.asarray(x, np.float64).reshape(-1) - np.asarray(y, np.float64).reshape(-1))))
             for x, y in pairs if np.size(x) == np.size(y) and np.size(x)]
    return max(diffs) if diffs else None


# ------------------------------------------------------------------------------------------------ verdicts
def checks_for(level: str, metrics: Mapping[str, float], atol: float | None = None) -> list[dict[str, Any]]:
    """One entry per metric of ``level`` that ``metrics`` has; ``atol`` overrides the level's max_abs."""
    if level not in LEVELS:
        raise OfflineError(f"unknown comparison level '{level}'; choose one of {sorted(LEVELS)}")
    out = []
    for metric, (op, thr) in LEVELS[level].items():
        if metric == "max_abs" and atol is not None:
            thr = atol
        if metric not in metrics:
            continue
        v = metrics[metric]
        ok = v <= thr if op == "<=" else v >= thr
        out.append({"metric": metric, "value": v, "op": op, "threshold": thr, "pass": bool(ok)})
    return out


def compare(refs: Sequence[Outputs], tests: Sequence[Outputs], output_names: Sequence[str], task: str = "generic",
            feeds: Sequence[Outputs] = (), level: str = "exact", atol: float | None = None) -> dict[str, Any]:
    """Compare per-input output dicts (same names, same inputs) and judge them at ``level``.

    Returns ``outputs`` (per-output numbers), ``metrics`` (summary + task metrics), ``checks`` and ``verdict``.
    """
    if not refs or len(refs) != len(tests):
        raise OfflineError(f"nothing to compare: {len(refs)} reference and {len(tests)} test results")
    for n in output_names:
        if np.shape(refs[0][n]) != np.shape(tests[0][n]):
            raise OfflineError(f"output shape mismatch for '{n}': model {np.shape(tests[0][n])}, "
                               f"reference {np.shape(refs[0][n])}")
    diffs = numeric_diffs(refs, tests, output_names)
    metrics: dict[str, Any] = {"max_abs": max(d["max_abs"] for d in diffs.values()),
                               "mean_abs": float(np.mean([d["mean_abs"] for d in diffs.values()])),
                               "finite_outputs": float(all(d["finite"] for d in diffs.values()))}
    tm = task_metrics(task, feeds, refs, tests, output_names)
    if not tm:  # no task-level meaning known: judge FP16/INT8 by the relative error of the raw outputs
        metrics["rel_rms_error"] = max(d["rel_rms_error"] for d in diffs.values())
    metrics.update(tm)
    checks = checks_for(level, metrics, atol)
    return {"outputs": diffs, "metrics": metrics, "checks": checks,
            "verdict": "pass" if all(c["pass"] for c in checks) else "fail"}
