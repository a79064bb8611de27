"""The /rulesets page when deploys need a second author's approval: a pending revision shows
who deployed it, its diff and its tests; its deployer gets no Approve button; another author
approves it from the page and it serves, or rejects it with a reason and it can no longer be
activated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.live_server import KEYS, ROOT, LiveServer

AGENT = KEYS["agent"][0]
RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"FRONTLINE_REQUIRE_APPROVAL": "1"}
    with LiveServer(tmp_path_factory.mktemp("approval"), env=env) as live:
        yield live


def served(server: LiveServer) -> int:
    response = httpx.post(
        server.url + "/v1/decisions",
        json={"ruleset": "retention-desk", "customer_id": "c-page-approval", "agent_id": AGENT},
        headers=server.auth("agent"),
    )
    assert response.status_code == 200, response.text
    revision: int = response.json()["revision"]
    return revision


def deploy_as_ann(server: LiveServer, amount: int) -> int:
    response = httpx.post(
        server.url + "/v1/rulesets",
        content=RETENTION.replace("max_amount: 25", f"max_amount: {amount}", 1).encode(),
        headers={**server.auth("author"), "Content-Type": "application/yaml"},
    )
    assert response.status_code == 202, response.text
    revision: int = response.json()["revision"]
    return revision


def sign_in(page: Any, role: str) -> None:
    page.fill("#key", KEYS[role][1])
    page.click("#key-form button")


def test_another_author_approves_a_pending_revision_from_the_page(
    page: Any, server: LiveServer
) -> None:
    before = served(server)
    revision = deploy_as_ann(server, 65)
    item = f"li.pending-revision[data-ruleset='retention-desk'][data-revision='{revision}']"
    page.goto(server.url + "/rulesets")
    # Its deployer sees it waiting, with its diff and tests, and no way to approve it.
    sign_in(page, "author")
    page.wait_for_selector(item)
    assert "deployed by ann" in page.inner_text(item)
    assert "max_amount: 65" in page.inner_text(f"{item} .diff-add")
    assert "max_amount: 25" in page.inner_text(f"{item} .diff-del")
    page.click(f"{item} .pending-tests summary")
    assert "✓ bronze newcomer" in page.inner_text(f"{item} .pending-tests")
    expect(page.locator(f"{item} button.approve")).to_have_count(0)
    assert "Another author approves or rejects it." in page.inner_text(item)
    # Another author approves it: it is active and serves.
    sign_in(page, "author2")
    page.click(f"{item} button.approve")
    page.wait_for_selector(f"tr[data-ruleset='retention-desk'] td.active:text('{revision}')")
    expect(page.locator("#message")).to_contain_text("approved and active")
    expect(page.locator(item)).to_have_count(0)
    assert page.is_hidden("#pending")
    assert served(server) == revision != before


def test_another_author_rejects_a_pending_revision_from_the_page(
    page: Any, server: LiveServer
) -> None:
    active = served(server)
    revision = deploy_as_ann(server, 70)
    item = f"li.pending-revision[data-ruleset='retention-desk'][data-revision='{revision}']"
    page.goto(server.url + "/rulesets")
    sign_in(page, "author2")
    page.fill(f"{item} input[name=reason]", "seventy is too generous")
    page.click(f"{item} button.reject")
    expect(page.locator(item)).to_have_count(0)
    expect(page.locator("#message")).to_contain_text(f"revision {revision} rejected")
    page.click("tr[data-ruleset='retention-desk'] button")
    row = page.wait_for_selector(f"tr[data-revision='{revision}']")
    assert "rejected by bob: seventy is too generous" in row.inner_text()
    expect(page.locator(f"tr[data-revision='{revision}'] button:text('Activate')")).to_have_count(0)
    assert served(server) == active
