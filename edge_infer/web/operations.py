"""Model operations as command lines: which files a request names (refs), what the defaults are, and the argv
of the verb that does it. Nothing here loads a model: the verbs do, in their own processes.

A ref names a file the server may hand to a verb: ``upload:<name>`` (the uploads folder), ``models:<file>``
(the models folder), ``job:<id>/<file>`` (an earlier job's folder). Every ref goes through
:func:`edge_infer.web.security.safe_name` and :func:`edge_infer.paths.inside`, so a request cannot point a verb
at any other file on the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_infer.errors import EdgeInferError
from edge_infer.paths import inside
from edge_infer.web.jobs import Job, JobManager
from edge_infer.web.security import safe_name
from edge_infer.web.settings import WebSettings

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors", ".ckpt", ".bin")
BAG_SUFFIXES = (".mcap", ".db3")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
JETPACK_TARGETS = ("jetpack4.6", "jetpack5", "jetpack6")
LEVELS = ("exact", "fp32", "fp16", "int8")


class RequestError(EdgeInferError, ValueError):
    """A request names something that does not exist or cannot be combined (400/404 with the message)."""


class NotFound(RequestError):
    """A ref or model that is not there (404)."""


def kind_of(name: str) -> str:
    """What an uploaded file is, from its name only (the server never opens it)."""
    low = name.lower()
    if low.endswith(CHECKPOINT_SUFFIXES):
        return "checkpoint"
    if low.endswith(".onnx"):
        return "onnx"
    if low.endswith(BAG_SUFFIXES):
        return "bag"
    if low.endswith(IMAGE_SUFFIXES):
        return "image"
    return "file"


def model_name(raw: str) -> str:
    name = safe_name(raw, "model name")
    if len(name) > 64:
        raise RequestError(f"model name '{name[:64]}...': at most 64 characters")
    return name


@dataclass
class Models:
    """The zoo, the models folder, the uploads and the job outputs, seen as files a verb may be given."""

    settings: WebSettings
    jobs: JobManager
    _zoo: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ zoo and listings
    @property
    def zoo(self):
        if self._zoo is None:
            from edge_infer.models.spec import load_zoo

            self._zoo = load_zoo()
        return self._zoo

    def spec(self, name: str):
        return self.zoo.models.get(name)

    def zoo_entry(self, spec) -> dict[str, Any]:
        mdir = self.settings.models_dir
        files = [spec.file] + ([spec.extra["checkpoint"]] if spec.extra.get("checkpoint") else [])
        return {"name": spec.name, "task": spec.task, "licence": spec.licence, "description": spec.description,
                "files": files, "present": spec.path(mdir).is_file(), "checkpoint": spec.extra.get("checkpoint")}

    def listing(self) -> dict[str, Any]:
        def entries(folder: Path, source: str, prefix: str, kind: str) -> list[dict[str, Any]]:
            out = []
            if folder.is_dir():
                for p in sorted(folder.iterdir()):
                    if p.is_file() and not p.is_symlink() and not p.name.startswith(".") and kind_of(p.name) == kind:
                        out.append({"name": p.name, "size": p.stat().st_size, "source": source, "ref": f"{prefix}:{p.name}"})
            return out

        up, md = self.settings.uploads_dir, self.settings.models_dir
        return {
            "zoo": [self.zoo_entry(s) for s in self.zoo.models.values()],
            "checkpoints": entries(up, "upload", "upload", "checkpoint") + entries(md, "models_dir", "models", "checkpoint"),
            "onnx": entries(up, "upload", "upload", "onnx") + entries(md, "models_dir", "models", "onnx"),
            "bags": entries(up, "upload", "upload", "bag"),
        }

    # ------------------------------------------------------------------ refs
    def resolve(self, ref: str, what: str) -> Path:
        """The file a ref names (it must exist and be a regular file inside its folder)."""
        if not isinstance(ref, str) or not ref:
            raise RequestError(f"{what}: empty reference")
        kind, _, rest = ref.partition(":") if ":" in ref else ("", "", ref)
        if kind == "job":
            job_id, _, file = rest.partition("/")
            folder = self.jobs.folder(job_id)  # refuses anything but a job id
            path = inside(folder, safe_name(file, what), what)
        elif kind == "upload":
            path = inside(self.settings.uploads_dir, safe_name(rest, what), what)
        elif kind == "models":
            path = inside(self.settings.models_dir, safe_name(rest, what), what)
        elif kind == "":
            name = safe_name(rest, what)
            path = self.settings.uploads_dir / name
            if not path.is_file():
                path = self.settings.models_dir / name
        else:
            raise RequestError(f"{what}: '{ref[:80]}' is not upload:<name>, models:<file> or job:<id>/<file>")
        if path.is_symlink() or not path.is_file():
            raise NotFound(f"{what}: '{ref[:80]}' not found")
        return path

    def ref_of(self, job: Job | None) -> str | None:
        return f"job:{job.id}/{job.output}" if job is not None and job.output else None

    # ------------------------------------------------------------------ newest outputs of a model name
    def latest_fp32(self, name: str) -> Job | None:
        return self.jobs.latest(name, ("sanitize",)) or self.jobs.latest(name, ("export-onnx",))

    def latest_quantized(self, name: str, mode: str) -> Job | None:
        return self.jobs.latest(name, ("quantize",), lambda j: j.inputs.get("mode") == mode)

    def latest(self, name: str) -> dict[str, str | None]:
        export = self.jobs.latest(name, ("export-onnx",))
        return {"onnx": self.ref_of(export), "sanitized": self.ref_of(self.jobs.latest(name, ("sanitize",))),
                "fp16": self.ref_of(self.latest_quantized(name, "fp16")),
                "int8": self.ref_of(self.latest_quantized(name, "int8")),
                "benchmark": self.ref_of(self.jobs.latest(name, ("bench",))),
                "bundle": self.ref_of(self.jobs.latest(name, ("bundle",)))}

    def model_info(self, name: str) -> dict[str, Any]:
        spec = self.spec(name)
        export = self.jobs.latest(name, ("export-onnx",))
        if spec is None and export is None and not any(j.model == name for j in self.jobs.jobs()):
            raise NotFound(f"no zoo model or job named '{name}'")
        return {"name": name, "zoo": self.zoo_entry(spec) if spec else None, "latest": self.latest(name),
                "info": export.result if export else None}

    def _zoo_onnx(self, name: str) -> Path:
        spec = self.spec(name)
        if spec is None:
            raise NotFound(f"'{name}' is no zoo model and has no exported ONNX yet: export one first or give a source")
        path = spec.path(self.settings.models_dir)
        if not path.is_file():
            raise NotFound(f"{path.name} is not in the models folder (edge-infer zoo fetch)")
        return path

    def _checkpoint_default(self, name: str) -> Path:
        spec = self.spec(name)
        ckpt = spec.checkpoint_path(self.settings.models_dir) if spec is not None else None
        if ckpt is None or not ckpt.is_file():
            raise RequestError(f"'{name}': give a checkpoint (an upload or a models-folder file); "
                               "this name has no zoo checkpoint")
        return ckpt

    def _job_file(self, job: Job) -> Path:
        return self.jobs.folder(job.id) / job.output

    # ------------------------------------------------------------------ operations -> jobs
    def _md(self) -> list[str]:
        return ["--models-dir", str(self.settings.models_dir)]

    def _zoo_name(self, name: str) -> list[str]:
        return ["--name", name] if self.spec(name) is not None else []

    def export_onnx(self, name: str, body: dict[str, Any]) -> Job:
        ckpt = self.resolve(body["checkpoint"], "checkpoint") if body.get("checkpoint") else self._checkpoint_default(name)
        out = safe_name(body.get("output_name") or f"{name}.onnx", "output_name")
        if not out.endswith(".onnx"):
            out += ".onnx"
        args = ["export", str(ckpt), out]
        if body.get("target"):
            args += ["--target", _choice(body["target"], JETPACK_TARGETS, "target")]
        if body.get("opset") is not None:
            opset = int(body["opset"])
            if not 11 <= opset <= 17:
                raise RequestError(f"opset {opset}: choose 11..17 (or a JetPack target)")
            args += ["--opset", str(opset)]
        if body.get("dynamic_batch") is False:
            args.append("--static-batch")
        if body.get("arch"):
            arch = str(body["arch"])
            if ":" in arch or "." in arch:  # package.module:Class imports code: CLI only, with --trust-checkpoint
                raise RequestError("arch: registry names only (e.g. mini_xception); class paths run code")
            args += ["--arch", arch]
        return self.jobs.submit("export-onnx", args, name, out, inputs={"checkpoint": str(ckpt)})

    def sanitize(self, name: str, body: dict[str, Any]) -> Job:
        src, src_job = self._source(name, body, lambda: self.jobs.latest(name, ("export-onnx",)))
        out = f"{Path(src.name).stem.removesuffix('.sanitized')}.sanitized.onnx"
        args = ["sanitize", str(src), out, *self._zoo_name(name), *self._md()]
        if body.get("target"):
            args += ["--target", _choice(body["target"], JETPACK_TARGETS, "target")]
        return self.jobs.submit("sanitize", args, name, out, inputs=self._inputs(src, src_job))

    def quantize(self, name: str, body: dict[str, Any]) -> list[Job]:
        modes = [m for m in ("fp16", "int8") if body.get(m)]
        if not modes:
            raise RequestError("choose fp16 and/or int8")
        src, src_job = self._source(name, body, lambda: self.latest_fp32(name))
        calibration = body.get("calibration") or "samples"
        calib_args: list[str] = []
        if calibration != "samples":
            bag = self.resolve(calibration, "calibration")
            if kind_of(bag.name) != "bag":
                raise RequestError("calibration: 'samples' or an uploaded bag file (.mcap / .db3)")
            if not body.get("topic"):
                raise RequestError("calibration from a bag needs 'topic' (an Image or CompressedImage topic)")
            calib_args = ["--calib-bag", str(bag), "--topic", str(body["topic"])]
        jobs = []
        for mode in modes:
            out = f"{name}.{mode}.onnx"
            args = ["quantize", str(src), out, "--mode", mode, *self._zoo_name(name), *self._md()]
            if mode == "int8":
                args += calib_args
            jobs.append(self.jobs.submit("quantize", args, name, out, inputs={**self._inputs(src, src_job), "mode": mode},
                                         summarize=_quantize_summary))
        return jobs

    def validate(self, name: str, body: dict[str, Any]) -> Job:
        level = _choice(body.get("level") or "fp32", LEVELS, "level")
        if level in ("fp16", "int8"):
            src, src_job = self._source(name, body, lambda: self.latest_quantized(name, level))
            default_ref = src_job.inputs.get("source") if src_job else None
        else:
            src, src_job = self._source(name, body, lambda: self.latest_fp32(name))
            default_ref = self._export_checkpoint(src_job)
        if body.get("reference"):
            reference = self.resolve(body["reference"], "reference")
        elif default_ref and Path(default_ref).is_file():
            reference = Path(default_ref)
        elif level in ("fp32", "exact") and self.spec(name) is not None:
            reference = self._checkpoint_default(name)
        else:
            raise RequestError("give 'reference': the model or checkpoint to validate against")
        args = ["validate", str(src), str(reference), "--level", level, *self._zoo_name(name), *self._md(),
                "--report", "validation.json"]
        return self.jobs.submit("validate", args, name, "validation.json",
                                inputs={**self._inputs(src, src_job), "reference": str(reference)})

    def bench(self, name: str, body: dict[str, Any]) -> Job:
        from edge_infer.backends.tensorrt.trt import availability

        files = [self._job_file(j) for j in (self.latest_fp32(name), self.latest_quantized(name, "fp16"),
                                               self.latest_quantized(name, "int8")) if j is not None]
        if body.get("source"):
            files = [self.resolve(body["source"], "source")]
        if files:
            models = [str(f) for f in files]
        else:
            self._zoo_onnx(name)  # present, else 404 with how to get it
            models = [name]  # a zoo name: the verb finds its torch column (the zoo checkpoint) itself
        backends = body.get("backends") or ["torch", "onnxruntime"] + (["tensorrt"] if availability()[0] else [])
        batches = [int(b) for b in (body.get("batch") or [1])]
        runs = max(10, min(int(body.get("runs") or 50), 1000))
        args = ["bench", "model", *models, "--backends", ",".join(backends), "--batch", ",".join(map(str, batches)),
                "--runs", str(runs), "--warmup", "5", "--max-seconds", "5", "--out", ".", *self._md()]
        ckpt = self._export_checkpoint(self.jobs.latest(name, ("export-onnx",)))
        if ckpt is None and self.spec(name) is not None:
            with_ckpt = self.spec(name).checkpoint_path(self.settings.models_dir)
            ckpt = str(with_ckpt) if with_ckpt is not None and with_ckpt.is_file() else None
        if ckpt and files:
            for f in files:
                args += ["--torch-model", f"{Path(f).stem}={ckpt}"]
        return self.jobs.submit("bench", args, name, "benchmark.json", inputs={"models": ",".join(models)},
                                summarize=_bench_summary)

    def build(self, name: str, body: dict[str, Any]) -> Job:
        precision = _choice(body.get("precision") or "fp16", ("fp32", "fp16", "int8"), "precision")
        if precision == "int8":
            src, src_job = self._source(name, body, lambda: self.latest_quantized(name, "int8"))
        else:
            src, src_job = self._source(name, body, lambda: self.latest_fp32(name))
        out = f"{Path(src.name).stem}.{precision}.engine"
        args = ["build", str(src), "--precision", precision, "-o", out, "--engine-dir", ".", *self._md()]
        return self.jobs.submit("build", args, name, out, inputs=self._inputs(src, src_job))

    def bundle(self, name: str, body: dict[str, Any]) -> Job:
        files = [self._job_file(j) for j in (self.latest_fp32(name), self.latest_quantized(name, "fp16"),
                                               self.latest_quantized(name, "int8")) if j is not None]
        out = f"{name}.bundle.tar.gz"
        if files:
            args = ["bundle", str(files[0]), "-o", out, "--files", *map(str, files[1:])]
        else:
            self._zoo_onnx(name)
            args = ["bundle", name, "-o", out]
        bench = self.jobs.latest(name, ("bench",))
        if bench is not None:
            args += ["--benchmark", str(self._job_file(bench))]
        args += self._md()
        return self.jobs.submit("bundle", args, name, out)

    # ------------------------------------------------------------------ helpers
    def _source(self, name: str, body: dict[str, Any], newest) -> tuple[Path, Job | None]:
        """The ONNX a request works on: its ``source`` ref, else the newest fitting output, else the zoo file."""
        if body.get("source"):
            return self.resolve(body["source"], "source"), None
        job = newest()
        if job is not None:
            return self._job_file(job), job
        return self._zoo_onnx(name), None

    def _inputs(self, src: Path, src_job: Job | None) -> dict[str, str]:
        d = {"source": str(src)}
        if src_job is not None and src_job.inputs.get("checkpoint"):
            d["checkpoint"] = src_job.inputs["checkpoint"]
        return d

    def _export_checkpoint(self, job: Job | None) -> str | None:
        return job.inputs.get("checkpoint") if job is not None else None


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise RequestError(f"{what} '{str(value)[:40]}': choose one of {', '.join(choices)}")
    return value


def _quantize_summary(job: Job, folder: Path) -> dict[str, Any] | None:
    r = job.result if isinstance(job.result, dict) else {}
    keys = ("mode", "size_before", "size_bytes", "reduction_pct")
    return {k: r.get(k) for k in keys} if r else None


def _bench_summary(job: Job, folder: Path) -> dict[str, Any]:
    """The benchmark table the page shows: one row per file x runtime x batch, speed-up vs torch."""
    r = job.result if isinstance(job.result, dict) else {}
    rows = []
    for m in r.get("models", []):
        for rec in m.get("results", []):
            lat = rec.get("latency_ms") or {}
            rows.append({"file": m.get("onnx"), "model": m.get("model"), "backend": rec.get("backend"),
                         "batch": rec.get("batch"), "status": rec.get("status"), "p50_ms": lat.get("p50"),
                         "p99_ms": lat.get("p99"), "mean_ms": lat.get("mean"), "fps": rec.get("fps"),
                         "speedup_vs_torch": rec.get("speedup_vs_torch"), "reason": rec.get("reason")})
    return {"rows": rows, "plot": "benchmark.png" if (folder / "benchmark.png").is_file() else None}
