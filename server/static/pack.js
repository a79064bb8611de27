// One decision's explanation pack (GET /v1/audit/decisions/{id}/explanation) as page parts,
// shared by the /audit panel and the printable /audit/explanation page: each function
// takes the pack and returns a node to place.
import { el } from "/static/common.js";

const MASK = "hmac-sha256:";

// A recorded value as text: a pii value stays its mask, shown as "masked".
export function shown(value) {
  if (typeof value === "string" && value.startsWith(MASK)) return el("span", "masked", "masked");
  if (value === null || value === undefined) return el("span", "—", "muted");
  return document.createTextNode(typeof value === "string" ? value : JSON.stringify(value));
}

export function age(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7200000) return `${Math.round(ms / 60000)} min`;
  if (ms < 172800000) return `${Math.round(ms / 3600000)} h`;
  return `${Math.round(ms / 86400000)} d`;
}

export function table(headings, rows, className) {
  const t = document.createElement("table");
  if (className) t.className = className;
  const head = t.createTHead().insertRow();
  for (const h of headings) head.append(el("th", h));
  const body = t.createTBody();
  for (const cells of rows) {
    const row = body.insertRow();
    for (const cell of cells) {
      const td = row.insertCell();
      td.append(cell instanceof Node ? cell : document.createTextNode(cell));
    }
  }
  return t;
}

const where = (line) => (line ? ` (line ${line})` : "");

// What the decision gave: offers, escalation, alerts, the tree's next step, table outputs.
export function outcomeList(pack) {
  const o = pack.outcome;
  const lines = el("ul", null, "plain outcome-list");
  const offers = o.offers.map((x) => `${x.offer} (rule ${x.rule})`);
  lines.append(el("li", `Offers: ${offers.join(", ") || "none"}`));
  lines.append(el("li", o.escalation
    ? `Escalated to ${o.escalation.queue} (rule ${o.escalation.rule}, priority ${o.escalation.priority})`
    : "Not escalated"));
  for (const a of o.alerts) lines.append(el("li", `Alert ${a.severity}: ${a.message} (rule ${a.rule})`));
  if (!o.alerts.length) lines.append(el("li", "No alert"));
  if (o.next_step) {
    const s = o.next_step;
    lines.append(el("li", `Next step: ${s.tree} · ${s.node}${s.ask ? " — " + s.ask : ""}${s.outcome ? " — " + s.outcome : ""}`));
  }
  for (const t of pack.tables) lines.append(el("li", `Table ${t.table}: ${outputsText(t.outputs)}`));
  return lines;
}

function outputsText(outputs) {
  if (outputs === null || outputs === undefined) return "no row matched";
  return Object.entries(outputs).map(([name, value]) => `${name} = ${JSON.stringify(value)}`).join(", ");
}

// Each rule that fired, with its condition as the stored revision writes it.
export function firedRules(pack) {
  const box = el("div", null, "pack-rules");
  if (pack.revision) {
    box.append(el("p", `${pack.revision.name} revision ${pack.revision.revision} (${pack.revision.digest})`
      + (pack.revision.stored ? ", as stored" : ": the stored text is not available"), "muted digest"));
  }
  for (const r of pack.rules) {
    const part = el("div", null, "rule fired");
    part.dataset.rule = r.rule;
    const title = el("p");
    title.append(el("span", r.reason_code, "code"),
      document.createTextNode(`${r.section} · ${r.rule}${where(r.line)}`));
    part.append(title, el("pre", `when: ${r.when}`));
    const gives = r.offer ? `offer ${r.offer}` : r.queue ? `queue ${r.queue}, priority ${r.priority}` : `${r.severity} alert`;
    part.append(el("p", `${gives}${r.because ? " — because: " + r.because : ""}`, "muted"));
    box.append(part);
  }
  if (!pack.rules.length) box.append(el("p", "No rule fired.", "muted"));
  return box;
}

// Each decision table: what it gave, on which inputs, and the row that gave it.
export function tablesView(pack) {
  const box = el("div", null, "pack-tables");
  for (const t of pack.tables) {
    const part = el("div", null, "decision-table");
    part.dataset.table = t.table;
    part.append(el("p", `${t.table}${t.hit ? ` (${t.hit} hit)` : ""}${where(t.line)}: ${outputsText(t.outputs)}`, "table-title"));
    if (t.description) part.append(el("p", t.description, "muted"));
    if (t.inputs.length) {
      const inputs = el("p", "on ", "muted");
      t.inputs.forEach((input, k) => {
        if (k) inputs.append(document.createTextNode(", "));
        inputs.append(document.createTextNode(`${input.field} = `));
        inputs.append(input.missing ? el("span", "missing", "missing") : shown(input.value));
      });
      part.append(inputs);
    }
    // Each matched row as written, one column a line (a table's columns do not fit a panel).
    const columns = [...t.inputs.map((i) => i.field), ...t.output_names.map((o) => `→ ${o}`)];
    for (const r of t.matched_rows) {
      const cells = r.cells.map((c, k) => [columns[k] || "", typeof c === "string" ? c : JSON.stringify(c)]);
      const rows = table(["column", "as written"], cells, "matched-rows");
      rows.dataset.row = r.row;
      rows.createCaption().textContent = `matched row ${r.row}${where(r.line)}`;
      part.append(rows);
    }
    box.append(part);
  }
  if (!pack.tables.length) box.append(el("p", "The revision has no decision table.", "muted"));
  return box;
}

// The rules that could neither fire nor be ruled out, and the data they lacked.
export function unknownRules(pack) {
  const box = el("div", null, "pack-unknown");
  if (!pack.unknown_rules.length) {
    box.append(el("p", pack.exploration.replay_matches
      ? "No rule was left undecided by missing data."
      : "Not known: the recorded inputs could not be evaluated again.", "muted"));
    return box;
  }
  for (const r of pack.unknown_rules) {
    const part = el("div", null, "rule unknown");
    part.dataset.rule = r.rule;
    const gives = r.offer ? `offer ${r.offer}` : r.queue ? `queue ${r.queue}` : `${r.severity} alert`;
    part.append(el("p", `${r.section} · ${r.rule}${where(r.line)} — ${gives}`));
    part.append(el("pre", `when: ${r.when}`));
    part.append(el("p", r.missing.length
      ? `unknown: missing ${r.missing.join(", ")}` : "unknown: an expression in it could not be evaluated", "missing-line"));
    box.append(part);
  }
  return box;
}

// The values the decision read, with source and age, and what it lacked.
export function dataTable(pack) {
  const box = el("div", null, "pack-data");
  const rows = pack.data.map((d) => [
    d.field, shown(d.value), d.source || "—", age(d.age_ms),
    d.stale ? el("span", "stale", "stale") : "", d.read_by.join(", "),
  ]);
  box.append(table(["field", "value", "source", "age", "", "read by"], rows));
  const gaps = [];
  if (pack.missing_fields.length) gaps.push(`Missing: ${pack.missing_fields.join(", ")}`);
  if (pack.stale_fields.length) gaps.push(`Stale: ${pack.stale_fields.join(", ")}`);
  if (pack.invalid_fields.length) gaps.push(`Invalid: ${pack.invalid_fields.map((f) => f.field).join(", ")}`);
  box.append(el("p", gaps.join(" · ") || "No field was missing or stale.", "muted gaps"));
  return box;
}
