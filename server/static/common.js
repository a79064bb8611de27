// What the author's and auditor's pages share: a key kept in the tab, and API calls.

export const $ = (id) => document.getElementById(id);

export function el(tag, content, className) {
  const node = document.createElement(tag);
  if (content !== undefined && content !== null) node.textContent = String(content);
  if (className) node.className = className;
  return node;
}

export class Api {
  constructor(storageKey) {
    this.storageKey = storageKey;
    this.key = sessionStorage.getItem(storageKey) || "";
  }

  setKey(key) {
    this.key = key;
    sessionStorage.setItem(this.storageKey, key);
  }

  async call(method, path, { json, body, contentType, raw } = {}) {
    const headers = { Authorization: `Bearer ${this.key}` };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    if (contentType) headers["Content-Type"] = contentType;
    const response = await fetch(path, {
      method,
      headers,
      body: json !== undefined ? JSON.stringify(json) : body,
    });
    if (raw && response.ok) return response;
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error((data && data.detail) || `${method} ${path} answered ${response.status}`);
      error.status = response.status;
      error.problem = data;
      throw error;
    }
    return data;
  }
}

// Wire a key form: on submit, keep the key and call `ready`.
export function keyForm(api, formId, inputId, ready) {
  const input = $(inputId);
  input.value = api.key;
  $(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    api.setKey(input.value);
    ready();
  });
  if (api.key) ready();
}

// A line diff (longest common subsequence): [{op: " " | "-" | "+", line}].
export function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push({ op: " ", line: a[i] }); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) { out.push({ op: "-", line: a[i] }); i++; }
    else { out.push({ op: "+", line: b[j] }); j++; }
  }
  while (i < n) out.push({ op: "-", line: a[i++] });
  while (j < m) out.push({ op: "+", line: b[j++] });
  return out;
}
