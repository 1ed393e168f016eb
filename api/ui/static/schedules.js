// Schedules, polled: when each fires, what it starts, its runs going and recent (links to
// their pages), pause and resume. The one the path names (/ui/schedules/NAME) is shown in
// full below the list.
"use strict";
const POLL_MS = 3000;
const chosenName = decodeURIComponent(location.pathname.split("/")[3] || "");  // after /ui/schedules
let reload = () => {};
const holding = new Set();  // names of the schedules a pause or resume is under way for

function templateLink(ref) {
  const name = encodeURIComponent(ref.name);
  return ref.revision
    ? link(`/ui/templates/${name}/revisions/${ref.revision}`, `template ${ref.name} revision ${ref.revision}`)
    : link(`/ui/templates/${name}`, `template ${ref.name} (current revision)`);
}

function starts(spec) {
  const cell = document.createElement("td");
  if (spec.templateRef) cell.append(templateLink(spec.templateRef));
  else cell.textContent = "inline workflow" + (spec.workflowSpec && spec.workflowSpec.name ? ` ${spec.workflowSpec.name}` : "");
  return cell;
}

function timeCell(iso, otherwise) {
  const cell = document.createElement("td");
  if (iso) cell.append(timeElement(iso));
  else cell.textContent = otherwise;
  return cell;
}

// A slot today as its time alone (12:55:46Z); another day's with its date.
function shortStamp(iso) {
  const full = stamp(iso);
  return iso.slice(0, 10) === new Date().toISOString().slice(0, 10) ? full.slice(11) : full;
}

function runItem(run, active) {
  const item = document.createElement("li");
  const slot = stamp(run.scheduledTime);
  item.append(link(`/ui/runs/${encodeURIComponent(run.runId)}`, run.runId.slice(0, 8),
                   `run ${run.runId} for ${slot}`), " ");
  if (run.phase) item.append(phaseBadge(run.phase));
  else item.append(active ? "starting" : "");
  const note = document.createElement("span");
  note.className = "muted";
  note.textContent = ` for ${shortStamp(run.scheduledTime)}` + (run.backfill ? " (backfill)" : "");
  item.append(note);
  return item;
}

function runsCell(status) {
  const cell = document.createElement("td");
  const list = document.createElement("ul");
  list.className = "slots";
  for (const run of status.active || []) list.append(runItem(run, true));
  for (const run of status.recent || []) list.append(runItem(run, false));
  if (list.children.length) cell.append(list);
  else cell.textContent = "—";
  return cell;
}

function stateCell(schedule) {
  const cell = document.createElement("td");
  const suspended = !!schedule.spec.suspend;
  const state = document.createElement("span");
  state.className = "state-text";
  state.textContent = suspended ? "Suspended" : "Active";
  const button = document.createElement("button");
  button.type = "button";
  button.id = "hold-" + schedule.name;  // the same id either way: the focus stays on it
  button.textContent = suspended ? "Resume" : "Pause";
  button.setAttribute("aria-label", `${suspended ? "Resume" : "Pause"} ${schedule.name}`);
  button.addEventListener("click", () => hold(schedule.name, suspended ? "resume" : "pause"));
  cell.append(state, " ", button);
  if (schedule.status.message) {
    const message = document.createElement("div");
    message.className = "message";
    message.textContent = schedule.status.message;
    cell.append(message);
  }
  return cell;
}

// Pause or resume; a second click while the first is under way sends nothing. (The button
// is not disabled meanwhile: a disabled button would lose the keyboard focus.)
async function hold(name, action) {
  if (holding.has(name)) return;
  holding.add(name);
  try {
    await api("POST", `/schedules/${encodeURIComponent(name)}/${action}`);
    showError("");
  } catch (error) {
    showError(error.message);
  } finally {
    holding.delete(name);
  }
  reload();
}

function render(items) {
  const body = document.getElementById("schedules");
  body.replaceChildren();
  for (const schedule of items) {
    const { spec, status } = schedule;
    const row = document.createElement("tr");
    row.dataset.schedule = schedule.name;
    if (schedule.name === chosenName) {
      row.classList.add("selected");
      row.setAttribute("aria-current", "true");
    }
    const name = document.createElement("td");
    name.append(link(`/ui/schedules/${encodeURIComponent(schedule.name)}`, schedule.name));
    const entries = document.createElement("td");
    entries.className = "when";
    spec.schedule.forEach((entry, index) => {
      const text = document.createElement("span");
      text.className = "entry";
      text.textContent = entry;
      entries.append(...(index ? [", ", text] : [text]));
    });
    entries.append(` · ${spec.timezone}`);
    const next = spec.suspend ? timeCell(null, "none while suspended") : timeCell(status.nextScheduledTime, "—");
    next.className = "next";
    const last = timeCell(status.lastScheduledTime, "none yet");
    last.className = "last";
    const lastRun = document.createElement("td");
    lastRun.className = "last-run";
    if (status.lastRunPhase) lastRun.append(phaseBadge(status.lastRunPhase));
    else lastRun.textContent = "—";
    const state = stateCell(schedule);
    state.className = "state";
    const runs = runsCell(status);
    runs.className = "runs-of";
    row.append(name, entries, starts(spec), next, last, state, lastRun, runs);
    body.append(row);
  }
  if (!items.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 8;
    cell.textContent = "No schedules.";
    row.append(cell);
    body.append(row);
  }
  if (chosenName) renderDetail(items.find((schedule) => schedule.name === chosenName));
}

function renderDetail(schedule) {
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-title").textContent = `Schedule ${chosenName}`;
  const fields = document.getElementById("detail-fields");
  fields.replaceChildren();
  if (!schedule) {
    showError(`No schedule named ${chosenName}.`, "detail-error");
    document.getElementById("detail-spec").textContent = "";
    return;
  }
  showError("", "detail-error");
  document.title = `${schedule.name} · schedule · stageflow`;
  const { spec, status } = schedule;
  const rows = [
    ["When", spec.schedule.join(", ")],
    ["Time zone", spec.timezone],
    ["Starts", spec.templateRef ? templateLink(spec.templateRef) : "an inline workflow (below)"],
    ["State", spec.suspend ? "Suspended" : "Active"],
    ["Next firing", spec.suspend ? "none while suspended" : status.nextScheduledTime ? timeElement(status.nextScheduledTime) : "—"],
    ["Last slot", status.lastScheduledTime ? timeElement(status.lastScheduledTime) : "none yet"],
    ["Slots", `${status.fired} fired, ${status.skipped} skipped, ${status.missed} missed`],
    ["Overlap policy", spec.overlapPolicy],
    ["Last run", status.lastRunPhase ? phaseBadge(status.lastRunPhase) : "—"],
    ["Message", status.message || "—"],
    ["Created", stamp(schedule.created_at)],
  ];
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.append(value);
    fields.append(dt, dd);
  }
  document.getElementById("detail-spec").textContent = JSON.stringify(spec, null, 2);
}

const view = listView("/schedules", render);

document.addEventListener("DOMContentLoaded", () => {
  reload = poll(view.load, POLL_MS);
  setUpTokenForm(() => { view.forget(); reload(); });
});
