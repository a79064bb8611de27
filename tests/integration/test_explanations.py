"""The explanation pack of a decision, on a live server with the starter rulesets: the
outcome, at most four ranked reasons with their codes and texts, the data used with its
source and age, the stored text of the rules that decided, the human side, and
counterfactuals that an evaluation made here, independently, confirms. pii stays masked,
and only auditors read a pack."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import CompiledRuleset, compile_ruleset
from tests.support.live_server import KEYS, ROOT, LiveServer

RETENTION_PATH = ROOT / "rulesets" / "retention-desk.yaml"
RETENTION = RETENTION_PATH.read_text(encoding="utf-8")
AGENT = KEYS["agent"][0]
EMAIL = "pat.secret@example.com"

# What the CRM holds for c-pack (written an hour before the decision), and what the desktop
# sends with the request.
CRM = {
    "customer": {
        "tier": "gold",
        "churn_score": 0.9,
        "tenure_months": 20,
        "monthly_spend": 150,
        "email": EMAIL,
        "tags": [],
    }
}
SENT = {
    "history": {"contacts_7d": 3},
    "interaction": {"intent": "cancel", "channel": "voice", "notes": "Wants to leave"},
}


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for root, values in part.items():
            out.setdefault(root, {}).update(copy.deepcopy(values))
    return out


def put(context: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``context`` with ``path`` set to ``value`` (a copy)."""
    out = copy.deepcopy(context)
    node = out
    *parents, leaf = path.split(".")
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = value
    return out


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data: Path = tmp_path_factory.mktemp("explanations")
    with LiveServer(data) as server:
        yield server


def decide(server: LiveServer, customer_id: str, context: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/v1/decisions",
        json={
            "ruleset": "retention-desk",
            "customer_id": customer_id,
            "agent_id": AGENT,
            "context": context,
        },
        headers=server.auth("agent"),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pack_of(server: LiveServer, decision_id: str, role: str = "auditor") -> httpx.Response:
    return httpx.get(
        f"{server.url}/v1/audit/decisions/{decision_id}/explanation",
        headers=server.auth(role),
        timeout=30,
    )


@pytest.fixture(scope="module")
def decided(live: LiveServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """A decision for c-pack on CRM values an hour old and values sent with the request, and
    its explanation pack."""
    as_of = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    written = httpx.put(
        live.url + "/v1/customers/c-pack/context",
        json={"values": CRM, "source": "crm", "as_of": as_of},
        headers=live.auth("integration"),
        timeout=30,
    )
    assert written.status_code == 200, written.text
    decision = decide(live, "c-pack", SENT)
    assert [e["rule"] for e in decision["eligible"]] == ["fee-waiver"]
    assert decision["escalation"]["rule"] == "high-value-cancel"
    assert [a["rule"] for a in decision["alerts"]] == ["high-churn-caller"]
    response = pack_of(live, decision["decision_id"])
    assert response.status_code == 200, response.text
    return decision, response.json()


def stored_revision(server: LiveServer, revision: int) -> CompiledRuleset:
    """The revision as the server stores it, compiled here."""
    response = httpx.get(
        f"{server.url}/v1/rulesets/retention-desk/revisions/{revision}",
        headers=server.auth("auditor"),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return compile_ruleset(response.json()["document"])


def test_the_pack_gives_the_outcome_and_at_most_four_ranked_reasons(
    decided: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    decision, pack = decided
    assert pack["decision_id"] == decision["decision_id"]
    assert pack["customer_id"] == "c-pack" and pack["agent_id"] == AGENT
    outcome = pack["outcome"]
    assert [(o["offer"], o["rule"]) for o in outcome["offers"]] == [("waive-fee", "fee-waiver")]
    assert outcome["escalation"] == {
        "queue": "high-value-retention",
        "rule": "high-value-cancel",
        "priority": 2,
    }
    assert outcome["alerts"] == [
        {"rule": "high-churn-caller", "severity": "warning", "message": "High churn risk (0.9)"}
    ]
    assert outcome["next_step"]["node"] == "reason"
    # Escalation first, then the offers, then the alerts; a written code, or section/rule.
    assert [(r["rank"], r["code"], r["text"]) for r in pack["reasons"]] == [
        (1, "HIGH_VALUE_LEAVING", "Customer spending 100 or more a month wants to leave"),
        (2, "eligibility/fee-waiver", "Repeat contact from a high-tier customer"),
        (3, "alerts/high-churn-caller", "High churn risk (0.9)"),
    ]
    assert pack["more_reasons"] == 0


def test_a_decision_with_many_rules_keeps_four_reasons(live: LiveServer) -> None:
    """The full save kit fires five offers and an alert: four reasons, the rest counted."""
    context = {
        "customer": {
            "tier": "gold",
            "tenure_months": 36,
            "churn_score": 0.62,
            "tags": [],
            "plan": "premium",
            "monthly_spend": 85,
            "contract_end": "2020-10-01T00:00:00Z",
            "device_purchased_at": "2019-01-10T00:00:00Z",
            "last_offer_at": "2019-06-01T00:00:00Z",
            "past_due_amount": 0,
            "email": EMAIL,
            "open_cases": [],
        },
        "interaction": {"channel": "voice", "intent": "cancel", "notes": "The bill went up"},
        "history": {"contacts_7d": 1},
    }
    decision = decide(live, "c-kit", context)
    assert len(decision["eligible"]) == 5 and len(decision["alerts"]) == 1
    pack = pack_of(live, decision["decision_id"]).json()
    assert len(pack["reasons"]) == 4
    assert pack["more_reasons"] == 2
    assert [r["rule"] for r in pack["reasons"]] == [
        "loyalty-discount",
        "device-upgrade",
        "plan-downgrade",
        "recontract-bonus",
    ]
    assert [r["code"] for r in pack["reasons"]][:1] == ["LOYAL_AT_RISK"]
    assert all(r["text"] for r in pack["reasons"])


def test_the_data_used_carries_its_source_and_age_and_pii_stays_masked(
    decided: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, pack = decided
    data = {d["field"]: d for d in pack["data"]}
    tier = data["customer.tier"]
    assert (tier["value"], tier["source"], tier["masked"]) == ("gold", "crm", False)
    assert 3_500_000 < tier["age_ms"] < 3_700_000  # written an hour before the decision
    assert "eligibility/fee-waiver" in tier["read_by"]
    contacts = data["history.contacts_7d"]
    assert (contacts["value"], contacts["source"], contacts["age_ms"]) == (3, "request", 0)
    email = data["customer.email"]
    assert email["masked"] is True and email["value"].startswith("hmac-sha256:")
    assert EMAIL not in json.dumps(pack)
    assert "customer.plan" in pack["missing_fields"]


def test_the_rules_that_decided_are_the_stored_revisions_text(
    live: LiveServer, decided: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    decision, pack = decided
    assert pack["revision"]["name"] == "retention-desk"
    assert pack["revision"]["revision"] == decision["revision"]
    assert pack["revision"]["digest"] == decision["digest"]
    assert pack["revision"]["stored"] is True
    rules = {r["rule"]: r for r in pack["rules"]}
    assert list(rules) == ["high-value-cancel", "fee-waiver", "high-churn-caller"]
    cancel = rules["high-value-cancel"]
    assert cancel["when"] == (
        'interaction.intent in ["cancel", "port_out"] and customer.monthly_spend >= 100'
    )
    assert cancel["because"] == "Customer spending 100 or more a month wants to leave"
    assert (cancel["reason_code"], cancel.get("derived_code", False)) == (
        "HIGH_VALUE_LEAVING",
        False,
    )
    assert (cancel["queue"], cancel["priority"]) == ("high-value-retention", 2)
    lines = RETENTION.splitlines()
    assert lines[cancel["line"] - 1].strip() == "- id: high-value-cancel"
    fee = rules["fee-waiver"]
    assert (fee["reason_code"], fee["derived_code"]) == ("eligibility/fee-waiver", True)
    # A later revision rewrites the fee waiver's condition (to the same effect, so that the
    # document's own tests still pass) and becomes active: the pack of the decision taken on
    # the earlier one still shows the text that decided it.
    old = 'customer.tier in ["gold", "platinum"] and history.contacts_7d >= 2'
    assert fee["when"] == old
    newer = RETENTION.replace(old, old.replace(">= 2", "> 1"))
    deployed = httpx.post(
        live.url + "/v1/rulesets",
        content=newer,
        headers={**live.auth("author"), "Content-Type": "application/yaml"},
        timeout=60,
    )
    assert deployed.status_code == 201, deployed.text
    assert deployed.json()["revision"] == decision["revision"] + 1
    again = pack_of(live, decision["decision_id"]).json()
    assert {r["rule"]: r["when"] for r in again["rules"]}["fee-waiver"] == old
    assert again["revision"]["revision"] == decision["revision"]


def test_the_pack_shows_each_tables_outputs_and_the_row_that_gave_them(
    decided: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """A gold customer of 20 months misses the table's ">= 24" row and gets the gold/silver
    row's 10%: the pack names the table's inputs with the values the decision had, the
    outputs as recorded, and that row as written, with its line."""
    decision, pack = decided
    (table,) = pack["tables"]
    assert table["table"] == "retention-discount"
    assert table["outputs"] == decision["tables"]["retention-discount"] == {"max_discount_pct": 10}
    assert table["hit"] == "first"
    assert table["output_names"] == ["max_discount_pct"]
    assert table["inputs"] == [
        {"field": "customer.tier", "value": "gold", "missing": False},
        {"field": "customer.tenure_months", "value": 20, "missing": False},
    ]
    (row,) = table["matched_rows"]
    assert (row["row"], row["cells"]) == (4, ['["gold", "silver"]', "-", 10])
    lines = RETENTION.splitlines()
    assert lines[row["line"] - 1].strip() == """- ['["gold", "silver"]', "-", 10]"""
    assert lines[table["line"] - 1].strip() == "- id: retention-discount"


def test_the_pack_names_the_rules_left_unknown_by_missing_data(
    live: LiveServer, decided: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """The CRM sent no contract end, plan or device date: the rules that read them could
    neither fire nor be ruled out, and the pack lists each with its condition as written and
    the fields it lacked; once the CRM sends them, those rules are decided and leave the
    list."""
    decision, pack = decided
    unknown = {r["rule"]: r for r in pack["unknown_rules"]}
    assert unknown["recontract-bonus"]["missing"] == ["customer.contract_end"]
    assert unknown["recontract-bonus"]["when"] == (
        "customer.contract_end <= now() and customer.churn_score > 0.3"
    )
    assert unknown["recontract-bonus"]["offer"] == "recontract-bonus"
    assert unknown["plan-downgrade"]["missing"] == ["customer.plan"]
    assert unknown["device-upgrade"]["missing"] == [
        "customer.device_purchased_at",
        "customer.past_due_amount",
    ]
    lines = RETENTION.splitlines()
    for rule in pack["unknown_rules"]:
        assert lines[rule["line"] - 1].strip() == f"- id: {rule['rule']}"
        assert set(rule["missing"]) <= set(decision["missing_fields"])
    fired = {r["rule"] for r in pack["rules"]}
    assert not fired & set(unknown)
    # A rule that was decided false is not unknown: the price match needs a competitor intent.
    assert "competitor-price-match" not in unknown
    known = merged(
        SENT,
        {"customer": {"contract_end": "2030-01-01T00:00:00Z", "plan": "basic"}},
    )
    again = pack_of(live, decide(live, "c-pack", known)["decision_id"]).json()
    still = {r["rule"] for r in again["unknown_rules"]}
    assert {"recontract-bonus", "plan-downgrade"}.isdisjoint(still)
    assert "device-upgrade" in still


def test_each_counterfactual_is_confirmed_by_evaluating_the_revision_again(
    live: LiveServer, decided: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    decision, pack = decided
    compiled = stored_revision(live, decision["revision"])
    context = merged(CRM, SENT)
    now = pack["evaluated_at"]
    base = compiled.evaluate(context, now=now)
    assert base.escalation_rule == "high-value-cancel"
    found = {(c["target"], c["rule"] or c["offer"]): c for c in pack["counterfactuals"]}

    # The escalation: the smallest change is the spend, just under its threshold.
    escalation = found[("fired", "high-value-cancel")]
    assert escalation["field"] == "customer.monthly_spend"
    assert (escalation["old"], escalation["new"]) == (150, 99.99)
    assert escalation["text"] == (
        "customer.monthly_spend < 100 would not have escalated to high-value-retention"
    )
    flipped = compiled.evaluate(put(context, "customer.monthly_spend", 99.99), now=now)
    assert flipped.escalation_rule is None
    at_boundary = compiled.evaluate(put(context, "customer.monthly_spend", 100), now=now)
    assert at_boundary.escalation_rule == "high-value-cancel"  # 100 itself does not flip it
    for other in escalation["alternatives"]:
        changed = compiled.evaluate(put(context, other["field"], other["new"]), now=now)
        assert changed.escalation_rule != "high-value-cancel", other

    # An offer the customer did not get: the loyalty discount, from 24 months' tenure.
    loyalty = found[("not_given", "loyalty-discount")]
    assert (
        loyalty["text"] == "customer.tenure_months ≥ 24 would have made loyalty-discount eligible"
    )
    assert (loyalty["field"], loyalty["old"], loyalty["new"]) == ("customer.tenure_months", 20, 24)
    given = compiled.evaluate(put(context, "customer.tenure_months", 24), now=now)
    assert "loyalty-discount" in given.eligible_rules
    short = compiled.evaluate(put(context, "customer.tenure_months", 23), now=now)
    assert "loyalty-discount" not in short.eligible_rules  # 24 is the smallest that does

    # The fee waiver: two contacts fewer, or another tier.
    fee = found[("fired", "fee-waiver")]
    assert fee["text"] == "history.contacts_7d < 2 would have made waive-fee not eligible"
    assert (
        "fee-waiver" not in compiled.evaluate(put(context, fee["field"], fee["new"])).eligible_rules
    )

    # Every counterfactual in the pack, re-evaluated here: each flips what it says.
    for c in pack["counterfactuals"]:
        for change in [c, *c["alternatives"]]:
            if change["field"].startswith("count("):
                continue
            decision_after = compiled.evaluate(
                put(context, change["field"], change["new"]), now=now
            )
            if c["target"] == "not_given":
                offers = {compiled.eligible_out[r]["offer"] for r in decision_after.eligible_rules}
                assert c["offer"] in offers, change
            elif c["section"] == "eligibility":
                assert c["rule"] not in decision_after.eligible_rules, change
            elif c["section"] == "escalation":
                assert decision_after.escalation_rule != c["rule"], change
            else:
                assert c["rule"] not in decision_after.alert_rules, change
    # The device upgrade needs a purchase date and a paid-up account: two inputs, so none.
    unflipped = {u["offer"]: u for u in pack["unflipped"] if u["target"] == "not_given"}
    assert "early-device-upgrade" in unflipped
    assert ("not_given", "early-device-upgrade") not in found
    assert pack["exploration"]["replay_matches"] is True
    assert 0 < pack["exploration"]["evaluations"] <= 32 * pack["exploration"]["targets"]


def test_masked_inputs_are_not_explored_and_the_pack_says_so(live: LiveServer) -> None:
    """No e-mail on file and a voice call: the reminder fires. Its condition reads the
    e-mail (pii): that input is not changed, and the pack says why; the channel is."""
    context = {
        "customer": {"tier": "bronze", "tenure_months": 7},
        "interaction": {"channel": "voice", "intent": "billing"},
    }
    decision = decide(live, "c-no-email", context)
    assert [a["rule"] for a in decision["alerts"]] == ["no-email-on-file"]
    pack = pack_of(live, decision["decision_id"]).json()
    assert {"field": "customer.email", "reason": "masked"} in [
        {"field": n["field"], "reason": n["reason"]} for n in pack["not_explored"]
    ]
    assert "not explored: customer.email (masked)" in [n["text"] for n in pack["not_explored"]]
    reminder = next(c for c in pack["counterfactuals"] if c["rule"] == "no-email-on-file")
    assert reminder["field"] == "interaction.channel"
    assert reminder["text"] == 'interaction.channel = "chat" would not have raised no-email-on-file'
    assert all(
        not change["field"].startswith("customer.email")
        for c in pack["counterfactuals"]
        for change in [c, *c["alternatives"]]
    )
    compiled = stored_revision(live, decision["revision"])
    after = compiled.evaluate(put(context, "interaction.channel", "chat"))
    assert "no-email-on-file" not in after.alert_rules


def test_the_human_side_is_in_the_pack(live: LiveServer) -> None:
    """An interaction's alert acknowledged by the agent: the pack shows it, in order."""
    started = httpx.post(
        live.url + "/v1/interactions",
        json={
            "ruleset": "retention-desk",
            "customer_id": "c-human",
            "agent_id": AGENT,
            "context": {"customer": {"tier": "silver", "churn_score": 0.95}},
        },
        headers=live.auth("agent"),
        timeout=30,
    )
    assert started.status_code in (200, 201), started.text
    alert_id = started.json()["alerts"][0]["alert_id"]
    deadline = time.monotonic() + 10
    while True:  # the alert reaches the desktop just after the answer
        acked = httpx.post(
            f"{live.url}/v1/alerts/{alert_id}/ack",
            json={"outcome": "accepted"},
            headers=live.auth("agent"),
            timeout=30,
        )
        if acked.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert acked.status_code == 200, acked.text
    deadline = time.monotonic() + 10
    while True:  # the ack's record is read through the index or the log's tail
        pack = pack_of(live, started.json()["decision_id"]).json()
        kinds = [s["kind"] for s in pack["human"]]
        if "ack" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    ack = next(s for s in pack["human"] if s["kind"] == "ack")
    assert (ack["outcome"], ack["rule"], ack["by"]) == ("accepted", "high-churn-caller", AGENT)


def test_only_auditors_read_a_pack_and_only_of_decisions(
    live: LiveServer, decided: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    decision, _ = decided
    for role in ("agent", "supervisor", "author", "integration"):
        assert pack_of(live, decision["decision_id"], role).status_code == 403, role
    assert (
        httpx.get(
            f"{live.url}/v1/audit/decisions/{decision['decision_id']}/explanation"
        ).status_code
        == 401
    )
    missing = pack_of(live, "d-nowhere")
    assert missing.status_code == 404
    assert "d-nowhere" in missing.json()["detail"]


def test_the_printable_page_is_served_with_no_outside_assets(live: LiveServer) -> None:
    page = httpx.get(live.url + "/audit/explanation", params={"id": "x"}, timeout=30)
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "/static/explanation.js" in html and "/static/explanation.css" in html
    assert "http://" not in html and "https://" not in html
    css = httpx.get(live.url + "/static/explanation.css", timeout=30).text
    assert "@media print" in css and "url(" not in css
    script = httpx.get(live.url + "/static/explanation.js", timeout=30).text
    assert "/explanation`" in script and "window.print()" in script
    assert "http://" not in script and "https://" not in script
    audit = httpx.get(live.url + "/static/audit.js", timeout=30).text
    assert "/audit/explanation?id=" in audit
