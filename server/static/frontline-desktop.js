// frontline-desktop.js — the Frontline agent-desktop plugin (an ES module, no dependencies).
//
//   import { connect, connectWithKey } from "/static/frontline-desktop.js";
//   const desktop = connect("agent-7", "<agent key>");
//   // or, letting the key say whose it is (GET /v1/whoami):
//   const desktop = await connectWithKey("<agent key>");
//   desktop.addEventListener("alert", (e) => show(e.detail));
//   const decision = await desktop.startInteraction({ ruleset: "retention-desk", customerId: "c-42" });
//
// Alerts arrive over a WebSocket, or server-sent events where a WebSocket cannot open; the
// connection comes back by itself with backoff and resumes after the last alert it saw. The
// key never goes in a URL: each connection opens with a one-minute ticket from
// POST /v1/stream-tickets (asked with the key in the Authorization header).
// Events dispatched: "open", "close", "reconnecting", "alert", "decision", "error".
// docs/desktop-plugin.md documents all of it.

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 15000;
const SOCKET_FAILURES_BEFORE_SSE = 2;

export class FrontlineError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : `request failed with status ${status}`);
    this.name = "FrontlineError";
    this.status = status;
    this.problem = problem || null;
  }
}

export class FrontlineDesktop extends EventTarget {
  constructor({ agentId, key, baseUrl = "", transport = "auto" } = {}) {
    super();
    if (!agentId || !key) throw new Error("FrontlineDesktop needs an agentId and a key");
    this.agentId = agentId;
    this.key = key;
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.transport = transport; // "auto" | "websocket" | "sse"
    this.lastEventId = null;
    this.connected = false;
    this.interaction = null; // { interactionId, ruleset, customerId, context, answers, tree }
    this._stream = null;
    this._retryMs = BACKOFF_START_MS;
    this._retryTimer = null;
    this._socketFailures = 0;
    this._closed = true;
    this._seen = new Set();
  }

  // -- the alert stream ----------------------------------------------------------------------

  connect() {
    this._closed = false;
    this._open();
    return this;
  }

  disconnect() {
    this._closed = true;
    clearTimeout(this._retryTimer);
    if (this._stream) this._stream.close();
    this._stream = null;
    this._setConnected(false);
  }

  get usingSse() {
    return (
      this.transport === "sse" ||
      (this.transport === "auto" &&
        (typeof WebSocket === "undefined" || this._socketFailures >= SOCKET_FAILURES_BEFORE_SSE))
    );
  }

  _streamUrl(scheme, ticket) {
    const params = new URLSearchParams({ ticket });
    if (this.lastEventId) params.set("last_event_id", this.lastEventId);
    const path = `/v1/agents/${encodeURIComponent(this.agentId)}/alerts?${params}`;
    if (scheme === "ws") {
      const base = this.baseUrl || window.location.origin;
      return base.replace(/^http/, "ws") + path;
    }
    return this.baseUrl + path;
  }

  async _open() {
    if (this._closed) return;
    let ticket;
    try {
      ticket = (await this._request("POST", "/v1/stream-tickets")).ticket;
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        this._closed = true; // the key itself is refused: retrying will not help
        return;
      }
      this._retry();
      return;
    }
    if (this._closed) return;
    if (this.usingSse) this._openSse(ticket);
    else this._openSocket(ticket);
  }

  _openSocket(ticket) {
    let opened = false;
    const socket = new WebSocket(this._streamUrl("ws", ticket));
    this._stream = socket;
    socket.onopen = () => {
      opened = true;
      this._socketFailures = 0;
      this._retryMs = BACKOFF_START_MS;
      this._setConnected(true, "websocket");
    };
    socket.onmessage = (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (data.type === "alert") this._alert(data);
    };
    socket.onclose = (event) => {
      if (this._stream !== socket) return;
      this._stream = null;
      this._setConnected(false);
      if (!opened) this._socketFailures += 1;
      if (event.code === 4403) {
        this._fail(new FrontlineError(403, { detail: event.reason || "forbidden" }));
        this._closed = true;
        return;
      }
      this._retry();
    };
  }

  _openSse(ticket) {
    // EventSource resends Last-Event-ID by itself when it reconnects; a new one (after close)
    // carries the cursor in the query. Its ticket lasts a minute: a reconnection after that is
    // refused, the source closes, and _retry opens a new one with a new ticket.
    const source = new EventSource(this._streamUrl("http", ticket));
    this._stream = source;
    source.onopen = () => {
      this._retryMs = BACKOFF_START_MS;
      this._setConnected(true, "sse");
    };
    source.addEventListener("alert", (message) => {
      try {
        this._alert(JSON.parse(message.data));
      } catch (err) {
        /* not an alert */
      }
    });
    source.onerror = () => {
      if (this._stream !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        this._stream = null;
        this._setConnected(false);
        this._retry();
      } else {
        this._setConnected(false);
      }
    };
  }

  _retry() {
    if (this._closed) return;
    const delay = this._retryMs * (0.75 + Math.random() * 0.5);
    this._retryMs = Math.min(this._retryMs * 2, BACKOFF_MAX_MS);
    this.dispatchEvent(new CustomEvent("reconnecting", { detail: { inMs: Math.round(delay) } }));
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _setConnected(connected, transport) {
    if (connected === this.connected) return;
    this.connected = connected;
    this.dispatchEvent(new CustomEvent(connected ? "open" : "close", { detail: { transport } }));
  }

  _alert(alert) {
    const id = alert.id || alert.alert_id;
    if (this._seen.has(id)) return;
    this._seen.add(id);
    if (this._seen.size > 1000) this._seen.delete(this._seen.values().next().value);
    this.lastEventId = id;
    this.dispatchEvent(new CustomEvent("alert", { detail: alert }));
  }

  _fail(error) {
    this.dispatchEvent(new CustomEvent("error", { detail: error }));
  }

  // -- requests ------------------------------------------------------------------------------

  async _request(method, path, body) {
    const response = await fetch(this.baseUrl + path, {
      method,
      headers: {
        Authorization: `Bearer ${this.key}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new FrontlineError(response.status, data);
      this._fail(error);
      throw error;
    }
    return data;
  }

  // A decision for a customer. Inside a started interaction, the interaction's revision serves.
  // With contextUsed, the decision lists the fields it read (value, source, age, label).
  async decide({
    ruleset, customerId, context, answers, tree, interaction, revision, trace, contextUsed,
  } = {}) {
    const body = { ruleset, customer_id: customerId, agent_id: this.agentId };
    if (context) body.context = context;
    if (answers && Object.keys(answers).length) body.answers = answers;
    if (tree) body.tree = tree;
    if (interaction) body.interaction = interaction;
    if (revision) body.revision = revision;
    if (trace) body.trace = true;
    if (contextUsed) body.context_used = true;
    const decision = await this._request("POST", "/v1/decisions", body);
    this.dispatchEvent(new CustomEvent("decision", { detail: decision }));
    return decision;
  }

  // The agent picks up a customer: the first decision, and an interaction that keeps later
  // decisions on the same revision. Its alerts also arrive on the stream.
  // With contextUsed, every decision of the interaction lists the fields it read.
  async startInteraction({ ruleset, customerId, context, answers, tree, contextUsed } = {}) {
    const body = { ruleset, customer_id: customerId, agent_id: this.agentId };
    if (context) body.context = context;
    if (answers) body.answers = answers;
    if (tree) body.tree = tree;
    if (contextUsed) body.context_used = true;
    const decision = await this._request("POST", "/v1/interactions", body);
    this.interaction = {
      interactionId: decision.interaction_id,
      ruleset,
      customerId,
      context: context || null,
      answers: { ...(answers || {}) },
      tree: tree || (decision.next_step && decision.next_step.tree) || null,
      contextUsed: Boolean(contextUsed),
    };
    this.dispatchEvent(new CustomEvent("decision", { detail: decision }));
    return decision;
  }

  async endInteraction() {
    if (!this.interaction) return;
    const { interactionId } = this.interaction;
    this.interaction = null;
    await this._request("DELETE", `/v1/interactions/${encodeURIComponent(interactionId)}`);
  }

  // Answer the current question of a guided tree: `node` is the decision's next_step (or its
  // node id), `value` the agent's answer. Returns the next decision (next question or outcome).
  async answer(node, value) {
    if (!this.interaction) throw new Error("answer() needs a started interaction");
    const step = typeof node === "object" && node !== null ? node : { node, answer: null };
    const path = step.answer || `answers.${step.node}`;
    const key = path.replace(/^answers\./, "");
    this.interaction.answers[key] = value;
    if (step.tree) this.interaction.tree = step.tree;
    const { ruleset, customerId, context, answers, tree, interactionId, contextUsed } =
      this.interaction;
    return this.decide({
      ruleset, customerId, context, answers, tree, interaction: interactionId, contextUsed,
    });
  }

  // The agent's answer to an alert: "accepted", "overridden" (a note says why; required),
  // "acknowledged", "dismissed" (or "acted", kept for earlier desktops).
  async ack(alertId, outcome, note) {
    const body = { outcome };
    if (note) body.note = note;
    return this._request("POST", `/v1/alerts/${encodeURIComponent(alertId)}/ack`, body);
  }
}

// Who a key belongs to: {id, role} (GET /v1/whoami). For an agent's key, id is the agent id.
export async function whoami(key, { baseUrl = "" } = {}) {
  const response = await fetch(baseUrl.replace(/\/$/, "") + "/v1/whoami", {
    headers: { Authorization: `Bearer ${key}` },
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new FrontlineError(response.status, data);
  return data;
}

// Open an agent's desktop connection: the alert stream starts at once.
export function connect(agentId, key, options = {}) {
  return new FrontlineDesktop({ agentId, key, ...options }).connect();
}

// The same for a key alone: the agent id is the one the key belongs to. Rejects with a
// FrontlineError (status 401) for a key the server does not know, and (403) for a key that
// is not an agent's.
export async function connectWithKey(key, options = {}) {
  const who = await whoami(key, options);
  if (who.role !== "agent") {
    throw new FrontlineError(403, {
      detail: `this key belongs to ${who.role} ${who.id}, not to an agent`,
    });
  }
  return connect(who.id, key, options);
}
