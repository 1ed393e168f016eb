// One run: its graph recoloured live from the WebSocket, a task panel, cancel, retry, delete.
"use strict";
const runId = decodeURIComponent(location.pathname.split("/").pop());
const FINISHED = ["Succeeded", "Failed", "Cancelled"];
let record = null;
let selected = null;
let socket = null;
const logs = {};

function specOf(taskId) {
  const spec = record.spec;
  const entries = spec.workflow ? spec.workflow.flatMap((stage) => stage.tasks) : spec.dag || [];
  return entries.find((entry) => typeof entry === "object" && entry.name === taskId) || {};
}

function renderRun() {
  const status = record.status;
  document.getElementById("title").textContent = "Run " + (record.name ? `${record.name} · ` : "") + record.run_id;
  document.title = `${record.name || record.run_id.slice(0, 8)} · ${status.phase} · stageflow`;
  const badge = document.getElementById("run-phase");
  setPhase(badge, status.phase);
  badge.textContent = phaseText(status.phase);
  document.getElementById("run-progress").textContent = status.progress;
  document.getElementById("run-message").textContent =
    status.message || (status.queue
      ? `queued for ${status.queue.keys.join(", ")}: ${status.queue.position} in line`
      : "");
  document.getElementById("cancel").disabled = FINISHED.includes(status.phase);
  document.getElementById("retry").hidden = !["Failed", "Cancelled"].includes(status.phase);
  document.getElementById("suspend").hidden = FINISHED.includes(status.phase) || !!status.suspended;
  document.getElementById("resume").hidden = FINISHED.includes(status.phase) || !status.suspended;
  if (status.suspended) document.getElementById("run-live").textContent = "suspended";
  for (const [taskId, task] of Object.entries(status.tasks)) renderNode(taskId, task);
  if (selected) renderPanel();
}

// Where the run came from: the template revision it was made from, the schedule slot
// that fired it (each a link to its view). Drawn when the record is read, not on each
// update: it never changes, and a link redrawn would lose the keyboard focus.
function renderOrigin(origin) {
  const line = document.getElementById("run-origin");
  const parts = [];
  if (origin && origin.template) {
    const part = document.createElement("span");
    part.id = "origin-template";
    const name = encodeURIComponent(origin.template);
    if (origin.template_revision) {
      part.append("from template ", link(`/ui/templates/${name}/revisions/${origin.template_revision}`,
                                         `${origin.template} revision ${origin.template_revision}`));
    } else {
      part.append("from template ", link(`/ui/templates/${name}`, origin.template));
    }
    if (origin.template_digest) part.title = origin.template_digest;
    parts.push(part);
  }
  if (origin && origin.schedule) {
    const part = document.createElement("span");
    part.id = "origin-schedule";
    part.append("scheduled by ", link(`/ui/schedules/${encodeURIComponent(origin.schedule)}`, origin.schedule));
    if (origin.scheduled_time) {
      const time = document.createElement("time");
      time.dateTime = origin.scheduled_time;
      time.textContent = stamp(origin.scheduled_time);
      part.append(" for ", time);
    }
    if (origin.backfill) part.append(" (backfill)");
    parts.push(part);
  }
  line.replaceChildren();
  parts.forEach((part, index) => line.append(...(index ? [" · ", part] : [part])));
  line.hidden = !parts.length;
}

function renderNode(taskId, task) {
  const node = document.getElementById("node-" + taskId);
  if (!node) return;  // a forEach instance: its task's node shows the task
  setPhase(node, task.phase);
  node.querySelector(".phase").textContent = phaseText(task.phase);
  node.setAttribute("aria-label", `${taskId}: ${task.phase}`);
}

function seconds(task) {
  if (!task.startedAt) return "";
  const end = task.finishedAt ? Date.parse(task.finishedAt) : Date.now();
  return ((end - Date.parse(task.startedAt)) / 1000).toFixed(1) + " s";
}

function renderPanel() {
  const task = record.status.tasks[selected] || {};
  document.getElementById("panel").hidden = false;
  document.getElementById("panel-title").textContent = "Task " + selected;
  const fields = document.getElementById("panel-fields");
  fields.replaceChildren();
  const rows = [
    ["Phase", phaseText(task.phase || "Pending")],
    ["Attempts", String(task.attempts ?? 0)],
    ["Started", task.startedAt || "—"],
    ["Finished", task.finishedAt || "—"],
    ["Duration", seconds(task) || "—"],
    ["Message", task.message || "—"],
    ["Executor", task.executor || "—"],
  ];
  if (task.jobName) rows.push(["Job", task.jobName]);
  if (task.decision) {
    const who = task.decision.by ? ` by ${task.decision.by}` : "";
    rows.push(["Decision", `${task.decision.approved ? "approved" : "rejected"}${who} at ${task.decision.at}`]);
  }
  document.getElementById("decision").hidden = task.phase !== "Waiting";
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (term === "Phase") { dd.className = "badge"; setPhase(dd, task.phase || "Pending"); }
    fields.append(dt, dd);
  }
  const spec = specOf(selected);
  document.getElementById("panel-params").textContent = JSON.stringify(spec.params || {}, null, 2);
  document.getElementById("panel-outputs").textContent =
    task.outputs === undefined || task.outputs === null ? "—" : JSON.stringify(task.outputs, null, 2);
  document.getElementById("panel-log").textContent = logs[selected] || "(no log yet)";
}

function select(taskId) {
  selected = taskId;
  for (const node of document.querySelectorAll(".node")) {
    node.classList.toggle("selected", node.dataset.task === taskId);
  }
  renderPanel();
}

function tokenProtocol() {
  const bytes = new TextEncoder().encode(token());
  const base64 = btoa(String.fromCharCode(...bytes));
  return "base64url.bearer.stageflow.dev." + base64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function connect() {
  if (socket) socket.close();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const protocols = ["stageflow.v1"];
  if (token()) protocols.push(tokenProtocol());
  const live = document.getElementById("run-live");
  socket = new WebSocket(`${scheme}//${location.host}/workflow/${encodeURIComponent(runId)}/ws`, protocols);
  socket.onopen = () => { live.textContent = "live"; };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.event === "snapshot") {
      record = event.data;
      renderOrigin(record.origin);
      renderRun();
    } else if (event.event === "update") {
      const status = record.status;
      status.phase = event.data.phase;
      status.progress = event.data.progress;
      status.message = event.data.message;
      status.suspended = event.data.suspended;
      status.queue = event.data.queue;
      Object.assign(status.tasks, event.data.tasks);
      renderRun();
    } else if (event.event === "log") {
      logs[event.task] = (logs[event.task] || "") + event.data;
      if (selected === event.task) document.getElementById("panel-log").textContent = logs[event.task];
    } else if (event.event === "end") {
      live.textContent = "finished";
    }
  };
  socket.onclose = (closed) => {
    if (closed.code >= 4000) showError(`${closed.reason} (${closed.code - 4000})`);
    else if (live.textContent === "live") live.textContent = "disconnected";
  };
}

async function load() {
  try {
    record = await (await api("GET", `/workflow/${encodeURIComponent(runId)}`)).json();
    const svg = await (await api("GET", `/ui/runs/${encodeURIComponent(runId)}/graph.svg`)).text();
    document.getElementById("graph").innerHTML = svg;
    for (const node of document.querySelectorAll(".node")) {
      node.addEventListener("click", () => select(node.dataset.task));
      node.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(node.dataset.task); }
      });
    }
    showError("");
    renderOrigin(record.origin);
    renderRun();
    connect();
  } catch (error) {
    showError(error.message);
  }
}

async function act(method, path, then, body) {
  try {
    await api(method, path, body);
    showError("");
    then();
  } catch (error) {
    showError(error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpTokenForm(load);
  const path = `/workflow/${encodeURIComponent(runId)}`;
  document.getElementById("cancel").addEventListener("click", () =>
    act("POST", path + "/cancel", () => { document.getElementById("run-live").textContent = "cancel requested"; }));
  for (const verdict of ["approve", "reject"]) {
    document.getElementById(verdict).addEventListener("click", () => {
      const body = {};
      const comment = document.getElementById("decision-comment").value.trim();
      if (comment) body.comment = comment;
      const outputs = document.getElementById("decision-outputs").value.trim();
      if (verdict === "approve" && outputs) {
        try { body.outputs = JSON.parse(outputs); } catch (error) { showError("Outputs: " + error.message); return; }
      }
      act("POST", `${path}/tasks/${encodeURIComponent(selected)}/${verdict}`,
          () => { document.getElementById("run-live").textContent = verdict + " sent"; }, body);
    });
  }
  for (const action of ["suspend", "resume"]) {
    document.getElementById(action).addEventListener("click", () =>
      act("POST", `${path}/${action}`, () => { document.getElementById("run-live").textContent = action + " requested"; }));
  }
  document.getElementById("retry").addEventListener("click", () =>
    act("POST", path + "/retry", () => {
      document.getElementById("run-live").textContent = "retry requested";
      load();  // the same run, running again: read it afresh and follow it
    }));
  document.getElementById("delete").addEventListener("click", () => {
    if (confirm(`Delete run ${runId}?`)) act("DELETE", path, () => { location.href = "/ui/"; });
  });
  load();
});
