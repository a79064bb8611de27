"""The contact policy as the alert service applies it: a revision's terms (topics, the time an
alert must be answered in, the window's limit, the quiet period, the supervisor), severities as
ranks, and the per-rule tally /metrics reads."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from adapters.ports import AlertLimit
from engine import CompiledRuleset
from engine.durations import parse_duration
from engine.model import SEVERITIES

RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}
ACK_SECONDS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)  # time-to-ack buckets


def supervisor_channel(supervisor_id: str) -> str:
    """The bus channel of a supervisor's stream: ``/`` is in no agent id, so no agent's
    channel is ever a supervisor's."""
    return f"supervisor/{supervisor_id}"


class Terms(msgspec.Struct, frozen=True):
    """What the contact policy needs of one revision: per alert rule its topic and the time
    it must be acknowledged in (None: no acknowledgement required), the policy, and the
    triggers its escalation rules run on."""

    topics: dict[str, str | None]
    ack_within: dict[str, str | None]
    limit: AlertLimit | None
    quiet: timedelta | None
    supervisor: str | None
    escalates_on: frozenset[str] = frozenset()  # the triggers escalation rules listen for

    @classmethod
    def of(cls, compiled: CompiledRuleset) -> Terms:
        doc = compiled.model
        policy = doc.policy
        return cls(
            topics={rule.id: rule.topic for rule in doc.alerts},
            ack_within={
                rule.id: rule.ack_within if rule.require_ack else None for rule in doc.alerts
            },
            limit=(
                AlertLimit(policy.max_alerts, parse_duration(policy.per))
                if policy is not None and policy.max_alerts is not None and policy.per
                else None
            ),
            quiet=(
                parse_duration(policy.quiet_after_dismiss)
                if policy is not None and policy.quiet_after_dismiss
                else None
            ),
            supervisor=policy.supervisor if policy is not None else None,
            escalates_on=frozenset(t for rule in doc.escalation for t in rule.on),
        )


class Tally:
    """Per ruleset and alert rule: alerts raised, delivered to a desktop, held back (by
    reason), acknowledged, escalated, and the time to acknowledge (for /metrics)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        self.ack_buckets: dict[tuple[str, str], list[int]] = {}
        self.ack_sum: dict[tuple[str, str], float] = {}

    def add(self, ruleset: str, rule: str, what: str, n: int = 1) -> None:
        key = (ruleset, rule, what)
        self.counts[key] = self.counts.get(key, 0) + n

    def acked_after(self, ruleset: str, rule: str, seconds: float) -> None:
        key = (ruleset, rule)
        buckets = self.ack_buckets.setdefault(key, [0] * (len(ACK_SECONDS) + 1))
        for k, bound in enumerate(ACK_SECONDS):
            if seconds <= bound:
                buckets[k] += 1
        buckets[-1] += 1
        self.ack_sum[key] = self.ack_sum.get(key, 0.0) + seconds
