"""Jobs: each model operation is the existing ``edge-infer <verb> ... --json`` in its own process.

Why subprocesses: a verb that crashes, leaks or hangs takes nothing of the server with it, Cancel is a signal to
a process group (every child of the verb goes too), the server never loads an uploaded file, and what a job
does is exactly what the same command line does in a terminal (its argv is shown).

Each job has a folder ``<jobs dir>/<id>/``: the verb runs there (outputs are relative names), ``job.json`` is
rewritten atomically on every change and ``log.txt`` gets the verb's stderr line by line, so a closed browser or
a restarted server loses nothing: :class:`JobManager` reads the folders back at start, and a job that was
queued or running when the server stopped is marked failed ("server restarted"), its process group killed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from edge_infer.errors import EdgeInferError
from edge_infer.fileio import atomic_write_json

JOB_FILE = "job.json"
LOG_FILE = "log.txt"
RESULT_FILE = "result.json"
FINAL_STATES = ("succeeded", "failed", "cancelled")
MAX_STDOUT_BYTES = 32 << 20  # a verb's JSON result; more is not a result
KILL_GRACE_S = 5.0
JOB_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
# tqdm: " 45%|####      | 45/100 [00:01<00:02, ...]"
TQDM = re.compile(r"(\d{1,3})%\|.*?\|\s*(\d+)/(\d+)")


class JobError(EdgeInferError):
    """No such job (404)."""


class JobFinished(JobError):
    """Cancel of a job that already ended (409)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def progress_of(line: str) -> float | None:
    """The fraction done that a tqdm line shows, else None."""
    m = TQDM.search(line)
    if not m:
        return None
    done, total = int(m.group(2)), int(m.group(3))
    return round(done / total, 4) if total else None


@dataclass
class Job:
    """One run of a verb; everything here is what ``job.json`` holds."""

    id: str
    verb: str
    args: list[str]
    model: str
    output: str | None = None
    state: str = "queued"
    created: str = field(default_factory=now_iso)
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    result: Any = None
    error: str | None = None
    summary: Any = None
    inputs: dict[str, str] = field(default_factory=dict)  # what the job read (e.g. checkpoint, source): for defaults

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


Summarizer = Callable[[Job, Path], Any]


class JobManager:
    """Runs jobs FIFO, at most ``max_parallel`` at a time; thread-safe (endpoints run in a thread pool)."""

    def __init__(self, jobs_dir: Path, max_parallel: int = 1, python: str = sys.executable) -> None:
        self.jobs_dir = Path(jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.max_parallel = max(1, int(max_parallel))
        self.python = python
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[str] = []
        self._procs: dict[str, subprocess.Popen] = {}
        self._done: dict[str, threading.Event] = {}
        self._cancelled: set[str] = set()
        self._summarizers: dict[str, Summarizer] = {}
        self._stopping = False
        self._load()

    # ------------------------------------------------------------------ persistence
    def folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise JobError(f"no job '{str(job_id)[:40]}'")
        return self.jobs_dir / job_id

    def _save(self, job: Job) -> None:
        atomic_write_json(self.folder(job.id) / JOB_FILE, asdict(job))

    def _load(self) -> None:
        for f in sorted(self.jobs_dir.glob(f"*/{JOB_FILE}")):
            if not JOB_ID.match(f.parent.name):
                continue
            try:
                job = Job.from_dict(json.loads(f.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                continue  # a folder someone else wrote: not ours to show
            if job.id != f.parent.name:
                continue
            if job.state not in FINAL_STATES:
                self._kill_orphan(job)
                job.state, job.error, job.finished = "failed", "server restarted", now_iso()
                self._save(job)
            self._jobs[job.id] = job

    def _kill_orphan(self, job: Job) -> None:
        """The previous server's verb process may still run (its own session): stop it, if it is that process."""
        if not job.pid:
            return
        try:
            if Path(f"/proc/{job.pid}/cwd").resolve() != self.folder(job.id).resolve():
                return  # the pid was reused by something else
            os.killpg(job.pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ queries
    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobError(f"no job '{str(job_id)[:40]}'")
        return job

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.id, reverse=True)

    def queue_position(self, job_id: str) -> int | None:
        with self._lock:
            return self._queue.index(job_id) + 1 if job_id in self._queue else None

    def files(self, job_id: str) -> list[dict[str, Any]]:
        folder = self.folder(job_id)
        out = []
        for p in sorted(folder.iterdir()) if folder.is_dir() else []:
            if p.name.startswith(".") or p.name == JOB_FILE or p.is_symlink() or not p.is_file():
                continue
            out.append({"name": p.name, "size": p.stat().st_size})
        return out

    def view(self, job: Job) -> dict[str, Any]:
        """The API's Job object."""
        d = asdict(job)
        d.pop("inputs", None)
        d["queue_position"] = self.queue_position(job.id)
        d["files"] = self.files(job.id)
        return d

    def latest(self, model: str, verbs: tuple[str, ...], predicate: Callable[[Job], bool] = lambda j: True) -> Job | None:
        """The newest succeeded job of ``model`` among ``verbs`` whose output file still exists."""
        for job in self.jobs():
            if (job.model == model and job.verb in verbs and job.state == "succeeded" and job.output
                    and (self.folder(job.id) / job.output).is_file() and predicate(job)):
                return job
        return None

    # ------------------------------------------------------------------ running
    def new_id(self) -> str:
        return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"

    def submit(self, verb: str, args: list[str], model: str, output: str | None = None,
               inputs: dict[str, str] | None = None, summarize: Summarizer | None = None) -> Job:
        """Queue ``edge-infer <args>`` (``--json`` is added); outputs are relative names (cwd = the job folder)."""
        job_id = self.new_id()
        while (self.jobs_dir / job_id).exists():
            job_id = self.new_id()
        self.folder(job_id).mkdir(parents=True)
        (self.folder(job_id) / LOG_FILE).touch()
        job = Job(id=job_id, verb=verb, args=[*args, "--json"], model=model, output=output, inputs=inputs or {})
        with self._lock:
            self._save(job)
            self._jobs[job_id] = job
            self._queue.append(job_id)
            self._done[job_id] = threading.Event()
            if summarize:
                self._summarizers[job_id] = summarize
            self._dispatch()
        return job

    def _dispatch(self) -> None:
        with self._lock:
            while not self._stopping and self._queue and len(self._procs) < self.max_parallel:
                job = self._jobs[self._queue.pop(0)]
                self._start(job)

    def _start(self, job: Job) -> None:
        folder = self.folder(job.id)
        env = {k: v for k, v in os.environ.items() if k != "EDGE_INFER_UI_TOKEN"}  # verbs never need it
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [self.python, "-m", "edge_infer.cli", *job.args]
        log = open(folder / LOG_FILE, "ab")
        log.write(("$ edge-infer " + " ".join(job.args) + "\n").encode())
        log.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            log.close()
            self._finish(job, None, "failed", f"could not start: {e}")
            return
        job.state, job.started, job.pid = "running", now_iso(), proc.pid
        self._procs[job.id] = proc
        self._save(job)
        threading.Thread(target=self._watch, args=(job, proc, log), name=f"job-{job.id}", daemon=True).start()

    def _watch(self, job: Job, proc: subprocess.Popen, log) -> None:
        log_lock = threading.Lock()
        stdout = bytearray()

        def write(line: bytes) -> None:
            with log_lock:
                log.write(line.rstrip(b"\r\n") + b"\n")
                log.flush()

        def pump_stderr() -> None:
            buf = b""
            while chunk := proc.stderr.read1(65536):
                buf += chunk
                *lines, buf = re.split(rb"[\r\n]", buf)
                for line in lines:
                    if line.strip():
                        write(line)
            if buf.strip():
                write(buf)

        def pump_stdout() -> None:
            while chunk := proc.stdout.read1(65536):
                if len(stdout) < MAX_STDOUT_BYTES:
                    stdout.extend(chunk)

        readers = [threading.Thread(target=pump_stderr, daemon=True), threading.Thread(target=pump_stdout, daemon=True)]
        for r in readers:
            r.start()
        code = proc.wait()
        for r in readers:
            r.join(10)
        result, rest = parse_result(bytes(stdout))
        for line in rest:
            write(line.encode())
        write(f"[exit code {code}]".encode())
        log.close()
        if result is not None:
            atomic_write_json(self.folder(job.id) / RESULT_FILE, result)
        job.result = result
        if job.id in self._cancelled:
            state, error = "cancelled", "cancelled"
        elif self._stopping:
            state, error = "failed", "server stopped"
        elif code == 0:
            state, error = "succeeded", None
        else:
            state = "failed"
            error = (result.get("error") if isinstance(result, dict) else None) or _last_line(self.folder(job.id))
            if isinstance(result, dict) and result.get("verdict") == "fail":
                error = "verdict: fail"
        self._finish(job, code, state, error)

    def _finish(self, job: Job, code: int | None, state: str, error: str | None) -> None:
        summarize = self._summarizers.pop(job.id, None)
        if state == "succeeded" and summarize is not None:
            try:
                job.summary = summarize(job, self.folder(job.id))
            except Exception as e:  # a summary is a convenience: the result is kept either way
                job.summary = {"error": f"summary failed: {e}"}
        with self._lock:
            job.exit_code, job.state, job.error, job.finished = code, state, error, now_iso()
            self._procs.pop(job.id, None)
            self._save(job)
            self._done.setdefault(job.id, threading.Event()).set()
            self._dispatch()

    def cancel(self, job_id: str, timeout_s: float = 20.0) -> Job:
        """Drop a queued job, or kill a running one's process group and wait until its process is gone."""
        job = self.get(job_id)
        with self._lock:
            if job.state in FINAL_STATES:
                raise JobFinished(f"job {job_id} already {job.state}")
            if job_id in self._queue:
                self._queue.remove(job_id)
                self._cancelled.add(job_id)
                self._finish(job, None, "cancelled", "cancelled before it started")
                return job
            proc = self._procs.get(job_id)
            self._cancelled.add(job_id)
        if proc is not None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)  # children that ignored SIGTERM
        self._done[job_id].wait(timeout_s)
        return job

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """Until the job reaches a final state (tests, the events stream's end)."""
        self._done.get(job_id, threading.Event()).wait(timeout_s)
        return self.get(job_id)

    def shutdown(self) -> None:
        """Server exit: kill every running verb (its job is then 'failed: server stopped')."""
        with self._lock:
            self._stopping = True
            procs = list(self._procs.items())
            for job_id in list(self._queue):
                self._queue.remove(job_id)
                self._finish(self._jobs[job_id], None, "failed", "server stopped")
        for job_id, proc in procs:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            self._done[job_id].wait(10)  # its job.json says so before the server exits


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session: the verb leads its own group
    except ProcessLookupError:
        pass


def _last_line(folder: Path) -> str:
    """The last meaningful stderr line (the CLI's one-line error, or a traceback's last line)."""
    try:
        lines = (folder / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "failed"
    lines = [x for x in lines if x.strip() and not x.startswith("[exit code")]
    return lines[-1][:500] if lines else "failed"


def parse_result(stdout: bytes) -> tuple[Any, list[str]]:
    """(the verb's --json document, other stdout lines). The document is the last top-level JSON value printed."""
    text = stdout.decode("utf-8", errors="replace")
    try:
        return json.loads(text), []
    except ValueError:
        pass
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:])), lines[:i]
            except ValueError:
                continue
    return None, [x for x in lines if x.strip()]
