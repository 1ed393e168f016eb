// What both pages share: the token entered once, API calls with it, phases in words.
"use strict";
const TOKEN_KEY = "stageflow.token";
const MARKS = { Pending: "·", Running: "▶", Succeeded: "✓", Failed: "✗", Skipped: "-", Cancelled: "⊘", Waiting: "⏸" };

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

function showError(text) {
  const box = document.getElementById("error");
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

function age(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
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
