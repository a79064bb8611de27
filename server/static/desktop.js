// The agent's desktop page: built on frontline-desktop.js, as a CRM vendor's page would be.
import { connectWithKey } from "/static/frontline-desktop.js";

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
  if (s < 90) return s <= 1 ? "just now" : `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function setStatus(up, words) {
  $("status").textContent = words;
  $("status").className = `status ${up ? "up" : "down"}`;
}

// -- signing in: the key says whose it is ----------------------------------------------------

async function signIn(key) {
  $("signin-error").textContent = "";
  if (desktop) desktop.disconnect();
  desktop = null;
  try {
    desktop = await connectWithKey(key);
  } catch (err) {
    setStatus(false, "not connected");
    $("signin-error").textContent =
      err.status === 401 ? "The server does not know this key." : err.message;
    return;
  }
  sessionStorage.setItem("frontline.agentKey", key);
  $("agent-name").textContent = `Signed in as ${desktop.agentId}`;
  $("agent-name").hidden = false;
  desktop.addEventListener("open", (e) => setStatus(true, `connected (${e.detail.transport})`));
  desktop.addEventListener("close", () => setStatus(false, "disconnected"));
  desktop.addEventListener("reconnecting", (e) => setStatus(false, `reconnecting in ${Math.round(e.detail.inMs / 1000)} s`));
  desktop.addEventListener("alert", (e) => showAlert(e.detail));
  desktop.addEventListener("error", (e) => {
    if (e.detail && e.detail.status === 403 && !desktop.connected) {
      setStatus(false, "this key cannot open this desktop");
    }
  });
  $("start-button").disabled = false;
  $("customer-id").focus();
}

$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("agent-key").value);
});

const savedKey = sessionStorage.getItem("frontline.agentKey");
if (savedKey) {
  $("agent-key").value = savedKey;
  signIn(savedKey);
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
    if (desktop.interaction) await endInteraction();
    const decision = await desktop.startInteraction({
      ruleset: $("ruleset").value.trim(),
      customerId: $("customer-id").value.trim(),
      context,
      contextUsed: true,
    });
    $("end-button").disabled = false;
    filterAlerts();
    render(decision);
  } catch (err) {
    $("start-error").textContent = err.message;
  }
});

async function endInteraction() {
  try {
    await desktop.endInteraction();
  } finally {
    $("end-button").disabled = true;
    for (const id of ["customer-card", "offers", "tree", "escalation"]) $(id).hidden = true;
    filterAlerts();
  }
}

$("end-button").addEventListener("click", () => {
  endInteraction().catch((err) => {
    $("start-error").textContent = err.message;
  });
});

function render(decision) {
  // Only a decision of the same interaction can ask the same question again.
  const previous = lastDecision && lastDecision.interaction_id === decision.interaction_id
    ? lastDecision : null;
  lastDecision = decision;
  renderEscalation(decision.escalation);
  renderOffers(decision.eligible);
  renderTree(decision.next_step, previous);
  renderCard(decision);
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

// -- a guided tree: each question asks for its answer field's type ------------------------------
//
// An enum is a radio group (arrow keys choose, Enter answers), a boolean Yes and No buttons, an
// integer or a number a number input, anything else a text input. The server judges the
// answer: one it cannot use comes back as the same question with the answer field among the
// decision's invalid_fields, and its words are shown beside the question.

function renderTree(step, previous) {
  const section = $("tree");
  section.hidden = !step;
  if (!step) return;
  const outcome = $("tree-outcome");
  if (step.outcome || step.error) {
    $("tree-form").hidden = true;
    outcome.hidden = false;
    outcome.className = step.error ? "outcome error" : "outcome";
    outcome.textContent = step.error
      ? `The guided steps stopped: ${step.error}`
      : `Outcome: ${step.outcome}${step.say ? " — " + step.say : ""}${step.queue ? " (queue " + step.queue + ")" : ""}`;
    return;
  }
  $("tree-form").hidden = false;
  outcome.hidden = true;
  const sameQuestion = previous && previous.next_step && previous.next_step.tree === step.tree
    && previous.next_step.node === step.node;
  const invalid = (lastDecision.invalid_fields || []).find((f) => f.field === step.answer);
  $("tree-problem").textContent = sameQuestion && invalid
    ? `That answer cannot be used: expected ${invalid.expected}, got ${invalid.got}.`
    : "";
  if (sameQuestion && $("tree-controls").childElementCount) {
    focusQuestion();
    return; // the same question again: the agent's answer stays in place to be corrected
  }
  $("tree-question").textContent = step.ask || step.node;
  $("tree-controls").replaceChildren(...controlsFor(step));
  focusQuestion();
}

function focusQuestion() {
  const first = $("tree-controls").querySelector("input:checked, input, button");
  if (first) first.focus();
}

function controlsFor(step) {
  const type = step.answer_type || "string";
  if (step.answer_enum) {
    const group = document.createElement("div");
    group.setAttribute("role", "radiogroup");
    group.setAttribute("aria-labelledby", "tree-question");
    group.className = "choices";
    for (const value of step.answer_enum) {
      const label = document.createElement("label");
      label.className = "choice";
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "tree-choice";
      radio.value = value;
      label.append(radio, document.createTextNode(` ${value.replaceAll("_", " ")}`));
      group.append(label);
    }
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        $("tree-form").requestSubmit();
      }
    });
    return [group, submitButton()];
  }
  if (type === "boolean") {
    return [["Yes", true], ["No", false]].map(([words, value]) => {
      const button = text("button", words, "choice-button");
      button.type = "button";
      button.dataset.answer = String(value);
      button.addEventListener("click", () => answer(value));
      return button;
    });
  }
  const input = document.createElement("input");
  input.id = "tree-answer";
  input.autocomplete = "off";
  input.setAttribute("aria-labelledby", "tree-question");
  if (type === "integer" || type === "number") {
    input.type = "number";
    input.step = type === "integer" ? "1" : "any";
    input.inputMode = type === "integer" ? "numeric" : "decimal";
  } else if (type === "list") {
    input.placeholder = '["a", "b"] (JSON)';
  } else if (type === "datetime") {
    input.placeholder = "2026-12-01T10:00:00Z";
  }
  input.dataset.type = type;
  return [input, submitButton()];
}

function submitButton() {
  const button = text("button", "Answer");
  button.type = "submit";
  return button;
}

// The control's answer as the field's type: the server says whether it can be used.
function answerValue() {
  const chosen = $("tree-controls").querySelector("input[type=radio]:checked");
  if (chosen) return { value: chosen.value };
  if ($("tree-controls").querySelector("input[type=radio]")) return { problem: "Choose one of the answers." };
  const input = $("tree-answer");
  if (!input) return { problem: "Choose Yes or No." };
  const raw = input.value.trim();
  if (!raw) {
    return { problem: input.validity.badInput ? "That is not a number." : "Give an answer first." };
  }
  if (input.dataset.type === "integer" || input.dataset.type === "number") return { value: Number(raw) };
  if (input.dataset.type === "list") {
    try {
      return { value: JSON.parse(raw) };
    } catch (err) {
      return { problem: `Not a JSON list: ${err.message}` };
    }
  }
  return { value: raw };
}

async function answer(value) {
  try {
    render(await desktop.answer(lastDecision.next_step, value));
  } catch (err) {
    $("tree-problem").textContent = err.message; // the problem details' detail
  }
}

$("tree-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { value, problem } = answerValue();
  if (problem) {
    $("tree-problem").textContent = problem;
    return;
  }
  answer(value);
});

// -- the customer card: what the decision used --------------------------------------------------

function renderCard(decision) {
  $("customer-card").hidden = false;
  $("card-id").textContent = decision.customer_id;
  const rows = $("card-fields");
  rows.replaceChildren();
  const used = decision.context_used || [];
  const had = used.filter((f) => !f.missing);
  for (const field of had) {
    const row = document.createElement("tr");
    row.dataset.field = field.field;
    const name = text("td", field.label);
    if (field.label !== field.field) name.append(text("div", field.field, "muted"));
    const value = field.value;
    const shown = typeof value === "string" && value.startsWith("hmac-sha256:")
      ? "(masked)" : typeof value === "string" ? value : JSON.stringify(value);
    const source = field.source || "—";
    row.append(name, text("td", shown), text("td", source));
    row.append(text("td", field.stale ? `${age(field.age_ms)} (stale)` : age(field.age_ms), field.stale ? "stale" : ""));
    rows.append(row);
  }
  if (!had.length) {
    const row = document.createElement("tr");
    const cell = text("td", "The decision had no data about this customer.", "muted");
    cell.colSpan = 4;
    row.append(cell);
    rows.append(row);
  }
  const label = (path) => (used.find((f) => f.field === path) || { label: path }).label;
  const missing = decision.missing_fields.map(label);
  const stale = decision.stale_fields.map(label);
  $("card-missing").hidden = !missing.length;
  $("card-missing").textContent = `Missing: ${missing.join("; ")}`;
  $("card-stale").hidden = !stale.length;
  $("card-stale").textContent = `Out of date: ${stale.join("; ")}`;
  $("card-degraded").hidden = !decision.degraded;
}

// -- alerts ------------------------------------------------------------------------------------
//
// An alert belongs to the interaction (or, without one, the customer) it was raised for: only
// the alerts of the customer in front of the agent are shown, and switching customer takes
// the previous one's out of view.
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

function belongsHere(box) {
  const current = desktop && desktop.interaction;
  if (!current) return false;
  if (box.dataset.interactionId) return box.dataset.interactionId === current.interactionId;
  return box.dataset.customerId === current.customerId;
}

function filterAlerts() {
  let shown = 0;
  for (const box of document.querySelectorAll("#alert-list .alert")) {
    box.hidden = !belongsHere(box);
    if (!box.hidden) shown += 1;
  }
  $("no-alerts").hidden = shown > 0;
}

function showAlert(alert) {
  const box = document.createElement("div");
  box.className = `alert ${alert.severity}`;
  box.dataset.alertId = alert.alert_id;
  box.dataset.customerId = alert.customer_id || "";
  box.dataset.interactionId = alert.interaction_id || "";
  box.tabIndex = 0;
  box.setAttribute("role", "group");
  box.setAttribute(
    "aria-label",
    `${alert.severity} alert: ${alert.message}. Keys: A accept, O override, K acknowledge, D dismiss`,
  );
  box.append(text("div", alert.escalation ? `${alert.severity} · escalation` : alert.severity, "severity"));
  box.append(text("div", alert.message));
  if (alert.escalation) box.append(text("div", `Escalate to ${alert.escalation.queue} (${alert.escalation.reason_code})`));
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
  problem.setAttribute("role", "alert");

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
  box.hidden = !belongsHere(box);
  $("alert-list").prepend(box);
  if (!box.hidden) $("no-alerts").hidden = true;
}

document.addEventListener("keydown", (event) => {
  if (event.altKey && event.shiftKey && event.key.toLowerCase() === "a") {
    const newest = document.querySelector("#alert-list .alert:not(.done):not([hidden])");
    if (newest) {
      event.preventDefault();
      newest.focus();
    }
  }
});
