"""The web page (`edge-infer ui`) in a real browser: Debian's chromium driven by Playwright.

One real server (`edge-infer ui` on a free port, its own jobs folder) and one browser per module. The page is
clicked through as a person would: upload the emotion checkpoint, export, sanitize, FP16 + INT8 (calibrated on an
uploaded bag), validate, bench, bundle and download (the archive is opened here), a reload that shows it all
again, cancel a running and a queued job (the process group must be gone); a second server with a token under a
reverse-proxy sub-path; the Robot tab without ROS, and against a real face node and camera in other processes
(rate, state, debug image, a lifecycle transition and rebuild_engines by clicks). The screenshots in docs/
(README) are taken here.

Playwright's own browser download is never used (its CDN is unreachable here): `chromium` comes from apt
(`make sysdeps`) and is launched by path. Playwright is in the Kilted venv only (requirements.txt); the Jazzy
pass (`pytest -m ros`) selects the ROS test below and this module skips there with that reason.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is installed in the Kilted venv only (requirements.txt): the page is the same on every "
           "distro; the browser tests run in the Kilted pass of `make test`")

REPO = Path(__file__).resolve().parents[1]
# the README's screenshots; EDGE_INFER_SCREENSHOT_DIR=/tmp/x keeps a run from rewriting the committed ones
SCREENSHOTS = Path(os.environ.get("EDGE_INFER_SCREENSHOT_DIR") or REPO / "docs")
JOB_TIMEOUT_MS = 240_000  # one verb on a loaded 2-core machine (export ~10 s, int8 ~20 s, bench ~40 s)
UI_TIMEOUT_MS = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, token: str | None = None, timeout: float = 5.0) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.loads(r.read())


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    jobs_dir: Path
    log: Path
    token: str | None = None

    def api(self, path: str) -> dict:
        return _get_json(self.url + path, self.token)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _interrupt(proc: subprocess.Popen, timeout: float) -> None:
    """Ctrl-C for a process we started; killed if it does not stop within ``timeout`` s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: `make sysdeps` (as root) or `sudo apt-get install chromium`")
    return path


@contextmanager
def ui_server(models_dir: Path, folder: Path, *args: str, token: str | None = None) -> Iterator[Server]:
    """`edge-infer ui` as a user starts it, on a free port with its own jobs folder; stopped with Ctrl-C."""
    from edge_infer.ros.driver_check import executable

    port = _free_port()
    log = folder / "server.log"
    cmd = executable("edge-infer") + ["ui", "--port", str(port), "--jobs-dir", str(folder / "jobs"),
                                      "--models-dir", str(models_dir), *args]
    env = {k: v for k, v in os.environ.items() if k != "EDGE_INFER_UI_TOKEN"}
    if token:
        env["EDGE_INFER_UI_TOKEN"] = token
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    srv = Server(f"http://127.0.0.1:{port}/", proc, folder / "jobs", log, token)
    deadline = time.monotonic() + 60
    while True:
        try:
            srv.api("api/health")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"edge-infer ui did not come up (exit {proc.poll()}):\n{srv.tail()}")
            time.sleep(0.3)
    try:
        yield srv
    finally:
        _interrupt(proc, 15)


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory) -> Iterator[Server]:
    with ui_server(models_dir, tmp_path_factory.mktemp("web_ui")) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(chromium: str):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"] if os.geteuid() == 0 else [])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server: Server):
    """One tab for the model tests (they build on each other's jobs, like a person's session)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    errors = _collect_errors(pg)
    pg.goto(server.url)
    sync_api.expect(pg.locator("#model-name option[value=emotion]")).to_have_count(1)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _collect_errors(pg) -> list[str]:
    """JavaScript exceptions and console errors (a failed request logs one: 404 of an asset, a 4xx/5xx answer)."""
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"exception: {e}"))
    pg.on("console", lambda m: errors.append(f"console: {m.text} {m.location.get('url', '')}")
          if m.type == "error" else None)
    return errors


def _job_rows(page, verb: str):
    return page.locator(f"#jobs-table tbody tr[data-verb='{verb}']")


def _wait_jobs(page, server: Server, verb: str, count: int) -> list[dict]:
    """Wait until the page lists ``count`` finished jobs of ``verb``; they must have succeeded (else: their logs)."""
    rows = _job_rows(page, verb)
    final = rows.and_(page.locator("[data-state=succeeded], [data-state=failed], [data-state=cancelled]"))
    try:
        sync_api.expect(final).to_have_count(count, timeout=JOB_TIMEOUT_MS)
    except AssertionError:
        raise AssertionError(f"{verb}: {rows.all_inner_texts()}\nserver log:\n{server.tail()}") from None
    jobs = [server.api(f"api/jobs/{r.get_attribute('data-job')}") for r in rows.all()]
    bad = [j for j in jobs if j["state"] != "succeeded"]
    assert not bad, "\n".join(f"{j['verb']} {j['state']}: {j['error']}\n"
                              f"{(server.jobs_dir / j['id'] / 'log.txt').read_text()[-2000:]}" for j in bad)
    return jobs


def test_checkpoint_to_validated_fp16_int8_bench_and_bundle(page, server: Server, models_dir: Path, tmp_path):
    # TensorRT build: enabled where TensorRT runs, else disabled with the server's reason shown
    trt = server.api("api/health")["tensorrt"]
    if trt["present"]:
        sync_api.expect(page.locator("#build-btn")).to_be_enabled()
    else:
        sync_api.expect(page.locator("#build-btn")).to_be_disabled()
        sync_api.expect(page.locator("#build-reason")).to_have_text(f"TensorRT build unavailable: {trt['reason']}")

    # upload: a copy of the zoo's emotion checkpoint under a name of our own (so it is the upload that is used)
    ckpt = tmp_path / "my_emotion.pt"
    shutil.copyfile(models_dir / "emotion_mini_xception.pt", ckpt)
    page.select_option("#model-name", "emotion")
    page.set_input_files("#upload-file", str(ckpt))
    page.click("#upload-btn")
    sync_api.expect(page.locator("#upload-msg")).to_contain_text("uploaded my_emotion.pt")
    sync_api.expect(page.locator("#checkpoint")).to_have_value("upload:my_emotion.pt")
    page.click("#refresh-models")  # the list is read again from the server; the choice stays
    sync_api.expect(page.locator("#checkpoint option[value='upload:my_emotion.pt']")).to_have_count(1)
    sync_api.expect(page.locator("#checkpoint")).to_have_value("upload:my_emotion.pt")

    # export: JetPack 5 target (opset 16), dynamic batch, our own output name
    page.fill("#output-name", "my_emotion.onnx")
    page.select_option("#opset", "target:jetpack5")
    page.check("#dynamic-batch")
    page.click("#export-btn")
    sync_api.expect(page.locator("#log")).to_contain_text("$ edge-infer export", timeout=JOB_TIMEOUT_MS)
    (export,) = _wait_jobs(page, server, "export-onnx", 1)
    assert export["result"]["opset"] == 16 and export["result"]["checkpoint"].endswith("my_emotion.pt")
    sync_api.expect(page.locator("#model-info")).to_contain_text('"opset": 16')
    info = json.loads(page.locator("#model-info").inner_text())["export"]
    assert info["opset"] == 16 and info["target"] == "jetpack5" and info["dynamic_batch"] is True
    assert info["architecture"] == "mini_xception"

    # sanitize (constant folding + checks): the fp32 file every later step uses
    page.click("#sanitize-btn")
    (sanitized,) = _wait_jobs(page, server, "sanitize", 1)
    assert sanitized["output"] == "my_emotion.sanitized.onnx"
    sync_api.expect(page.locator("#model-info")).to_contain_text(f"job:{sanitized['id']}/my_emotion.sanitized.onnx")

    # FP16 + INT8, calibrated on camera frames from an uploaded rosbag2 file: the size table shows both reductions
    bag = _camera_bag(tmp_path)
    page.set_input_files("#upload-file", str(bag))
    page.click("#upload-btn")
    sync_api.expect(page.locator("#upload-msg")).to_contain_text("uploaded cam.mcap")
    sync_api.expect(page.locator("#calibration")).to_have_value("upload:cam.mcap")
    sync_api.expect(page.locator("#calib-topic")).to_be_visible()
    page.fill("#calib-topic", "/image")
    page.check("#fp16")
    page.check("#int8")
    page.click("#quantize-btn")
    quantized = _wait_jobs(page, server, "quantize", 2)
    assert sorted(j["result"]["mode"] for j in quantized) == ["fp16", "int8"]
    int8 = next(j for j in quantized if j["result"]["mode"] == "int8")
    assert re.search(r"cam\.mcap:/image \(\d+ samples\)", int8["result"]["calibration"]), int8["result"]
    for mode in ("fp16", "int8"):
        row = page.locator(f"#size-table tbody tr[data-mode={mode}]")
        sync_api.expect(row).to_have_count(1)
        pct = float(re.search(r"([\d.]+)% smaller", row.inner_text()).group(1))
        job = next(j for j in quantized if j["result"]["mode"] == mode)
        assert pct == job["result"]["reduction_pct"] and pct > 40, row.inner_text()  # measured: 50% both

    # validate: fp32 against the uploaded checkpoint, fp16 and int8 against the fp32 ONNX; task-level verdicts
    page.click("#validate-btn")
    validated = _wait_jobs(page, server, "validate", 3)
    assert sorted(j["result"]["level"] for j in validated) == ["fp16", "fp32", "int8"]
    assert all(j["result"]["verdict"] == "pass" for j in validated)
    fp32 = next(j for j in validated if j["result"]["level"] == "fp32")
    assert fp32["result"]["reference"].endswith("my_emotion.pt")
    assert fp32["result"]["model"].endswith("my_emotion.sanitized.onnx")
    sync_api.expect(page.locator("#validation-table tbody tr")).to_have_count(3)
    sync_api.expect(page.locator("#validation-table tbody td.ok")).to_have_count(3)

    # bench: PyTorch vs ONNX Runtime per file, p50/p99/FPS and speed-ups, and the PNG plot
    page.click("#bench-btn")
    (bench,) = _wait_jobs(page, server, "bench", 1)
    ok_rows = page.locator("#perf-table tbody tr[data-backend]")
    sync_api.expect(page.locator("#perf-table tbody tr[data-backend=torch]").first).to_be_visible()
    sync_api.expect(page.locator("#perf-table tbody tr[data-backend=onnxruntime]").first).to_be_visible()
    for text in ok_rows.all_inner_texts():
        cells = text.split("\t")
        assert float(cells[3]) > 0 and float(cells[4]) >= float(cells[3]) and float(cells[5]) > 0, cells
    # one row per file x runtime (the exported fp32, fp16, int8); each ONNX Runtime row with its speed-up vs PyTorch
    results = [(m["model"], r) for m in bench["result"]["models"] for r in m["results"] if r["status"] == "ok"]
    assert len(bench["result"]["models"]) == 3 and ok_rows.count() == len(results) == 6
    for model, r in results:
        if r["backend"] == "onnxruntime":
            row = ok_rows.filter(has=page.locator("td", has_text=re.compile(f"^{re.escape(model)}$")))
            cells = row.and_(page.locator("[data-backend=onnxruntime]")).inner_text().split("\t")
            assert cells[-1] == f"x{r['speedup_vs_torch']:.2f}", (model, cells)
    img = page.locator("#bench-png")
    sync_api.expect(img).to_be_visible()
    page.wait_for_function("document.querySelector('#bench-png').naturalWidth > 100")

    # bundle, download it through the page, open it: the manifest lists what is inside
    page.click("#bundle-btn")
    (bundle,) = _wait_jobs(page, server, "bundle", 1)
    link = page.locator("#download-link")
    sync_api.expect(link).not_to_have_class(re.compile("disabled"))
    with page.expect_download() as dl:
        link.click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    manifest, names = _open_bundle(path)
    listed = {f["name"] for f in manifest["files"]}
    assert listed <= names and "manifest.json" in names
    onnx = {n for n in listed if n.endswith(".onnx")}
    assert len(onnx) == 3, listed  # fp32, fp16, int8
    assert "benchmark.json" in listed

    page.screenshot(path=str(SCREENSHOTS / "ui_models.png"), full_page=True)

    # a closed browser loses nothing: a new page shows the results again from the server's job list
    page.reload()
    sync_api.expect(page.locator("#validation-table tbody td.ok")).to_have_count(3)
    sync_api.expect(page.locator("#size-table tbody tr")).to_have_count(2)
    sync_api.expect(ok_rows).to_have_count(6)
    sync_api.expect(page.locator("#download-link")).not_to_have_class(re.compile("disabled"))


def _camera_bag(folder: Path) -> Path:
    """A one-file rosbag2 (mcap) of 8 camera frames of the sample photos, as a robot would record."""
    from edge_infer.ros.driver_check import executable

    out = folder / "cam_bag"
    subprocess.run(executable("edge-infer") + ["bag", "make", str(out), "--photos", "--frames", "8", "--size",
                                               "320x240", "--storage", "mcap", "--json"],
                   check=True, capture_output=True, timeout=120)
    (mcap,) = out.glob("*.mcap")
    return mcap.rename(folder / "cam.mcap")


def _open_bundle(path: Path) -> tuple[dict, set[str]]:
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            names = {m.name.split("/", 1)[-1] if "/" in m.name else m.name for m in tar.getmembers() if m.isfile()}
            member = next(m for m in tar.getmembers() if m.name.endswith("manifest.json"))
            manifest = json.load(tar.extractfile(member))
    else:
        with zipfile.ZipFile(path) as z:
            names = {n.split("/", 1)[-1] if "/" in n else n for n in z.namelist() if not n.endswith("/")}
            manifest = json.loads(z.read(next(n for n in z.namelist() if n.endswith("manifest.json"))))
    return manifest, names


def _group_alive(pgid: int) -> list[int]:
    """Processes (not zombies) in process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_cancel_a_running_and_a_queued_job(page, server: Server):
    page.select_option("#model-name", "face_detector")
    page.click("#bench-btn")
    page.click("#bench-btn")  # one at a time: the second waits in the queue
    rows = _job_rows(page, "bench").filter(has=page.locator("td", has_text="face_detector"))
    running = rows.and_(page.locator("[data-state=running]"))
    queued = rows.and_(page.locator("[data-state=queued]"))
    sync_api.expect(running).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    sync_api.expect(queued).to_have_count(1)
    assert queued.locator("td.num").inner_text() == "1"  # its queue position
    job_id = running.get_attribute("data-job")
    pid = server.api(f"api/jobs/{job_id}")["pid"]
    assert pid and _group_alive(pid), "the running job's process is not there"

    queued_id = queued.get_attribute("data-job")
    queued.locator("button.cancel").click()
    sync_api.expect(page.locator(f"#job-{queued_id}")).to_have_attribute("data-state", "cancelled")
    running.locator("button.cancel").click()
    sync_api.expect(page.locator(f"#job-{job_id}")).to_have_attribute("data-state", "cancelled", timeout=30_000)
    assert server.api(f"api/jobs/{job_id}")["state"] == "cancelled"
    assert not _group_alive(pid), f"processes of the cancelled job still run: {_group_alive(pid)}"
    assert not page.locator(f"#job-{job_id} button.cancel").count()
    page.select_option("#model-name", "emotion")


def test_robot_tab_without_ros_says_so(browser, server: Server):
    """Where rclpy is missing the server says why; the page shows it and the model tab still works."""
    context = browser.new_context()
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    real = server.api("api/health")

    def health(route):
        route.fulfill(json={**real, "ros": False, "ros_reason": "No module named 'rclpy'"})

    pg.route("**/api/health", health)
    pg.route("**/api/robot/**", lambda r: r.fulfill(status=503, json={"detail": "No module named 'rclpy'"}))
    pg.goto(server.url + "#robot")
    sync_api.expect(pg.locator("#robot-unavailable")).to_have_text("ROS 2 not available: No module named 'rclpy'")
    sync_api.expect(pg.locator("#robot-nodes .node")).to_have_count(0)
    pg.click("#tab-models")
    sync_api.expect(pg.locator("#model-name option[value=emotion]")).to_have_count(1)
    context.close()
    assert not errors, errors


def test_token_and_a_sub_path_behind_a_reverse_proxy(browser, models_dir: Path, tmp_path):
    """A server with a token, served under /edge by a proxy that strips the prefix (here: the browser's own
    request routing): the page asks for the token, then works, with its live log (EventSource, ?token=) and
    its download link, and every request it makes stays under /edge/ (relative URLs only)."""
    token = "browser-test-" + secrets.token_hex(16)
    with ui_server(models_dir, tmp_path, "--root-path", "/edge", token=token) as srv:
        base = srv.url.rstrip("/")
        context = browser.new_context(accept_downloads=True)
        context.set_default_timeout(UI_TIMEOUT_MS)
        outside: list[str] = []

        def proxy(route) -> None:
            route.fulfill(response=route.fetch(url=route.request.url.replace(base + "/edge", base, 1)))

        context.route(re.compile(re.escape(base) + r"/edge(/.*)?$"), proxy)
        context.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base + "/edge/")
                   and not r.url.startswith("data:") else None)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(base + "/edge/")
        sync_api.expect(pg.locator("#token-box")).to_be_visible()
        sync_api.expect(pg.locator("#status")).to_contain_text("401")
        sync_api.expect(pg.locator("#model-name option")).to_have_count(0)
        pg.fill("#token", token)
        pg.click("#token-save")
        sync_api.expect(pg.locator("#model-name option[value=emotion]")).to_have_count(1)
        pg.select_option("#model-name", "emotion")
        pg.click("#bundle-btn")  # the zoo's emotion.onnx: a job of a few seconds
        (job,) = _wait_jobs(pg, srv, "bundle", 1)
        sync_api.expect(pg.locator("#log")).to_contain_text("$ edge-infer bundle")
        sync_api.expect(pg.locator("#log")).to_contain_text("[exit code 0]")
        # the link (relative, token in its query: a link cannot send a header) fetched as the proxy would; a click
        # is not used here: Chromium cancels downloads whose response a Playwright route fulfilled
        href = pg.eval_on_selector("#download-link", "a => a.href")
        assert href.startswith(base + "/edge/api/jobs/") and f"token={token}" in href, href
        r = context.request.get(href.replace(base + "/edge", base, 1))
        assert r.ok, r.status
        assert context.request.get(href.replace(base + "/edge", base, 1).split("?")[0]).status == 401
        path = tmp_path / "bundle.tar.gz"
        path.write_bytes(r.body())
        manifest, names = _open_bundle(path)
        assert {f["name"] for f in manifest["files"]} <= names and "emotion.onnx" in names
        context.close()
        assert not outside, f"requests outside the sub-path: {outside}"
        assert not errors, errors


@pytest.fixture(scope="module")
def face_node(models_dir: Path, tmp_path_factory):
    """The real face node and a camera driver (640x480, 5 Hz), each in its own process, like on a robot."""
    from edge_infer.ros.driver_check import executable, node_process

    tmp = tmp_path_factory.mktemp("web_robot")
    params = {"models_dir": str(models_dir), "diagnostics_period_s": 0.5}
    with node_process("face_pipeline_node", params, log_path=tmp / "face_node.log") as node:
        cmd = executable("camera_player") + ["--models-dir", str(models_dir), "--frames", "10", "--faces", "2",
                                             "--size", "640x480", "--rate", "5", "--count", "100000",
                                             "--qos", "reliable", "--topic", "/image", "--wait-subscribers", "60"]
        with open(tmp / "camera.log", "w") as camera_log:
            camera = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=camera_log, start_new_session=True)
        try:
            yield node, tmp / "face_node.log"
        finally:
            _interrupt(camera, 10)
        assert node.poll() is None, f"the face node died:\n{(tmp / 'face_node.log').read_text()[-3000:]}"


@pytest.mark.ros
def test_robot_tab_shows_the_face_node_and_changes_its_state(browser, server: Server, face_node):
    node, log = face_node
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    errors = _collect_errors(pg)
    pg.goto(server.url)
    pg.click("#tab-robot")
    card = pg.locator("#robot-nodes .node[data-node='/face_pipeline']")
    try:
        sync_api.expect(card).to_have_count(1, timeout=90_000)
    except AssertionError:
        ros_env = {k: v for k, v in os.environ.items() if k.startswith(("ROS", "RMW", "FAST"))}
        raise AssertionError(f"page: {pg.locator('#view-robot').inner_text()}\napi: {server.api('api/robot/nodes')}"
                             f"\nenv: {ros_env}\nnode log:\n{log.read_text()[-2000:]}\nserver log:\n{server.tail()}") from None
    state = card.locator(".node-state")
    sync_api.expect(state).to_have_text("active", timeout=90_000)

    def diag(key: str) -> str:
        return card.locator(f"table.headline tr[data-key='{key}'] td").inner_text()

    rate_key = "output_rate_hz"
    sync_api.expect(card.locator(f"table.headline tr[data-key='{rate_key}']")).to_have_count(1, timeout=60_000)
    pg.wait_for_function(
        "k => { const td = document.querySelector(`#robot-nodes .node table.headline tr[data-key='${k}'] td`);"
        " return td && parseFloat(td.textContent) > 1; }", arg=rate_key, timeout=60_000)
    # the latest debug image, fetched while the tab shows it
    pg.wait_for_function("() => { const i = document.querySelector('#robot-nodes .node .debug-image');"
                         " return i && !i.hidden && i.naturalWidth === 640; }", timeout=60_000)
    pg.screenshot(path=str(SCREENSHOTS / "ui_robot.png"), full_page=True)

    # a lifecycle transition by a click: deactivate (inactive, no output), then activate again
    sync_api.expect(card.locator("button[data-transition=activate]")).to_be_disabled()
    card.locator("button[data-transition=deactivate]").click()
    sync_api.expect(state).to_have_text("inactive", timeout=30_000)
    sync_api.expect(card.locator(".node-msg")).to_contain_text("deactivate: now inactive")
    # an inactive node reports no stream: the rates leave the page with its next diagnostics
    sync_api.expect(card.locator(f"table.headline tr[data-key='{rate_key}']")).to_have_count(0, timeout=30_000)
    card.locator("button[data-transition=activate]").click()
    sync_api.expect(state).to_have_text("active", timeout=30_000)
    sync_api.expect(card.locator(".node-msg")).to_contain_text("activate: now active")
    # it answers the camera again: its output count grows on the page
    sync_api.expect(card.locator("table.headline tr[data-key=outputs]")).to_have_count(1, timeout=30_000)
    before = int(diag("outputs"))
    pg.wait_for_function(
        "n => { const td = document.querySelector(`#robot-nodes .node table.headline tr[data-key='outputs'] td`);"
        " return td && parseInt(td.textContent) >= n + 5; }", arg=before, timeout=60_000)
    assert float(diag(rate_key)) > 0
    # rebuild_engines reaches the node's service; on this CPU-only machine the node says why there is nothing to do
    card.locator("button.rebuild").click()
    sync_api.expect(card.locator(".node-msg")).to_contain_text("rebuild_engines: refused", timeout=30_000)
    sync_api.expect(card.locator(".node-msg")).to_contain_text("there are no TensorRT engines to rebuild")
    context.close()
    assert not errors, errors
