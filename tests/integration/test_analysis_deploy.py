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
