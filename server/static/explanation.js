// The printable explanation pack of one decision: /audit/explanation?id=<decision id>.
// It uses the auditor key the /audit page keeps in this tab (or asks for one), reads
// GET /v1/audit/decisions/{id}/explanation and lays it out for reading and printing.
import { $, Api, el, keyForm } from "/static/common.js";
import { dataTable, firedRules, outcomeList, table, tablesView, unknownRules } from "/static/pack.js";

const api = new Api("frontline.auditorKey");
const decisionId = new URLSearchParams(location.search).get("id") || "";

function fact(list, term, value) {
  list.append(el("dt", term), el("dd", value));
}

function outcome(pack) {
  $("outcome").replaceChildren(outcomeList(pack));
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
  $("data").replaceChildren(dataTable(pack));
}

function rules(pack) {
  $("rules").replaceChildren(firedRules(pack));
  $("tables").replaceChildren(tablesView(pack));
  $("unknown").replaceChildren(unknownRules(pack));
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
