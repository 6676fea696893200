// The status page: one Server-Sent Events stream (api/log) brings log lines and every change of state;
// buttons post to the API. Relative URLs only, so the page works behind Coder's path-based app proxy.
"use strict";

const $ = (id) => document.getElementById(id);
const LABELS = {
  running: "running", degraded: "degraded: on the fallback image", building: "building",
  failed: "failed", interrupted: "interrupted", none: "no build yet",
};
const MAX_LINES = 5000;
let current = null;

function setText(id, text) { $(id).textContent = text; }

function render(summary) {
  current = summary;
  const status = summary.status;
  const badge = $("status");
  badge.dataset.status = status;
  let label = LABELS[status] || status;
  if (status === "building" && summary.build && summary.build.seconds != null) label += ` ${summary.build.seconds} s`;
  badge.textContent = label;
  document.title = `Devcontainer: ${label}`;
  const building = status === "building";
  for (const id of ["rebuild", "rebuild-full", "suggestion-rebuild"]) $(id).disabled = building;
  const problem = summary.error && (status === "degraded" || status === "failed" || summary.fallback);
  $("problem").hidden = !problem;
  if (problem) {
    setText("problem-step", `Failed step: ${summary.error.step || "unknown"}`);
    setText("problem-message", summary.error.message || "");
  }
  if (summary.keepalive_error) {
    $("problem").hidden = false;
    setText("problem-step", "Keep-alive");
    setText("problem-message", summary.keepalive_error);
  }
  const volumes = summary.compose_volumes || [];
  $("volumes-note").hidden = !summary.compose_project;
  if (summary.compose_project) {
    setText("volumes-note", `A rebuild, full or not, recreates every service of the compose project ${summary.compose_project}`
      + (volumes.length ? ` and keeps its named volumes (${volumes.join(", ")}): their data survives.` : "."));
  }
  const suggested = summary.rebuild_suggested && !building;
  $("suggestion").hidden = !suggested;
  if (suggested) setText("changed-files", (summary.changed_files || []).join(", ") || "(files)");
}

// the editor inside the devcontainer (docs/ide.md): opened from the workspace's code-server app in Coder
function editorText(ide) {
  if (!ide) return "";
  if (ide.status === "started" || ide.status === "running") return `code-server at ${ide.url} in the devcontainer: open the workspace's code-server app`;
  return `no editor (${ide.status}): ${ide.error || "see the build log"}`;
}

function renderDetails(full) {
  const details = $("details");
  details.replaceChildren();
  const repo = full.repository || {};
  const state = full.state || {};
  const rows = [
    ["Repository", repo.url], ["Branch", repo.branch], ["Commit", (repo.commit || "").slice(0, 12)],
    ["Local changes", repo.modified != null ? `${repo.modified} modified, ${repo.untracked} untracked` : ""],
    ["Container", (state.container_id || "").slice(0, 12)], ["Compose project", state.compose_project],
    ["Config", state.config_path],
    ["Remote user", state.remote_user], ["Editor", editorText(state.ide)],
    ["Missing extensions", state.ide && (state.ide.missing || []).join(", ")], ["Updated", state.updated_at],
  ];
  for (const [name, value] of rows) {
    if (!value) continue;
    const dt = document.createElement("dt"); dt.textContent = name;
    const dd = document.createElement("dd"); dd.textContent = value;
    details.append(dt, dd);
  }
  const head = $("error-log-head");
  head.hidden = !full.error_log_head;
  head.textContent = full.error_log_head || "";
}

async function refresh() {
  try {
    const response = await fetch("api/status", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const full = await response.json();
    render(full);
    renderDetails(full);
  } catch (err) { setText("notice", "the supervisor does not answer"); }
}

function appendLine(text) {
  const log = $("log");
  const match = /^\S+ (\w+)\s+\[([^\]]*)\] (.*)$/.exec(text);
  const line = document.createElement("div");
  if (match) {
    line.textContent = match[3];
    line.className = match[1];
  } else {
    line.textContent = text;
  }
  log.append(line);
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  if ($("follow").checked) log.scrollTop = log.scrollHeight;
}

function connect() {
  const stream = new EventSource("api/log?follow=1");
  stream.addEventListener("line", (event) => appendLine(event.data));
  stream.addEventListener("reset", () => $("log").replaceChildren());
  stream.addEventListener("status", (event) => { render(JSON.parse(event.data)); refresh(); });
  stream.onerror = () => setText("notice", "reconnecting to the supervisor…");
  stream.onopen = () => setText("notice", "");
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  let answer = {};
  try { answer = await response.json(); } catch (err) { /* an empty answer */ }
  return { status: response.status, answer };
}

async function rebuild(full) {
  for (const id of ["rebuild", "rebuild-full", "suggestion-rebuild"]) $(id).disabled = true;
  const { status, answer } = await post("api/rebuild", { full });
  if (status === 202) setText("notice", `rebuild ${answer.build.id} started${full ? " without the layer cache" : ""}`);
  else if (status === 409) setText("notice", "a build is already running");
  else setText("notice", `the rebuild was refused: ${answer.error || status}`);
  refresh();
}

async function ignore() {
  const { status, answer } = await post("api/suggestion/ignore", { digest: (current && current.suggestion_hash) || "" });
  setText("notice", status === 200 ? "suggestion dismissed until the configuration changes again" : (answer.error || `${status}`));
  refresh();
}

$("rebuild").addEventListener("click", () => rebuild(false));
$("rebuild-full").addEventListener("click", () => rebuild(true));
$("suggestion-rebuild").addEventListener("click", () => rebuild(false));
$("suggestion-ignore").addEventListener("click", ignore);
refresh();
connect();
