// The agent's desktop page: built on frontline-desktop.js, as a CRM vendor's page would be.
import { FrontlineDesktop } from "/static/frontline-desktop.js";

const $ = (id) => document.getElementById(id);
let desktop = null;
let lastDecision = null;

function text(tag, content, className) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (className) node.className = className;
  return node;
}

function age(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function setStatus(up, words) {
  $("status").textContent = words;
  $("status").className = `status ${up ? "up" : "down"}`;
}

// -- signing in ------------------------------------------------------------------------------

$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  if (desktop) desktop.disconnect();
  const agentId = $("agent-id").value.trim();
  const key = $("agent-key").value;
  sessionStorage.setItem("frontline.agent", agentId);
  sessionStorage.setItem("frontline.agentKey", key);
  desktop = new FrontlineDesktop({ agentId, key });
  desktop.addEventListener("open", (e) => setStatus(true, `connected (${e.detail.transport})`));
  desktop.addEventListener("close", () => setStatus(false, "disconnected"));
  desktop.addEventListener("reconnecting", (e) => setStatus(false, `reconnecting in ${Math.round(e.detail.inMs / 1000)} s`));
  desktop.addEventListener("alert", (e) => showAlert(e.detail));
  desktop.addEventListener("error", (e) => {
    if (e.detail && e.detail.status === 403) setStatus(false, "this key cannot open this desktop");
  });
  desktop.connect();
  $("start-button").disabled = false;
  $("customer-id").focus();
});

const savedAgent = sessionStorage.getItem("frontline.agent");
if (savedAgent) {
  $("agent-id").value = savedAgent;
  $("agent-key").value = sessionStorage.getItem("frontline.agentKey") || "";
}

// -- an interaction ----------------------------------------------------------------------------

$("start-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("start-error").textContent = "";
  let context = null;
  const raw = $("context").value.trim();
  if (raw) {
    try {
      context = JSON.parse(raw);
    } catch (err) {
      $("start-error").textContent = `The context is not valid JSON: ${err.message}`;
      return;
    }
  }
  try {
    if (desktop.interaction) await desktop.endInteraction();
    const decision = await desktop.startInteraction({
      ruleset: $("ruleset").value.trim(),
      customerId: $("customer-id").value.trim(),
      context,
    });
    $("end-button").disabled = false;
    await render(decision);
  } catch (err) {
    $("start-error").textContent = err.message;
  }
});

$("end-button").addEventListener("click", async () => {
  await desktop.endInteraction();
  $("end-button").disabled = true;
  for (const id of ["customer-card", "offers", "tree", "escalation"]) $(id).hidden = true;
});

async function render(decision) {
  lastDecision = decision;
  renderEscalation(decision.escalation);
  renderOffers(decision.eligible);
  renderTree(decision.next_step);
  await renderCard(decision);
  if (!$("tree").hidden && !$("tree-form").hidden) $("tree-answer").focus();
}

function renderEscalation(escalation) {
  const banner = $("escalation");
  banner.replaceChildren();
  banner.hidden = !escalation;
  if (!escalation) return;
  banner.append(text("h2", `Escalate to ${escalation.queue}`));
  banner.append(text("p", escalation.because || `Rule ${escalation.rule}`));
}

function renderOffers(eligible) {
  const list = $("offer-list");
  list.replaceChildren();
  $("offers").hidden = false;
  if (!eligible.length) {
    list.append(text("li", "No offer or action is eligible.", "muted"));
    return;
  }
  for (const offer of eligible) {
    const item = document.createElement("li");
    item.append(text("strong", offer.offer || offer.action || offer.rule));
    const params = offer.params && Object.keys(offer.params).length
      ? " " + Object.entries(offer.params).map(([k, v]) => `${k}: ${v}`).join(", ")
      : "";
    if (params) item.append(text("span", ` (${params.trim()})`, "muted"));
    item.append(text("div", offer.because || `Rule ${offer.rule}`, "muted"));
    list.append(item);
  }
}

function renderTree(step) {
  const section = $("tree");
  section.hidden = !step;
  if (!step) return;
  const question = $("tree-question");
  const outcome = $("tree-outcome");
  if (step.outcome) {
    $("tree-form").hidden = true;
    outcome.hidden = false;
    outcome.textContent = `Outcome: ${step.outcome}${step.say ? " — " + step.say : ""}${step.queue ? " (queue " + step.queue + ")" : ""}`;
    return;
  }
  $("tree-form").hidden = false;
  outcome.hidden = true;
  question.textContent = step.ask || step.node;
  $("tree-answer").value = "";
}

function parseAnswer(raw) {
  const value = raw.trim();
  if (/^(true|yes)$/i.test(value)) return true;
  if (/^(false|no)$/i.test(value)) return false;
  if (value !== "" && !Number.isNaN(Number(value))) return Number(value);
  return value;
}

async function answer(value) {
  try {
    const decision = await desktop.answer(lastDecision.next_step, value);
    await render(decision);
  } catch (err) {
    $("start-error").textContent = err.message;
  }
}

$("tree-form").addEventListener("submit", (event) => {
  event.preventDefault();
  answer(parseAnswer($("tree-answer").value));
});
for (const button of document.querySelectorAll("#tree-form [data-answer]")) {
  button.addEventListener("click", () => answer(button.dataset.answer === "true"));
}

async function renderCard(decision) {
  const card = $("customer-card");
  card.hidden = false;
  $("card-id").textContent = decision.customer_id;
  const rows = $("card-fields");
  rows.replaceChildren();
  const stale = new Set(decision.stale_fields || []);
  try {
    const view = await desktop._request("GET", `/v1/customers/${encodeURIComponent(decision.customer_id)}/context`);
    for (const [path, meta] of Object.entries(view.fields)) {
      const row = document.createElement("tr");
      const value = path.split(".").reduce((v, k) => (v == null ? v : v[k]), view.values);
      const shown = typeof value === "string" && value.startsWith("hmac-sha256:")
        ? "(masked)" : JSON.stringify(value);
      row.append(text("td", path), text("td", shown), text("td", meta.source || "—"));
      row.append(text("td", age(meta.age_ms), stale.has(path) ? "stale" : ""));
      rows.append(row);
    }
  } catch (err) {
    const row = document.createElement("tr");
    row.append(text("td", err.status === 404 ? "Nothing is cached for this customer." : err.message, "muted"));
    rows.append(row);
  }
  const gaps = [];
  if (decision.missing_fields.length) gaps.push(`Missing: ${decision.missing_fields.join(", ")}`);
  if (decision.stale_fields.length) gaps.push(`Stale: ${decision.stale_fields.join(", ")}`);
  if (decision.degraded) gaps.push("Served from a fallback: the context store was unreachable.");
  $("card-gaps").textContent = gaps.join(" · ");
}

// -- alerts ------------------------------------------------------------------------------------

function showAlert(alert) {
  $("no-alerts").hidden = true;
  const box = document.createElement("div");
  box.className = `alert ${alert.severity}`;
  box.dataset.alertId = alert.alert_id;
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", `${alert.severity} alert: ${alert.message}`);
  box.append(text("div", alert.severity, "severity"));
  box.append(text("div", alert.message));
  box.append(text("div", `${alert.customer_id} · ${alert.rule} · ${new Date(alert.raised_at).toLocaleTimeString()}`, "muted"));
  const actions = document.createElement("div");
  actions.className = "actions";
  const choices = [
    ["acknowledged", "Acknowledge", "Acknowledged"],
    ["acted", "Act", "Acted on"],
    ["dismissed", "Dismiss", "Dismissed"],
  ];
  for (const [outcome, label, done] of choices) {
    const button = text("button", label, outcome === "acknowledged" ? "" : "secondary");
    button.type = "button";
    button.addEventListener("click", async () => {
      try {
        await desktop.ack(alert.alert_id, outcome);
        box.classList.add("done");
        actions.replaceChildren(text("span", done, "muted ack-done"));
      } catch (err) {
        actions.append(text("span", err.message, "error"));
      }
    });
    actions.append(button);
  }
  box.append(actions);
  $("alert-list").prepend(box);
}
