// What every page shares: the token entered once, API calls with it, phases in words,
// times, and polling a list while the page is shown.
"use strict";
const TOKEN_KEY = "stageflow.token";
const MARKS = { Pending: "·", Running: "▶", Succeeded: "✓", Failed: "✗", Skipped: "-", Cancelled: "⊘", Waiting: "⏸" };

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

function showError(text, id = "error") {
  const box = document.getElementById(id);
  box.textContent = text;
  box.hidden = !text;
}

async function api(method, path, body) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    const hint = response.status === 401 ? " (enter a token above)" : "";
    throw new Error(`${detail} (HTTP ${response.status})${hint}`);
  }
  return response;
}

function phaseText(phase) { return `${MARKS[phase] || "?"} ${phase}`; }

function setPhase(element, phase) {
  for (const name of [...element.classList]) {
    if (name.startsWith("phase-")) element.classList.remove(name);
  }
  element.classList.add("phase-" + phase);
}

function span(seconds) {
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

function age(iso) { return span(Math.max(0, (Date.now() - Date.parse(iso)) / 1000)); }

// "2026-03-01 02:00:00Z": the API's UTC timestamp, to the second.
function stamp(iso) { return iso.replace("T", " ").replace(/\.\d+/, ""); }

// "in 5s" or "5s ago".
function when(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  return seconds >= 0 ? `in ${span(seconds)}` : `${span(-seconds)} ago`;
}

// A <time> showing the moment and how far it is from now; refreshTimes() updates the latter.
function timeElement(iso) {
  const element = document.createElement("time");
  element.dateTime = iso;
  element.title = iso;
  element.dataset.relative = "";
  element.textContent = `${stamp(iso)} (${when(iso)})`;
  return element;
}

function refreshTimes() {
  for (const element of document.querySelectorAll("time[data-relative]")) {
    element.textContent = `${stamp(element.dateTime)} (${when(element.dateTime)})`;
  }
}

function phaseBadge(phase) {
  const badge = document.createElement("span");
  badge.className = "badge";
  setPhase(badge, phase);
  badge.textContent = phaseText(phase);
  return badge;
}

function link(href, text, title) {
  const anchor = document.createElement("a");
  anchor.href = href;
  anchor.textContent = text;
  if (title) anchor.title = title;
  return anchor;
}

// Rebuilds part of the page with render(), keeping the keyboard focus on the element of
// the same id (a row's button rebuilt by a poll is still the one focused).
function keepFocus(render) {
  const focused = document.activeElement && document.activeElement.id;
  render();
  if (focused && document.activeElement?.id !== focused) document.getElementById(focused)?.focus();
}

// A list read from `path` and drawn with render(items) only when it changed since it was
// last drawn (a poll that finds it the same draws nothing, so focus and selection stay).
// `forget()` makes the next load draw (after the token changed, say).
function listView(path, render) {
  let shown = "";
  return {
    async load() {
      try {
        const list = await (await api("GET", path)).json();
        showError("");
        const text = JSON.stringify(list.items);
        if (text !== shown) {
          shown = text;
          keepFocus(() => render(list.items));
        }
        refreshTimes();
      } catch (error) {
        showError(error.message);
      }
    },
    forget() { shown = ""; },
  };
}

// Calls the async `load` now and `ms` after each call ends, while the page is shown (a
// hidden tab stops, and loads at once when shown again). Returns a function that loads now
// (after a click): a call while one is under way makes one more load after it, never two
// at once.
function poll(load, ms) {
  let timer = 0;
  let running = false;
  let again = false;
  async function tick() {
    clearTimeout(timer);
    if (running) { again = true; return; }
    if (document.hidden) return;
    running = true;
    try {
      do { again = false; await load(); } while (again);
    } finally {
      running = false;
      timer = setTimeout(tick, ms);
    }
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
  tick();
  return tick;
}

const TOKEN_FORM = `
  <form id="token-form" class="token" aria-label="API token">
    <label for="token">Token</label>
    <input id="token" type="password" autocomplete="off" placeholder="only when auth is on">
    <button type="submit">Save</button>
    <button type="button" id="token-forget">Forget</button>
  </form>`;

function setUpTokenForm(onChange) {
  document.getElementById("top").insertAdjacentHTML("beforeend", TOKEN_FORM);
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  input.value = token();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, input.value.trim());
    onChange();
  });
  document.getElementById("token-forget").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    input.value = "";
    onChange();
  });
}
