// The author's draft: a YAML editor (CodeMirror 5, served from /static/vendor), checked by the
// server as it is typed, its decision tables drawn as grids, and run against a recorded
// decision.
//
//   typing ─(400 ms pause)─▶ POST /v1/rulesets?dry_run=true ─▶ errors and warnings marked in
//                                                              the gutter and listed below
//   typing ─▶ sessionStorage (a reload loses nothing) and the tables' grids (parsed here)
//   decision id ─▶ POST /v1/audit/decisions/{id}/rerun ─▶ what served beside what the draft gives
//
// The grids are drawn from the draft parsed in the page (js-yaml, also vendored), so they
// follow the typing even while another part of the document does not compile, and the same
// code draws a stored revision's tables from its text.
import { $, el } from "/static/common.js";
import { confirmAction, say } from "/static/notices.js";
import { load as parseYaml } from "/static/vendor/js-yaml/js-yaml.mjs";

const STORE = "frontline.draft";
const CHECK_DELAY_MS = 400;

let api = null;
let editor = null;
// What the draft started from (shown above the editor), the name its errors carry, and
// whether the author changed it since (a draft started over an edited one asks first).
let state = { origin: "", filename: "draft.yaml", edited: false };

// A located problem (an error or a warning) as a compiler prints it: "file:line:col: message".
export function located(p) {
  if (p.line === null || p.line === undefined) return p.file ? `${p.file}: ${p.message}` : p.message;
  return `${p.file || "draft.yaml"}:${p.line}:${p.column || 1}: ${p.message}`;
}

export function draftText() {
  return editor.getValue();
}

export function draftFilename() {
  return state.filename;
}

function save() {
  sessionStorage.setItem(STORE, JSON.stringify({ ...state, text: editor.getValue() }));
}

function showOrigin() {
  $("draft-origin").textContent = state.origin
    ? `from ${state.origin}${state.edited ? ", edited" : ""}; errors name it ${state.filename}`
    : "empty: start from a revision (Edit) or from a file";
}

// Start the draft from `text`. Asks first when the current draft holds edits.
export async function startDraft(text, origin, filename = "draft.yaml") {
  if (state.edited && editor.getValue().trim()) {
    const sure = await confirmAction({
      title: "Replace the draft?",
      text: `The draft (from ${state.origin || "scratch"}) has edits that are not deployed. ` +
        `Starting from ${origin} replaces them.`,
      action: "Replace the draft",
    });
    if (sure === null) return false;
  }
  state = { origin, filename, edited: false };
  editor.setValue(text);
  state.edited = false; // setValue fires a change; this draft is as it started
  save();
  showOrigin();
  $("draft").scrollIntoView({ block: "start" });
  editor.focus();
  return true;
}

// The draft was deployed as `name` revision `revision`: it holds no edits any more.
export function draftDeployed(name, revision) {
  state = { ...state, origin: `${name} revision ${revision} (deployed from this draft)`, edited: false };
  save();
  showOrigin();
}

// --- checking as one types --------------------------------------------------------------

function position(p) {
  const line = Math.max(0, Math.min((p.line || 1) - 1, editor.lineCount() - 1));
  const text = editor.getLine(line);
  const ch = Math.max(0, Math.min((p.column || 1) - 1, text.length));
  return CodeMirror.Pos(line, ch);
}

// A failed test or a missing part has no line: it is listed below the editor, not marked.
const hasLine = (p) => p.line !== null && p.line !== undefined;

// An annotation for CodeMirror's lint addon: from line:col to the end of the word there.
function annotation(p, severity) {
  const from = position(p);
  const word = editor.findWordAt(from);
  let to = word.head.ch > from.ch ? word.head : CodeMirror.Pos(from.line, from.ch + 1);
  if (p.column === null || p.column === undefined) to = CodeMirror.Pos(from.line, editor.getLine(from.line).length);
  return { from, to, message: p.message, severity };
}

function listProblems(errors, warnings) {
  const list = $("draft-problems");
  list.replaceChildren();
  for (const [problems, kind] of [[errors, "error"], [warnings, "warning"]]) {
    for (const p of problems) {
      const item = el("li", null, `problem ${kind}`);
      item.dataset.line = p.line ?? "";
      item.append(el("span", kind, "kind"));
      if (hasLine(p)) {
        // The location goes to the place in the editor.
        const where = el("button", located({ ...p, message: "" }).slice(0, -2), "link");
        where.type = "button";
        where.title = `Go to line ${p.line}, column ${p.column || 1}`;
        where.addEventListener("click", () => {
          editor.setCursor(position(p));
          editor.focus();
        });
        item.append(where, el("span", `: ${p.message}`));
      } else {
        item.append(el("span", located(p)));
      }
      list.append(item);
    }
  }
}

function status(text, kind) {
  const node = $("draft-status");
  node.textContent = text;
  node.dataset.state = kind;
  node.className = kind === "errors" ? "error" : "muted";
}

function summary(done) {
  const parts = [`${done.name}: no errors`, `tests ${done.tests.passed} passed, ${done.tests.failed} failed`];
  if (done.coverage) parts.push(`coverage ${Math.round(done.coverage.percent)}% (${done.coverage.reached} of ${done.coverage.total})`);
  parts.push(`${done.warnings.length} warning(s)`);
  return parts.join("; ");
}

function queryOf(params) {
  return Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
}

// A picked file's name as the server accepts it in ?filename= (letters, digits, space and
// "._+-", at most 100, not starting with a dot): other characters become "_".
export function safeFilename(name) {
  const kept = name.replace(/[^A-Za-z0-9 ._+-]/g, "_").replace(/^[ .+-]/, "_").slice(0, 100);
  return kept || "draft.yaml";
}

export function documentType(filename) {
  return filename.endsWith(".json") ? "application/json" : "application/yaml";
}

// The lint addon's asynchronous source: the server's dry run of the draft. The addon drops
// an answer that arrives after the text changed again.
async function check(text, done) {
  if (!text.trim()) {
    status("The draft is empty.", "empty");
    listProblems([], []);
    done([]);
    return;
  }
  if (!api.key) {
    status("Sign in with an author key to check the draft.", "idle");
    done([]);
    return;
  }
  status("Checking…", "checking");
  drawGrids($("draft-grids"), text);
  const query = queryOf({ dry_run: true, filename: state.filename, allow_untested: $("draft-untested").checked });
  try {
    const answer = await api.call("POST", `/v1/rulesets?${query}`, { body: text, contentType: documentType(state.filename) });
    if (editor.getValue() !== text) return; // typed on since: the next check speaks
    status(summary(answer), "ok");
    listProblems([], answer.warnings);
    drawGrids($("draft-grids"), text, answer.coverage && answer.coverage.unreached.table_rows);
    done(answer.warnings.filter(hasLine).map((w) => annotation(w, "warning")));
  } catch (err) {
    if (editor.getValue() !== text) return;
    const errors = (err.problem && err.problem.errors) || [];
    status(err.message, "errors");
    listProblems(errors, []);
    done(errors.filter(hasLine).map((e) => annotation(e, "error")));
  }
}
check.async = true;

// --- decision tables as grids ------------------------------------------------------------

function cellText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// Draw each decision table of the YAML `text` into `host`, rows no test reached marked (when
// `unreached` says which: table id → row numbers). Text that does not parse leaves what was
// drawn, with a note.
export function drawGrids(host, text, unreached = null) {
  let doc;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const note = host.querySelector(".grid-note") || el("p", null, "grid-note muted");
    note.textContent = `The tables below are from the last text that parsed (${err.reason || err.message}).`;
    host.prepend(note);
    return;
  }
  host.replaceChildren();
  const tables = doc && Array.isArray(doc.tables) ? doc.tables : [];
  for (const table of tables) {
    if (!table || !Array.isArray(table.inputs) || !Array.isArray(table.outputs) || !Array.isArray(table.rows)) continue;
    const outputs = table.outputs.map((o) => (o && typeof o === "object" ? o.name : o));
    const missed = new Set((unreached && unreached[table.id]) || []);
    const figure = el("figure", null, "grid");
    figure.dataset.table = table.id;
    const caption = el("figcaption");
    caption.append(el("strong", `table ${table.id}`), el("span", ` hit policy ${table.hit ?? "?"}` +
      (table.aggregate ? ` (${table.aggregate})` : "") + (table.complete ? ", complete" : ""), "muted"));
    if (table.description) caption.append(el("div", table.description, "muted"));
    const grid = el("table");
    const head = el("tr");
    head.append(el("th", "#"));
    for (const name of table.inputs) head.append(el("th", name, "input"));
    for (const name of outputs) head.append(el("th", name, "output"));
    const thead = el("thead");
    thead.append(head);
    const body = el("tbody");
    table.rows.forEach((row, k) => {
      const tr = el("tr");
      tr.dataset.row = k + 1;
      if (missed.has(k + 1)) {
        tr.className = "unreached";
        tr.title = "no test reaches this row";
      }
      tr.append(el("th", k + 1));
      (Array.isArray(row) ? row : [row]).forEach((cell, c) => {
        tr.append(el("td", cellText(cell), c < table.inputs.length ? "input" : "output"));
      });
      body.append(tr);
    });
    grid.append(thead, body);
    figure.append(caption, grid);
    host.append(figure);
  }
  if (unreached && Object.values(unreached).some((rows) => rows.length)) {
    host.append(el("p", "Shaded rows are reached by no test of the draft.", "muted"));
  }
}

// --- served beside the draft -------------------------------------------------------------

// The parts of a decision an agent sees (as the server compares them), in its order.
const PARTS = [
  ["eligible", "eligible offers (rules)"], ["params", "offer parameters"], ["escalation", "escalation rule"],
  ["queue", "queue"], ["priority", "priority"], ["alerts", "alerts (rules)"], ["severities", "alert severities"],
  ["tables", "table outputs"], ["next_step", "next step"], ["texts", "texts the agent reads"], ["error", "error"],
];

const literal = (v) => (typeof v === "string" ? v : JSON.stringify(v));

// One part's value as lines of text ([] when the part is empty).
function partLines(key, value) {
  if (value === null || value === undefined) return [];
  if (Array.isArray(value)) return value.length ? [value.join(", ")] : [];
  if (typeof value !== "object") return [String(value)];
  if (key === "tables") {
    return Object.entries(value).flatMap(([id, out]) =>
      out && typeof out === "object" && !Array.isArray(out)
        ? Object.entries(out).map(([k, v]) => `${id}.${k} = ${JSON.stringify(v)}`)
        : [`${id} = ${JSON.stringify(out)}`]);
  }
  return Object.entries(value).map(([k, v]) => `${k}: ${literal(v)}`);
}

function partCell(key, value, className) {
  const cell = el("td", null, className);
  const lines = partLines(key, value);
  if (!lines.length) cell.append(el("span", "—", "muted"));
  for (const line of lines) cell.append(el("div", line));
  return cell;
}

function showRerun(answer) {
  const host = $("rerun-result");
  host.replaceChildren();
  const changed = new Set(answer.changed);
  const served = answer.served.shown;
  const draft = answer.draft.shown;
  host.append(el("p", changed.size
    ? `The draft changes ${answer.changed.map((c) => PARTS.find(([k]) => k === c)?.[1] ?? c).join(", ")} ` +
      `of decision ${answer.decision_id} (${answer.ruleset}).`
    : `The draft decides ${answer.decision_id} (${answer.ruleset}) as it was served.`,
  changed.size ? "rerun-summary changed" : "rerun-summary"));
  const table = el("table", null, "side-by-side");
  const head = el("tr");
  head.append(el("th", answer.evaluated_at ? `at ${when(answer.evaluated_at)}` : ""),
    el("th", `served (revision ${answer.served.revision})`), el("th", "draft"));
  const thead = el("thead");
  thead.append(head);
  const body = el("tbody");
  for (const [key, label] of PARTS) {
    const empty = !partLines(key, served[key]).length && !partLines(key, draft[key]).length;
    if (empty && !changed.has(key)) continue;
    const row = el("tr", null, changed.has(key) ? "changed" : "");
    row.dataset.part = key;
    row.append(el("th", label), partCell(key, served[key], "served"), partCell(key, draft[key], "draft"));
    body.append(row);
  }
  table.append(thead, body);
  host.append(table);
  if (answer.read_masked_fields.length) {
    host.append(el("p", `Masked in the record, so the draft read their keyed hashes: ${answer.read_masked_fields.join(", ")}.`, "muted"));
  }
  if (answer.unrecorded_fields.length) {
    host.append(el("p", `Read by the draft but not recorded with the decision (unknown to it): ${answer.unrecorded_fields.join(", ")}.`, "muted"));
  }
}

// "2026-12-05T02:30:41.123Z" → "2026-12-05 02:30:41 UTC"
function when(at) {
  return at.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC");
}

async function rerun(event) {
  event.preventDefault();
  const id = $("rerun-id").value.trim();
  const host = $("rerun-result");
  host.replaceChildren(el("p", "Running the draft…", "muted"));
  try {
    const url = `/v1/audit/decisions/${encodeURIComponent(id)}/rerun?filename=${encodeURIComponent(state.filename)}`;
    const answer = await api.call("POST", url, { json: { document: draftText() } });
    showRerun(answer);
  } catch (err) {
    host.replaceChildren(el("p", err.message, "error"));
    for (const e of (err.problem && err.problem.errors) || []) host.append(el("div", located(e), "muted"));
  }
}

// --- wiring ------------------------------------------------------------------------------

export function initWorkbench(theApi) {
  api = theApi;
  const kept = JSON.parse(sessionStorage.getItem(STORE) || "null");
  if (kept) state = { origin: kept.origin, filename: kept.filename, edited: kept.edited };
  editor = CodeMirror($("draft-editor"), {
    value: kept ? kept.text : "",
    mode: "yaml",
    lineNumbers: true,
    lineWrapping: true,
    indentUnit: 2,
    gutters: ["CodeMirror-lint-markers"],
    screenReaderLabel: "Draft document (YAML). Tab leaves the editor; Ctrl-] and Ctrl-[ indent.",
    // Tab moves the focus on, as everywhere on the page; YAML indents with spaces.
    extraKeys: { Tab: false, "Shift-Tab": false },
    lint: { getAnnotations: check, async: true, delay: CHECK_DELAY_MS },
  });
  editor.on("change", () => {
    // What was shown was for the text before this change; the check comes at the pause.
    if ($("draft-status").dataset.state !== "pending") status("Checking when you pause typing…", "pending");
    state.edited = true;
    save();
    showOrigin();
  });
  showOrigin();
  if (kept && kept.text) drawGrids($("draft-grids"), kept.text);
  $("draft-untested").addEventListener("change", () => editor.performLint());
  $("draft-file").addEventListener("change", async () => {
    const file = $("draft-file").files[0];
    if (file && (await startDraft(await file.text(), `file ${file.name}`, safeFilename(file.name)))) say(`The draft starts from ${file.name}`);
    $("draft-file").value = "";
  });
  $("draft-discard").addEventListener("click", async () => {
    const sure = await confirmAction({
      title: "Discard the draft?",
      text: "Its text is removed from this tab; deployed revisions are not touched.",
      action: "Discard",
    });
    if (sure === null) return;
    state = { origin: "", filename: "draft.yaml", edited: false };
    editor.setValue("");
    state.edited = false;
    save();
    showOrigin();
    $("draft-grids").replaceChildren();
  });
  $("rerun-form").addEventListener("submit", rerun);
}

// Check the draft now (after signing in: the dry run needs a key).
export function checkDraft() {
  if (editor.getValue().trim()) editor.performLint();
}
