"""The author's page (/rulesets) and the auditor's page (/audit) in a real Chromium: a deploy
from a file becomes active and serves decisions; a rollback from the page does too; a filter
finds a known decision and its explanation; the chain verifies; an export downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import KEYS, ROOT, LiveServer

AGENT = KEYS["agent"][0]
RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")


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
    # Roll back from the page.
    page.click(f"tr[data-revision='{before}'] button:text('Roll back to this')")
    page.wait_for_selector(f"tr[data-ruleset='retention-desk'] td.active:text('{before}')")
    assert decide(server, "c-page-1")["revision"] == before


def test_a_filter_on_the_audit_page_finds_a_known_decision(page: Any, server: LiveServer) -> None:
    known = decide(server, "c-page-audit", customer={"tier": "gold"}, history={"contacts_7d": 3})
    for k in range(3):
        decide(server, f"c-page-other-{k}")
    page.goto(server.url + "/audit")
    page.fill("#key", KEYS["auditor"][1])
    page.click("#key-form button")
    page.wait_for_selector("#results tr")
    page.fill("input[name=customer_id]", "c-page-audit")
    page.click("#filters button")
    page.wait_for_function("document.querySelectorAll('#results tr').length === 1")
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
