"""The FastAPI app: the page, the REST API over :mod:`edge_infer.web.operations` (jobs) and the robot bridge.

`create_app(settings)` builds one app per server (tests build several on one jobs folder to check that jobs
survive a restart). The bodies below are the OpenAPI schema (``api/openapi.json``); refs and defaults are
:mod:`edge_infer.web.operations`'. No ``from __future__ import annotations`` here: FastAPI reads the endpoint
annotations at run time.
"""

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import (FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response,
                               StreamingResponse)
from pydantic import BaseModel, Field

from edge_infer import __version__
from edge_infer.errors import EdgeInferError
from edge_infer.paths import OutsidePathError, inside
from edge_infer.web import operations as ops
from edge_infer.web.jobs import FINAL_STATES, LOG_FILE, JobError, JobFinished, JobManager, progress_of
from edge_infer.web.robot import RobotBridge, RobotCallError, RobotUnavailable, ros_availability
from edge_infer.web.security import UnsafeNameError, bearer, browser_attack, safe_name, token_matches
from edge_infer.web.settings import WebSettings
from edge_infer.web.uploads import TooLarge, UploadError, receive_upload

STATIC_DIR = Path(__file__).resolve().parent / "static"
EVENTS_POLL_S = 0.25


def _status_of(e: EdgeInferError) -> int:
    """HTTP status of a user-facing error (the message is the whole story, as on the CLI)."""
    for cls, code in ((TooLarge, 413), (JobFinished, 409), (JobError, 404), (ops.NotFound, 404),
                      (RobotUnavailable, 503), (UnsafeNameError, 400), (OutsidePathError, 400), (UploadError, 400)):
        if isinstance(e, cls):
            return code
    if isinstance(e, RobotCallError):
        return 404 if "no service" in str(e) else (400 if "transition" in str(e) or "node name" in str(e) else 504)
    return 400


# ------------------------------------------------------------------ bodies (the OpenAPI schema)
class ExportBody(BaseModel):
    checkpoint: str | None = Field(None, description="ref; default: the zoo model's checkpoint")
    opset: int | None = Field(None, ge=11, le=17)
    target: Literal["jetpack4.6", "jetpack5", "jetpack6"] | None = None
    dynamic_batch: bool = True
    output_name: str | None = None
    arch: str | None = Field(None, description="registry architecture name")


class SourceBody(BaseModel):
    source: str | None = Field(None, description="ref of the ONNX; default: the newest fitting output")
    target: Literal["jetpack4.6", "jetpack5", "jetpack6"] | None = None


class QuantizeBody(BaseModel):
    fp16: bool = True
    int8: bool = False
    calibration: str = Field("samples", description="'samples' or a bag ref (upload:<file.mcap|.db3>)")
    topic: str | None = None
    source: str | None = None


class ValidateBody(BaseModel):
    level: Literal["exact", "fp32", "fp16", "int8"] = "fp32"
    source: str | None = None
    reference: str | None = None


class BenchBody(BaseModel):
    batch: list[int] = Field(default_factory=lambda: [1])
    runs: int = Field(50, ge=10, le=1000)
    backends: list[Literal["torch", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt"]] | None = None
    source: str | None = None


class BuildBody(BaseModel):
    precision: Literal["fp32", "fp16", "int8"] = "fp16"
    source: str | None = None


class LifecycleBody(BaseModel):
    transition: Literal["configure", "activate", "deactivate", "cleanup", "shutdown"]


class RootPath:
    """``--root-path /edge`` behind a reverse proxy, whether the proxy strips the prefix (nginx ``proxy_pass
    .../;``, Caddy ``handle_path``) or forwards it: both reach the same routes, and ``/edge`` redirects to
    ``/edge/`` so the page's relative URLs resolve under the prefix. (uvicorn's own root_path handling
    accepts only stripped paths.)"""

    def __init__(self, app, root_path: str) -> None:
        self.app, self.root_path = app, root_path.rstrip("/")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope, root_path=self.root_path)
            path = scope["path"]
            if path == self.root_path and scope["type"] == "http":
                await RedirectResponse(self.root_path + "/")(scope, receive, send)
                return
            if not path.startswith(self.root_path + "/"):
                scope["path"] = self.root_path + path
        await self.app(scope, receive, send)


def create_app(settings: WebSettings, robot: RobotBridge | None = None) -> FastAPI:
    """One server's app; its job manager, models view and robot bridge hang off ``app.state``."""
    jobs = JobManager(settings.jobs_dir, settings.max_parallel)
    models = ops.Models(settings, jobs)
    bridge = robot or RobotBridge()

    @asynccontextmanager
    async def lifespan(_app):
        yield
        jobs.shutdown()
        bridge.stop()

    app = FastAPI(title="edge_infer", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    if settings.root_path:
        app.add_middleware(RootPath, root_path=settings.root_path)
    app.state.jobs, app.state.models, app.state.robot, app.state.settings = jobs, models, bridge, settings

    @app.exception_handler(EdgeInferError)
    async def _user_error(_request: Request, e: EdgeInferError):
        return JSONResponse({"detail": " ".join(str(e).split())}, status_code=_status_of(e))

    def require_token(request: Request) -> None:
        """Every api/ call needs the token when the server has one (localhost too); GET may pass ?token=
        (EventSource, <img> and download links cannot set headers). Without a token: same-origin, loopback Host."""
        if settings.token is None:
            refused = browser_attack(request.method, request.headers.get("host"), request.headers.get("origin"))
            if refused:
                raise HTTPException(403, refused)
            return
        given = bearer(request.headers.get("authorization"))
        if given is None and request.method == "GET":
            given = request.query_params.get("token")
        if not token_matches(settings.token, given):
            raise HTTPException(401, "token required: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

    def job_view(job) -> dict[str, Any]:
        return jobs.view(job)

    # ------------------------------------------------------------------ health, models, uploads
    @api.get("/health")
    def health() -> dict[str, Any]:
        from edge_infer.backends.tensorrt.trt import availability

        ros_ok, ros_reason = ros_availability()
        trt_ok, trt_reason = availability()
        return {"version": __version__, "ros": ros_ok, "ros_reason": ros_reason,
                "token_required": settings.token is not None, "tensorrt": {"present": trt_ok, "reason": trt_reason},
                "max_upload_bytes": settings.max_upload_bytes, "max_parallel": settings.max_parallel}

    @api.get("/models")
    def list_models() -> dict[str, Any]:
        return models.listing()

    @api.get("/models/{name}")
    def model_info(name: str) -> dict[str, Any]:
        return models.model_info(ops.model_name(name))

    @api.post("/uploads", status_code=201)
    async def upload(request: Request) -> dict[str, Any]:
        return await receive_upload(request.stream(), request.headers.get("content-type"),
                                    request.headers.get("content-length"), settings.uploads_dir,
                                    settings.max_upload_bytes)

    # ------------------------------------------------------------------ model operations (202 + a job)
    @api.post("/models/{name}/export-onnx", status_code=202)
    def export_onnx(name: str, body: ExportBody) -> dict[str, Any]:
        return {"job": job_view(models.export_onnx(ops.model_name(name), body.model_dump()))}

    @api.post("/models/{name}/sanitize", status_code=202)
    def sanitize(name: str, body: SourceBody) -> dict[str, Any]:
        return {"job": job_view(models.sanitize(ops.model_name(name), body.model_dump()))}

    @api.post("/models/{name}/quantize", status_code=202)
    def quantize(name: str, body: QuantizeBody) -> dict[str, Any]:
        started = [job_view(j) for j in models.quantize(ops.model_name(name), body.model_dump())]
        return {"job": started[0], "jobs": started}

    @api.post("/models/{name}/validate", status_code=202)
    def validate(name: str, body: ValidateBody) -> dict[str, Any]:
        return {"job": job_view(models.validate(ops.model_name(name), body.model_dump()))}

    @api.post("/models/{name}/bench", status_code=202)
    def bench(name: str, body: BenchBody) -> dict[str, Any]:
        return {"job": job_view(models.bench(ops.model_name(name), body.model_dump()))}

    @api.post("/models/{name}/build", status_code=202)
    def build(name: str, body: BuildBody) -> dict[str, Any]:
        from edge_infer.backends.tensorrt.trt import availability

        ok, reason = availability()  # the check `edge-infer build` and backend `auto` use
        if not ok:
            raise HTTPException(409, f"TensorRT cannot run here: {reason}")
        return {"job": job_view(models.build(ops.model_name(name), body.model_dump()))}

    @api.post("/models/{name}/bundle", status_code=202)
    def bundle(name: str) -> dict[str, Any]:
        return {"job": job_view(models.bundle(ops.model_name(name), {}))}

    # ------------------------------------------------------------------ jobs
    @api.get("/jobs")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [job_view(j) for j in jobs.jobs()]}

    @api.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return job_view(jobs.get(job_id))

    @api.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict[str, Any]:
        return job_view(jobs.cancel(job_id))

    @api.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
    def job_log(job_id: str) -> str:
        jobs.get(job_id)
        return (jobs.folder(job_id) / LOG_FILE).read_text(encoding="utf-8", errors="replace")

    @api.get("/jobs/{job_id}/files/{file}")
    def job_file(job_id: str, file: str):
        jobs.get(job_id)
        name = safe_name(file, "file name")
        path = inside(jobs.folder(job_id), name, f"job {job_id}")
        if name == "job.json" or path.is_symlink() or not path.is_file():
            raise HTTPException(404, f"job {job_id} has no file '{name}'")
        return FileResponse(path, filename=name)

    @api.get("/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request):
        job = jobs.get(job_id)
        log_path = jobs.folder(job_id) / LOG_FILE

        def sse(event: str, data: str) -> str:
            return f"event: {event}\ndata: {data}\n\n"

        async def stream():
            offset, rest, sent = 0, b"", None
            while True:
                final = job.state in FINAL_STATES  # read before the log: a final job's log is complete
                key = (job.state, jobs.queue_position(job.id))
                if key != sent:
                    sent = key
                    yield sse("state", json.dumps(job_view(job), default=str))
                try:
                    with open(log_path, "rb") as f:
                        f.seek(offset)
                        data = f.read(1 << 20)
                except OSError:
                    data = b""
                offset += len(data)
                *lines, rest = (rest + data).split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", errors="replace")
                    yield sse("log", line)
                    fraction = progress_of(line)
                    if fraction is not None:
                        yield sse("progress", json.dumps({"fraction": fraction}))
                if final and len(data) < (1 << 20):
                    if rest:
                        yield sse("log", rest.decode("utf-8", errors="replace"))
                    yield sse("state", json.dumps(job_view(job), default=str))
                    return
                if await request.is_disconnected():
                    return
                if len(data) < (1 << 20):
                    await asyncio.sleep(EVENTS_POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------------ robot
    @api.get("/robot/nodes")
    def robot_nodes() -> dict[str, Any]:
        return {"nodes": bridge.nodes()}

    @api.post("/robot/nodes/{node:path}/lifecycle")
    def robot_lifecycle(node: str, body: LifecycleBody) -> dict[str, Any]:
        return bridge.change_state(node, body.transition)

    @api.post("/robot/nodes/{node:path}/rebuild_engines")
    def robot_rebuild(node: str) -> dict[str, Any]:
        return bridge.rebuild_engines(node)

    @api.get("/robot/nodes/{node:path}/debug_image")
    def robot_debug_image(node: str):
        jpeg = bridge.debug_image(node)
        if jpeg is None:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    app.include_router(api)

    # ------------------------------------------------------------------ the page (no token: it holds no data)
    @app.get("/", include_in_schema=False)
    def index():
        page = STATIC_DIR / "index.html"
        if page.is_file():
            return FileResponse(page, headers={"Cache-Control": "no-cache"})
        return HTMLResponse("<!doctype html><title>edge_infer</title><p>edge_infer UI: the page is not installed "
                            "(edge_infer/web/static/index.html); the API is at <a href='api/openapi.json'>"
                            "api/openapi.json</a>.</p>")

    if STATIC_DIR.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
