// codeduel view: live progress (polling the page's JSON endpoint) and the task grid's filters.
// Every value from the store is set as text, never as markup.
"use strict";

const POLL_MS = 2000;

function pct(v) { return v === null ? "–" : (100 * v).toFixed(1) + "%"; }

function secs(v) {
  if (v === null) return "–";
  const s = Math.round(v);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + String(s % 60).padStart(2, "0") + " s";
  return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
}

function fill(row, p) {
  const set = (field, text) => {
    const cell = row.querySelector(`[data-field="${field}"]`);
    if (cell) cell.textContent = text;
  };
  set("done", p.total ? `${p.done} / ${p.total}` : String(p.done));
  set("pass_rate", pct(p.pass_rate));
  set("samples_per_min", p.samples_per_min ? p.samples_per_min.toFixed(1) + "/min" : "–");
  set("eta_s", p.stalled ? `stalled: nothing for ${secs(p.idle_s)}` : secs(p.eta_s));
  set("model_errors", String(p.model_errors));
  const bar = row.querySelector('[data-field="bar"]');
  if (bar) {
    bar.max = p.total || 1;
    bar.value = p.total ? p.done : 0;
  }
  if (p.status !== undefined) {
    const status = row.querySelector('[data-field="status"]');
    if (status) {
      const badge = document.createElement("span");
      badge.className = "status status-" + p.status;
      badge.textContent = p.status;
      status.replaceChildren(badge);
    }
  }
}

function rowFor(id) {
  return [...document.querySelectorAll("tr[data-id]")].find((r) => r.dataset.id === id);
}

function apply(data) {
  if (Array.isArray(data)) {
    for (const run of data) {
      const row = rowFor(String(run.id));
      if (row) fill(row, run);
    }
    return;
  }
  const whole = rowFor("run");
  if (whole) fill(whole, data);
  for (const system of data.systems) {
    const row = rowFor(`${system.model} ${system.strategy}`);
    if (row) fill(row, system);
  }
  const loaded = Number(document.body.dataset.loaded);
  const stale = document.querySelector('[data-field="stale"]');
  if (stale && data.done > loaded) {
    stale.textContent = `${data.done - loaded} samples stored since this page loaded: ` +
      "reload for the tables, the figures and new systems.";
    stale.hidden = false;
  }
}

async function poll(url) {
  try {
    const response = await fetch(url, { cache: "no-store" });
    if (response.ok) apply(await response.json());
  } catch (_) {
    // The server stopped (Ctrl-C): the page keeps what it last showed.
    return;
  }
  setTimeout(() => poll(url), POLL_MS);
}

function filterGrid() {
  const search = document.getElementById("search");
  const outcome = document.getElementById("outcome");
  if (!search || !outcome) return;
  const params = new URLSearchParams(location.search);
  search.value = params.get("q") || "";
  if (params.get("show")) outcome.value = params.get("show");
  const rows = [...document.querySelectorAll("table.grid tbody tr")];
  const tests = {
    all: () => true,
    failed: (o) => o.has("failed"),
    error: (o) => o.has("error"),
    passed: (o) => o.size === 1 && o.has("passed"),
    disagree: (o) => o.has("passed") && (o.has("failed") || o.has("error")),
    pending: (o) => o.has("pending"),
  };
  const update = () => {
    const needle = search.value.trim().toLowerCase();
    const test = tests[outcome.value] || tests.all;
    let shown = 0;
    for (const row of rows) {
      const outcomes = new Set(row.dataset.outcomes.split(" ").filter(Boolean));
      const show = row.dataset.task.toLowerCase().includes(needle) && test(outcomes);
      row.hidden = !show;
      if (show) shown += 1;
    }
    document.getElementById("count").textContent = `${shown} of ${rows.length} tasks`;
    document.getElementById("none").hidden = shown > 0;
    const next = new URLSearchParams();
    if (needle) next.set("q", search.value.trim());
    if (outcome.value !== "all") next.set("show", outcome.value);
    const query = next.toString();
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
  };
  search.addEventListener("input", update);
  outcome.addEventListener("change", update);
  search.form.addEventListener("submit", (event) => event.preventDefault());
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.poll) poll(document.body.dataset.poll);
  filterGrid();
});
