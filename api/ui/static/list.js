// The run list: phase filter, pages by the API's cursor.
"use strict";
const PAGE_SIZE = 20;
let cursors = [null];  // the cursor of each page shown so far; the last is this page's

async function load() {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const phase = document.getElementById("phase").value;
  if (phase) params.set("phase", phase);
  const cursor = cursors[cursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  try {
    const page = await (await api("GET", "/workflows?" + params)).json();
    showError("");
    render(page);
  } catch (error) {
    showError(error.message);
  }
}

function render(page) {
  const body = document.getElementById("runs");
  body.replaceChildren();
  for (const run of page.items) {
    const row = document.createElement("tr");
    row.dataset.runId = run.run_id;
    const id = document.createElement("td");
    id.className = "id";
    const link = document.createElement("a");
    link.href = "/ui/runs/" + encodeURIComponent(run.run_id);
    link.textContent = run.run_id.slice(0, 8);
    link.title = run.run_id;
    id.append(link);
    const name = document.createElement("td");
    name.textContent = run.name || "";
    const phase = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge";
    setPhase(badge, run.phase);
    badge.textContent = phaseText(run.phase);
    phase.append(badge);
    const progress = document.createElement("td");
    progress.textContent = run.progress;
    const created = document.createElement("td");
    created.textContent = age(run.created_at);
    created.title = run.created_at;
    row.append(id, name, phase, progress, created);
    body.append(row);
  }
  if (!page.items.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 5;
    cell.textContent = "No runs.";
    row.append(cell);
    body.append(row);
  }
  cursors.length = Math.max(cursors.length, 1);
  const next = document.getElementById("next");
  next.disabled = !page.next_cursor;
  next.dataset.cursor = page.next_cursor || "";
  document.getElementById("first").disabled = cursors.length === 1;
  document.getElementById("page-info").textContent = `Page ${cursors.length}`;
}

function restart() { cursors = [null]; load(); }

document.addEventListener("DOMContentLoaded", () => {
  setUpTokenForm(restart);
  document.getElementById("phase").addEventListener("change", restart);
  document.getElementById("refresh").addEventListener("click", load);
  document.getElementById("first").addEventListener("click", restart);
  document.getElementById("next").addEventListener("click", (event) => {
    cursors.push(event.target.dataset.cursor);
    load();
  });
  load();
});
