// The rule author's page: rulesets and revisions (who deployed each, when and why), any
// revision's document, tests, diff, deploy, activate and roll back, retire, canary and shadow,
// revisions waiting for approval (approve or reject them), the draft workbench
// (workbench.js) and the replay flip report for a candidate.
import { $, Api, el, keyForm, lineDiff } from "/static/common.js";
import { confirmAction, say } from "/static/notices.js";
import {
  checkDraft, documentType, draftDeployed, draftFilename, draftText, drawGrids, initWorkbench, located, safeFilename, startDraft,
} from "/static/workbench.js";

const api = new Api("frontline.authorKey");
let current = null; // the ruleset shown
let summaries = new Map(); // name → its entry in the list
let viewed = null; // the revision document shown in the viewer

const path = (name) => `/v1/rulesets/${encodeURIComponent(name)}`;

// "2026-12-05T02:30:41.123Z" → "2026-12-05 02:30 UTC"
function when(at) {
  return at ? at.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "";
}

async function loadList() {
  try {
    const { rulesets } = await api.call("GET", "/v1/rulesets");
    summaries = new Map(rulesets.map((r) => [r.name, r]));
    const rows = $("ruleset-rows");
    rows.replaceChildren();
    for (const r of rulesets) {
      const row = document.createElement("tr");
      row.dataset.ruleset = r.name;
      if (r.retired) row.className = "retired";
      const named = el("td", null, "name");
      named.append(el("strong", r.name), el("div", r.retired
        ? `retired: ${r.retired.reason}` : r.description || "", "description muted"));
      row.append(
        named,
        el("td", r.retired ? "retired" : r.active_revision ?? "—", "active"),
        el("td", r.canary ? `${r.canary.revision} (${r.canary.percent}%)` : "—"),
        el("td", r.shadow ?? "—"),
        el("td", r.revisions),
        el("td", r.pending.length ? r.pending.map((p) => p.revision).join(", ") : "—", "pending"),
      );
      const cell = document.createElement("td");
      const open = el("button", "Open", "secondary");
      open.type = "button";
      open.setAttribute("aria-label", `Open ${r.name}`);
      open.addEventListener("click", () => show(r.name));
      cell.append(open);
      row.append(cell);
      rows.append(row);
    }
    showPending(rulesets);
    const waiting = rulesets.reduce((n, r) => n + r.pending.length, 0);
    $("list-title").textContent = `Rulesets (${rulesets.length}` + (waiting ? `, ${waiting} revision(s) waiting for approval)` : ")");
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
        el("p", `deployed by ${p.deployed_by} at ${when(p.deployed_at)}` +
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
    const url = `${path(name)}/revisions/${revision}/${verb}`;
    const done = await api.call("POST", url, { json: verb === "reject" ? { reason: reason || null } : {} });
    await loadList();
    say(done.status === "approved" ? `${name}: revision ${revision} approved and active`
      : `${name}: revision ${revision} rejected`);
  } catch (err) {
    say(err.message, true);
  }
}

async function show(name) {
  current = name;
  const ruleset = await api.call("GET", path(name));
  const summary = summaries.get(name) || {};
  $("detail").hidden = false;
  $("diff").hidden = false;
  $("detail-title").textContent = `Ruleset ${name}`;
  $("detail-description").textContent = summary.description || "";
  const retired = ruleset.retired;
  $("detail-retired").hidden = !retired;
  $("detail-retired").textContent = retired
    ? `Retired${retired.retired_by ? " by " + retired.retired_by : ""}` +
      `${retired.retired_at ? " at " + when(retired.retired_at) : ""}: ${retired.reason}. ` +
      `It serves nobody; activating a revision brings it back.` : "";
  $("retire-button").hidden = Boolean(retired);
  $("detail-changed").textContent = ruleset.changed_by
    ? `Routing last changed by ${ruleset.changed_by} at ${when(ruleset.changed_at)}.` : "";
  const rows = $("revision-rows");
  rows.replaceChildren();
  for (const rev of [...ruleset.revisions].reverse()) {
    const row = document.createElement("tr");
    row.dataset.revision = rev.revision;
    const states = [];
    if (rev.revision === ruleset.active_revision) states.push(retired ? "served last (retired)" : "active");
    if (ruleset.canary && ruleset.canary.revision === rev.revision) states.push(`canary ${ruleset.canary.percent}%`);
    if (ruleset.shadow === rev.revision) states.push("shadow");
    const review = rev.review;
    if (review && review.status === "pending") states.push(`pending approval (deployed by ${review.deployed_by})`);
    if (review && review.status === "approved") states.push(`approved by ${review.decided_by}`);
    if (review && review.status === "rejected") {
      states.push(`rejected by ${review.decided_by}` + (review.reason ? `: ${review.reason}` : ""));
    }
    const deployed = el("td", null, "deployer");
    deployed.append(el("div", rev.deployed_by || "—", "who"), el("div", when(rev.deployed_at), "when muted"),
      el("div", rev.digest.slice(0, 19) + "…", "muted digest"));
    row.append(el("td", rev.revision), deployed, el("td", rev.message || "—", rev.message ? "why" : "why muted"),
      el("td", states.join(", ") || "—", "state"));
    const actions = el("td", null, "actions");
    const button = (label, handler, className = "secondary") => {
      const b = el("button", label, className);
      b.type = "button";
      b.setAttribute("aria-label", `${label} revision ${rev.revision}`);
      b.addEventListener("click", handler);
      actions.append(b, " ");
    };
    button("View", () => viewRevision(name, rev.revision));
    button("Edit", () => editRevision(name, rev.revision));
    button("Tests", () => runTests(name, rev.revision));
    const unapproved = review && review.status !== "approved";
    if ((retired || rev.revision !== ruleset.active_revision) && !unapproved) {
      const serving = retired ? null : ruleset.active_revision;
      const older = serving !== null && rev.revision < serving;
      button(older ? "Roll back to this" : "Activate", () => activateRevision(name, rev.revision, serving), "");
    }
    row.append(actions);
    rows.append(row);
  }
  showChanges(ruleset.changes || []);
  const latest = ruleset.revisions.length;
  $("diff-from").value = Math.max(1, latest - 1);
  $("diff-to").value = latest;
}

// Every change of what serves the ruleset, newest first: when, who, which, and the routing
// it made.
function showChanges(changes) {
  $("changes-title").textContent = `Changes of what serves (${changes.length}${changes.length >= 50 ? ", the latest" : ""})`;
  const rows = $("change-rows");
  rows.replaceChildren();
  for (const c of changes) {
    const served = c.retired !== null ? `nothing (retired: ${c.retired})`
      : [`revision ${c.active_revision}`, c.canary ? `canary ${c.canary.revision} at ${c.canary.percent}%` : "",
        c.shadow ? `shadow ${c.shadow}` : ""].filter(Boolean).join(", ");
    const row = el("tr");
    row.dataset.version = c.version;
    row.append(el("td", when(c.changed_at) || "—", "when"), el("td", c.changed_by || "—", "who"),
      el("td", c.action || "—", "change"), el("td", served, "served"));
    rows.append(row);
  }
}

async function viewRevision(name, revision) {
  try {
    viewed = await api.call("GET", `${path(name)}/revisions/${revision}`);
    $("viewer").hidden = false;
    $("viewer-title").textContent = `${name} revision ${revision}`;
    $("viewer-provenance").textContent = [
      viewed.deployed_by ? `Deployed by ${viewed.deployed_by}` : "Deployed",
      viewed.deployed_at ? ` at ${when(viewed.deployed_at)}` : "",
      viewed.message ? `: ${viewed.message}` : "",
    ].join("");
    $("viewer-document").textContent = viewed.document;
    drawGrids($("viewer-grids"), viewed.document);
    $("viewer").scrollIntoView({ block: "start" });
    $("viewer-document").focus();
  } catch (err) {
    say(err.message, true);
  }
}

async function editRevision(name, revision) {
  try {
    const found = await api.call("GET", `${path(name)}/revisions/${revision}`);
    if (await startDraft(found.document, `${name} revision ${revision}`)) {
      say(`The draft starts from ${name} revision ${revision}`);
    }
  } catch (err) {
    say(err.message, true);
  }
}

$("viewer-edit").addEventListener("click", async () => {
  if (viewed && (await startDraft(viewed.document, `${viewed.name} revision ${viewed.revision}`))) {
    say(`The draft starts from ${viewed.name} revision ${viewed.revision}`);
  }
});

async function activateRevision(name, revision, active) {
  const back = active !== null && revision < active;
  const sure = await confirmAction({
    title: back ? `Roll ${name} back to revision ${revision}?` : `Activate ${name} revision ${revision}?`,
    text: `Every new decision of ${name} will use revision ${revision}` +
      (active !== null ? ` instead of revision ${active}.` : "; it serves nothing now."),
    action: back ? "Roll back" : "Activate",
  });
  if (sure === null) return;
  try {
    await api.call("POST", `${path(name)}/activate`, { json: { revision } });
    say(`${name}: revision ${revision} is active`);
    await loadList();
  } catch (err) {
    say(err.message, true);
  }
}

$("retire-button").addEventListener("click", async () => {
  const name = current;
  const reason = await confirmAction({
    title: `Retire ${name}?`,
    text: `${name} stops serving: a decision asking for it is refused. Its revisions and their ` +
      "records are kept.",
    action: "Retire",
    reason: true,
    required: true,
  });
  if (reason === null) return;
  try {
    await api.call("POST", `${path(name)}/retire`, { json: { reason } });
    say(`${name} is retired`);
    await loadList();
  } catch (err) {
    say(err.message, true);
  }
});

async function runTests(name, revision) {
  const result = await api.call("GET", `${path(name)}/revisions/${revision}/tests`);
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
  const base = `${path(current)}/revisions/`;
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

// Deploy `text` (named `filename` in its errors) with the options of a form; the outcome is
// written into `result` and stays there until the next deploy from the same form. The
// deploy's answer, or null if it was refused.
async function deploy(text, filename, { message, activate, untested }, result) {
  result.replaceChildren();
  const query = [`activate=${activate}`, `filename=${encodeURIComponent(filename)}`];
  if (untested) query.push("allow_untested=true");
  if (message) query.push(`message=${encodeURIComponent(message)}`);
  try {
    const done = await api.call("POST", `/v1/rulesets?${query.join("&")}`, { body: text, contentType: documentType(filename) });
    const state = done.status === "pending" ? ", pending approval by another author" : done.activated ? " and active" : "";
    const line = `${done.name} revision ${done.revision} ${done.created ? "deployed" : "unchanged"}` +
      `${state}; tests ${done.tests.passed} passed, ${done.tests.failed} failed`;
    result.append(el("p", line, "deployed"));
    // What the analysis found that does not refuse the deploy: rows that can never win,
    // gaps of a table marked complete, conditions that contradict themselves.
    if (done.warnings && done.warnings.length) {
      result.append(el("p", `${done.warnings.length} warning(s):`, "analysis-warning"));
      for (const w of done.warnings) result.append(el("div", located(w), "analysis-warning"));
    }
    say(line);
    current = done.name;
    await loadList();
    return done;
  } catch (err) {
    result.append(el("p", err.message, "error"));
    for (const e of (err.problem && err.problem.errors) || []) {
      result.append(el("div", e.message ? located(e) : JSON.stringify(e), "muted"));
    }
    return null;
  }
}

$("deploy-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("deploy-file").files[0];
  const options = {
    message: $("deploy-message").value.trim(),
    activate: $("deploy-activate").checked,
    untested: $("deploy-untested").checked,
  };
  if (await deploy(await file.text(), safeFilename(file.name), options, $("deploy-result"))) $("deploy-message").value = "";
});

$("draft-deploy").addEventListener("submit", async (event) => {
  event.preventDefault();
  const options = {
    message: $("draft-message").value.trim(),
    activate: $("draft-activate").checked,
    untested: $("draft-untested").checked,
  };
  const done = await deploy(draftText(), draftFilename(), options, $("draft-deploy-result"));
  if (done) {
    $("draft-message").value = "";
    draftDeployed(done.name, done.revision);
  }
});

$("rollout-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await rollout({ revision: Number($("canary-revision").value), percent: Number($("canary-percent").value) });
});
$("shadow-button").addEventListener("click", () => rollout({ shadow: Number($("shadow-revision").value) }));
$("shadow-stop").addEventListener("click", () => rollout({ shadow: null }));

async function rollout(body) {
  try {
    await api.call("POST", `${path(current)}/rollout`, { json: body });
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

// Replay `text` (a file's, or the draft's) over the decisions since the date given.
async function replay(text, filename) {
  const result = $("replay-result");
  const buttons = [$("replay-button"), $("replay-draft")];
  result.replaceChildren(el("p", "Counting the decisions to replay…", "muted"));
  $("replay-progress").hidden = true;
  for (const b of buttons) b.disabled = true;
  try {
    const since = $("replay-since").value.trim() || new Date(Date.now() - 7 * 86400000).toISOString();
    const report = await replayStreamed({ document: text, since }, (progress) => {
      if (!progress.done) result.replaceChildren(el("p", "Replaying…", "muted"));
      showProgress(progress);
    });
    showReport(result, report);
  } catch (err) {
    result.replaceChildren(el("p", err.message, "error"));
    for (const e of (err.problem && err.problem.errors) || []) {
      result.append(el("div", e.message ? located({ ...e, file: e.file === "<request>" ? filename : e.file }) : JSON.stringify(e), "muted"));
    }
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

$("replay-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("replay-file").files[0];
  await replay(await file.text(), file.name);
});
$("replay-draft").addEventListener("click", () => replay(draftText(), draftFilename()));

initWorkbench(api);
keyForm(api, "key-form", "key", () => {
  loadList();
  checkDraft(); // the dry run needs the key
});
