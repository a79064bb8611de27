"""The author's page (/rulesets) and the auditor's page (/audit) in a real Chromium: a deploy
from a file becomes active and serves decisions; a rollback from the page does too; a filter
finds a known decision and its explanation; the chain verifies; an export downloads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from audit.index import INDEX_FILE
from tests.support.live_server import KEYS, ROOT, LiveServer

AGENT = KEYS["agent"][0]
RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")


# A browser without the File System Access API (Firefox, Safari).
NO_SAVE_PICKER = (
    "Object.defineProperty(window, 'showSaveFilePicker', {value: undefined, configurable: true})"
)


def decide(server: LiveServer, customer_id: str, **context: Any) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/v1/decisions",
        json={
            "ruleset": "retention-desk",
            "customer_id": customer_id,
            "agent_id": AGENT,
            "context": context or None,
        },
        headers=server.auth("agent"),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_deploy_from_the_rulesets_page_becomes_active_and_can_be_rolled_back(
    page: Any, server: LiveServer, tmp_path: Path
) -> None:
    before = decide(server, "c-page-1")["revision"]
    document = tmp_path / "retention-desk.yaml"
    document.write_text(RETENTION.replace("max_amount: 25", "max_amount: 55", 1), encoding="utf-8")
    page.goto(server.url + "/rulesets")
    page.fill("#key", KEYS["author"][1])
    page.click("#key-form button")
    page.wait_for_selector("tr[data-ruleset='retention-desk']")
    page.set_input_files("#deploy-file", str(document))
    page.click("#deploy-form button")
    result = page.wait_for_selector(".deployed")
    assert "deployed and active" in result.inner_text()
    newer = decide(server, "c-page-1")["revision"]
    assert newer == before + 1
    row = page.wait_for_selector(f"tr[data-ruleset='retention-desk'] td.active:text('{newer}')")
    assert row is not None
    # The diff between the two revisions shows the change.
    page.click("tr[data-ruleset='retention-desk'] button")
    page.fill("#diff-from", str(before))
    page.fill("#diff-to", str(newer))
    page.click("#diff-form button")
    assert "max_amount: 55" in page.wait_for_selector("#diff-output .diff-add").inner_text()
    # The document's own tests, run for the new revision.
    page.click(f"tr[data-revision='{newer}'] button:text('Tests')")
    assert "0 failed" in page.wait_for_selector("#tests-summary").inner_text()
    # Roll back from the page, once confirmed.
    page.click(f"tr[data-revision='{before}'] button:text('Roll back to this')")
    page.click("#confirm-ok")
    page.wait_for_selector(f"tr[data-ruleset='retention-desk'] td.active:text('{before}')")
    assert decide(server, "c-page-1")["revision"] == before


SHADOWED = """\
ruleset: page-analysed
context:
  customer.tier: {type: string, enum: [gold, silver]}
tables:
  - id: credit
    hit: HIT
    inputs: [customer.tier]
    outputs: [days]
    rows:
      - ["-", 1]
      - ['"gold"', 2]
"""


def test_the_rulesets_page_shows_a_deploys_warnings_and_its_errors(
    page: Any, server: LiveServer, tmp_path: Path
) -> None:
    """A document without tests is refused until the author says it is meant; then a row
    that can never win deploys, its warning shown with its file, line and column; overlapping
    rows of a unique table refuse the deploy, the error shown with its file and line, and the
    refusal names the file too."""
    page.goto(server.url + "/rulesets")
    page.fill("#key", KEYS["author"][1])
    page.click("#key-form button")
    page.wait_for_selector("tr[data-ruleset='retention-desk']")
    document = tmp_path / "page-analysed.yaml"
    document.write_text(SHADOWED.replace("HIT", "first"), encoding="utf-8")
    page.set_input_files("#deploy-file", str(document))
    page.click("#deploy-form button")
    page.wait_for_selector("#deploy-result .error")
    expect(page.locator("#deploy-result .error")).to_contain_text("tests guard nothing")
    page.check("#deploy-untested")
    page.set_input_files("#deploy-file", str(document))
    page.click("#deploy-form button")
    page.wait_for_selector(".deployed")
    warnings = page.locator("#deploy-result .analysis-warning")
    expect(warnings).to_have_text(
        [
            "2 warning(s):",
            "page-analysed.yaml:11:9: table 'credit' row 2 can never win: every input that "
            "matches it matches row 1 first",
            "page-analysed.yaml:1:10: the document has no tests: write some under tests:, or "
            "deploy it with allow_untested if that is meant",
        ]
    )
    document.write_text(SHADOWED.replace("HIT", "unique"), encoding="utf-8")
    page.set_input_files("#deploy-file", str(document))
    page.click("#deploy-form button")
    page.wait_for_selector("#deploy-result .error")
    expect(page.locator("#deploy-result .error")).to_contain_text("first: page-analysed.yaml:11:")
    expect(page.locator("#deploy-result .muted")).to_have_text(
        [
            "page-analysed.yaml:11:9: table 'credit' rows 1 and 2 overlap: "
            'customer.tier = "gold" matches both'
        ]
    )


def test_a_filter_on_the_audit_page_finds_a_known_decision(page: Any, server: LiveServer) -> None:
    known = decide(server, "c-page-audit", customer={"tier": "gold"}, history={"contacts_7d": 3})
    for k in range(3):
        decide(server, f"c-page-other-{k}")
    page.add_init_script(NO_SAVE_PICKER)  # the export is then a download the browser makes
    page.goto(server.url + "/audit")
    page.fill("#key", KEYS["auditor"][1])
    page.click("#key-form button")
    page.wait_for_selector("#results tr")
    page.fill("input[name=customer_id]", "c-page-audit")
    page.click("#filters button")
    expect(page.locator("#results tr")).to_have_count(1)
    row = page.wait_for_selector(f"tr[data-id='{known['decision_id']}']")
    row.query_selector("button").click()
    explanation = page.wait_for_selector("#record:not([hidden]) .gaps")
    text = page.inner_text("#explanation")
    assert "fee-waiver" in text and "Repeat contact from a high-tier customer" in text
    assert "customer.tier" in text and "request" in text
    assert "Missing:" in explanation.inner_text()
    page.click("#verify")
    assert "chain intact" in page.wait_for_selector("#verify-result.status").inner_text()
    with page.expect_download() as download:
        page.click("#export-jsonl")
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert known["decision_id"] in exported and len(exported.splitlines()) == 1


def test_the_audit_pages_next_page_continues_from_the_cursor(page: Any, server: LiveServer) -> None:
    """A search with more than a page of records shows 50, and "Next page" appends the rest
    once each, newest first, then hides itself."""
    ids = [decide(server, "c-page-many")["decision_id"] for _ in range(57)]
    page.goto(server.url + "/audit")
    page.fill("#key", KEYS["auditor"][1])
    page.click("#key-form button")
    page.wait_for_selector("#results tr")
    page.fill("input[name=customer_id]", "c-page-many")
    page.click("#filters button")
    expect(page.locator("#results tr")).to_have_count(50)
    assert page.is_visible("#more")
    page.click("#more")
    expect(page.locator("#results tr")).to_have_count(57)
    shown = page.eval_on_selector_all("#results tr", "rows => rows.map(r => r.dataset.id)")
    assert shown == ids[::-1]
    assert page.is_hidden("#more")
    assert "57 record(s) shown" in page.inner_text("#message")


def test_the_audit_page_says_when_the_index_disagrees_with_the_chain(
    page: Any, server: LiveServer
) -> None:
    """A forged index row makes "Verify" say the chain is intact but the index disagrees,
    naming the record; after a reindex it says the chain is intact again."""
    known = decide(server, "c-page-forged")["decision_id"]
    index = sqlite3.connect(server.ledger_dir / INDEX_FILE)
    try:
        deadline = time.monotonic() + 10
        while not index.execute("SELECT 1 FROM records WHERE id = ?", (known,)).fetchone():
            assert time.monotonic() < deadline, "the decision was not indexed"
            time.sleep(0.1)
        with index:
            (seq,) = index.execute(
                "UPDATE records SET customer_id = 'c-forged' WHERE id = ? RETURNING seq", (known,)
            ).fetchone()
    finally:
        index.close()
    page.goto(server.url + "/audit")
    page.fill("#key", KEYS["auditor"][1])
    page.click("#key-form button")
    page.click("#verify")
    result = page.wait_for_selector("#verify-result.status.down").inner_text()
    assert result.startswith("chain intact, but the index of ")
    assert f"index row for record {seq} differs from the record" in result
    assert "frontline audit reindex" in result
    rebuilt = subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "reindex", "--data-dir", server.data_dir],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    page.click("#verify")
    assert "chain intact:" in page.wait_for_selector("#verify-result.status.up").inner_text()
