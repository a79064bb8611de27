"""Timer rules on the service without HTTP: a live interaction's timer rules run when due,
each period once, on the interaction's own start time; an ended interaction's timers stop.
A timer escalation rule is raised once per interaction when it holds, to the ledger, the
agent's desktop and the supervisor, by one instance of two sharing Redis."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

from audit.record import LedgerRecord, decode
from audit.segments import SegmentLog
from server.keys import Principal
from server.schemas import DecisionRequest, InteractionRequest
from server.service.frontline import Frontline
from tests.support.redis import URL
from tests.support.service import run, running_service

AGENT = Principal("a-1", "agent")
AUTHOR = Principal("author-1", "author")

DOCUMENT = b"""
ruleset: handle-time
context:
  interaction.started_at: datetime
  customer.tier: string
alerts:
  - id: long-call
    when: hours_since(interaction.started_at) * 3600 >= 1
    severity: warning
    message: This call has run {round(hours_since(interaction.started_at) * 3600)} seconds
    on: [timer]
    every: 1s
  - id: gold-on-hold
    when: customer.tier == "gold"
    severity: info
    message: A gold customer is waiting
    on: [timer]
    every: 2s
"""


def alerts(service: Frontline) -> list[LedgerRecord]:
    log = SegmentLog(service.audit.ledger_dir, "local", readonly=True)
    return [r for r in (decode(body) for _, body in log.scan()) if r.kind == "alert"]


def test_timer_rules_run_when_due_once_per_period(service: Frontline) -> None:
    run(service, service.rulesets.deploy(DOCUMENT, AUTHOR, allow_untested=True))
    service.alerts.repeat_after = service.alerts.repeat_after * 0  # every run may raise
    started = run(
        service,
        service.decisions.start_interaction(
            InteractionRequest(
                ruleset="handle-time",
                customer_id="c-1",
                agent_id="a-1",
                context={"customer": {"tier": "gold"}},
            ),
            AGENT,
        ),
    )
    assert started["alerts"] == []  # timer rules do not run on decisions
    timers = service.timers
    now = int(time.time() * 1000)
    assert run(service, timers.run_due(now)) == 0  # nothing due yet
    assert run(service, timers.run_due(now + 1_100)) == 1  # the 1 s timer
    assert run(service, timers.run_due(now + 1_100)) == 0  # that period is taken
    assert run(service, timers.run_due(now + 2_100)) == 2  # both periods
    raised = alerts(service)
    assert sorted(r.outputs["alerts"][0]["rule"] for r in raised) == [
        "gold-on-hold",
        "long-call",
        "long-call",
    ]
    assert {r.data["trigger"] for r in raised} == {"timer"}
    assert all(r.data["due_at"] and r.interaction_id == started["interaction_id"] for r in raised)
    # The rule read the interaction's own start time (the document declares the field).
    assert "seconds" in raised[0].outputs["alerts"][0]["message"]
    assert timers.evaluated == 3
    # A decision within the interaction sees the start time too.
    pinned = run(
        service,
        service.decisions.decide(
            DecisionRequest(
                ruleset="handle-time",
                customer_id="c-1",
                agent_id="a-1",
                interaction=started["interaction_id"],
            ),
            AGENT,
        ),
    )
    assert "interaction.started_at" not in pinned["missing_fields"]
    # Ended: its timers stop.
    run(service, service.decisions.end_interaction(started["interaction_id"], AGENT))
    assert run(service, timers.run_due(now + 10_000)) == 0


def test_a_timer_whose_interaction_is_gone_is_dropped(service: Frontline) -> None:
    run(service, service.rulesets.deploy(DOCUMENT, AUTHOR, allow_untested=True))
    started = run(
        service,
        service.decisions.start_interaction(
            InteractionRequest(ruleset="handle-time", customer_id="c-2", agent_id="a-1"), AGENT
        ),
    )
    # Gone without an end (expired, say): its timers come due once more, and are dropped.
    run(service, service.decisions.interactions.end(started["interaction_id"]))
    now = int(time.time() * 1000)
    assert run(service, service.timers.run_due(now + 2_100)) == 2
    assert run(service, service.timers.run_due(now + 10_000)) == 0
    assert service.timers.evaluated == 0


ESCALATING = b"""
ruleset: handle-time-escalation
context:
  interaction.started_at: datetime
  customer.tier: string
escalation:
  - id: gold-desk
    when: customer.tier == "gold"
    queue: gold-desk
    priority: 1                   # decisions only: a timer never raises it
  - id: long-call
    when: hours_since(interaction.started_at) * 3600 >= 1.5
    queue: team-lead
    priority: 2
    because: Handle time over the limit
    reason_code: HANDLE_TIME
    on: [timer]
    every: 1s
policy: {supervisor: lead-1}
"""

LEAD = Principal("lead-1", "supervisor")


def ledger(service: Frontline, kind: str, instance: str = "local") -> list[LedgerRecord]:
    log = SegmentLog(service.audit.ledger_dir, instance, readonly=True)
    return [r for r in (decode(body) for _, body in log.scan()) if r.kind == kind]


def start_gold_call(service: Frontline, customer: str) -> str:
    started = run(
        service,
        service.decisions.start_interaction(
            InteractionRequest(
                ruleset="handle-time-escalation",
                customer_id=customer,
                agent_id="a-1",
                context={"customer": {"tier": "gold"}},
            ),
            AGENT,
        ),
    )
    # The decision routes by the decision's rules alone: the timer rule is not among them.
    assert started["escalation"]["rule"] == "gold-desk"
    interaction: str = started["interaction_id"]
    return interaction


def test_a_timer_escalation_is_raised_once_when_due(service: Frontline) -> None:
    run(service, service.rulesets.deploy(ESCALATING, AUTHOR, allow_untested=True))
    desktop = service.alerts.follow(AGENT, "a-1", None)
    lead = service.alerts.follow_supervisor(LEAD, "lead-1", None)
    interaction = start_gold_call(service, "c-3")
    timers = service.timers
    now = int(time.time() * 1000)
    assert run(service, timers.run_due(now + 1_100)) == 1  # due, but only a second in
    assert ledger(service, "escalation_raised") == []
    assert run(service, timers.run_due(now + 2_100)) == 1  # two seconds in: raised
    assert run(service, timers.run_due(now + 3_100)) == 1  # still true: not raised again
    assert run(service, timers.run_due(now + 4_100)) == 1
    (raised,) = ledger(service, "escalation_raised")
    assert raised.interaction_id == interaction and raised.agent_id == "a-1"
    assert raised.outputs["escalation"] == {
        "rule": "long-call",
        "queue": "team-lead",
        "priority": 2,
        "because": "Handle time over the limit",
    }
    data = raised.data
    assert data["trigger"] == "timer" and data["reason_code"] == "HANDLE_TIME"
    assert data["supervisor"] == "lead-1"
    # When it was due: the second period, two seconds after the timer was set.
    due = datetime.fromisoformat(data["due_at"]).timestamp() * 1000
    assert now + 1_000 < due <= now + 2_100
    assert service.alerts.escalations == 1
    # The agent's desktop gets it as an alert that carries the escalation ...
    shown = run(service, asyncio.wait_for(anext(desktop), 2))
    assert shown is not None and shown["alert_id"] == data["alert_id"]
    assert shown["interaction_id"] == interaction and shown["rule"] == "long-call"
    assert shown["escalation"] == {
        "queue": "team-lead",
        "priority": 2,
        "because": "Handle time over the limit",
        "reason_code": "HANDLE_TIME",
    }
    assert shown["message"] == "Handle time over the limit" and shown["due_at"] == data["due_at"]
    # ... and the supervisor the policy names gets it on its own stream.
    told = run(service, asyncio.wait_for(anext(lead), 2))
    assert told is not None and told["type"] == "escalation"
    assert told["alert_id"] == data["alert_id"] and told["agent_id"] == "a-1"
    assert told["escalation"]["queue"] == "team-lead"
    run(service, desktop.aclose())  # type: ignore[attr-defined]
    run(service, lead.aclose())  # type: ignore[attr-defined]
    # The agent may answer it like an alert.
    answered = run(service, service.alerts.ack(data["alert_id"], "acknowledged", None, AGENT))
    assert answered.alert_id == data["alert_id"]
    (delivered,) = ledger(service, "alert_delivered")
    assert delivered.data["alert_id"] == data["alert_id"]


def test_another_interaction_is_escalated_on_its_own(service: Frontline) -> None:
    run(service, service.rulesets.deploy(ESCALATING, AUTHOR, allow_untested=True))
    first = start_gold_call(service, "c-4")
    second = start_gold_call(service, "c-5")
    now = int(time.time() * 1000)
    for k in range(1, 5):
        assert run(service, service.timers.run_due(now + k * 1_000 + 100)) == 2
    raised = ledger(service, "escalation_raised")
    assert sorted(r.interaction_id or "" for r in raised) == sorted([first, second])


def test_a_timer_escalation_runs_on_one_of_two_instances_sharing_redis(
    tmp_path: Path, redis_prefix: str
) -> None:
    env = {"REDIS_URL": URL, "FRONTLINE_REDIS_PREFIX": redis_prefix}
    with running_service(tmp_path / "a", {**env, "FRONTLINE_INSTANCE": "a"}) as one:
        run(one, one.rulesets.deploy(ESCALATING, AUTHOR, allow_untested=True))
        with running_service(tmp_path / "b", {**env, "FRONTLINE_INSTANCE": "b"}) as other:
            lead = other.alerts.follow_supervisor(LEAD, "lead-1", None)
            interaction = start_gold_call(one, "c-6")
            now = int(time.time() * 1000)
            taken = []
            for k in range(1, 6):
                # Both instances look at once; each period is handed to one of them.
                at = now + k * 1_000 + 100
                first, then = (other, one) if k % 2 else (one, other)
                taken.append(
                    run(first, first.timers.run_due(at)) + run(then, then.timers.run_due(at))
                )
            assert taken == [1, 1, 1, 1, 1]
            raised = ledger(one, "escalation_raised", "a") + ledger(other, "escalation_raised", "b")
            assert len(raised) == 1  # once in the interaction, whichever instance ran
            (escalation,) = raised
            assert escalation.interaction_id == interaction
            assert one.alerts.escalations + other.alerts.escalations == 1
            # Raised on either instance, it reaches the supervisor connected to the other.
            told = run(other, asyncio.wait_for(anext(lead), 5))
            assert told is not None and told["alert_id"] == escalation.data["alert_id"]
            run(other, lead.aclose())  # type: ignore[attr-defined]


def test_an_escalation_rule_on_events_is_raised_once_when_it_holds(service: Frontline) -> None:
    document = b"""
ruleset: payments-escalation
context:
  customer.tier: string
escalation:
  - id: third-failed-payment
    when: count("payment_failed", within="7d") >= 3
    queue: collections
    priority: 1
    on: [event]
"""
    run(service, service.rulesets.deploy(document, AUTHOR, allow_untested=True))
    started = run(
        service,
        service.decisions.start_interaction(
            InteractionRequest(ruleset="payments-escalation", customer_id="c-7", agent_id="a-1"),
            AGENT,
        ),
    )
    assert started["escalation"] is None  # not a decision's rule
    raised = [
        run(service, service.customers.record_event("c-7", "payment_failed", None)).alerts_raised
        for _ in range(4)
    ]
    assert raised[:2] == [[], []] and raised[3] == []
    (alert_id,) = raised[2]
    (record,) = ledger(service, "escalation_raised")
    assert record.data["alert_id"] == alert_id and record.data["trigger"] == "event:payment_failed"
    assert record.data["supervisor"] is None and "due_at" not in record.data
    assert record.data["reason_code"] == "escalation/third-failed-payment"
