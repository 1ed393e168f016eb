// Templates, each at its current revision with the revisions kept, polled; the one the path
// names (/ui/templates/NAME/revisions/N, or /ui/templates/NAME: its current revision) is
// shown below the list with its spec.
"use strict";
const POLL_MS = 3000;
const [chosenName, chosenRevision] = (() => {
  const parts = location.pathname.split("/").slice(3).map(decodeURIComponent);  // after /ui/templates
  return [parts[0] || "", parts[1] === "revisions" ? Number(parts[2]) || 0 : 0];
})();

function revisionHref(name, revision) {
  return `/ui/templates/${encodeURIComponent(name)}/revisions/${revision}`;
}

function paramsText(params) {
  return Object.entries(params || {})
    .map(([name, param]) => ("default" in param ? `${name} = ${JSON.stringify(param.default)}` : `${name} (required)`))
    .join(", ");
}

const view = listView("/templates", render);

function render(items) {
  const body = document.getElementById("templates");
  body.replaceChildren();
  for (const template of items) {
    const row = document.createElement("tr");
    row.dataset.template = template.name;
    if (template.name === chosenName) {
      row.classList.add("selected");
      row.setAttribute("aria-current", "true");
    }
    const name = document.createElement("td");
    name.append(link(`/ui/templates/${encodeURIComponent(template.name)}`, template.name));
    const revision = document.createElement("td");
    revision.className = "revision";
    revision.textContent = String(template.revision);
    const kept = document.createElement("td");
    kept.className = "revisions";
    for (const number of template.revisions || [template.revision]) {
      const anchor = link(revisionHref(template.name, number), String(number), `${template.name} revision ${number}`);
      anchor.setAttribute("aria-label", `${template.name} revision ${number}`);
      if (template.name === chosenName && number === chosenRevision) anchor.setAttribute("aria-current", "page");
      kept.append(anchor, " ");
    }
    const params = document.createElement("td");
    params.textContent = paramsText(template.spec.params) || "—";
    const updated = document.createElement("td");
    updated.textContent = template.updated_at ? age(template.updated_at) : "—";
    updated.title = template.updated_at || "";
    row.append(name, revision, kept, params, updated);
    body.append(row);
  }
  if (!items.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 5;
    cell.textContent = "No templates.";
    row.append(cell);
    body.append(row);
  }
}

async function loadRevision() {
  const panel = document.getElementById("revision");
  panel.hidden = false;
  const name = encodeURIComponent(chosenName);
  const path = chosenRevision ? `/templates/${name}/revisions/${chosenRevision}` : `/templates/${name}`;
  document.getElementById("revision-title").textContent =
    `Template ${chosenName}` + (chosenRevision ? ` · revision ${chosenRevision}` : "");
  try {
    const record = await (await api("GET", path)).json();
    showError("", "revision-error");
    renderRevision(record);
  } catch (error) {
    showError(error.message, "revision-error");
  }
}

function renderRevision(record) {
  document.getElementById("revision-title").textContent = `Template ${record.name} · revision ${record.revision}`;
  document.title = `${record.name} revision ${record.revision} · stageflow`;
  const kept = record.revisions || [];
  const latest = kept.length ? Math.max(...kept) : record.revision;
  const rows = [
    ["Revision", record.revision === latest ? `${record.revision} (current)` : `${record.revision} (current: ${latest})`],
    ["Digest", record.digest],
    ["Written", record.updated_at ? stamp(record.updated_at) : "—"],
    ["Created", record.created_at ? stamp(record.created_at) : "—"],
    ["Params", paramsText(record.spec.params) || "—"],
  ];
  const fields = document.getElementById("revision-fields");
  fields.replaceChildren();
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    fields.append(dt, dd);
  }
  document.getElementById("revision-spec").textContent = JSON.stringify(record.spec, null, 2);
}

document.addEventListener("DOMContentLoaded", () => {
  const reload = poll(view.load, POLL_MS);
  setUpTokenForm(() => { view.forget(); reload(); if (chosenName) loadRevision(); });
  if (chosenName) loadRevision();  // a revision never changes: read once
});
