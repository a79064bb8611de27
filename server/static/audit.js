// The auditor's page: filters, paged results, one record explained (deep link:
// /audit?decision=<id>), chain verification, exports streamed to disk.
import { $, Api, el, keyForm } from "/static/common.js";
import { dataTable, firedRules, outcomeList, tablesView, unknownRules } from "/static/pack.js";

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
  if (record.kind === "escalation_raised") return `→ ${(out.escalation || {}).queue} (${(out.escalation || {}).rule})`;
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
      row.dataset.kind = record.kind;
      row.append(
        cell("time", record.recorded_at.replace("T", " ").slice(0, 19)),
        cell("kind", record.kind.replaceAll("_", "_\u200b")), // may break after "alert_"
        cell("customer", record.customer_id || "—", "id"),
        cell("agent", record.agent_id || "—", "id"),
        cell("ruleset", record.ruleset ? `${record.ruleset.name} @${record.ruleset.revision}` : "—", "outcome-cell"),
        cell("outcome", summary(record), "outcome-cell"),
      );
      const action = el("td", null, "action");
      const open = el("button", "Explain", "secondary");
      open.type = "button";
      open.title = `Explain ${record.kind} ${record.id}`;
      open.addEventListener("click", () => explainRecord(record.id));
      action.append(open);
      row.append(action);
      rows.append(row);
    }
    nextCursor = page.next_cursor;
    $("more").hidden = !nextCursor;
    $("message").textContent = `${rows.children.length} record(s) shown${nextCursor ? "; more on the next page" : ""}`;
  } catch (err) {
    $("message").textContent = err.message;
    $("message").className = "error";
  }
}

// A table cell: its column's name as a label (shown when the table is laid out as cards);
// an id is cut short, whole in its title.
function cell(label, text, className) {
  const td = el("td", className === "id" ? shortId(text) : text, className);
  td.dataset.label = label;
  if (className === "id") td.title = text;
  return td;
}

// A long id cut in the middle: its start and its end are what tell ids apart.
function shortId(text, most = 27) {
  if (text.length <= most) return text;
  const half = Math.floor((most - 1) / 2);
  return `${text.slice(0, half)}…${text.slice(-half)}`;
}

let explaining = 0; // only the latest Explain may fill the panel

async function explainRecord(id) {
  const path = `/v1/audit/decisions/${encodeURIComponent(id)}`;
  const mine = ++explaining;
  let read;
  let pack = null;
  try {
    read = await api.call("GET", path);
    if (read.record.kind === "decision") pack = await api.call("GET", `${path}/explanation`);
  } catch (err) {
    if (mine !== explaining) return;
    $("panel-empty").hidden = false;
    $("panel-empty").textContent = err.status === 404 ? `No record ${id} in the ledger.` : err.message;
    $("panel-empty").className = "error";
    $("record").hidden = true;
    return;
  }
  if (mine !== explaining) return;
  const { record, explanation, human } = read;
  history.replaceState(null, "", `/audit?decision=${encodeURIComponent(record.id)}`);
  $("panel-empty").hidden = true;
  $("record").hidden = false;
  $("record-title").textContent = `${record.kind} ${record.id}`;
  const box = $("explanation");
  box.replaceChildren();
  if (explanation.ruleset) {
    box.append(el("p", `${explanation.ruleset.name} revision ${explanation.ruleset.revision}, evaluated at ${explanation.evaluated_at}`, "muted"));
  }
  if (pack) {
    // The printable pack opens in this tab, which keeps the key (sessionStorage is per tab).
    const link = el("a", "Open the explanation pack (printable)");
    link.id = "pack-link";
    link.href = `/audit/explanation?id=${encodeURIComponent(record.id)}`;
    const line = el("p");
    line.append(link);
    box.append(line);
    box.append(el("h3", "Outcome"), outcomeList(pack));
    box.append(el("h3", "Fired, and why"), firedRules(pack));
    box.append(el("h3", "Decision tables"), tablesView(pack));
    box.append(el("h3", "Left unknown by missing data"), unknownRules(pack));
    box.append(el("h3", "Context read"), dataTable(pack));
    box.append(humanSide(human || []));
  } else {
    otherRecord(box, explanation);
  }
  $("record-json").textContent = JSON.stringify(record, null, 2);
  // To the record: beside the list this keeps the page where it is; below it (a narrow
  // screen) this scrolls down to the record, and a screen reader reads it next.
  $("record-title").focus();
}

// A record other than a decision (an alert, an ack, a ruleset change...): what fired and
// the values it read, from the record alone.
function otherRecord(box, explanation) {
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
    else if (s.kind === "escalation_raised") what = `escalation ${s.rule} raised${s.supervisor ? `, sent to ${s.supervisor}` : ""}`;
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

// -- exports --------------------------------------------------------------------------------
// Where the browser lets the page write a file it chose (the File System Access API), the
// response streams into that file, counted as it passes (Cancel leaves the file as it was);
// elsewhere the browser downloads the
// export itself, opened with a one-minute stream ticket (it cannot send the key). Neither way
// holds the export in the page.

const count = new Intl.NumberFormat("en");
let exporting = null; // the AbortController of the export under way

function exportParams(format) {
  const params = filters();
  params.set("format", format);
  return params;
}

function bytesText(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}

// Counts the records passing through: JSON lines, or CSV rows (a newline inside a quoted
// field is not a new row; the header is not a record).
function recordCounter(format, onCount) {
  let records = format === "csv" ? -1 : 0;
  let bytes = 0;
  let quoted = false;
  return new TransformStream({
    transform(chunk, controller) {
      for (let k = 0; k < chunk.length; k++) {
        const b = chunk[k];
        if (b === 10 && !quoted) records++;
        else if (b === 34 && format === "csv") quoted = !quoted;
      }
      bytes += chunk.byteLength;
      onCount(Math.max(records, 0), bytes);
      controller.enqueue(chunk);
    },
  });
}

function exportShown(text, running) {
  $("export-progress").hidden = false;
  $("export-count").textContent = text;
  $("export-cancel").hidden = !running;
  if (!running) {
    $("export-bar").max = 1;
    $("export-bar").value = 1;
  } else {
    $("export-bar").removeAttribute("value"); // no total is known: the bar runs until the end
  }
}

async function exportToFile(format) {
  let handle;
  try {
    handle = await window.showSaveFilePicker({ suggestedName: `decisions.${format}` });
  } catch (err) {
    if (err.name === "AbortError") return; // the auditor closed the dialog
    throw err;
  }
  const name = handle.name || `decisions.${format}`;
  exporting = new AbortController();
  exportShown(`Writing ${name}…`, true);
  const response = await fetch(`/v1/audit/decisions?${exportParams(format)}`, {
    headers: { Authorization: `Bearer ${api.key}` },
    signal: exporting.signal,
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => null);
    throw new Error((problem && problem.detail) || `the export answered ${response.status}`);
  }
  const file = await handle.createWritable();
  let shown = 0;
  let written = [0, 0];
  const counted = recordCounter(format, (records, bytes) => {
    written = [records, bytes];
    const now = performance.now();
    if (now - shown < 100) return; // at most ten updates a second
    shown = now;
    exportShown(`${count.format(records)} records, ${bytesText(bytes)} written to ${name}…`, true);
  });
  try {
    await response.body.pipeThrough(counted).pipeTo(file, { signal: exporting.signal });
  } catch (err) {
    if (err.name === "AbortError") {
      // An aborted writable discards what it was given: a cut-short export is never
      // mistaken for a whole one.
      exportShown(`Cancelled after ${count.format(written[0])} records; ${name} was left as it was.`, false);
      return;
    }
    throw err;
  }
  exportShown(`Done: ${count.format(written[0])} records, ${bytesText(written[1])} in ${name}.`, false);
}

async function exportByDownload(format) {
  const { ticket } = await api.call("POST", "/v1/stream-tickets");
  const params = exportParams(format);
  params.set("ticket", ticket);
  const link = document.createElement("a");
  link.href = `/v1/audit/decisions?${params}`;
  link.download = `decisions.${format}`;
  link.click();
  exportShown(`Downloading decisions.${format}: your browser saves it as it arrives and shows its progress in its downloads.`, false);
}

async function exportRecords(format) {
  if (exporting) return;
  const buttons = [$("export-jsonl"), $("export-csv")];
  for (const b of buttons) b.disabled = true;
  $("export-message").textContent = "";
  $("export-message").className = "muted";
  try {
    if (typeof window.showSaveFilePicker === "function") await exportToFile(format);
    else await exportByDownload(format);
  } catch (err) {
    $("export-progress").hidden = true;
    $("export-message").textContent = `The export stopped: ${err.message}`;
    $("export-message").className = "error";
  } finally {
    exporting = null;
    for (const b of buttons) b.disabled = false;
  }
}

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  nextCursor = null;
  search();
});
$("more").addEventListener("click", () => search(true));
for (const format of ["jsonl", "csv"]) {
  $(`export-${format}`).addEventListener("click", () => exportRecords(format));
}
$("export-cancel").addEventListener("click", () => exporting && exporting.abort());
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

// /audit?decision=<id> opens that record (a replay's flip report links here).
const linked = () => new URLSearchParams(location.search).get("decision");
keyForm(api, "key-form", "key", () => {
  search();
  if (linked()) explainRecord(linked());
});
if (!api.key && linked()) {
  $("panel-empty").textContent = `Enter an auditor key to read record ${linked()}.`;
}
