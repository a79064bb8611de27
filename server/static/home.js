// The landing page: whether this server is ready to decide, and if not, why.
import { $ } from "/static/common.js";

const status = $("status");

async function check() {
  try {
    const response = await fetch("/readyz");
    const body = await response.json();
    const ready = response.ok && body.status === "ready";
    status.textContent = ready ? "ready" : `not ready: ${(body.problems || []).join("; ")}`;
    status.className = `status ${ready ? "up" : "down"}`;
  } catch {
    status.textContent = "not answering";
    status.className = "status down";
  }
}

check();
