"""The replay on the author's page (/rulesets) in a real Chromium: a progress bar with the
decisions replayed of how many, while the replay runs, and then the flip report."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.recording import decision_record
from engine import compile_ruleset
from tests.support.archive import archive
from tests.support.live_server import KEYS, ROOT, LiveServer

RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")
ARCHIVED = 3_000
FEE_RULE = 'customer.tier in ["gold", "platinum"] and history.contacts_7d >= 2'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server whose ledger holds 3,000 retention-desk decisions of an earlier instance and
    one of its own."""
    data: Path = tmp_path_factory.mktemp("replay-page")
    compiled = compile_ruleset(RETENTION)
    rng = random.Random(5)
    now = datetime.now(UTC)
    records = []
    for k in range(ARCHIVED):
        context: dict[str, Any] = {
            "customer": {"tier": rng.choice(["bronze", "gold"]), "tenure_months": k % 90},
            "history": {"contacts_7d": rng.randint(0, 3)},
        }
        decision = compiled.evaluate(context, now=now)
        records.append(decision_record(decision, record_id=f"a-{k}", context=context))
    archive(data / "ledger", records)
    with LiveServer(data) as live:
        r = httpx.post(
            live.url + "/v1/decisions",
            json={
                "ruleset": "retention-desk",
                "customer_id": "c-page",
                "agent_id": KEYS["agent"][0],
                "context": {"customer": {"tier": "gold"}, "history": {"contacts_7d": 1}},
            },
            headers=live.auth("agent"),
        )
        assert r.status_code == 200, r.text
        yield live


def test_a_replay_from_the_rulesets_page_shows_its_progress_then_the_report(
    page: Any, server: LiveServer, tmp_path: Path
) -> None:
    total = ARCHIVED + 1
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(
        RETENTION.replace(FEE_RULE, FEE_RULE.replace(">= 2", ">= 1")), encoding="utf-8"
    )
    page.goto(server.url + "/rulesets")
    page.fill("#key", KEYS["author"][1])
    page.click("#key-form button")
    page.wait_for_selector("tr[data-ruleset='retention-desk']")
    assert page.is_hidden("#replay-progress")
    # Keep every count the page shows while the replay runs.
    page.evaluate(
        """() => {
          window.counts = [];
          new MutationObserver(() => window.counts.push(
            document.getElementById("replay-count").textContent
          )).observe(document.getElementById("replay-count"), {childList: true});
        }"""
    )
    page.set_input_files("#replay-file", str(candidate))
    page.fill("#replay-since", "2000-01-01T00:00:00Z")
    page.click("#replay-form button")
    summary = page.wait_for_selector(".flip-summary")
    assert summary.inner_text().endswith(f"of {total:,} decisions would change (0 skipped)")
    assert "gained:waive-fee" in page.inner_text("#replay-result")
    counts = page.evaluate("window.counts")
    assert counts[0] == f"0 of {total:,} decisions"
    assert counts[-1] == f"{total:,} of {total:,} decisions"
    assert page.is_visible("#replay-progress")
    bar = page.eval_on_selector("#replay-bar", "bar => [bar.value, bar.max]")
    assert bar == [total, total]
    assert page.is_enabled("#replay-form button")
    # Each example decision of the report opens on the audit page (an auditor's key asked
    # for there: the author's is not one).
    example = page.locator("#replay-result a.decision-link").first
    decision_id = example.inner_text()
    example.click()
    page.wait_for_url(f"**/audit?decision={decision_id}")
    assert decision_id in page.inner_text("#panel-empty")
    page.fill("#key", KEYS["auditor"][1])
    page.click("#key-form button")
    title = page.wait_for_selector("#record:not([hidden]) #record-title").inner_text()
    assert title == f"decision {decision_id}"
