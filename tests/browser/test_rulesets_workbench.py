"""The /rulesets page as a workbench, in a real Chromium: any revision's document and its
tables as a grid; a draft edited in the page's editor, its errors marked at their line as one
types and its tables drawn as grids, kept across a reload; the draft run against a recorded
decision, served beside draft; a deploy with a message, and the history saying who, when and
why; activate, roll back and retire asking first in a dialog; messages that stay until
dismissed; no Content-Security-Policy violation throughout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.live_server import KEYS, LiveServer

AGENT = KEYS["agent"][0]

WORKBENCH = """\
ruleset: page-workbench
description: Credit days by tier, for the workbench
context:
  customer.tier: {type: string, enum: [gold, silver, bronze]}
  customer.tenure_months: integer
tables:
  - id: credit
    hit: first
    inputs: [customer.tier, customer.tenure_months]
    outputs: [days]
    rows:
      - ['"gold"', ">= 12", 30]
      - ['"gold"', "-", 20]
      - ["-", "-", 10]
eligibility:
  - id: loyal
    when: customer.tenure_months >= 24
    offer: loyalty-gift
    because: Two years with us
tests:
  - name: a gold customer of a year gets 30 days
    context: {customer: {tier: gold, tenure_months: 12}}
    expect: {tables: {credit: {days: 30}}}
  - name: a silver newcomer gets 10 days
    context: {customer: {tier: silver, tenure_months: 1}}
    expect: {tables: {credit: {days: 10}}, eligible: []}
"""

# Collects every Content-Security-Policy violation the page reports, from its first byte.
CSP_WATCH = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${where}`);
});
"""


@pytest.fixture
def page(page: Any) -> Iterator[Any]:
    """The conftest's page, watched for CSP violations: a test ends with none reported."""
    page.add_init_script(CSP_WATCH)
    yield page
    assert page.evaluate("window.cspViolations || []") == []


def deploy(server: LiveServer, text: str, **params: str) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/v1/rulesets",
        params=params,
        content=text.encode(),
        headers={**server.auth("author"), "Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def active_revision(server: LiveServer, name: str) -> int:
    response = httpx.get(server.url + f"/v1/rulesets/{name}", headers=server.auth("author"))
    revision: int = response.json()["active_revision"]
    return revision


def sign_in(page: Any, server: LiveServer, ruleset: str = "page-workbench") -> None:
    page.goto(server.url + "/rulesets")
    page.fill("#key", KEYS["author"][1])
    page.click("#key-form button")
    page.click(f"tr[data-ruleset='{ruleset}'] button:text('Open')")
    page.wait_for_selector("#detail:not([hidden]) tr[data-revision]")


def editor_text(page: Any) -> str:
    text: str = page.evaluate(
        "document.querySelector('#draft-editor .CodeMirror').CodeMirror.getValue()"
    )
    return text


def go_to_line(page: Any, line: int) -> None:
    """Put the editor's cursor at the end of ``line`` (from 1), from the keyboard."""
    page.click("#draft-editor .CodeMirror-code")
    page.keyboard.press("Control+Home")
    for _ in range(line - 1):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("End")


@pytest.fixture(scope="module")
def workbench(server: LiveServer) -> LiveServer:
    deploy(server, WORKBENCH)
    return server


def test_any_revision_is_readable_with_its_description_and_its_tables_as_grids(
    page: Any, workbench: LiveServer
) -> None:
    sign_in(page, workbench)
    expect(page.locator("tr[data-ruleset='page-workbench'] .description")).to_have_text(
        "Credit days by tier, for the workbench"
    )
    expect(page.locator("#detail-description")).to_have_text(
        "Credit days by tier, for the workbench"
    )
    page.click("tr[data-revision='1'] button:text('View')")
    expect(page.locator("#viewer-title")).to_have_text("page-workbench revision 1")
    expect(page.locator("#viewer-provenance")).to_have_text(
        re.compile(r"Deployed by ann at \d{4}-\d\d-\d\d \d\d:\d\d UTC")
    )
    assert page.inner_text("#viewer-document") == WORKBENCH
    grid = page.locator("#viewer-grids figure[data-table='credit']")
    expect(grid.locator("thead th")).to_have_text(
        ["#", "customer.tier", "customer.tenure_months", "days"]
    )
    expect(grid.locator("tbody tr[data-row='1'] td")).to_have_text(['"gold"', ">= 12", "30"])
    expect(grid.locator("tbody tr")).to_have_count(3)


def test_activate_and_roll_back_ask_first_and_their_messages_stay_until_dismissed(
    page: Any, workbench: LiveServer
) -> None:
    """Escape cancels the dialog and nothing changes; Enter confirms; each message stays
    after the next one arrives, until its own button dismisses it."""
    before = active_revision(workbench, "page-workbench")
    newer = deploy(workbench, WORKBENCH.replace("20]", "21]", 1))["revision"]
    assert newer == before + 1
    sign_in(page, workbench)
    roll_back = f"tr[data-revision='{before}'] button:text('Roll back to this')"
    page.click(roll_back)
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-title")).to_have_text(
        f"Roll page-workbench back to revision {before}?"
    )
    expect(page.locator("#confirm-ok")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert active_revision(workbench, "page-workbench") == newer
    page.click(roll_back)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"tr[data-ruleset='page-workbench'] td.active:text('{before}')")
    assert active_revision(workbench, "page-workbench") == before
    activate = f"tr[data-revision='{newer}'] button:text('Activate')"
    page.click(activate)
    expect(page.locator("#confirm-title")).to_have_text(
        f"Activate page-workbench revision {newer}?"
    )
    page.click("#confirm-ok")
    page.wait_for_selector(f"tr[data-ruleset='page-workbench'] td.active:text('{newer}')")
    # The changes of what serves: the activation, then the rollback, newest first, by ann.
    page.click("#changes summary")
    changes = page.locator("#change-rows tr")
    expect(changes.nth(0).locator("td.change")).to_have_text("activate")
    expect(changes.nth(0).locator("td.served")).to_have_text(f"revision {newer}")
    expect(changes.nth(1).locator("td.change")).to_have_text("rollback")
    expect(changes.nth(1).locator("td.served")).to_have_text(f"revision {before}")
    expect(changes.nth(1).locator("td.who")).to_have_text("ann")
    notes = page.locator("#message .note")
    expect(notes).to_have_text(
        [
            f"page-workbench: revision {newer} is active×",
            f"page-workbench: revision {before} is active×",
        ]
    )
    page.wait_for_timeout(1500)  # nothing replaces them with time
    expect(notes).to_have_count(2)
    notes.nth(1).locator("button.dismiss").click()
    expect(notes).to_have_text([f"page-workbench: revision {newer} is active×"])


def test_a_draft_shows_its_errors_at_their_line_as_one_types_and_survives_a_reload(
    page: Any, workbench: LiveServer, tmp_path: Path
) -> None:
    """A typo in a field name is marked in the gutter and listed with file:line:col, an
    edit to a table shows in the grid, and the draft is still there after a reload."""
    document = tmp_path / "credit rules (2).yaml"
    document.write_text(WORKBENCH, encoding="utf-8")
    sign_in(page, workbench)
    page.set_input_files("#draft-file", str(document))
    expect(page.locator("#draft-origin")).to_contain_text("from file credit rules (2).yaml")
    expect(page.locator("#draft-status")).to_have_attribute("data-state", "ok")
    expect(page.locator("#draft-status")).to_contain_text("tests 2 passed, 0 failed")
    # Row 2 (gold under a year) is reached by no test.
    expect(page.locator("#draft-grids tr.unreached")).to_have_count(1)
    expect(page.locator("#draft-grids tr.unreached")).to_have_attribute("data-row", "2")
    # A typo on line 17: "customer.tenure_month".
    go_to_line(page, 17)
    for _ in range(len(" >= 24")):
        page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type(" >= 24")
    expect(page.locator("#draft-status")).to_have_attribute("data-state", "errors")
    problem = page.locator("#draft-problems li.error")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("credit rules _2_.yaml:17:11: ")
    expect(problem).to_contain_text("customer.tenure_month")
    expect(page.locator("#draft-editor .CodeMirror-lint-marker-error")).to_have_count(1)
    expect(page.locator("#draft-editor .CodeMirror-lint-mark-error")).to_have_text("customer")
    # The typo fixed, the grid follows an edit of a cell.
    for _ in range(len(" >= 24")):
        page.keyboard.press("Backspace")
    page.keyboard.type("s >= 24")
    go_to_line(page, 12)
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type("45]")
    expect(page.locator("#draft-status")).to_have_attribute("data-state", "errors")  # a test fails
    expect(page.locator("#draft-grids tr[data-row='1'] td.output")).to_have_text("45")
    text = editor_text(page)
    assert "when: customer.tenure_months >= 24" in text and '">= 12", 45]' in text
    page.reload()
    page.wait_for_selector("#draft-editor .CodeMirror")
    assert editor_text(page) == text
    expect(page.locator("#draft-origin")).to_contain_text("from file credit rules (2).yaml, edited")
    expect(page.locator("#draft-grids tr[data-row='1'] td.output")).to_have_text("45")


SHADOWED = """\
ruleset: page-shadowed
context:
  customer.tier: {type: string, enum: [gold, silver]}
tables:
  - id: credit
    hit: first
    inputs: [customer.tier]
    outputs: [days]
    rows:
      - ["-", 1]
      - ['"gold"', 2]
"""


def test_a_drafts_warnings_are_marked_and_untested_drafts_wait_for_the_authors_word(
    page: Any, workbench: LiveServer, tmp_path: Path
) -> None:
    """A draft without tests is refused by the check until the author allows it; then the
    row that can never win, and the missing tests, are marked as warnings at their lines."""
    document = tmp_path / "shadowed.yaml"
    document.write_text(SHADOWED, encoding="utf-8")
    sign_in(page, workbench)
    page.set_input_files("#draft-file", str(document))
    expect(page.locator("#draft-status")).to_have_attribute("data-state", "errors")
    expect(page.locator("#draft-status")).to_contain_text("tests guard nothing")
    expect(page.locator("#draft-problems li.error")).to_have_count(1)
    expect(page.locator("#draft-problems li.error")).to_contain_text("shadowed.yaml:1:10: ")
    expect(page.locator("#draft-editor .CodeMirror-lint-marker-error")).to_have_count(1)
    page.check("#draft-untested")
    expect(page.locator("#draft-status")).to_have_attribute("data-state", "ok")
    expect(page.locator("#draft-status")).to_contain_text("2 warning(s)")
    expect(page.locator("#draft-problems li.warning")).to_have_text(
        [
            "warningshadowed.yaml:11:9: table 'credit' row 2 can never win: every input that "
            "matches it matches row 1 first",
            "warningshadowed.yaml:1:10: the document has no tests: write some under tests:, or "
            "deploy it with allow_untested if that is meant",
        ]
    )
    expect(page.locator("#draft-editor .CodeMirror-lint-marker-warning")).to_have_count(2)
    # The location moves the editor's cursor there.
    page.click("#draft-problems li.warning button.link >> nth=0")
    cursor = page.evaluate(
        "(() => { const c = document.querySelector('#draft-editor .CodeMirror')"
        ".CodeMirror.getCursor(); return [c.line + 1, c.ch + 1]; })()"
    )
    assert cursor == [11, 9]


def test_a_draft_deployed_with_a_message_shows_who_when_and_why_in_the_history(
    page: Any, workbench: LiveServer
) -> None:
    sign_in(page, workbench)
    revision = active_revision(workbench, "page-workbench")
    page.click(f"tr[data-revision='{revision}'] button:text('Edit')")
    expect(page.locator("#draft-origin")).to_contain_text(
        f"from page-workbench revision {revision}"
    )
    expect(page.locator("#draft-status")).to_have_attribute("data-state", "ok")
    go_to_line(page, 13)  # the row of gold customers under a year
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type("22]")
    expect(page.locator("#draft-status")).to_have_attribute("data-state", "ok")
    # Tab leaves the editor for the reason, as it leaves any field.
    page.keyboard.press("Tab")
    expect(page.locator("#draft-message")).to_be_focused()
    page.keyboard.type("gold newcomers get 22 days")
    page.click("#draft-deploy button[type=submit]")
    expect(page.locator("#draft-deploy-result .deployed")).to_contain_text("deployed and active")
    newer = active_revision(workbench, "page-workbench")
    assert newer > revision
    row = page.locator(f"tr[data-revision='{newer}']")
    expect(row.locator("td.deployer .who")).to_have_text("ann")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    expect(row.locator("td.deployer .when")).to_have_text(re.compile(rf"{today} \d\d:\d\d UTC"))
    expect(row.locator("td.why")).to_have_text("gold newcomers get 22 days")
    expect(page.locator("#draft-origin")).to_contain_text(
        f"from page-workbench revision {newer} (deployed from this draft);"
    )
    expect(page.locator("#message .note").first).to_contain_text(
        f"page-workbench revision {newer} deployed"
    )


def test_the_draft_runs_on_a_recorded_decision_served_beside_draft(
    page: Any, workbench: LiveServer
) -> None:
    served = active_revision(workbench, "page-workbench")
    response = httpx.post(
        workbench.url + "/v1/decisions",
        json={
            "ruleset": "page-workbench",
            "customer_id": "c-workbench",
            "agent_id": AGENT,
            "context": {"customer": {"tier": "gold", "tenure_months": 30}},
        },
        headers=workbench.auth("agent"),
    )
    assert response.status_code == 200, response.text
    decision = response.json()["decision_id"]
    sign_in(page, workbench)
    page.click(f"tr[data-revision='{served}'] button:text('Edit')")
    expect(page.locator("#draft-origin")).to_contain_text(f"revision {served}")
    go_to_line(page, 12)
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type("60]")
    page.fill("#rerun-id", decision)
    page.click("#rerun-form button")
    result = page.locator("#rerun-result")
    expect(result.locator(".rerun-summary")).to_contain_text(f"of decision {decision}")
    tables = result.locator("tr[data-part='tables']")
    expect(tables).to_have_class("changed")
    expect(tables.locator("td.served")).to_have_text("credit.days = 30")
    expect(tables.locator("td.draft")).to_have_text("credit.days = 60")
    eligible = result.locator("tr[data-part='eligible']")
    expect(eligible).not_to_have_class("changed")
    expect(eligible.locator("td.served")).to_have_text("loyal")
    expect(eligible.locator("td.draft")).to_have_text("loyal")
    expect(result.locator("tr.changed")).to_have_count(1)
    expect(result.locator("thead th").nth(1)).to_have_text(f"served (revision {served})")


def test_the_draft_replays_over_recorded_decisions(page: Any, workbench: LiveServer) -> None:
    """ "Replay the draft" replays the editor's text, not a file, and reports the flips."""
    response = httpx.post(
        workbench.url + "/v1/decisions",
        json={
            "ruleset": "page-workbench",
            "customer_id": "c-workbench-replay",
            "agent_id": AGENT,
            "context": {"customer": {"tier": "silver", "tenure_months": 30}},
        },
        headers=workbench.auth("agent"),
    )
    assert response.json()["eligible"][0]["offer"] == "loyalty-gift"
    sign_in(page, workbench)
    served = active_revision(workbench, "page-workbench")
    page.click(f"tr[data-revision='{served}'] button:text('Edit')")
    expect(page.locator("#draft-status")).to_have_attribute("data-state", "ok")
    go_to_line(page, 17)  # loyalty from three years instead of two
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type("36")
    page.fill("#replay-since", "2000-01-01T00:00:00Z")
    page.click("#replay-draft")
    expect(page.locator("#replay-result .flip-summary")).to_contain_text("would change")
    expect(page.locator("#replay-result")).to_contain_text("loyalty-gift")


def test_retiring_a_ruleset_asks_for_a_reason_and_it_serves_nobody_until_activated(
    page: Any, workbench: LiveServer
) -> None:
    deploy(workbench, WORKBENCH.replace("page-workbench", "page-retired"))
    sign_in(page, workbench, "page-retired")
    page.click("#retire-button")
    expect(page.locator("#confirm-title")).to_have_text("Retire page-retired?")
    expect(page.locator("#confirm-reason")).to_be_focused()
    page.keyboard.type("  ")
    page.click("#confirm-ok")
    expect(page.locator("dialog#confirm")).to_be_visible()  # refused without a reason
    page.fill("#confirm-reason", "replaced by page-workbench")
    page.click("#confirm-ok")
    expect(page.locator("#message .note").first).to_have_text("page-retired is retired×")
    expect(page.locator("tr[data-ruleset='page-retired'] .description")).to_have_text(
        "retired: replaced by page-workbench"
    )
    expect(page.locator("#detail-retired")).to_contain_text("replaced by page-workbench")
    expect(page.locator("#retire-button")).to_be_hidden()
    assert decide_retired(workbench).status_code == 409
    assert "retired" in decide_retired(workbench).json()["detail"]
    # Activating a revision brings it back, once confirmed.
    page.click("tr[data-revision='1'] button:text('Activate')")
    expect(page.locator("#confirm-text")).to_contain_text("it serves nothing now")
    page.click("#confirm-ok")
    expect(page.locator("tr[data-ruleset='page-retired'] td.active")).to_have_text("1")
    expect(page.locator("#detail-retired")).to_be_hidden()
    assert decide_retired(workbench).status_code == 200


def decide_retired(server: LiveServer) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/decisions",
        json={"ruleset": "page-retired", "customer_id": "c-retired", "agent_id": AGENT},
        headers=server.auth("agent"),
    )


@pytest.mark.parametrize(
    ("path", "media"),
    [
        pytest.param("codemirror/lib/codemirror.js", "text/javascript", id="codemirror"),
        pytest.param("codemirror/mode/yaml/yaml.js", "text/javascript", id="yaml-mode"),
        pytest.param("codemirror/addon/lint/lint.js", "text/javascript", id="lint-addon"),
        pytest.param("codemirror/lib/codemirror.css", "text/css", id="codemirror-css"),
        pytest.param("js-yaml/js-yaml.mjs", "text/javascript", id="js-yaml-module"),
        pytest.param("codemirror/LICENSE", "", id="codemirror-licence"),
        pytest.param("js-yaml/LICENSE", "", id="js-yaml-licence"),
    ],
)
def test_the_editor_packages_are_served_by_the_server_itself(
    server: LiveServer, path: str, media: str
) -> None:
    """The vendored packages come from /static/vendor with the pages' security headers, each
    script with a JavaScript type (a module script of another type is refused under nosniff),
    each package with its licence."""
    response = httpx.get(f"{server.url}/static/vendor/{path}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    if path.endswith("LICENSE"):
        assert "MIT License" in response.text and "Permission is hereby granted" in response.text
