"""Every zoo model -> a deploy directory: import/export -> sanitize -> FP16 / INT8 -> validate -> manifest.

Layout: ``<deploy>/<name>/<name>.onnx`` (sanitized fp32), ``<name>.fp16.onnx``, ``<name>.int8.onnx``, one
``*.validation.json`` per file, and ``<deploy>/manifest.json`` (paths, sha256, sizes, verdicts, licences) that
the engine builder and the nodes read. Each step's key is the sha256 of its input files plus its options and
:data:`PIPELINE_VERSION`; ``<deploy>/.convert_state.json`` remembers keys and output hashes, so re-running with
nothing changed only hashes files, and changing one model or option redoes only what depends on it.
A failing variant (e.g. FP16 overflow in an audio front end) is recorded in the manifest with its reason and
not deployed; the other models carry on.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from edge_infer.fileio import atomic_path, atomic_write_json, sha256_bytes, sha256_file
from edge_infer.errors import OfflineError
from edge_infer.offline.inputs import VISION_TASKS

log = logging.getLogger(__name__)

PIPELINE_VERSION = 1  # bump when a step's code changes its output, to invalidate every cache entry
MANIFEST_SCHEMA = "edge_infer/deploy_manifest"
STATE_FILE = ".convert_state.json"
DEFAULT_VARIANTS = ("fp16", "int8")


class _Steps:
    """Runs cacheable steps: skip when the key (input shas + options) and the recorded outputs still match."""

    def __init__(self, deploy: Path, force: bool) -> None:
        self.path = deploy / STATE_FILE
        self.force = force
        try:
            self.state = json.loads(self.path.read_text()) if not force else {}
        except (OSError, ValueError):
            self.state = {}
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def run(self, step: str, inputs: Iterable[Path], options: dict, outputs: Iterable[Path],
            fn: Callable[[], dict]) -> dict:
        inputs, outputs = list(inputs), list(outputs)
        key = sha256_bytes(json.dumps({"v": PIPELINE_VERSION, "step": step, "options": options,
                                       "inputs": [sha256_file(p) for p in inputs]}, sort_keys=True, default=str).encode())
        rec = self.state.get(step)
        if (rec and rec["key"] == key and all(p.is_file() for p in outputs)
                and all(sha256_file(p) == rec["outputs"].get(str(p)) for p in outputs)):
            self.skipped.append(step)
            return rec["result"]
        result = fn()
        self.state[step] = {"key": key, "outputs": {str(p): sha256_file(p) for p in outputs}, "result": result}
        atomic_write_json(self.path, self.state)
        self.ran.append(step)
        return result


def _copy(src: Path, dst: Path) -> dict:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return {"path": str(dst), "from": str(src)}


def _keras_source(spec, models_dir: Path) -> Path | None:
    p = models_dir / ".sources" / Path(spec.source.member).name
    return p if p.is_file() and p.suffix in (".h5", ".hdf5") else None


def _variant_entry(path: Path, deploy: Path, validation: dict | None) -> dict:
    entry: dict[str, Any] = {"path": str(path.relative_to(deploy)), "sha256": sha256_file(path),
                             "size_bytes": path.stat().st_size}
    if validation:
        entry["deployable"] = validation["verdict"] == "pass"  # a failed variant stays listed, never deployed
        entry["validation"] = {"verdict": validation["verdict"], "level": validation["level"],
                               "reference": Path(validation["reference"]).name,
                               "report": str(Path(validation["report"]).relative_to(deploy)),
                               "metrics": validation["metrics"]}
    return entry


def convert_model(spec, models_dir: Path, deploy: Path, steps: _Steps, target: str | None,
                  variants: Iterable[str], images: Path | None) -> dict[str, Any]:
    from edge_infer.offline.export import export_checkpoint
    from edge_infer.offline.quantize import quantize
    from edge_infer.offline.sanitize import sanitize
    from edge_infer.offline.targets import get_target
    from edge_infer.offline.validate import validate

    name, out_dir = spec.name, deploy / spec.name
    tgt = get_target(target).name
    src_onnx = spec.path(models_dir)
    raw = out_dir / f".{name}.raw.onnx"
    entry: dict[str, Any] = {"task": spec.task, "licence": spec.licence, "non_commercial": spec.non_commercial,
                             "source": f"{spec.source.requirement}:{spec.source.member}", "files": {}, "errors": {}}
    ckpt = spec.checkpoint_path(models_dir)
    # 1. export (torch checkpoint) / import (converted zoo ONNX: TFLite and friends) -> raw ONNX
    if ckpt is not None and ckpt.is_file():
        res = steps.run(f"{name}/export", [ckpt], {"target": tgt}, [raw],
                        lambda: export_checkpoint(ckpt, raw, target=tgt))
        entry["origin"] = {"step": "export", "from": ckpt.name, "opset": res["opset"], "architecture": res["architecture"]}
        reference = ckpt
    else:
        if not src_onnx.is_file():
            raise OfflineError(f"{name}: {src_onnx} missing; run `edge-infer zoo fetch {name}` first")
        steps.run(f"{name}/import", [src_onnx], {}, [raw], lambda: _copy(src_onnx, raw))
        entry["origin"] = {"step": "import", "from": src_onnx.name, "convert": spec.convert or "none (ONNX in wheel)"}
        reference = src_onnx
    # 2. sanitize (verified against the raw model inside) -> fp32 deploy file, validated against the source
    fp32 = out_dir / f"{name}.onnx"
    san = steps.run(f"{name}/sanitize", [raw], {"target": tgt}, [fp32],
                    lambda: sanitize(raw, fp32, target=tgt, name=name, models_dir=models_dir, images=images))
    entry["sanitize"] = {k: san[k] for k in ("nodes_before", "nodes_after", "opset", "warnings", "verification")}
    rep = out_dir / f"{name}.validation.json"
    val = steps.run(f"{name}/validate", [fp32, reference], {"level": "exact"}, [rep],
                    lambda: validate(fp32, reference, level="exact", name=name, models_dir=models_dir, images=images,
                                     report=rep))
    entry["files"]["fp32"] = _variant_entry(fp32, deploy, val)
    keras = _keras_source(spec, models_dir)
    if keras is not None:  # an independent implementation of the original (Keras 3) as a second reference
        krep = out_dir / f"{name}.keras_validation.json"
        try:
            kval = steps.run(f"{name}/validate_keras", [fp32, keras], {"level": "exact"}, [krep],
                             lambda: validate(fp32, keras, level="exact", name=name, models_dir=models_dir,
                                              images=images, report=krep))
            entry["files"]["fp32"]["validation_keras"] = {"verdict": kval["verdict"], "max_abs": kval["metrics"]["max_abs"],
                                                          "report": str(krep.relative_to(deploy))}
        except OfflineError as e:
            entry["errors"]["validate_keras"] = str(e)
    # 3. variants, each validated against the fp32 deploy model
    for variant in variants:
        if variant == "int8" and spec.task not in VISION_TASKS:
            entry["errors"][variant] = (f"skipped: static INT8 is calibrated from images; task '{spec.task}' has "
                                        "no image calibration set (use `edge-infer quantize --mode int8-dynamic`)")
            continue
        path, vrep = out_dir / f"{name}.{variant}.onnx", out_dir / f"{name}.{variant}.validation.json"
        try:
            q = steps.run(f"{name}/{variant}", [fp32], {"mode": variant, "images": str(images or "")}, [path],
                          lambda: quantize(fp32, path, variant, calibration=images, name=name, models_dir=models_dir))
            v = steps.run(f"{name}/{variant}/validate", [path, fp32], {"level": variant.split("-")[0]}, [vrep],
                          lambda: validate(path, fp32, level=variant.split("-")[0], name=name, models_dir=models_dir,
                                           images=images, report=vrep))
        except OfflineError as e:
            entry["errors"][variant] = str(e)
            continue
        entry["files"][variant] = _variant_entry(path, deploy, v)
        entry["files"][variant]["reduction_pct"] = q["reduction_pct"]
    return entry


def convert_all(
    deploy_dir: str | Path,
    models_dir: str | Path | None = None,
    names: Iterable[str] | None = None,
    target: str | None = None,
    variants: Iterable[str] = DEFAULT_VARIANTS,
    images: str | Path | None = None,
    zoo_path: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    from tqdm import tqdm

    from edge_infer.models.spec import load_zoo
    from edge_infer.paths import default_models_dir
    from edge_infer.offline.targets import get_target

    t0 = time.perf_counter()
    deploy = Path(deploy_dir).expanduser()
    deploy.mkdir(parents=True, exist_ok=True)
    models_dir = Path(models_dir) if models_dir else default_models_dir()
    zoo = load_zoo(zoo_path)
    specs = [zoo.model(n) for n in names] if names else list(zoo.models.values())
    variants = list(variants)
    for v in variants:
        if v not in ("fp16", "int8", "int8-dynamic"):
            raise OfflineError(f"unknown variant '{v}'; choose from fp16, int8, int8-dynamic")
    steps = _Steps(deploy, force)
    manifest_path = deploy / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    models = manifest.get("models", {}) if manifest.get("schema") == MANIFEST_SCHEMA else {}
    timings: dict[str, float] = {}
    bar = tqdm(specs, desc="convert-all", unit="model", disable=not progress)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        t = time.perf_counter()
        try:
            models[spec.name] = convert_model(spec, models_dir, deploy, steps, target, variants,
                                              Path(images) if images else None)
        except OfflineError as e:
            models[spec.name] = {"task": spec.task, "licence": spec.licence, "files": {}, "errors": {"convert": str(e)}}
        timings[spec.name] = round(time.perf_counter() - t, 2)
    bar.close()
    manifest = {"schema": MANIFEST_SCHEMA, "version": 1, "target": get_target(target).name,
                "pipeline_version": PIPELINE_VERSION, "models": models}
    atomic_write_json(manifest_path, manifest)
    failed = sorted(f"{n}/{k}" for n, m in models.items() for k, f in m["files"].items()
                    if k == "fp32" and f.get("validation", {}).get("verdict") == "fail")
    rejected = sorted(f"{n}/{k}" for n, m in models.items() for k, f in m["files"].items()
                      if k != "fp32" and f.get("validation", {}).get("verdict") == "fail")
    return {"deploy_dir": str(deploy), "manifest": str(manifest_path), "models": sorted(m.name for m in specs),
            "steps_run": len(steps.ran), "steps_skipped": len(steps.skipped), "failed_validations": failed,
            "rejected_variants": rejected,
            "errors": {n: m["errors"] for n, m in models.items() if m.get("errors")},
            "seconds": round(time.perf_counter() - t0, 2), "per_model_seconds": timings}
