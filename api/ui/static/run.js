// One run: its graph recoloured live from the WebSocket, a task panel, cancel, retry, delete.
// A forEach task is one node that counts its instances by phase (`status.fanouts`, from the
// snapshot and from each update); its panel lists the failed and running ones, read from
// `GET /workflow/{id}?tasks=Failed,Running` while that list is open. A big run (the snapshot
// or an update says `omitted`: updates no longer name every instance) keeps only its declared
// tasks in `record.status.tasks`: nothing here grows, or draws, an element per instance.
"use strict";
const runId = decodeURIComponent(location.pathname.split("/").pop());
const FINISHED = ["Succeeded", "Failed", "Cancelled"];
const TASK_FINISHED = ["Succeeded", "Failed", "Skipped", "Cancelled"];
// A node's counts: these phases always, the others when an instance is in them (Pending is
// what "of N" leaves); api/ui/graph.py draws the same line first.
const COUNTED = ["Succeeded", "Running", "Failed"];
const COUNTED_WHEN_ANY = ["Waiting", "Skipped", "Cancelled"];
const PANEL_PHASES = ["Succeeded", "Running", "Waiting", "Failed", "Skipped", "Cancelled", "Pending"];
const LISTED = ["Failed", "Running"];  // the instances the panel lists, in this order
const LISTED_MAX = 50;  // of each phase; the rest are counted ("… and 120 more failed")
const REFRESH_MS = 1000;  // the open list is read again at most this often while updates come
let record = null;
let selected = null;
let socket = null;
const logs = {};
let big = false;
let listed = { of: null, tasks: {} };  // the failed and running instances of one forEach task
let details = {};  // a big run's instances read for the panel, by id (status.tasks has none)
let settled = null;  // an instance of a big run read finished: not read again
let drawnList = "";
const reading = { timer: 0, busy: false, again: false, last: 0 };

function specOf(taskId) {
  const spec = record.spec;
  const entries = spec.workflow ? spec.workflow.flatMap((stage) => stage.tasks) : spec.dag || [];
  return [...entries, ...(spec.finally || [])]
    .find((entry) => typeof entry === "object" && entry.name === taskId) || {};
}

// `fan[12]` -> `fan`; null for a declared task.
function parentOf(taskId) {
  const found = /^(.+)\[\d+\]$/.exec(taskId || "");
  return found ? found[1] : null;
}

function indexOf(taskId) { return Number(/\[(\d+)\]$/.exec(taskId)[1]); }

function isFanout(taskId) {
  const node = document.getElementById("node-" + taskId);
  return !!node && node.dataset.fanout === "true";
}

function count(number) { return (number || 0).toLocaleString("en-US"); }

function fanoutOf(taskId) { return (record.status.fanouts || {})[taskId] || null; }

// `✓ 9,990 ▶ 10 ✗ 0 of 10,000`, and the same in words for a screen reader.
function fanoutText(fanout) {
  if (!fanout) return "no instances yet";
  const shown = [...COUNTED, ...COUNTED_WHEN_ANY.filter((phase) => fanout.phases[phase])];
  return shown.map((phase) => `${MARKS[phase]} ${count(fanout.phases[phase])}`).join(" ") +
    ` of ${count(fanout.total)}`;
}

function fanoutWords(fanout) {
  if (!fanout) return "no instances yet";
  const shown = [...COUNTED, ...COUNTED_WHEN_ANY.filter((phase) => fanout.phases[phase])];
  return `${count(fanout.total)} instances: ` +
    shown.map((phase) => `${count(fanout.phases[phase])} ${phase}`).join(", ");
}

// A snapshot, or the record read by load(): the run afresh.
function take(data) {
  record = data;
  big = false;
  listed = { of: null, tasks: {} };
  details = {};
  settled = null;
  drawnList = "";
  if (record.status.omitted !== undefined) becomeBig();
}

// From now on instances are not kept in status.tasks: updates name only some of them (those
// under way or failed), so an entry kept would go stale. Their counts come with each update.
function becomeBig() {
  if (big) return;
  big = true;
  for (const taskId of Object.keys(record.status.tasks)) {
    if (parentOf(taskId) === null) continue;
    if (taskId === selected) details[taskId] = record.status.tasks[taskId];
    delete record.status.tasks[taskId];
  }
}

// An update's task entries: every one into status.tasks for a small run; for a big one its
// declared tasks, and instances only where the panel already shows them.
function merge(tasks) {
  for (const [taskId, task] of Object.entries(tasks || {})) {
    const parent = parentOf(taskId);
    if (parent === null || !big) record.status.tasks[taskId] = task;
    if (parent !== null && listed.of === parent && taskId in listed.tasks) listed.tasks[taskId] = task;
    if (parent !== null && big && taskId in details) details[taskId] = task;
  }
}

function entryOf(taskId) {
  if (big && parentOf(taskId) !== null) return details[taskId] || listed.tasks[taskId] || {};
  return record.status.tasks[taskId] || {};
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
  for (const node of document.querySelectorAll(".node")) {
    renderNode(node, status.tasks[node.dataset.task] || { phase: "Pending" });
  }
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

// A declared task's node (a forEach instance has none: its task's node counts it).
function renderNode(node, task) {
  const taskId = node.dataset.task;
  setPhase(node, task.phase);
  node.querySelector(".phase").textContent = phaseText(task.phase);
  let label = `${taskId}: ${task.phase}`;
  if (node.dataset.fanout === "true") {
    const fanout = fanoutOf(taskId);
    node.querySelector(".fanout").textContent = fanoutText(fanout);
    label += "; " + fanoutWords(fanout);
  }
  node.setAttribute("aria-label", label);
}

function seconds(task) {
  if (!task.startedAt) return "";
  const end = task.finishedAt ? Date.parse(task.finishedAt) : Date.now();
  return ((end - Date.parse(task.startedAt)) / 1000).toFixed(1) + " s";
}

function renderPanel() {
  const task = entryOf(selected);
  const parent = parentOf(selected);
  document.getElementById("panel").hidden = false;
  document.getElementById("panel-title").textContent = "Task " + selected;
  document.getElementById("panel-up").hidden = parent === null;
  if (parent !== null) document.getElementById("panel-parent").textContent = `← ${parent}: all its instances`;
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
  const fanned = isFanout(selected);
  document.getElementById("panel-fanout").hidden = !fanned;
  if (fanned) renderInstances(selected);
  const spec = specOf(parent ?? selected);
  document.getElementById("panel-params").textContent = JSON.stringify(spec.params || {}, null, 2);
  document.getElementById("panel-outputs").textContent =
    task.outputs === undefined || task.outputs === null ? "—" : JSON.stringify(task.outputs, null, 2);
  document.getElementById("panel-log").textContent = logs[selected] || "(no log yet)";
}

// A forEach task's counts by phase, and (while open) its failed and running instances, at
// most LISTED_MAX of each: a fan-out of ten thousand failures is still a short list.
function renderInstances(taskId) {
  const fanout = fanoutOf(taskId);
  const counts = document.getElementById("panel-counts");
  counts.replaceChildren();
  if (!fanout) {
    counts.textContent = "No instances yet.";
  } else {
    for (const phase of PANEL_PHASES) {
      if (!COUNTED.includes(phase) && !fanout.phases[phase]) continue;
      const badge = phaseBadge(phase);
      badge.dataset.phase = phase;
      badge.textContent = `${MARKS[phase]} ${count(fanout.phases[phase])} ${phase}`;
      counts.append(badge);
    }
    counts.append(`of ${count(fanout.total)}`);
  }
  const list = document.getElementById("instance-list");
  const note = document.getElementById("instances-note");
  if (!document.getElementById("panel-instances").open) return;  // nothing drawn while closed
  if (listed.of !== taskId) {
    note.textContent = "Reading…";
    list.replaceChildren();
    drawnList = "";
    return;
  }
  const groups = LISTED.map((phase) => Object.entries(listed.tasks)
    .filter(([, task]) => task.phase === phase)
    .sort(([a], [b]) => indexOf(a) - indexOf(b)));
  const rows = groups.map((group) => group.slice(0, LISTED_MAX)
    .map(([id, task]) => [id, task.phase, task.attempts || 0, task.message || ""]));
  const text = JSON.stringify([rows, groups.map((group) => group.length)]);
  note.textContent = groups[0].length + groups[1].length
    ? `${count(groups[0].length)} failed, ${count(groups[1].length)} running (select one for its detail).`
    : "No instance is failed or running.";
  if (text === drawnList) return;  // the same list: nothing redrawn, the focus stays
  drawnList = text;
  keepFocus(() => {
    list.replaceChildren();
    LISTED.forEach((phase, number) => {
      for (const [id, , attempts, message] of rows[number]) {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.id = "instance-" + id;
        button.dataset.instance = id;
        button.textContent = id;
        item.append(button, phaseBadge(phase), `attempt ${attempts}`);
        if (message) item.append(` · ${message}`);
        list.append(item);
      }
      const more = groups[number].length - rows[number].length;
      if (more > 0) {
        const item = document.createElement("li");
        item.className = "more";
        item.textContent = `… and ${count(more)} more ${phase.toLowerCase()}`;
        list.append(item);
      }
    });
  });
}

// The forEach task whose failed and running instances the panel needs: its own, while its
// list is open, or in a big run the selected instance's (its entry is read from that list).
function listWanted() {
  if (!selected) return null;
  const parent = parentOf(selected);
  if (parent !== null) return big ? parent : null;
  return isFanout(selected) && document.getElementById("panel-instances").open ? selected : null;
}

// Reads the list now, or once REFRESH_MS after the last read: a burst of updates makes one read.
function readSoon() {
  if (!listWanted()) return;
  if (reading.busy) { reading.again = true; return; }
  if (reading.timer) return;
  reading.timer = setTimeout(readList, Math.max(0, reading.last + REFRESH_MS - Date.now()));
}

async function readList() {
  reading.timer = 0;
  const parent = listWanted();
  if (!parent) return;
  reading.busy = true;
  reading.last = Date.now();
  const path = `/workflow/${encodeURIComponent(runId)}`;
  try {
    const answer = await (await api("GET", `${path}?tasks=${LISTED.join(",")}&limit=1000`)).json();
    const tasks = {};
    for (const [taskId, task] of Object.entries(answer.status.tasks)) {
      if (taskId.startsWith(parent + "[")) tasks[taskId] = task;
    }
    listed = { of: parent, tasks };
    const instance = selected;
    if (big && parentOf(instance) === parent) {
      if (tasks[instance]) {
        details[instance] = tasks[instance];
        settled = null;
      } else if (settled !== instance) {
        // No longer failed nor running: its last entry is read from every entry, once.
        const all = await (await api("GET", `${path}?tasks=all`)).json();
        const entry = all.status.tasks[instance];
        if (entry) {
          details[instance] = entry;
          if (TASK_FINISHED.includes(entry.phase)) settled = instance;
        }
      }
    }
    showError("");
  } catch (error) {
    showError(error.message);
  } finally {
    reading.busy = false;
    if (reading.again) { reading.again = false; readSoon(); }
  }
  if (selected) renderPanel();
}

function select(taskId) {
  if (taskId !== selected) drawnList = "";
  selected = taskId;
  const shown = parentOf(taskId) ?? taskId;
  for (const node of document.querySelectorAll(".node")) {
    node.classList.toggle("selected", node.dataset.task === shown);
  }
  renderPanel();
  readSoon();
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
      take(event.data);
      renderOrigin(record.origin);
      renderRun();
      readSoon();
    } else if (event.event === "update") {
      const status = record.status;
      const data = event.data;
      status.phase = data.phase;
      status.progress = data.progress;
      status.message = data.message;
      status.suspended = data.suspended;
      status.queue = data.queue;
      if (data.fanouts) status.fanouts = data.fanouts;
      if (data.omitted !== undefined) becomeBig();
      merge(data.tasks);
      renderRun();
      readSoon();
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
    take(await (await api("GET", `/workflow/${encodeURIComponent(runId)}`)).json());
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
  document.getElementById("panel-parent").addEventListener("click", () => select(parentOf(selected)));
  document.getElementById("panel-instances").addEventListener("toggle", () => {
    drawnList = "";
    if (selected) renderPanel();
    readSoon();
  });
  document.getElementById("instance-list").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-instance]");
    if (button) select(button.dataset.instance);
  });
  load();
});
