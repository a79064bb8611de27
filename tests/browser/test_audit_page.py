"""The auditor's page (/audit) in a real Chromium, on a ledger of realistic size and ids:
no control is covered by another at a desktop's width or a phone's; an export streams to
disk with its progress shown; a decision's explanation shows its table outputs, each fired
rule's condition and the rules left unknown by missing data; a deep link opens a decision."""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.record import Actor
from audit.recording import ack_record, decision_record
from engine import compile_ruleset
from tests.support.archive import archive
from tests.support.live_server import KEYS, ROOT, LiveServer

RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")
ARCHIVED = 3_000
# Ids as contact centres write them: long, and with no place to break but their dashes.
CUSTOMER = "customer-4f9c2d1e-8b7a-4c3d-9e2f-1a0b3c4d5e6f"
AGENT = "agent.emea-north.tier2.0012345@contact-centre.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server whose ledger holds 3,000 decisions of an earlier instance with UUID ids and
    long customer and agent ids, each tenth followed by an agent's ack of a UUID-named alert."""
    data: Path = tmp_path_factory.mktemp("audit-page")
    compiled = compile_ruleset(RETENTION)
    rng = random.Random(21)
    now = datetime.now(UTC)
    records = []
    for k in range(ARCHIVED):
        context: dict[str, Any] = {
            "customer": {"tier": rng.choice(["bronze", "gold"]), "churn_score": rng.random()},
            "history": {"contacts_7d": rng.randint(0, 3)},
        }
        records.append(
            decision_record(
                compiled.evaluate(context, now=now),
                record_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                context=context,
                customer_id=CUSTOMER if k % 2 else f"{CUSTOMER}-{k}",
                agent_id=AGENT,
            )
        )
        if k % 10 == 0:
            records.append(
                ack_record(
                    record_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    alert_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    outcome="acknowledged",
                    actor=Actor(principal=AGENT, role="agent"),
                    agent_id=AGENT,
                    customer_id=CUSTOMER,
                )
            )
    archive(data / "ledger", records)
    with LiveServer(data) as live:
        yield live


def sign_in(page: Any, server: LiveServer, path: str = "/audit") -> None:
    page.goto(server.url + path)
    page.fill("#key", KEYS["auditor"][1])
    page.click("#key-form button")


# Every visible control whose own centre is covered by something else (after scrolling it
# into view), described for the assertion message.
COVERED = """() => {
  const covered = [];
  const controls = document.querySelectorAll("button, a[href], input, select, textarea, summary");
  for (const node of controls) {
    if (!node.getClientRects().length) continue; // not rendered: hidden, or in closed details
    node.scrollIntoView({block: "center", inline: "center"});
    const box = node.getBoundingClientRect();
    const x = box.left + box.width / 2;
    const y = box.top + box.height / 2;
    const top = document.elementFromPoint(x, y);
    if (top !== node && !node.contains(top)) {
      covered.push(`${node.tagName} ${node.id || node.name || node.textContent.trim()}` +
        ` at (${Math.round(x)}, ${Math.round(y)}) is under ` +
        (top ? `${top.tagName}#${top.id}.${top.className}` : "nothing (off screen)"));
    }
  }
  return covered;
}"""


@pytest.mark.parametrize("width", [1280, 1400, 480], ids=["1280px", "1400px", "480px"])
def test_no_control_of_the_audit_page_is_covered(
    browser: Any, server: LiveServer, width: int
) -> None:
    """With ack rows, long ids and a record explained, the record is in view, every visible
    button, link and input is the element at its own centre and takes a click, and the page
    never scrolls sideways, at a desktop's widths and a phone's."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, server)
        page.wait_for_selector("#results tr[data-kind='ack']")
        page.locator("#results tr[data-kind='decision'] button").first.click()
        page.wait_for_selector("#record:not([hidden]) .gaps")
        # The record explained is in view: beside the list, or scrolled to below it.
        title = page.locator("#record-title").bounding_box()
        assert title is not None and 0 <= title["y"] <= 900 - title["height"]
        page.locator("#record details summary").first.click()
        assert page.evaluate(COVERED) == []
        controls = page.locator(
            "button:visible, a[href]:visible, input:visible, select:visible, summary:visible"
        )
        assert controls.count() > 50
        for k in range(controls.count()):
            controls.nth(k).click(trial=True, timeout=2_000)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
    finally:
        context.close()


# The page must never hold an export whole: any read of a whole response body is noted.
WATCH_WHOLE_BODIES = """
window.wholeBodies = [];
for (const name of ["blob", "arrayBuffer", "text"]) {
  const original = Response.prototype[name];
  Response.prototype[name] = function (...args) {
    window.wholeBodies.push(`${name} ${this.url}`);
    return original.apply(this, args);
  };
}
"""
# The save dialog answered with a file of the origin's private file system: a real file the
# browser writes to disk, which the test can read back.
SAVE_TO_PRIVATE_FILE = """
window.showSaveFilePicker = async ({ suggestedName }) => {
  const root = await navigator.storage.getDirectory();
  return root.getFileHandle(suggestedName, { create: true });
};
"""
NO_SAVE_PICKER = (
    "Object.defineProperty(window, 'showSaveFilePicker', {value: undefined, configurable: true})"
)
EXPORTED = ARCHIVED + ARCHIVED // 10  # the decisions and the acks of AGENT


def exported_ids(server: LiveServer) -> list[str]:
    """The ids of AGENT's records, as the API exports them."""
    response = httpx.get(
        server.url + "/v1/audit/decisions",
        params={"agent_id": AGENT, "format": "jsonl"},
        headers=server.auth("auditor"),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return [json.loads(line)["id"] for line in response.text.splitlines()]


def test_an_export_streams_into_the_chosen_file_counting_records_as_they_pass(
    page: Any, server: LiveServer
) -> None:
    """Where the browser can write a file the auditor chose, the export is piped into it,
    the page counting records and bytes while it runs; the file holds every record and the
    page never reads a whole response body."""
    page.add_init_script(WATCH_WHOLE_BODIES)
    page.add_init_script(SAVE_TO_PRIVATE_FILE)
    sign_in(page, server)
    page.wait_for_selector("#results tr")
    page.fill("input[name=agent_id]", AGENT)
    page.click("#filters button")
    page.wait_for_selector("#message:text('50 record(s) shown; more on the next page')")
    page.evaluate("window.wholeBodies.length = 0")
    page.evaluate(
        """() => {
          window.counts = [];
          new MutationObserver(() => window.counts.push(
            document.getElementById("export-count").textContent
          )).observe(document.getElementById("export-count"), {childList: true});
        }"""
    )
    page.click("#export-jsonl")
    done = page.wait_for_selector("#export-count:text('Done:')", timeout=60_000).inner_text()
    assert done.startswith(f"Done: {EXPORTED:,} records, ") and done.endswith("decisions.jsonl.")
    counts = page.evaluate("window.counts")
    assert counts[0] == "Writing decisions.jsonl…"
    running = [c for c in counts if "written to decisions.jsonl" in c]
    assert running and int(running[0].split(" ")[0].replace(",", "")) < EXPORTED
    text = page.evaluate(
        """async () => {
          const root = await navigator.storage.getDirectory();
          const handle = await root.getFileHandle("decisions.jsonl");
          return (await handle.getFile()).text();
        }"""
    )
    assert [json.loads(line)["id"] for line in text.splitlines()] == exported_ids(server)
    assert page.evaluate("window.wholeBodies") == []
    assert page.is_enabled("#export-csv")


def test_without_the_file_system_api_the_browser_downloads_the_export_with_a_ticket(
    page: Any, server: LiveServer
) -> None:
    """Elsewhere the browser downloads the export itself: the page asks for a one-minute
    stream ticket (the key never goes in the URL), says the download is under way, and the
    downloaded file holds every record, in CSV too."""
    page.add_init_script(WATCH_WHOLE_BODIES)
    page.add_init_script(NO_SAVE_PICKER)
    sign_in(page, server)
    page.wait_for_selector("#results tr")
    page.fill("input[name=agent_id]", AGENT)
    page.click("#filters button")
    page.wait_for_selector("#message:text('50 record(s) shown; more on the next page')")
    page.evaluate("window.wholeBodies.length = 0")
    with page.expect_download(timeout=60_000) as download:
        page.click("#export-csv")
    assert download.value.suggested_filename == "decisions.csv"
    assert "ticket=" in download.value.url and KEYS["auditor"][1] not in download.value.url
    assert "Downloading decisions.csv" in page.inner_text("#export-count")
    saved = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(saved)))
    assert [r["id"] for r in rows] == exported_ids(server)
    assert page.evaluate("window.wholeBodies") == []


def test_a_decisions_explanation_shows_its_tables_conditions_and_unknown_rules(
    page: Any, server: LiveServer
) -> None:
    """A deep link opens a decision in the panel: each fired rule with its condition, the
    table's output with the row that gave it, and the rules missing data left unknown with
    the fields they lacked; the printable pack shows the same. An unknown id says so."""
    decided = httpx.post(
        server.url + "/v1/decisions",
        json={
            "ruleset": "retention-desk",
            "customer_id": CUSTOMER,
            "agent_id": KEYS["agent"][0],
            "context": {
                "customer": {"tier": "gold", "tenure_months": 20, "monthly_spend": 150},
                "history": {"contacts_7d": 3},
                "interaction": {"intent": "cancel", "channel": "voice"},
            },
        },
        headers=server.auth("agent"),
        timeout=30,
    )
    assert decided.status_code == 200, decided.text
    decision_id = decided.json()["decision_id"]
    sign_in(page, server, f"/audit?decision={decision_id}")
    title = page.wait_for_selector("#record:not([hidden]) #record-title").inner_text()
    assert title == f"decision {decision_id}"
    for where in ("#explanation", "main.pack"):
        fired = page.inner_text(f"{where} .rule.fired[data-rule='high-value-cancel']")
        assert 'when: interaction.intent in ["cancel", "port_out"]' in fired
        assert "customer.monthly_spend >= 100" in fired
        table = page.inner_text(f"{where} .decision-table[data-table='retention-discount']")
        assert "max_discount_pct = 10" in table
        assert "customer.tenure_months = 20" in table
        row = page.locator(f"{where} .decision-table table.matched-rows[data-row='4']")
        assert "matched row 4 (line 257)" in row.locator("caption").inner_text()
        assert row.locator("tbody td").all_inner_texts() == [
            "customer.tier",
            '["gold", "silver"]',
            "customer.tenure_months",
            "-",
            "→ max_discount_pct",
            "10",
        ]
        unknown = page.inner_text(f"{where} .rule.unknown[data-rule='recontract-bonus']")
        assert "when: customer.contract_end <= now()" in unknown
        assert "unknown: missing customer.churn_score, customer.contract_end" in unknown
        assert page.locator(f"{where} .rule.unknown[data-rule='high-value-cancel']").count() == 0
        if where == "#explanation":
            page.click("#pack-link")
            page.wait_for_selector("#pack:not([hidden])")
    page.goto(server.url + "/audit?decision=no-such-record")
    assert "No record no-such-record" in page.wait_for_selector("#panel-empty.error").inner_text()
    assert page.is_hidden("#record")


def test_a_streamed_export_can_be_cancelled_and_leaves_the_file_as_it_was(
    page: Any, server: LiveServer
) -> None:
    """On a slow line the count grows while the export runs; Cancel stops it, says how many
    records had passed, and the chosen file is left as it was (empty: never a cut-short
    export that could pass for a whole one)."""
    page.add_init_script(SAVE_TO_PRIVATE_FILE)
    sign_in(page, server)
    page.wait_for_selector("#results tr")
    page.context.new_cdp_session(page).send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": 100_000, "uploadThroughput": -1},
    )
    page.fill("input[name=agent_id]", AGENT)
    page.click("#filters button")
    page.wait_for_selector("#message:text('50 record(s) shown; more on the next page')")
    page.click("#export-jsonl")
    page.wait_for_selector("#export-count:text('written to decisions.jsonl')")
    page.click("#export-cancel")
    said = page.wait_for_selector("#export-count:text('Cancelled after')").inner_text()
    assert 0 < int(said.split(" ")[2].replace(",", "")) < EXPORTED
    assert said.endswith("decisions.jsonl was left as it was.")
    assert page.is_hidden("#export-cancel") and page.is_enabled("#export-jsonl")
    size = page.evaluate(
        """async () => {
          const root = await navigator.storage.getDirectory();
          const handle = await root.getFileHandle("decisions.jsonl");
          return (await handle.getFile()).size;
        }"""
    )
    assert size == 0
