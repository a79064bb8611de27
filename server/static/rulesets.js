// The rule author's page: rulesets and revisions, tests, diff, deploy, activate and roll back,
// canary and shadow, revisions waiting for approval (approve or reject them), and the replay
// flip report for a candidate.
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
        el("td", r.pending.length ? r.pending.map((p) => p.revision).join(", ") : "—", "pending"),
      );
      const cell = document.createElement("td");
      const open = el("button", "Open", "secondary");
      open.type = "button";
      open.addEventListener("click", () => show(r.name));
      cell.append(open);
      row.append(cell);
      rows.append(row);
    }
    showPending(rulesets);
    const waiting = rulesets.reduce((n, r) => n + r.pending.length, 0);
    say(`${rulesets.length} rulesets` + (waiting ? `, ${waiting} revision(s) waiting for approval` : ""));
    if (current) await show(current);
  } catch (err) {
    say(err.message, true);
  }
}

// Every revision waiting for approval: who deployed it and when, its diff against the active
// revision, its tests, and Approve / Reject for an author who did not deploy it (the server
// decides who may; the buttons only spare the others a refusal).
function showPending(rulesets) {
  const list = $("pending-list");
  list.replaceChildren();
  for (const r of rulesets) {
    for (const p of r.pending) {
      const item = el("li", null, "pending-revision");
      item.dataset.ruleset = r.name;
      item.dataset.revision = p.revision;
      item.append(
        el("h3", `${r.name} revision ${p.revision}`),
        el("p", `deployed by ${p.deployed_by} at ${p.deployed_at}` +
          (p.against ? `; changes from the active revision ${p.against}` : "; a new ruleset"), "muted"),
      );
      const diff = el("pre", null, "pending-diff");
      diff.setAttribute("aria-label", `Changes from revision ${p.against ?? "none"} to ${p.revision}`);
      for (const line of p.diff.split("\n")) {
        const kind = line.startsWith("+") && !line.startsWith("+++") ? "diff-add"
          : line.startsWith("-") && !line.startsWith("---") ? "diff-del" : "";
        diff.append(el("div", line, kind));
      }
      item.append(diff);
      const tests = el("details", null, "pending-tests");
      tests.append(el("summary", `Tests: ${p.tests.passed} passed, ${p.tests.failed} failed`));
      const outcomes = el("ul", null, "plain");
      for (const test of p.test_results) {
        outcomes.append(el("li", `${test.passed ? "✓" : "✗"} ${test.name}`, test.passed ? "" : "error"));
      }
      tests.append(outcomes);
      item.append(tests);
      if (p.can_review) {
        const form = el("form", null, "inline review-form");
        form.setAttribute("aria-label", `Approve or reject ${r.name} revision ${p.revision}`);
        const reason = el("input");
        reason.name = "reason";
        reason.placeholder = "why (for a rejection)";
        const label = el("label", "Reason");
        label.append(reason);
        const approve = el("button", "Approve", "approve");
        approve.type = "button";
        approve.addEventListener("click", () => review(r.name, p.revision, "approve"));
        const reject = el("button", "Reject", "secondary reject");
        reject.type = "button";
        reject.addEventListener("click", () => review(r.name, p.revision, "reject", reason.value.trim()));
        form.append(approve, label, reject);
        form.addEventListener("submit", (event) => event.preventDefault());
        item.append(form);
      } else {
        item.append(el("p", "Another author approves or rejects it.", "muted"));
      }
      list.append(item);
    }
  }
  $("pending").hidden = !list.children.length;
}

async function review(name, revision, verb, reason) {
  try {
    const path = `/v1/rulesets/${encodeURIComponent(name)}/revisions/${revision}/${verb}`;
    const done = await api.call("POST", path, { json: verb === "reject" ? { reason: reason || null } : {} });
    await loadList();
    say(done.status === "approved" ? `${name}: revision ${revision} approved and active`
      : `${name}: revision ${revision} rejected`);
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
    const review = rev.review;
    if (review && review.status === "pending") states.push(`pending approval (deployed by ${review.deployed_by})`);
    if (review && review.status === "approved") states.push(`approved by ${review.decided_by}`);
    if (review && review.status === "rejected") {
      states.push(`rejected by ${review.decided_by}` + (review.reason ? `: ${review.reason}` : ""));
    }
    row.append(el("td", rev.revision), el("td", rev.digest.slice(0, 19) + "…"), el("td", states.join(", ") || "—"));
    const actions = document.createElement("td");
    const tests = el("button", "Tests", "secondary");
    tests.type = "button";
    tests.addEventListener("click", () => runTests(name, rev.revision));
    actions.append(tests);
    const unapproved = review && review.status !== "approved";
    if (rev.revision !== ruleset.active_revision && !unapproved) {
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
    const untested = $("deploy-untested").checked ? "&allow_untested=true" : "";
    const done = await api.call("POST", `/v1/rulesets?activate=${activate}${untested}`, {
      body: text,
      contentType: file.name.endsWith(".json") ? "application/json" : "application/yaml",
    });
    const state = done.status === "pending" ? ", pending approval by another author" : done.activated ? " and active" : "";
    result.append(el("p", `${done.name} revision ${done.revision} ${done.created ? "deployed" : "unchanged"}` +
      `${state}; tests ${done.tests.passed} passed, ${done.tests.failed} failed`, "deployed"));
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

// One line of a flip report: the change, how often, and example decisions, each a link that
// opens it on the audit page.
function flipLine(c) {
  const item = el("li", `${c.change}: ${c.count} (e.g. `);
  c.examples.forEach((id, k) => {
    if (k) item.append(", ");
    const link = el("a", id, "decision-link");
    link.href = `/audit?decision=${encodeURIComponent(id)}`;
    item.append(link);
  });
  item.append(")");
  return item;
}

function showReport(result, report) {
  result.replaceChildren(el("p", `${count.format(report.changed)} of ${count.format(report.replayed)}` +
    ` decisions would change (${count.format(report.skipped)} skipped)`, "flip-summary"));
  for (const part of ["rules", "offers", "queues", "alerts", "errors"]) {
    if (!report[part].length) continue;
    result.append(el("h3", part));
    const list = el("ul", null, "plain");
    for (const c of report[part]) list.append(flipLine(c));
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
