// The rule author's page: rulesets and revisions, tests, diff, deploy, activate and roll back,
// canary and shadow, and the replay flip report for a candidate.
import { $, Api, el, keyForm, lineDiff } from "/static/common.js";

const api = new Api("frontline.authorKey");
let current = null; // the ruleset shown

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "muted";
}

async function loadList() {
  try {
    const { rulesets } = await api.call("GET", "/v1/rulesets");
    const rows = $("ruleset-rows");
    rows.replaceChildren();
    for (const r of rulesets) {
      const row = document.createElement("tr");
      row.dataset.ruleset = r.name;
      row.append(
        el("td", r.name),
        el("td", r.active_revision ?? "—", "active"),
        el("td", r.canary ? `${r.canary.revision} (${r.canary.percent}%)` : "—"),
        el("td", r.shadow ?? "—"),
        el("td", r.revisions),
      );
      const cell = document.createElement("td");
      const open = el("button", "Open", "secondary");
      open.type = "button";
      open.addEventListener("click", () => show(r.name));
      cell.append(open);
      row.append(cell);
      rows.append(row);
    }
    say(`${rulesets.length} rulesets`);
    if (current) await show(current);
  } catch (err) {
    say(err.message, true);
  }
}

async function show(name) {
  current = name;
  const ruleset = await api.call("GET", `/v1/rulesets/${encodeURIComponent(name)}`);
  $("detail").hidden = false;
  $("diff").hidden = false;
  $("detail-title").textContent = `Ruleset ${name}`;
  const rows = $("revision-rows");
  rows.replaceChildren();
  for (const rev of [...ruleset.revisions].reverse()) {
    const row = document.createElement("tr");
    row.dataset.revision = rev.revision;
    const states = [];
    if (rev.revision === ruleset.active_revision) states.push("active");
    if (ruleset.canary && ruleset.canary.revision === rev.revision) states.push(`canary ${ruleset.canary.percent}%`);
    if (ruleset.shadow === rev.revision) states.push("shadow");
    row.append(el("td", rev.revision), el("td", rev.digest.slice(0, 19) + "…"), el("td", states.join(", ") || "—"));
    const actions = document.createElement("td");
    const tests = el("button", "Tests", "secondary");
    tests.type = "button";
    tests.addEventListener("click", () => runTests(name, rev.revision));
    actions.append(tests);
    if (rev.revision !== ruleset.active_revision) {
      const activate = el("button", rev.revision < ruleset.active_revision ? "Roll back to this" : "Activate");
      activate.type = "button";
      activate.addEventListener("click", () => activateRevision(name, rev.revision));
      actions.append(" ", activate);
    }
    row.append(actions);
    rows.append(row);
  }
  const latest = ruleset.revisions.length;
  $("diff-from").value = Math.max(1, latest - 1);
  $("diff-to").value = latest;
}

async function activateRevision(name, revision) {
  try {
    await api.call("POST", `/v1/rulesets/${encodeURIComponent(name)}/activate`, { json: { revision } });
    say(`${name}: revision ${revision} is active`);
    await loadList();
  } catch (err) {
    say(err.message, true);
  }
}

async function runTests(name, revision) {
  const result = await api.call("GET", `/v1/rulesets/${encodeURIComponent(name)}/revisions/${revision}/tests`);
  $("tests").hidden = false;
  $("tests-title").textContent = `Tests of ${name} revision ${revision}`;
  $("tests-summary").textContent = `${result.passed} passed, ${result.failed} failed`;
  const list = $("test-list");
  list.replaceChildren();
  for (const test of result.tests) {
    const item = el("li", `${test.passed ? "✓" : "✗"} ${test.name}`, test.passed ? "" : "error");
    for (const failure of test.failures) item.append(el("div", failure, "muted"));
    list.append(item);
  }
}

$("diff-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const base = `/v1/rulesets/${encodeURIComponent(current)}/revisions/`;
  try {
    const [a, b] = await Promise.all([
      api.call("GET", base + $("diff-from").value),
      api.call("GET", base + $("diff-to").value),
    ]);
    const out = $("diff-output");
    out.replaceChildren();
    const diff = lineDiff(a.document, b.document);
    const changed = diff.filter((d) => d.op !== " ").length;
    out.append(el("div", `${changed} changed line(s) from revision ${a.revision} to ${b.revision}`, "muted"));
    diff.forEach((d, k) => {
      const near = diff.slice(Math.max(0, k - 2), k + 3).some((x) => x.op !== " ");
      if (d.op === " " && !near) return;
      out.append(el("div", `${d.op} ${d.line}`, d.op === "+" ? "diff-add" : d.op === "-" ? "diff-del" : ""));
    });
  } catch (err) {
    say(err.message, true);
  }
});

$("deploy-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("deploy-file").files[0];
  const result = $("deploy-result");
  result.replaceChildren();
  try {
    const text = await file.text();
    const activate = $("deploy-activate").checked;
    const done = await api.call("POST", `/v1/rulesets?activate=${activate}`, {
      body: text,
      contentType: file.name.endsWith(".json") ? "application/json" : "application/yaml",
    });
    result.append(el("p", `${done.name} revision ${done.revision} ${done.created ? "deployed" : "unchanged"}` +
      `${done.activated ? " and active" : ""}; tests ${done.tests.passed} passed, ${done.tests.failed} failed`, "deployed"));
    // What the analysis found that does not refuse the deploy: rows that can never win,
    // gaps of a table marked complete, conditions that contradict themselves.
    if (done.warnings && done.warnings.length) {
      result.append(el("p", `${done.warnings.length} warning(s):`, "analysis-warning"));
      for (const w of done.warnings) result.append(el("div", located(w), "analysis-warning"));
    }
    current = done.name;
    await loadList();
  } catch (err) {
    result.append(el("p", err.message, "error"));
    for (const e of (err.problem && err.problem.errors) || []) {
      result.append(el("div", e.message ? located(e) : JSON.stringify(e), "muted"));
    }
  }
});

// A located problem (an error or a warning) as one line: "line 12: ...".
function located(p) {
  return `${p.line ? "line " + p.line + ": " : ""}${p.message}`;
}

$("rollout-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await rollout({ revision: Number($("canary-revision").value), percent: Number($("canary-percent").value) });
});
$("shadow-button").addEventListener("click", () => rollout({ shadow: Number($("shadow-revision").value) }));
$("shadow-stop").addEventListener("click", () => rollout({ shadow: null }));

async function rollout(body) {
  try {
    await api.call("POST", `/v1/rulesets/${encodeURIComponent(current)}/rollout`, { json: body });
    say(`${current}: routing changed`);
    await loadList();
  } catch (err) {
    say(err.message, true);
  }
}

// A replay streams JSON lines: {"progress": {done, total}} as it goes, then {"report": ...}
// (or {"error": problem} if it failed after it started).
async function replayStreamed(body, onProgress) {
  const response = await fetch("/v1/replays", {
    method: "POST",
    headers: {
      Authorization: `Bearer ${api.key}`,
      "Content-Type": "application/json",
      Accept: "application/x-ndjson",
    },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    const error = new Error((data && data.detail) || `POST /v1/replays answered ${response.status}`);
    error.status = response.status;
    error.problem = data;
    throw error;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (!line) continue;
      const item = JSON.parse(line);
      if (item.progress) onProgress(item.progress);
      else if (item.report) return item.report;
      else if (item.error) {
        const error = new Error(item.error.detail || "the replay failed");
        error.problem = item.error;
        throw error;
      }
    }
    if (done) throw new Error("the replay ended before its report arrived");
  }
}

const count = new Intl.NumberFormat("en");

function showProgress({ done, total }) {
  const bar = $("replay-bar");
  $("replay-progress").hidden = false;
  if (total === null || total === undefined) {
    bar.removeAttribute("value"); // the total is not known: an indeterminate bar
    $("replay-count").textContent = `${count.format(done)} decisions replayed`;
  } else {
    bar.max = Math.max(total, 1);
    bar.value = total ? Math.min(done, total) : 1;
    $("replay-count").textContent = `${count.format(done)} of ${count.format(total)} decisions`;
  }
}

function showReport(result, report) {
  result.replaceChildren(el("p", `${count.format(report.changed)} of ${count.format(report.replayed)}` +
    ` decisions would change (${count.format(report.skipped)} skipped)`, "flip-summary"));
  for (const part of ["rules", "offers", "queues", "alerts", "errors"]) {
    if (!report[part].length) continue;
    result.append(el("h3", part));
    const list = el("ul", null, "plain");
    for (const c of report[part]) list.append(el("li", `${c.change}: ${c.count} (e.g. ${c.examples.join(", ")})`));
    result.append(list);
  }
}

$("replay-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("replay-result");
  const button = $("replay-button");
  result.replaceChildren(el("p", "Counting the decisions to replay…", "muted"));
  $("replay-progress").hidden = true;
  button.disabled = true;
  try {
    const since = $("replay-since").value.trim() || new Date(Date.now() - 7 * 86400000).toISOString();
    const text = await $("replay-file").files[0].text();
    const report = await replayStreamed({ document: text, since }, (progress) => {
      if (!progress.done) result.replaceChildren(el("p", "Replaying…", "muted"));
      showProgress(progress);
    });
    showReport(result, report);
  } catch (err) {
    result.replaceChildren(el("p", err.message, "error"));
    for (const e of (err.problem && err.problem.errors) || []) {
      result.append(el("div", e.message ? `${e.line ? "line " + e.line + ": " : ""}${e.message}` : JSON.stringify(e), "muted"));
    }
  } finally {
    button.disabled = false;
  }
});

keyForm(api, "key-form", "key", loadList);
