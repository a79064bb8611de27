// The auditor's page: filters, paged results, one decision explained, chain verification,
// export.
import { $, Api, el, keyForm } from "/static/common.js";

const api = new Api("frontline.auditorKey");
let nextCursor = null;
let searches = 0; // only the latest search may fill the table

function filters() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("filters"))) {
    if (String(value).trim()) params.set(name, String(value).trim());
  }
  return params;
}

function summary(record) {
  const out = record.outputs || {};
  if (record.kind === "decision") {
    const parts = (out.eligible || []).map((e) => e.offer || e.rule);
    if (out.escalation) parts.push(`→ ${out.escalation.queue}`);
    return parts.join(", ") || "no offer";
  }
  if (record.kind === "alert") return (out.alerts || []).map((a) => a.rule).join(", ");
  if (record.kind === "ack") return `${record.data.outcome} ${record.data.alert_id}`;
  if (record.kind === "alert_suppressed") return `held back (${record.data.reason}): ${(out.alerts || []).map((a) => a.rule).join(", ")}`;
  if (record.kind === "alert_delivered") return `delivered ${record.data.alert_id}`;
  if (record.kind === "alert_escalated") return `to ${record.data.supervisor}: ${record.data.alert_id}`;
  if (record.kind === "ruleset") return `${record.data.action} revision ${record.ruleset && record.ruleset.revision}`;
  return "";
}

async function search(append = false) {
  const params = filters();
  if (append && nextCursor) params.set("cursor", nextCursor);
  params.set("limit", "50");
  const mine = ++searches;
  try {
    const page = await api.call("GET", `/v1/audit/decisions?${params}`);
    if (mine !== searches) return;
    const rows = $("results");
    if (!append) rows.replaceChildren();
    for (const record of page.records) {
      const row = document.createElement("tr");
      row.dataset.id = record.id;
      row.append(
        el("td", record.recorded_at.replace("T", " ").slice(0, 19)),
        el("td", record.kind),
        el("td", record.customer_id || "—"),
        el("td", record.agent_id || "—"),
        el("td", record.ruleset ? `${record.ruleset.name} @${record.ruleset.revision}` : "—"),
        el("td", summary(record)),
      );
      const cell = document.createElement("td");
      const open = el("button", "Explain", "secondary");
      open.type = "button";
      open.addEventListener("click", () => explainRecord(record.id));
      cell.append(open);
      row.append(cell);
      rows.append(row);
    }
    nextCursor = page.next_cursor;
    $("more").hidden = !nextCursor;
    $("message").textContent = `${rows.children.length} record(s) shown${nextCursor ? "; more on the next page" : ""}`;
    for (const format of ["jsonl", "csv"]) {
      const exportParams = filters();
      exportParams.set("format", format);
      $(`export-${format}`).dataset.href = `/v1/audit/decisions?${exportParams}`;
    }
  } catch (err) {
    $("message").textContent = err.message;
    $("message").className = "error";
  }
}

async function explainRecord(id) {
  const { record, explanation, human } = await api.call("GET", `/v1/audit/decisions/${encodeURIComponent(id)}`);
  $("record").hidden = false;
  $("record-title").textContent = `${record.kind} ${record.id}`;
  const box = $("explanation");
  box.replaceChildren();
  if (explanation.ruleset) {
    box.append(el("p", `${explanation.ruleset.name} revision ${explanation.ruleset.revision}, evaluated at ${explanation.evaluated_at}`, "muted"));
  }
  if (record.kind === "decision") {
    // The printable pack opens in this tab, which keeps the key (sessionStorage is per tab).
    const pack = el("a", "Open the explanation pack (printable)");
    pack.id = "pack-link";
    pack.href = `/audit/explanation?id=${encodeURIComponent(record.id)}`;
    const line = el("p");
    line.append(pack);
    box.append(line);
  }
  box.append(el("h3", "Fired"));
  const fired = el("ul", null, "plain");
  for (const f of explanation.fired) fired.append(el("li", `${f.section} · ${f.rule}${f.because ? " — " + f.because : ""}`));
  if (!explanation.fired.length) fired.append(el("li", "No rule fired.", "muted"));
  box.append(fired);
  box.append(el("h3", "Context read"));
  const table = document.createElement("table");
  table.append(el("thead"));
  table.tHead.append(document.createElement("tr"));
  for (const h of ["field", "value", "source", "age"]) table.tHead.rows[0].append(el("th", h));
  const body = document.createElement("tbody");
  const stale = new Set(explanation.stale_fields);
  for (const [path, v] of Object.entries(explanation.context)) {
    if (v.value === null && !v.source) continue; // listed as missing below
    const row = document.createElement("tr");
    const shown = typeof v.value === "string" && v.value.startsWith("hmac-sha256:")
      ? "(masked)" : JSON.stringify(v.value);
    row.append(el("td", path), el("td", shown), el("td", v.source || "—"),
      el("td", v.age_ms == null ? "—" : `${Math.round(v.age_ms / 1000)} s`, stale.has(path) ? "stale" : ""));
    body.append(row);
  }
  table.append(body);
  box.append(table);
  const gaps = [];
  if (explanation.missing_fields.length) gaps.push(`Missing: ${explanation.missing_fields.join(", ")}`);
  if (explanation.stale_fields.length) gaps.push(`Stale: ${explanation.stale_fields.join(", ")}`);
  if (explanation.invalid_fields.length) gaps.push(`Invalid: ${explanation.invalid_fields.map((f) => f.field || JSON.stringify(f)).join(", ")}`);
  box.append(el("p", gaps.join(" · ") || "No field was missing or stale.", "muted gaps"));
  if (record.kind === "decision") box.append(humanSide(human || []));
  $("record-json").textContent = JSON.stringify(record, null, 2);
}

// What the agent saw and did about the decision's alerts, in order, from the ledger.
function humanSide(steps) {
  const part = document.createElement("section");
  part.id = "human-side";
  part.append(el("h3", "The agent's side"));
  if (!steps.length) {
    part.append(el("p", "No alert of this decision reached the agent's desktop.", "muted"));
    return part;
  }
  const list = el("ol", null, "plain");
  for (const s of steps) {
    const when = s.at.replace("T", " ").slice(0, 19);
    let what;
    if (s.kind === "alert") what = `${s.rule} raised`;
    else if (s.kind === "alert_suppressed") what = `${s.rule} held back by the contact policy (${s.reason})`;
    else if (s.kind === "alert_delivered") what = `${s.rule} shown on the desktop`;
    else if (s.kind === "alert_escalated") what = `${s.rule} unanswered: sent to ${s.supervisor}`;
    else {
      const after = s.after_ms == null ? "" : ` after ${(s.after_ms / 1000).toFixed(1)} s`;
      what = `${s.rule} ${s.outcome}${after} by ${s.by || "the agent"}${s.note ? ": " + s.note : ""}`;
    }
    const item = el("li", `${when} · ${what}`);
    item.dataset.kind = s.kind;
    list.append(item);
  }
  part.append(list);
  return part;
}

async function download(format) {
  const href = $(`export-${format}`).dataset.href;
  if (!href) return;
  const response = await api.call("GET", href, { raw: true });
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `decisions.${format}`;
  link.click();
  URL.revokeObjectURL(link.href);
}

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  nextCursor = null;
  search();
});
$("more").addEventListener("click", () => search(true));
for (const format of ["jsonl", "csv"]) {
  $(`export-${format}`).addEventListener("click", (event) => {
    event.preventDefault();
    download(format);
  });
}
$("verify").addEventListener("click", async () => {
  $("verify-result").textContent = "verifying…";
  try {
    const report = await api.call("GET", "/v1/audit/verify");
    $("verify-result").textContent = report.ok
      ? `chain intact: ${report.records} records`
      : report.broken_at == null // the chains hold; the query index disagrees with them
        ? `chain intact, but the index of ${report.broken_instance} disagrees: ${report.reason}; frontline audit reindex rebuilds it`
        : `broken at seq ${report.broken_at} of ${report.broken_instance}: ${report.reason}`;
    $("verify-result").className = report.ok ? "status up" : "status down";
  } catch (err) {
    $("verify-result").textContent = err.message;
  }
});

keyForm(api, "key-form", "key", () => search());
