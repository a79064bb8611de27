"""The deploy gate over HTTP runs the analysis: overlapping rows of a unique table answer 422
with the finding located, like every document error; a row of a first table that can never
win deploys, and the answer carries the warning, located."""

from __future__ import annotations

import httpx

from tests.support.live_server import LiveServer

DOCUMENT = """\
ruleset: analysed-credit
context:
  customer.tier: {type: string, enum: [gold, silver]}
  customer.tenure_months: integer
tables:
  - id: credit
    hit: HIT
    inputs: [customer.tier, customer.tenure_months]
    outputs: [days]
    rows:
      - ['"gold"', "< 24", 1]
      - ['"gold"', ">= 24", 2]
      - ['"gold"', "[12..30]", 3]
      - ['"silver"', "-", 4]
tests:
  - name: gold and new
    context: {customer: {tier: gold, tenure_months: 5}}
    expect: {tables: {credit: {days: 1}}}
"""


def deploy(client: httpx.Client, server: LiveServer, text: str) -> httpx.Response:
    return client.post(
        "/v1/rulesets",
        content=text,
        headers={**server.auth("author"), "content-type": "application/yaml"},
    )


def test_overlapping_unique_rows_answer_422_with_the_finding(
    client: httpx.Client, server: LiveServer
) -> None:
    refused = deploy(client, server, DOCUMENT.replace("HIT", "unique"))
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["title"] == "Invalid ruleset"
    assert body["errors"] == [
        {
            "file": "<request>",
            "line": 13,
            "column": 9,
            "path": "tables[0].rows[2]",
            "message": "table 'credit' rows 1 and 3 overlap: customer.tier = \"gold\", "
            "customer.tenure_months = 12 matches both",
        }
    ]
    listed = client.get("/v1/rulesets", headers=server.auth("author")).json()["rulesets"]
    assert "analysed-credit" not in {r["name"] for r in listed}


def test_a_first_row_that_can_never_win_deploys_with_a_warning(
    client: httpx.Client, server: LiveServer
) -> None:
    deployed = deploy(client, server, DOCUMENT.replace("HIT", "first"))
    assert deployed.status_code == 201, deployed.text
    body = deployed.json()
    assert body["activated"] is True
    assert body["warnings"] == [
        {
            "file": "<request>",
            "line": 13,
            "column": 9,
            "path": "tables[0].rows[2]",
            "message": "table 'credit' row 3 can never win: every input that matches it "
            "matches one of rows 1, 2 first",
        }
    ]
    again = deploy(client, server, DOCUMENT.replace("HIT", "first"))
    assert again.status_code == 200 and again.json()["warnings"] == body["warnings"]


def test_a_document_whose_tests_guard_nothing_deploys_only_when_the_author_says_so(
    client: httpx.Client, server: LiveServer
) -> None:
    """No tests, or a test that checks nothing: 422 naming each, unless the author deploys
    with allow_untested, when they are the answer's warnings."""
    untested = (
        DOCUMENT.replace("HIT", "first")
        .split("tests:")[0]
        .replace("analysed-credit", "untested-credit")
    )
    refused = deploy(client, server, untested)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["title"] == "Deploy refused"
    assert "allow_untested=true" in body["detail"]
    assert [e["message"] for e in body["errors"]] == [
        "the document has no tests: write some under tests:, or deploy it with "
        "allow_untested if that is meant"
    ]
    empty = untested + "tests:\n  - name: nothing\n    context: {}\n    expect: {}\n"
    refused = deploy(client, server, empty)
    assert refused.status_code == 422
    assert [(e["path"], e["line"]) for e in refused.json()["errors"]] == [("tests[0].expect", 18)]
    allowed = client.post(
        "/v1/rulesets",
        params={"allow_untested": "true"},
        content=untested,
        headers={**server.auth("author"), "content-type": "application/yaml"},
    )
    assert allowed.status_code == 201, allowed.text
    assert "the document has no tests" in allowed.json()["warnings"][-1]["message"]
