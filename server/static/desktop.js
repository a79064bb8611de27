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
//
// Each alert is answered from its box, by mouse or from the keyboard: with the box focused
// (Alt+Shift+A focuses the newest unanswered one), A accepts, O overrides (a reason is asked
// for; Enter sends it, Escape takes it back), K acknowledges, D dismisses. The answer goes to
// the ledger with the time since the alert reached this desktop.

const CHOICES = [
  // outcome, key, button label, what the box says once answered
  ["accepted", "a", "Accept", "Accepted"],
  ["overridden", "o", "Override…", "Overridden"],
  ["acknowledged", "k", "Acknowledge", "Acknowledged"],
  ["dismissed", "d", "Dismiss", "Dismissed"],
];

function showAlert(alert) {
  $("no-alerts").hidden = true;
  const box = document.createElement("div");
  box.className = `alert ${alert.severity}`;
  box.dataset.alertId = alert.alert_id;
  box.tabIndex = 0;
  box.setAttribute("role", "group");
  box.setAttribute(
    "aria-label",
    `${alert.severity} alert: ${alert.message}. Keys: A accept, O override, K acknowledge, D dismiss`,
  );
  box.append(text("div", alert.severity, "severity"));
  box.append(text("div", alert.message));
  const due = alert.ack_within ? ` · answer within ${alert.ack_within}` : "";
  box.append(text("div", `${alert.customer_id} · ${alert.rule} · ${new Date(alert.raised_at).toLocaleTimeString()}${due}`, "muted"));
  const actions = document.createElement("div");
  actions.className = "actions";
  const reason = document.createElement("form");
  reason.className = "override";
  reason.hidden = true;
  const label = text("label", "Why override? ");
  const input = document.createElement("input");
  input.name = "reason";
  input.required = true;
  input.maxLength = 2000;
  input.setAttribute("aria-label", "Why override this alert");
  label.append(input);
  reason.append(label, text("button", "Send", ""));
  const problem = text("span", "", "error");

  async function answer(outcome, note) {
    try {
      await desktop.ack(alert.alert_id, outcome, note);
      box.classList.add("done");
      const done = CHOICES.find((c) => c[0] === outcome)[3];
      actions.replaceChildren(text("span", note ? `${done}: ${note}` : done, "muted ack-done"));
      const hadFocus = box.contains(document.activeElement);
      reason.hidden = true;
      problem.textContent = "";
      if (hadFocus) box.focus(); // the reason field is gone; the keyboard stays on the alert
    } catch (err) {
      problem.textContent = err.message;
    }
  }
  function choose(outcome) {
    if (box.classList.contains("done")) return;
    if (outcome !== "overridden") {
      answer(outcome);
      return;
    }
    reason.hidden = false;
    input.focus();
  }

  for (const [outcome, key, buttonLabel] of CHOICES) {
    const button = text("button", buttonLabel, outcome === "accepted" ? "" : "secondary");
    button.type = "button";
    button.title = `${buttonLabel.replace("…", "")} (${key.toUpperCase()})`;
    button.addEventListener("click", () => choose(outcome));
    actions.append(button);
  }
  reason.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim()) answer("overridden", input.value.trim());
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      reason.hidden = true;
      box.focus();
    }
    if (!event.altKey) event.stopPropagation(); // typing a reason is not a shortcut
  });
  box.addEventListener("keydown", (event) => {
    if (event.target !== box || event.altKey || event.ctrlKey || event.metaKey) return;
    const choice = CHOICES.find((c) => c[1] === event.key.toLowerCase());
    if (!choice) return;
    event.preventDefault();
    choose(choice[0]);
  });
  box.append(actions, reason, problem);
  $("alert-list").prepend(box);
}

document.addEventListener("keydown", (event) => {
  if (event.altKey && event.shiftKey && event.key.toLowerCase() === "a") {
    const newest = document.querySelector("#alert-list .alert:not(.done)");
    if (newest) {
      event.preventDefault();
      newest.focus();
    }
  }
});
