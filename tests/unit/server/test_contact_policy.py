"""The agent's contact policy, on the service without HTTP: topics show their most severe
alert, at most max_alerts per window, a quiet period after a dismissal, and require_ack alerts
re-raised to the supervisor when nobody answers them in time. What is held back or escalated
is in the ledger, with the reason. And the caps on an agent's alert streams."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from audit.index import LedgerIndex
from audit.record import LedgerRecord, decode
from audit.segments import SegmentLog
from server.keys import Principal
from server.schemas import InteractionRequest
from server.service.errors import Forbidden, Invalid, TooMany, Unavailable
from server.service.frontline import Frontline
from tests.support.service import run

AGENT = Principal("a-1", "agent")
LEAD = Principal("lead-1", "supervisor")
AUTHOR = Principal("author-1", "author")

DOCUMENT = b"""
ruleset: desk
context:
  customer.churn_score: number
  customer.outage: boolean
  customer.tier: string
alerts:
  - id: churn-high
    when: customer.churn_score > 0.5
    severity: warning
    message: Churn risk
    topic: risk
  - id: churn-severe
    when: customer.churn_score > 0.9
    severity: critical
    message: Churn risk, severe
    topic: risk
    require_ack: true
    ack_within: 1s
  - id: outage
    when: customer.outage
    severity: info
    message: An outage in the area
  - id: payments
    when: count("payment_failed", within="1d") >= 1
    severity: warning
    message: A failed payment
    on: [event]
  - id: gold
    when: customer.tier == "gold"
    severity: info
    message: A gold customer
policy: {max_alerts: 3, per: 10m, quiet_after_dismiss: 1m, supervisor: lead-1}
"""


def begin(service: Frontline, customer: str) -> str:
    started = run(
        service,
        service.decisions.start_interaction(
            InteractionRequest(ruleset="desk", customer_id=customer, agent_id="a-1"), AGENT
        ),
    )
    found = started["interaction_id"]
    assert found is not None
    return found


def records(service: Frontline) -> list[LedgerRecord]:
    log = SegmentLog(service.audit.ledger_dir, "local", readonly=True)
    return [decode(body) for _, body in log.scan()]


def context(service: Frontline, customer: str, values: dict[str, Any]) -> list[str]:
    stored = run(service, service.customers.merge_context(customer, values, "crm", None))
    return stored.alerts_raised


def test_the_policy_holds_back_what_it_should_and_records_why(service: Frontline) -> None:
    run(service, service.rulesets.deploy(DOCUMENT, AUTHOR, allow_untested=True))
    interaction = begin(service, "c-1")
    # Three rules fire at once; two share the topic "risk": only the critical one is shown.
    raised = context(service, "c-1", {"customer": {"churn_score": 0.95, "outage": True}})
    assert sorted(a.rsplit(".", 1)[1] for a in raised) == ["churn-severe", "outage"]
    # The event raises the third alert of the window; the fourth is over the limit.
    event = run(service, service.customers.record_event("c-1", "payment_failed", None))
    assert [a.rsplit(".", 1)[1] for a in event.alerts_raised] == ["payments"]
    assert context(service, "c-1", {"customer": {"tier": "gold"}}) == []
    held = {
        r.outputs["alerts"][0]["rule"]: r.data["reason"]
        for r in records(service)
        if r.kind == "alert_suppressed"
    }
    assert held == {"churn-high": "topic", "gold": "limit"}
    tally = service.alerts.tally.counts
    assert tally[("desk", "churn-high", "suppressed:topic")] == 1
    assert tally[("desk", "gold", "suppressed:limit")] == 1
    assert tally[("desk", "outage", "raised")] == 1
    # Repeats of rules already weighed are neither raised nor recorded again.
    assert context(service, "c-1", {"customer": {"churn_score": 0.97}}) == []
    assert len([r for r in records(service) if r.kind == "alert_suppressed"]) == 2
    assert interaction


def test_a_dismissal_quiets_the_interaction(service: Frontline) -> None:
    run(service, service.rulesets.deploy(DOCUMENT, AUTHOR, allow_untested=True))
    begin(service, "c-2")
    (outage,) = context(service, "c-2", {"customer": {"outage": True}})
    run(service, service.alerts.ack(outage, "dismissed", "known", AGENT))
    assert context(service, "c-2", {"customer": {"churn_score": 0.6}}) == []
    (quiet,) = [r for r in records(service) if r.kind == "alert_suppressed"]
    assert quiet.data["reason"] == "quiet" and quiet.outputs["alerts"][0]["rule"] == "churn-high"
    assert service.alerts.tally.counts[("desk", "outage", "acknowledged")] == 1
    assert service.alerts.tally.ack_buckets[("desk", "outage")][-1] == 1  # time to ack


def test_an_unanswered_alert_goes_to_the_supervisor_once(service: Frontline) -> None:
    run(service, service.rulesets.deploy(DOCUMENT, AUTHOR, allow_untested=True))
    interaction = begin(service, "c-3")
    (severe,) = context(service, "c-3", {"customer": {"churn_score": 0.95}})
    alerts = service.alerts
    assert run(service, alerts.escalate_overdue(time.time())) == []  # not due yet
    assert run(service, alerts.escalate_overdue(time.time() + 2)) == [severe]
    assert run(service, alerts.escalate_overdue(time.time() + 3)) == []  # taken once
    (escalated,) = [r for r in records(service) if r.kind == "alert_escalated"]
    assert escalated.data["alert_id"] == severe and escalated.data["supervisor"] == "lead-1"
    assert escalated.interaction_id == interaction and escalated.agent_id == "a-1"
    # The supervisor's stream carries it; another supervisor's key may not read it.
    stream = alerts.follow_supervisor(LEAD, "lead-1", None)
    message = run(service, asyncio.wait_for(anext(stream), 2))
    assert message is not None and message["alert_id"] == severe
    assert message["type"] == "escalation" and message["ack_within"] == "1s"
    run(service, stream.aclose())  # type: ignore[attr-defined]
    with pytest.raises(Forbidden, match="supervisor 'lead-2'"):
        alerts.follow_supervisor(Principal("lead-2", "supervisor"), "lead-1", None)


def test_an_alert_answered_in_time_is_not_escalated(service: Frontline) -> None:
    run(service, service.rulesets.deploy(DOCUMENT, AUTHOR, allow_untested=True))
    begin(service, "c-4")
    (severe,) = context(service, "c-4", {"customer": {"churn_score": 0.95}})
    run(service, service.alerts.ack(severe, "acknowledged", None, AGENT))
    assert run(service, service.alerts.escalate_overdue(time.time() + 2)) == []
    assert not [r for r in records(service) if r.kind == "alert_escalated"]


def test_an_override_needs_a_reason_and_the_auditor_sees_the_answers(service: Frontline) -> None:
    run(service, service.rulesets.deploy(DOCUMENT, AUTHOR, allow_untested=True))
    started = run(
        service,
        service.decisions.start_interaction(
            InteractionRequest(
                ruleset="desk",
                customer_id="c-5",
                agent_id="a-1",
                context={"customer": {"outage": True}},
            ),
            AGENT,
        ),
    )
    run(service, service.alerts.drain())  # the interaction's alerts are delivered later
    (outage,) = [a["alert_id"] for a in started["alerts"]]
    with pytest.raises(Invalid, match="an override needs a reason"):
        run(service, service.alerts.ack(outage, "overridden", "  ", AGENT))
    run(service, service.alerts.ack(outage, "overridden", "the outage is fixed", AGENT))
    index = LedgerIndex(service.audit.ledger_dir)
    index.catch_up(SegmentLog(service.audit.ledger_dir, "local", readonly=True))
    index.close()
    read = run(service, service.audit.read(started["decision_id"]))
    steps = [(s.kind, s.rule, s.outcome, s.note) for s in read.human]
    assert steps == [
        ("alert", "outage", None, None),
        ("ack", "outage", "overridden", "the outage is fixed"),
    ]


def test_alert_streams_are_capped_per_agent_and_given_back(service: Frontline) -> None:
    alerts = service.alerts
    held = [alerts.follow(AGENT, "a-1", None) for _ in range(alerts.streams_per_agent)]
    with pytest.raises(TooMany, match="agent 'a-1' already has 5 alert streams open"):
        alerts.follow(AGENT, "a-1", None)
    # Another agent is not affected.
    other = alerts.follow(Principal("a-2", "agent"), "a-2", None)
    # A stream that ends, or is dropped unread, gives its place back.
    first = held.pop()
    run(service, first.aclose())  # type: ignore[attr-defined]
    del first
    held.append(alerts.follow(AGENT, "a-1", None))
    held.pop()  # dropped without being read
    held.append(alerts.follow(AGENT, "a-1", None))
    # The server's own cap refuses everyone once reached.
    alerts.max_streams = len(held) + 1
    with pytest.raises(Unavailable, match="as many alert streams open"):
        alerts.follow(Principal("a-3", "agent"), "a-3", None)
    del other
    assert alerts.follow(Principal("a-3", "agent"), "a-3", None) is not None
