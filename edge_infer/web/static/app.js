// edge_infer web page: plain JS, no framework, no build step, nothing from a CDN (works offline on a robot).
// Every URL is relative ("api/..."), so the page works behind a reverse proxy under a sub-path (--root-path).
// The API contract is the server's (edge_infer/web/); this file only calls it.
"use strict";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const TOKEN_KEY = "edge_infer_ui_token";
const TRANSITIONS = ["configure", "activate", "deactivate", "cleanup", "shutdown"];
// which lifecycle transitions a state allows (ROS 2 managed nodes)
const ALLOWED = {
  unconfigured: ["configure", "shutdown"],
  inactive: ["activate", "cleanup", "shutdown"],
  active: ["deactivate", "shutdown"],
  finalized: [],
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  health: null,
  models: null,
  bags: [],              // uploaded bags usable for INT8 calibration: [ref, label]
  following: null,       // the job whose log is shown
  followQueue: [],       // jobs this page started, shown one after the other
  source: null,          // EventSource of the followed job
  jobs: [],
  rendered: new Set(),   // job ids whose results are on the page
  view: "models",
  robotTimer: null,
  robotGen: 0,
  imageTimer: null,
  jobsTimer: null,
};

// ------------------------------------------------------------------ helpers
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function withToken(url) {
  if (!state.token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(state.token);
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, {method = "GET", body = null, form = null} = {}) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  let payload = null;
  if (form) payload = form;
  else if (body !== null) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const r = await fetch(path, {method, headers, body: payload});
  if (r.status === 401) showToken("The server refused the token (401): enter the right one.");
  if (!r.ok) {
    let detail = r.statusText;
    try { const j = await r.json(); detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail); } catch (e) { /* not JSON */ }
    throw new ApiError(r.status, `${r.status}: ${detail}`);
  }
  if (r.status === 204) return null;
  const type = r.headers.get("Content-Type") || "";
  return type.includes("json") ? r.json() : r.blob();
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function fmtNum(x, digits = 2) {
  return typeof x === "number" ? x.toFixed(digits) : (x === null || x === undefined ? "-" : String(x));
}

function fmtTime(t) {
  if (!t) return "";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleTimeString();
}

function setStatus(text, kind = "idle") {
  const s = $("#status");
  s.textContent = text;
  s.className = "status " + kind;
}

function fileUrl(job, name) {
  return withToken(`api/jobs/${encodeURIComponent(job.id)}/files/${encodeURIComponent(name)}`);
}

// ------------------------------------------------------------------ token
function showToken(msg) {
  $("#token-box").hidden = false;
  if (msg) $("#token-msg").textContent = msg;
}

function saveToken() {
  state.token = $("#token").value.trim();
  if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
  else sessionStorage.removeItem(TOKEN_KEY);
  $("#token-msg").textContent = state.token ? "Token kept for this browser tab." : "No token set.";
  refreshAll();
}

// ------------------------------------------------------------------ tabs
function showView(name) {
  state.view = name;
  for (const b of document.querySelectorAll("nav [role=tab]")) b.setAttribute("aria-selected", String(b.dataset.view === name));
  $("#view-models").hidden = name !== "models";
  $("#view-robot").hidden = name !== "robot";
  if (name === "robot") startRobot(); else stopRobot();
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
}

// ------------------------------------------------------------------ health + models
async function loadHealth() {
  const h = await api("api/health");
  state.health = h;
  $("#server-info").textContent = `v${h.version}` + (h.ros ? " · ROS 2" : " · no ROS 2");
  if (h.token_required) showToken(state.token ? "Token kept for this browser tab." : "This server needs a token for every request.");
  const build = $("#build-btn");
  const trt = h.tensorrt || {present: false, reason: "unknown"};
  build.disabled = !trt.present;
  $("#build-reason").textContent = trt.present ? "" : `TensorRT build unavailable: ${trt.reason}`;
  build.title = trt.present ? "build a TensorRT engine of the exported model" : trt.reason;
  return h;
}

function fillSelect(select, options, keep = true) {
  const old = select.value;
  select.replaceChildren(...options.map(([value, text]) => el("option", {value, text})));
  if (keep && options.some(([v]) => v === old)) select.value = old;
}

async function loadModels() {
  const m = await api("api/models");
  state.models = m;
  const zoo = (m.zoo || []).map((z) => [z.name, `${z.name} (${z.task})`]);
  fillSelect($("#model-name"), zoo);
  if (!$("#model-name").dataset.touched && zoo.some(([v]) => v === "emotion")) $("#model-name").value = "emotion";
  const cks = [["", "the zoo model's own checkpoint"]].concat((m.checkpoints || []).map((c) =>
    [c.ref || c.name, `${c.name} (${c.source === "upload" ? "uploaded" : "models folder"}, ${fmtBytes(c.size)})`]));
  fillSelect($("#checkpoint"), cks);
  state.bags = (m.bags || []).map((b) => [b.ref || "upload:" + b.name, `bag ${b.name} (${fmtBytes(b.size)})`]);
  fillSelect($("#calibration"), [["samples", "sample images"]].concat(state.bags));
  updateOutputPlaceholder();
}

async function loadModelInfo() {
  // the zoo entry, the newest outputs (refs) and the last export's report of the chosen model name
  const name = modelName();
  if (!name) return;
  try {
    const m = await api(`api/models/${encodeURIComponent(name)}`);
    // the last export's report first (opset, I/O names and shapes, sha256), then the newest files, then the zoo
    const shown = {name: m.name, export: m.info, latest: m.latest, zoo: m.zoo};
    if (name === modelName()) $("#model-info").textContent = JSON.stringify(shown, null, 2);
  } catch (e) {
    $("#model-info").textContent = JSON.stringify({name, error: e.message}, null, 2);
  }
}

function updateOutputPlaceholder() {
  $("#output-name").placeholder = `${$("#model-name").value || "model"}.onnx`;
}

async function upload() {
  const f = $("#upload-file").files[0];
  const msg = $("#upload-msg");
  if (!f) { msg.textContent = "Choose a file first."; return; }
  const form = new FormData();
  form.append("file", f, f.name);
  msg.textContent = `uploading ${f.name} (${fmtBytes(f.size)}) ...`;
  msg.className = "muted";
  try {
    const r = await api("api/uploads", {method: "POST", form});
    await loadModels();
    if (r.kind === "checkpoint") $("#checkpoint").value = r.ref || "upload:" + r.name;
    if (r.kind === "bag") { $("#calibration").value = r.ref || "upload:" + r.name; $("#calib-topic-row").hidden = false; }
    msg.textContent = `uploaded ${r.name} (${fmtBytes(r.size)}, ${r.kind}, sha256 ${String(r.sha256).slice(0, 12)}...)`;
    msg.className = "ok";
  } catch (e) {
    msg.textContent = `upload failed: ${e.message}`;
    msg.className = "error";
  }
}

// ------------------------------------------------------------------ actions -> jobs
function modelName() { return $("#model-name").value; }

async function submit(action, body) {
  const name = modelName();
  if (!name) { setStatus("Choose a model first.", "error"); return null; }
  try {
    const r = await api(`api/models/${encodeURIComponent(name)}/${action}`, {method: "POST", body});
    const jobs = r.jobs || [r.job || r];  // quantize answers one job per mode
    for (const job of jobs) follow(job);
    refreshJobs();
    return jobs;
  } catch (e) {
    setStatus(`${action} refused: ${e.message}`, "error");
    return null;
  }
}

function exportBody() {
  const [kind, value] = $("#opset").value.split(":");
  return {
    checkpoint: $("#checkpoint").value || null,
    opset: kind === "opset" ? Number(value) : null,
    target: kind === "target" ? value : null,
    dynamic_batch: $("#dynamic-batch").checked,
    output_name: $("#output-name").value.trim() || null,
    arch: null,
  };
}

async function doValidate() {
  // fp32 against the source, then each quantized variant that is checked, each its own job (queued)
  const levels = ["fp32"];
  if ($("#fp16").checked) levels.push("fp16");
  if ($("#int8").checked) levels.push("int8");
  for (const level of levels) await submit("validate", {level});
}

async function doQuantize() {
  const fp16 = $("#fp16").checked, int8 = $("#int8").checked;
  if (!fp16 && !int8) { setStatus("Check FP16 and/or INT8 first.", "error"); return; }
  const calibration = $("#calibration").value;
  const body = {fp16, int8, calibration};
  if (calibration !== "samples") body.topic = $("#calib-topic").value.trim();
  await submit("quantize", body);
}

// ------------------------------------------------------------------ following a job (server-sent events)
function follow(job) {
  if (state.following && !FINAL.has(state.following.state)) {
    state.followQueue.push(job);
    return;
  }
  startFollowing(job);
}

function startFollowing(job) {
  if (state.source) state.source.close();
  state.following = job;
  $("#log").textContent = "";
  $("#progress").hidden = true;
  showJobStatus(job);
  openEvents(job);
}

function openEvents(job) {
  const es = new EventSource(withToken(`api/jobs/${encodeURIComponent(job.id)}/events`));
  state.source = es;
  es.addEventListener("log", (ev) => appendLog(ev.data));
  es.addEventListener("progress", (ev) => {
    try {
      const p = JSON.parse(ev.data);
      $("#progress").hidden = false;
      $("#progress").value = Math.max(0, Math.min(1, Number(p.fraction) || 0));
    } catch (e) { /* malformed progress is ignored */ }
  });
  let finalTimer = null;
  es.addEventListener("state", (ev) => {
    const j = JSON.parse(ev.data);
    if (j.id !== job.id) return;
    state.following = j;
    showJobStatus(j);
    updateJobRow(j);
    // the last log lines may still follow a final state: the stream's end (onerror) finishes; this is a fallback
    if (FINAL.has(j.state) && !finalTimer) finalTimer = setTimeout(() => { if (state.source === es) finishFollowing(j); }, 3000);
  });
  es.onerror = () => {
    // The server closes the stream after the final state; the browser would reconnect: ask once instead.
    if (state.source !== es) return;
    clearTimeout(finalTimer);
    es.close();
    state.source = null;
    api(`api/jobs/${encodeURIComponent(job.id)}`).then((j) => {
      showJobStatus(j);
      if (FINAL.has(j.state)) finishFollowing(j);
      // the stream starts from the log's first line again: clear what was shown
      else setTimeout(() => {
        if (state.following && state.following.id === j.id && !state.source) { $("#log").textContent = ""; openEvents(j); }
      }, 1000);
    }).catch((e) => setStatus(`lost the job's events: ${e.message}`, "error"));
  };
}

function finishFollowing(job) {
  if (state.source) { state.source.close(); state.source = null; }
  $("#progress").hidden = true;
  renderResult(job);
  refreshJobs();
  const next = state.followQueue.shift();
  if (next) setTimeout(() => startFollowing(next), 300);
}

function appendLog(line) {
  const log = $("#log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(line + "\n");
  if (log.childNodes.length > 4000) log.firstChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function showJobStatus(job) {
  let text = `${job.verb} ${job.model || ""}: ${job.state}`;
  if (job.state === "queued" && job.queue_position !== null && job.queue_position !== undefined) text += ` (position ${job.queue_position} in the queue)`;
  if (job.state === "failed" && job.error) text += ` - ${job.error}`;
  if (job.state === "failed" && !job.error && job.exit_code !== null) text += ` (exit code ${job.exit_code})`;
  const kind = {succeeded: "ok", failed: "error", cancelled: "warn", running: "busy", queued: "busy"}[job.state] || "idle";
  setStatus(text, kind);
}

// ------------------------------------------------------------------ results of finished jobs
function renderResult(job) {
  // a validation that ends "fail" is a failed job whose report is kept: show its verdict too
  if (!job.result || (job.state !== "succeeded" && !(job.verb === "validate" && job.result.verdict))) return;
  if (state.rendered.has(job.id)) return;
  state.rendered.add(job.id);
  const r = job.result;
  const verb = job.verb;
  if (job.model === modelName()) loadModelInfo();  // its newest files changed
  if (verb === "quantize") {
    renderSizes(r);
  } else if (verb === "validate") {
    renderValidation(r);
  } else if (verb === "bench") {
    renderBench(job, r);
  } else if (verb === "bundle") {
    renderBundle(job);
  }
}

function quantizeEntries(r) {
  // one variant ({mode, size_before, size_bytes, reduction_pct}) or several (a list, or a map by mode)
  if (Array.isArray(r)) return r;
  if (r.mode) return [r];
  if (Array.isArray(r.variants)) return r.variants;
  return Object.values(r).filter((v) => v && typeof v === "object" && "size_bytes" in v);
}

function renderSizes(r) {
  const body = $("#size-table tbody");
  for (const q of quantizeEntries(r)) {
    const file = String(q.path || q.name || "").split("/").pop();
    for (const old of body.querySelectorAll("tr")) if (old.dataset.mode === q.mode) old.remove();
    body.append(el("tr", {dataset: {mode: q.mode || ""}},
      el("td", {text: file}), el("td", {text: q.mode || ""}),
      el("td", {text: fmtBytes(q.size_before)}), el("td", {text: fmtBytes(q.size_bytes)}),
      el("td", {class: "num", text: q.reduction_pct !== undefined ? `${q.reduction_pct}% smaller (x${q.ratio})` : "-"})));
  }
}

function renderValidation(r) {
  const body = $("#validation-table tbody");
  const num = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(3) : String(v));
  const checks = (r.checks || []).map((c) =>
    `${c.metric} ${num(c.value)} ${c.op} ${num(c.threshold)}${c.pass ? "" : " FAIL"}`).join("; ");
  const file = String(r.model || "").split("/").pop();
  for (const old of body.querySelectorAll("tr")) if (old.dataset.file === file && old.dataset.level === r.level) old.remove();
  body.append(el("tr", {dataset: {file, level: r.level || ""}},
    el("td", {text: file}), el("td", {text: r.level || ""}), el("td", {text: r.task || ""}),
    el("td", {class: r.verdict === "pass" ? "ok" : "error", text: r.verdict || "?"}),
    el("td", {class: "small", text: checks})));
}

const RUNTIME_NAMES = {torch: "PyTorch", onnxruntime: "ONNX Runtime", tensorrt: "TensorRT"};

function renderBench(job, r) {
  const body = $("#perf-table tbody");
  body.replaceChildren();
  for (const m of r.models || []) {
    for (const x of m.results || []) {
      const runtime = RUNTIME_NAMES[x.backend] || x.backend;
      if (x.status !== "ok") {
        body.append(el("tr", {class: "muted"}, el("td", {text: m.model}), el("td", {text: runtime}),
          el("td", {text: x.batch}), el("td", {colspan: 5, text: `${x.status}: ${x.reason || ""}`})));
        continue;
      }
      const lat = x.latency_ms || {};
      body.append(el("tr", {dataset: {backend: x.backend}}, el("td", {text: m.model}), el("td", {text: runtime}),
        el("td", {class: "num", text: x.batch}),
        el("td", {class: "num", text: fmtNum(lat.p50, 3)}), el("td", {class: "num", text: fmtNum(lat.p99, 3)}),
        el("td", {class: "num", text: fmtNum(x.fps, 1)}), el("td", {class: "num", text: fmtNum(x.items_per_s, 1)}),
        el("td", {class: "num", text: x.speedup_vs_torch ? `x${fmtNum(x.speedup_vs_torch, 2)}` : (x.backend === "torch" ? "1.00 (reference)" : "-")})));
    }
  }
  const png = (job.files || []).find((f) => f.name.endsWith(".png"));
  const img = $("#bench-png");
  if (png) { img.src = fileUrl(job, png.name); img.hidden = false; } else img.hidden = true;
}

function renderBundle(job) {
  const f = (job.files || []).find((x) => /\.(tar\.gz|tgz|tar|zip)$/.test(x.name));
  const a = $("#download-link");
  if (!f) return;
  a.href = fileUrl(job, f.name);
  a.setAttribute("download", f.name);
  a.textContent = `Download ${f.name} (${fmtBytes(f.size)})`;
  a.classList.remove("disabled");
  a.removeAttribute("aria-disabled");
}

// ------------------------------------------------------------------ job list
async function refreshJobs() {
  let r;
  try { r = await api("api/jobs"); } catch (e) { return; }
  state.jobs = r.jobs || [];
  const body = $("#jobs-table tbody");
  body.replaceChildren(...state.jobs.slice(0, 200).map(jobRow));  // newest first
  // a reloaded page shows the latest results again (results live on the server's disk)
  const latest = {};
  for (const j of state.jobs.slice().reverse()) {  // oldest first: the newest of each kind wins
    if (!j.result || !(j.state === "succeeded" || (j.verb === "validate" && j.result.verdict))) continue;
    const key = j.verb + (j.verb === "validate" ? j.result.level : "") + (j.verb === "quantize" ? j.result.mode : "");
    latest[key] = j;
  }
  for (const j of Object.values(latest).sort((a, b) => String(a.created).localeCompare(String(b.created)))) renderResult(j);
  const busy = state.jobs.some((j) => !FINAL.has(j.state));
  clearTimeout(state.jobsTimer);
  state.jobsTimer = setTimeout(refreshJobs, busy ? 1500 : 5000);
}

function jobRow(job) {
  const files = (job.files || []).map((f) => el("a", {href: fileUrl(job, f.name), download: f.name, text: f.name}));
  const cancel = FINAL.has(job.state) ? "" : el("button", {class: "cancel", dataset: {job: job.id}, text: "Cancel",
    onclick: () => cancelJob(job.id)});
  return el("tr", {id: "job-" + job.id, dataset: {state: job.state, verb: job.verb, job: job.id}},
    el("td", {class: "mono", text: job.id}), el("td", {text: job.model || ""}), el("td", {text: job.verb}),
    el("td", {class: "state " + job.state, text: job.state + (job.state === "failed" && job.error ? `: ${job.error}` : "")}),
    el("td", {class: "num", text: job.queue_position ?? ""}), el("td", {text: fmtTime(job.created)}),
    el("td", {class: "files"}, ...files.flatMap((a) => [a, " "])), el("td", {}, cancel));
}

function updateJobRow(job) {
  const old = document.getElementById("job-" + job.id);
  if (old) old.replaceWith(jobRow(job));
}

async function cancelJob(id) {
  try {
    const j = await api(`api/jobs/${encodeURIComponent(id)}/cancel`, {method: "POST"});
    updateJobRow(j);
    if (state.following && state.following.id === id) { showJobStatus(j); if (FINAL.has(j.state)) finishFollowing(j); }
    state.followQueue = state.followQueue.filter((q) => q.id !== id);
  } catch (e) {
    setStatus(`cancel failed: ${e.message}`, "error");
  }
  refreshJobs();
}

// ------------------------------------------------------------------ robot page
function nodeKey(name) { return name.replace(/^\/+/, ""); }
function nodeUrl(name) { return "api/robot/nodes/" + nodeKey(name).split("/").map(encodeURIComponent).join("/"); }

// diagnostics worth a headline (besides the per-stage latency table): rates, counts, losses, bad inputs by
// reason, engine builds in progress, runtime and memory
const HEADLINE = [/^input_rate_hz$/, /^output_rate_hz$/, /^inputs$/, /^outputs$/, /^dropped_stale$/, /^lost_in_transport/,
  /^loss_ratio/, /^bad_/, /build|engine/i, /^backends?$/, /^input_qos$/, /rss|mem/i];
const STAGE = /^(.+)_(p50|p99)_ms$/;

function headlineKeys(keys) {
  const out = [];
  for (const re of HEADLINE) for (const k of keys) if (re.test(k) && !STAGE.test(k) && !out.includes(k)) out.push(k);
  return out;
}

function startRobot() {
  stopRobot();
  const h = state.health;
  const na = $("#robot-unavailable");
  if (h && !h.ros) {
    na.hidden = false;
    na.textContent = `ROS 2 not available: ${h.ros_reason || "rclpy cannot be imported"}`;
    $("#robot-nodes").replaceChildren();
    return;
  }
  na.hidden = true;
  pollRobot(state.robotGen);
  state.imageTimer = setInterval(refreshImages, 1000);
}

function stopRobot() {
  state.robotGen += 1;  // an answer still in flight must not start a second polling loop
  clearTimeout(state.robotTimer);
  clearInterval(state.imageTimer);
  state.robotTimer = null;
  state.imageTimer = null;
}

async function pollRobot(gen) {
  if (state.view !== "robot" || gen !== state.robotGen) return;
  try {
    const r = await api("api/robot/nodes");
    if (gen !== state.robotGen) return;
    renderNodes(r.nodes || []);
    $("#robot-msg").textContent = (r.nodes || []).length ? `updated ${new Date().toLocaleTimeString()}` : "no edge_infer node is running on this ROS 2 domain";
    $("#robot-msg").className = "muted";
  } catch (e) {
    if (e.status === 503) {
      $("#robot-unavailable").hidden = false;
      $("#robot-unavailable").textContent = `ROS 2 not available: ${e.message.replace(/^503: /, "")}`;
      $("#robot-nodes").replaceChildren();
      return; // nothing to poll
    }
    $("#robot-msg").textContent = `could not read the nodes: ${e.message}`;
    $("#robot-msg").className = "error";
  }
  if (state.view === "robot" && gen === state.robotGen) state.robotTimer = setTimeout(() => pollRobot(gen), 1000);
}

function nodeCard(name) {
  const key = nodeKey(name);
  const id = "node-" + key.replace(/[^A-Za-z0-9_-]/g, "_");
  let card = document.getElementById(id);
  if (card) return card;
  const buttons = TRANSITIONS.map((t) => el("button", {class: "transition", dataset: {transition: t}, text: t,
    onclick: () => lifecycle(name, t)}));
  card = el("div", {class: "card node", id, dataset: {node: name}},
    el("h2", {}, el("span", {class: "node-name", text: name}), " ",
      el("span", {class: "node-state badge"}), " ", el("span", {class: "node-level badge"})),
    el("div", {class: "row buttons"}, ...buttons,
      el("button", {class: "rebuild", text: "rebuild engines", onclick: () => rebuild(name)})),
    el("div", {class: "node-msg muted small"}),
    el("div", {class: "node-body"},
      el("div", {}, el("div", {class: "node-diag-msg small"}), el("table", {class: "headline"}, el("tbody")),
        el("table", {class: "stages"}, el("thead", {}, el("tr", {}, el("th", {text: "stage"}), el("th", {text: "p50 ms"}),
          el("th", {text: "p99 ms"}))), el("tbody")),
        el("details", {}, el("summary", {text: "all diagnostics"}), el("table", {class: "all-diag"}, el("tbody")))),
      el("div", {class: "debug"}, el("img", {class: "debug-image", alt: `latest ~/debug_image of ${name}`, hidden: true}),
        el("div", {class: "debug-msg muted small", text: "waiting for ~/debug_image ..."}))));
  $("#robot-nodes").append(card);
  return card;
}

function renderNodes(nodes) {
  const seen = new Set();
  for (const n of nodes) {
    const card = nodeCard(n.name);
    seen.add(card.id);
    const st = n.state || "unknown";
    const badge = card.querySelector(".node-state");
    badge.textContent = st;
    badge.className = "node-state badge " + st;
    const lv = card.querySelector(".node-level");
    lv.textContent = n.level || "";
    lv.className = "node-level badge " + String(n.level || "").toLowerCase();
    const allowed = ALLOWED[st] || TRANSITIONS;
    for (const b of card.querySelectorAll("button.transition")) b.disabled = !allowed.includes(b.dataset.transition) || card.dataset.busy === "1";
    for (const b of card.querySelectorAll("button.transition")) b.hidden = n.lifecycle === false;
    const diag = n.diagnostics || {};
    const keys = Object.keys(diag).sort();
    fillKv(card.querySelector("table.headline tbody"), headlineKeys(keys), diag);
    fillStages(card.querySelector("table.stages tbody"), diag);
    fillKv(card.querySelector("table.all-diag tbody"), keys, diag);
    const age = typeof n.age_s === "number" ? ` (${n.age_s.toFixed(1)} s ago)` : "";
    const builds = keys.filter((k) => /^engine_build_/.test(k)).length;
    card.querySelector(".node-diag-msg").textContent = (n.message ? `diagnostics: ${n.message}${age}` : "no diagnostics yet")
      + (n.message ? ` · engine builds in progress: ${builds || "none"}` : "");
  }
  for (const card of document.querySelectorAll("#robot-nodes .node")) if (!seen.has(card.id)) card.remove();
}

function fillKv(tbody, keys, diag) {
  // update cells in place: rows that exist keep their element (no flicker, buttons stay clickable)
  const rows = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  for (const k of keys) {
    let tr = rows.get(k);
    if (!tr) { tr = el("tr", {dataset: {key: k}}, el("th", {text: k}), el("td")); tbody.append(tr); }
    tr.lastChild.textContent = typeof diag[k] === "object" ? JSON.stringify(diag[k]) : String(diag[k]);
    rows.delete(k);
  }
  for (const tr of rows.values()) tr.remove();
}

function fillStages(tbody, diag) {
  const stages = {};
  for (const [k, v] of Object.entries(diag)) {
    const m = STAGE.exec(k);
    if (m) (stages[m[1]] = stages[m[1]] || {})[m[2]] = v;
  }
  const names = Object.keys(stages).sort((a, b) => (a === "end_to_end") - (b === "end_to_end") || a.localeCompare(b));
  const rows = new Map([...tbody.children].map((tr) => [tr.dataset.stage, tr]));
  for (const st of names) {
    let tr = rows.get(st);
    if (!tr) { tr = el("tr", {dataset: {stage: st}}, el("th", {text: st}), el("td", {class: "num"}), el("td", {class: "num"})); }
    tbody.append(tr);  // (re)appended in order
    tr.children[1].textContent = stages[st].p50 ?? "-";
    tr.children[2].textContent = stages[st].p99 ?? "-";
    rows.delete(st);
  }
  for (const tr of rows.values()) tr.remove();
  tbody.closest("table").hidden = names.length === 0;
}

async function lifecycle(name, transition) {
  if (transition === "shutdown" && !confirm(`Shut ${name} down? A finalized node cannot be started again from here.`)) return;
  const card = nodeCard(name);
  const msg = card.querySelector(".node-msg");
  card.dataset.busy = "1";
  for (const b of card.querySelectorAll("button")) b.disabled = true;
  msg.textContent = `${transition} ...`;
  try {
    const r = await api(nodeUrl(name) + "/lifecycle", {method: "POST", body: {transition}});
    msg.textContent = r.success === false ? `${transition} refused by the node: still ${r.state}` : `${transition}: now ${r.state}`;
    msg.className = "node-msg small " + (r.success === false ? "error" : "ok");
  } catch (e) {
    msg.textContent = `${transition} failed: ${e.message}`;
    msg.className = "node-msg error small";
  } finally {
    card.dataset.busy = "0";
    for (const b of card.querySelectorAll("button.rebuild")) b.disabled = false;
    startRobot();  // restart polling now: the new state at once
  }
}

async function rebuild(name) {
  const card = nodeCard(name);
  const msg = card.querySelector(".node-msg");
  msg.textContent = "rebuilding engines ...";
  try {
    const r = await api(nodeUrl(name) + "/rebuild_engines", {method: "POST"});
    msg.textContent = `rebuild_engines: ${r.success ? "ok" : "refused"} ${r.message || ""}`;
    msg.className = "node-msg small " + (r.success ? "ok" : "error");
  } catch (e) {
    msg.textContent = `rebuild_engines failed: ${e.message}`;
    msg.className = "node-msg error small";
  }
}

async function refreshImages() {
  // only while the Robot tab is shown and the browser tab is visible: the server subscribes on demand
  if (state.view !== "robot" || document.visibilityState !== "visible") return;
  for (const card of document.querySelectorAll("#robot-nodes .node")) {
    if (card.dataset.imageBusy === "1") continue;
    card.dataset.imageBusy = "1";
    const img = card.querySelector(".debug-image");
    const msg = card.querySelector(".debug-msg");
    try {
      const blob = await api(nodeUrl(card.dataset.node) + "/debug_image");
      if (blob && blob.size) {
        const old = img.src;
        img.src = URL.createObjectURL(blob);
        img.hidden = false;
        msg.textContent = `debug image ${new Date().toLocaleTimeString()}`;
        if (old && old.startsWith("blob:")) URL.revokeObjectURL(old);
      } else {
        msg.textContent = "no ~/debug_image yet";
      }
    } catch (e) {
      msg.textContent = `debug image: ${e.message}`;
    } finally {
      card.dataset.imageBusy = "0";
    }
  }
}

// ------------------------------------------------------------------ start
async function refreshAll() {
  try {
    await loadHealth();
    await Promise.all([loadModels(), refreshJobs()]);
    await loadModelInfo();
  } catch (e) {
    setStatus(`server: ${e.message}`, "error");
  }
  if (state.view === "robot") startRobot();
}

function init() {
  $("#token").value = state.token;
  $("#token-save").addEventListener("click", saveToken);
  $("#token").addEventListener("keydown", (e) => { if (e.key === "Enter") saveToken(); });
  for (const b of document.querySelectorAll("nav [role=tab]")) b.addEventListener("click", () => showView(b.dataset.view));
  $("#refresh-models").addEventListener("click", () => loadModels().catch((e) => setStatus(e.message, "error")));
  $("#model-name").addEventListener("change", () => {
    $("#model-name").dataset.touched = "1";
    updateOutputPlaceholder();
    loadModelInfo();
  });
  $("#upload-btn").addEventListener("click", upload);
  $("#calibration").addEventListener("change", () => { $("#calib-topic-row").hidden = $("#calibration").value === "samples"; });
  $("#export-btn").addEventListener("click", () => submit("export-onnx", exportBody()));
  $("#sanitize-btn").addEventListener("click", () => submit("sanitize", {}));
  $("#quantize-btn").addEventListener("click", doQuantize);
  $("#validate-btn").addEventListener("click", doValidate);
  $("#bench-btn").addEventListener("click", () => submit("bench", {}));
  $("#build-btn").addEventListener("click", () => submit("build", {precision: $("#int8").checked ? "int8" : ($("#fp16").checked ? "fp16" : "fp32")}));
  $("#bundle-btn").addEventListener("click", () => submit("bundle", {}));
  $("#download-link").addEventListener("click", (e) => { if ($("#download-link").classList.contains("disabled")) e.preventDefault(); });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible" && state.view === "robot") refreshImages(); });
  showView(location.hash === "#robot" ? "robot" : "models");  // a click before the first answers wins
  refreshAll();
}

init();
