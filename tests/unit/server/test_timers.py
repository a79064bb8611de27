"""Timer rules on the service without HTTP: a live interaction's timer rules run when due,
each period once, on the interaction's own start time; an ended interaction's timers stop."""

from __future__ import annotations

import time

from audit.record import LedgerRecord, decode
from audit.segments import SegmentLog
from server.keys import Principal
from server.schemas import DecisionRequest, InteractionRequest
from server.service.frontline import Frontline
from tests.support.service import run

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
