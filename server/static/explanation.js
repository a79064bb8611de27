// The printable explanation pack of one decision: /audit/explanation?id=<decision id>.
// It uses the auditor key the /audit page keeps in this tab (or asks for one), reads
// GET /v1/audit/decisions/{id}/explanation and lays it out for reading and printing.
import { $, Api, el, keyForm } from "/static/common.js";

const api = new Api("frontline.auditorKey");
const decisionId = new URLSearchParams(location.search).get("id") || "";

const MASK = "hmac-sha256:";

function shown(value) {
  if (typeof value === "string" && value.startsWith(MASK)) return el("span", "masked", "masked");
  if (value === null || value === undefined) return el("span", "—", "muted");
  return document.createTextNode(typeof value === "string" ? value : JSON.stringify(value));
}

function age(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7200000) return `${Math.round(ms / 60000)} min`;
  if (ms < 172800000) return `${Math.round(ms / 3600000)} h`;
  return `${Math.round(ms / 86400000)} d`;
}

function table(headings, rows) {
  const t = document.createElement("table");
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

function fact(list, term, value) {
  list.append(el("dt", term), el("dd", value));
}

function outcome(pack) {
  const box = $("outcome");
  const o = pack.outcome;
  const lines = el("ul", null, "plain");
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
  for (const [id, out] of Object.entries(o.tables || {})) {
    lines.append(el("li", `Table ${id}: ${JSON.stringify(out)}`));
  }
  box.replaceChildren(lines);
}

function reasons(pack) {
  const list = $("reasons");
  list.replaceChildren();
  for (const r of pack.reasons) {
    const item = document.createElement("li");
    item.append(el("span", r.code, "code"), document.createTextNode(r.text));
    list.append(item);
  }
  if (!pack.reasons.length) list.append(el("li", "No rule fired.", "muted"));
  $("more-reasons").textContent = pack.more_reasons
    ? `${pack.more_reasons} more rule(s) fired; the four above rank first.` : "";
}

function data(pack) {
  const rows = pack.data.map((d) => [
    d.field, shown(d.value), d.source || "—", age(d.age_ms),
    d.stale ? el("span", "stale", "stale") : "", d.read_by.join(", "),
  ]);
  const box = $("data");
  box.replaceChildren(table(["field", "value", "source", "age", "", "read by"], rows));
  const gaps = [];
  if (pack.missing_fields.length) gaps.push(`Missing: ${pack.missing_fields.join(", ")}`);
  if (pack.invalid_fields.length) gaps.push(`Invalid: ${pack.invalid_fields.map((f) => f.field).join(", ")}`);
  if (gaps.length) box.append(el("p", gaps.join(" · "), "muted"));
}

function rules(pack) {
  const box = $("rules");
  box.replaceChildren();
  if (pack.revision) {
    box.append(el("p", `${pack.revision.name} revision ${pack.revision.revision} (${pack.revision.digest})`
      + (pack.revision.stored ? ", as stored" : ": the stored text is not available"), "muted"));
  }
  for (const r of pack.rules) {
    const part = el("div", null, "rule");
    const title = el("p");
    title.append(el("span", r.reason_code, "code"),
      document.createTextNode(`${r.section} · ${r.rule}${r.line ? ` (line ${r.line})` : ""}`));
    part.append(title, el("pre", `when: ${r.when}`));
    const gives = r.offer ? `offer ${r.offer}` : r.queue ? `queue ${r.queue}, priority ${r.priority}` : `${r.severity} alert`;
    part.append(el("p", `${gives}${r.because ? " — because: " + r.because : ""}`, "muted"));
    box.append(part);
  }
  if (!pack.rules.length) box.append(el("p", "No rule fired.", "muted"));
}

function human(pack) {
  const box = $("human");
  if (!pack.human.length) {
    box.replaceChildren(el("p", "No alert of this decision reached the agent's desktop.", "muted"));
    return;
  }
  const rows = pack.human.map((s) => [
    s.at.replace("T", " ").slice(0, 19), s.kind, s.rule || "—",
    [s.outcome, s.reason, s.supervisor && `to ${s.supervisor}`, s.note].filter(Boolean).join(" · ") || "—",
    s.after_ms == null ? "—" : `${(s.after_ms / 1000).toFixed(1)} s`, s.by || "—",
  ]);
  box.replaceChildren(table(["at", "what", "rule", "outcome", "after", "by"], rows));
}

function counterfactuals(pack) {
  const box = $("counterfactuals");
  box.replaceChildren();
  const list = el("ul", null, "counterfactuals");
  for (const c of pack.counterfactuals) {
    const item = el("li", c.text);
    if (c.alternatives.length) {
      const more = el("ul");
      for (const a of c.alternatives) more.append(el("li", `or ${a.text}`));
      item.append(more);
    }
    list.append(item);
  }
  if (pack.counterfactuals.length) box.append(list);
  else box.append(el("p", "No change of one input was found that would have changed this decision.", "muted"));
  if (pack.unflipped.length) {
    const none = el("ul", null, "plain");
    for (const u of pack.unflipped) {
      const what = u.target === "not_given" ? `offer ${u.offer}` : `${u.section} rule ${u.rule}`;
      none.append(el("li", `${what}: ${u.reason}`, "muted"));
    }
    box.append(none);
  }
  for (const n of pack.not_explored) box.append(el("p", n.text, "muted"));
  const e = pack.exploration;
  box.append(el("p", `Each change above was checked by evaluating the revision again: ${e.evaluations} evaluations for ${e.targets} target(s), at most ${e.budget_per_target} each.`
    + (e.note ? ` ${e.note}.` : ""), "muted"));
}

async function load() {
  if (!decisionId) {
    $("message").textContent = "No decision named: open this page from the audit page's Explain.";
    return;
  }
  try {
    const pack = await api.call("GET", `/v1/audit/decisions/${encodeURIComponent(decisionId)}/explanation`);
    document.title = `Explanation pack ${pack.decision_id}`;
    $("pack-title").textContent = `Decision ${pack.decision_id}`;
    const facts = $("pack-facts");
    facts.replaceChildren();
    fact(facts, "Customer", pack.customer_id || "—");
    fact(facts, "Agent", pack.agent_id || "—");
    if (pack.interaction_id) fact(facts, "Interaction", pack.interaction_id);
    fact(facts, "Decided at", pack.evaluated_at || "—");
    fact(facts, "Recorded at", pack.recorded_at);
    if (pack.revision) fact(facts, "Ruleset", `${pack.revision.name} revision ${pack.revision.revision}`);
    outcome(pack);
    reasons(pack);
    data(pack);
    rules(pack);
    human(pack);
    counterfactuals(pack);
    $("pack-footer").textContent = "From the Frontline ledger. Values of pii fields are shown masked, as the ledger holds them.";
    $("pack").hidden = false;
    $("message").textContent = "";
  } catch (err) {
    $("message").textContent = err.message;
    $("message").className = "error";
  }
}

$("print").addEventListener("click", () => window.print());
keyForm(api, "key-form", "key", load);
if (!api.key) $("message").textContent = "Enter an auditor key to read the pack.";
