"""The ContextStore, EventCounters, InteractionStore and AlertStore contracts, against every
implementation: in process and on Redis (the machine's server, a key prefix per test)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import redis.asyncio

from adapters.memory import (
    MemoryAlertStore,
    MemoryContextStore,
    MemoryEventCounters,
    MemoryInteractions,
    MemoryTimers,
)
from adapters.ports import (
    AlertClaim,
    AlertLimit,
    AlertStore,
    ContextStore,
    EventCounters,
    Interaction,
    InteractionStore,
    TimerStore,
    timer_key,
)
from adapters.redis import (
    RedisAlertStore,
    RedisContextStore,
    RedisEventCounters,
    RedisInteractions,
    RedisTimers,
)
from adapters.source import HttpContextSource, SourcedContextStore
from tests.support.redis import URL
from tests.support.source import ContextSource

T = TypeVar("T")
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
IMPLEMENTATIONS = ["memory", "redis"]

# One event loop for the whole module: a Redis client's connections belong to the loop that
# opened them.
_LOOP = asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return _LOOP.run_until_complete(coro)


@pytest.fixture
def client(request: pytest.FixtureRequest) -> Iterator[redis.asyncio.Redis]:
    found = redis.asyncio.Redis.from_url(URL)
    yield found
    run(found.aclose())


def _pick(request: pytest.FixtureRequest, memory: Any, on_redis: Any) -> Any:
    if request.param == "memory":
        return memory()
    prefix = request.getfixturevalue("redis_prefix")
    return on_redis(request.getfixturevalue("client"), prefix=prefix)


@pytest.fixture(params=[*IMPLEMENTATIONS, "sourced"])
def contexts(request: pytest.FixtureRequest) -> Iterator[ContextStore]:
    if request.param != "sourced":
        yield _pick(request, MemoryContextStore, RedisContextStore)
        return
    # A store that fills itself from a source keeps the contract for what is written to it
    # (the source here knows nobody, so it never adds anything).
    source = ContextSource()
    yield SourcedContextStore(MemoryContextStore(), HttpContextSource(source.url))
    source.close()


@pytest.fixture(params=IMPLEMENTATIONS)
def counters(request: pytest.FixtureRequest) -> EventCounters:
    return _pick(request, MemoryEventCounters, RedisEventCounters)  # type: ignore[no-any-return]


@pytest.fixture(params=IMPLEMENTATIONS)
def interactions(request: pytest.FixtureRequest) -> InteractionStore:
    return _pick(request, MemoryInteractions, RedisInteractions)  # type: ignore[no-any-return]


@pytest.fixture(params=IMPLEMENTATIONS)
def alerts(request: pytest.FixtureRequest) -> AlertStore:
    return _pick(request, MemoryAlertStore, RedisAlertStore)  # type: ignore[no-any-return]


def test_put_replaces_and_patch_merges_with_per_field_sources(contexts: ContextStore) -> None:
    run(
        contexts.put(
            "c-1",
            {"customer": {"tier": "gold", "plan": "basic"}, "history": {"contacts_7d": 1}},
            "crm",
            "2026-11-22T09:00:00.000Z",
        )
    )
    merged = run(
        contexts.patch(
            "c-1", {"customer": {"churn_score": 0.7, "plan": "premium"}}, "churn-model", None
        )
    )
    assert merged.values == {
        "customer": {"tier": "gold", "plan": "premium", "churn_score": 0.7},
        "history": {"contacts_7d": 1},
    }
    assert merged.sources == {
        "customer.tier": "crm",
        "customer.plan": "churn-model",
        "customer.churn_score": "churn-model",
        "history.contacts_7d": "crm",
    }
    # The patch carried no as_of: the fields it wrote have none, the others keep theirs.
    assert merged.as_of == {
        "customer.tier": "2026-11-22T09:00:00.000Z",
        "history.contacts_7d": "2026-11-22T09:00:00.000Z",
    }
    replaced = run(contexts.put("c-1", {"customer": {"tier": "silver"}}, None, None))
    assert replaced.values == {"customer": {"tier": "silver"}}
    assert replaced.sources == {} and replaced.as_of == {}
    assert run(contexts.get("nobody")) is None


def test_a_read_is_a_copy(contexts: ContextStore) -> None:
    run(contexts.put("c-1", {"customer": {"tags": ["a"]}}, "crm", None))
    read = run(contexts.get("c-1"))
    assert read is not None
    read.values["customer"]["tags"].append("b")
    again = run(contexts.get("c-1"))
    assert again is not None and again.values == {"customer": {"tags": ["a"]}}


def test_patching_a_scalar_with_an_object_replaces_it(contexts: ContextStore) -> None:
    run(contexts.put("c-1", {"customer": "unknown"}, "crm", None))
    patched = run(contexts.patch("c-1", {"customer": {"tier": "gold"}}, "crm", None))
    assert patched.values == {"customer": {"tier": "gold"}}


def test_counts_over_sliding_windows(counters: EventCounters) -> None:
    for minutes in (1, 30, 90, 60 * 30, 60 * 24 * 8):
        run(counters.record("c-1", "payment_failed", NOW - timedelta(minutes=minutes)))
    run(counters.record("c-1", "login", NOW))
    run(counters.record("c-2", "payment_failed", NOW))
    needed = frozenset({("payment_failed", "1h"), ("payment_failed", "7d"), ("login", "1h")})
    assert run(counters.counts("c-1", needed, NOW)) == {
        "payment_failed": {"1h": 2, "7d": 4},
        "login": {"1h": 1},
    }
    assert run(counters.counts("c-3", needed, NOW)) == {
        "payment_failed": {"1h": 0, "7d": 0},
        "login": {"1h": 0},
    }


def test_late_events_count_in_their_own_window(counters: EventCounters) -> None:
    run(counters.record("c-1", "x", NOW))
    run(counters.record("c-1", "x", NOW - timedelta(hours=2)))  # arrives late
    run(counters.record("c-1", "x", NOW - timedelta(minutes=5)))
    assert run(counters.counts("c-1", frozenset({("x", "1h")}), NOW)) == {"x": {"1h": 2}}


def test_interactions_start_list_and_end(interactions: InteractionStore) -> None:
    first = Interaction("i-1", "c-1", "agent-7", "desk", 3, "2026-11-22T10:00:00.000Z")
    second = Interaction("i-2", "c-1", "agent-8", "desk", 4, "2026-11-22T10:01:00.000Z")
    run(interactions.start(first))
    run(interactions.start(second))
    assert run(interactions.get("i-1")) == first
    assert {i.interaction_id for i in run(interactions.for_customer("c-1"))} == {"i-1", "i-2"}
    assert run(interactions.end("i-1")) == first
    assert run(interactions.end("i-1")) is None
    assert run(interactions.get("i-1")) is None
    assert [i.interaction_id for i in run(interactions.for_customer("c-1"))] == ["i-2"]
    assert run(interactions.for_customer("c-9")) == []


WHOM = {"agent_id": "agent-7", "customer_id": "c-1", "interaction_id": "i-1"}
LONG = timedelta(minutes=1)
INFO, WARNING, CRITICAL = 0, 1, 2


def raised(rule: str, alert_id: str, rank: int = WARNING, topic: str | None = None) -> AlertClaim:
    return AlertClaim(rule=rule, alert_id=alert_id, rank=rank, topic=topic)


def test_an_alert_is_claimed_once_per_interval(alerts: AlertStore) -> None:
    interval = timedelta(milliseconds=300)
    assert run(alerts.claim("i-1", [raised("high-churn", "A1")], WHOM, interval, LONG)) == [
        "raised"
    ]
    both = [raised("high-churn", "A2"), raised("other-rule", "A3")]
    assert run(alerts.claim("i-1", both, WHOM, interval, LONG)) == ["repeat", "raised"]
    assert run(alerts.claim("i-2", [raised("high-churn", "A4")], WHOM, interval, LONG)) == [
        "raised"
    ]
    assert run(alerts.claim("i-2", [], WHOM, interval, LONG)) == []
    run(asyncio.sleep(0.35))
    assert run(alerts.claim("i-1", both, WHOM, interval, LONG)) == ["raised", "raised"]


def test_a_claimed_alert_is_found_until_it_expires(alerts: AlertStore) -> None:
    ttl = timedelta(milliseconds=300)
    run(alerts.claim("i-1", [raised("r", "A1"), raised("r", "A5")], WHOM, LONG, ttl))
    assert run(alerts.lookup("A1")) == WHOM
    assert run(alerts.lookup("A5")) is None  # a repeat of the same rule: not raised
    assert run(alerts.lookup("A2")) is None
    run(asyncio.sleep(0.35))
    assert run(alerts.lookup("A1")) is None


def test_an_escalation_is_claimed_once_per_interaction_whatever_the_policy(
    alerts: AlertStore,
) -> None:
    once = timedelta(milliseconds=300)
    assert run(alerts.claim_once("i-1", "long-call", "E1", WHOM, once, LONG)) is True
    assert run(alerts.claim_once("i-1", "long-call", "E2", WHOM, once, LONG)) is False
    assert run(alerts.lookup("E1")) == WHOM  # its agent may answer it
    assert run(alerts.lookup("E2")) is None
    # Another rule, another interaction: each claimed on its own; a quiet period, the
    # window's limit and an alert rule of the same id hold none of them back.
    run(alerts.quiet("i-2", LONG))
    limit = AlertLimit(max_alerts=1, per=LONG)
    assert run(alerts.claim("i-2", [raised("long-call", "A1")], WHOM, LONG, LONG, limit)) == [
        "quiet"
    ]
    assert run(alerts.claim_once("i-2", "long-call", "E3", WHOM, once, LONG)) is True
    assert run(alerts.claim_once("i-1", "case-open", "E4", WHOM, once, LONG)) is True
    run(asyncio.sleep(0.35))
    assert run(alerts.claim_once("i-1", "long-call", "E5", WHOM, once, LONG)) is True


def test_a_topic_shows_its_most_severe_alert(alerts: AlertStore) -> None:
    # Raised in one evaluation, most severe first (as the service orders them).
    first = [raised("outage", "B1", CRITICAL, "network"), raised("slow", "B2", INFO, "network")]
    assert run(alerts.claim("i-1", first, WHOM, LONG, LONG)) == ["raised", "topic"]
    # Later, on the same topic: as severe is held back, more severe is shown.
    assert run(
        alerts.claim("i-1", [raised("again", "B3", CRITICAL, "network")], WHOM, LONG, LONG)
    ) == ["topic"]
    assert run(
        alerts.claim("i-1", [raised("warn", "B4", WARNING, "billing")], WHOM, LONG, LONG)
    ) == ["raised"]
    assert run(
        alerts.claim("i-1", [raised("worse", "B5", CRITICAL, "billing")], WHOM, LONG, LONG)
    ) == ["raised"]
    # Another interaction's topics are its own.
    assert run(alerts.claim("i-2", [raised("slow", "B6", INFO, "network")], WHOM, LONG, LONG)) == [
        "raised"
    ]
    assert run(alerts.lookup("B2")) is None and run(alerts.lookup("B5")) == WHOM


def test_at_most_max_alerts_per_window(alerts: AlertStore) -> None:
    limit = AlertLimit(max_alerts=2, per=timedelta(milliseconds=400))
    found = run(
        alerts.claim("i-1", [raised(f"r{k}", f"C{k}") for k in range(3)], WHOM, LONG, LONG, limit)
    )
    assert found == ["raised", "raised", "limit"]
    # A rule held back by the limit is claimed too: one record per rule and interval.
    assert run(alerts.claim("i-1", [raised("r2", "C9")], WHOM, LONG, LONG, limit)) == ["repeat"]
    assert run(alerts.claim("i-1", [raised("r3", "C3")], WHOM, LONG, LONG, limit)) == ["limit"]
    assert run(alerts.claim("i-2", [raised("r3", "C4")], WHOM, LONG, LONG, limit)) == ["raised"]
    run(asyncio.sleep(0.45))  # the window has moved past the first two
    assert run(alerts.claim("i-1", [raised("r4", "C5")], WHOM, LONG, LONG, limit)) == ["raised"]


def test_a_quiet_period_holds_back_the_interactions_alerts(alerts: AlertStore) -> None:
    run(alerts.quiet("i-1", timedelta(milliseconds=300)))
    assert run(alerts.claim("i-1", [raised("r", "D1", CRITICAL)], WHOM, LONG, LONG)) == ["quiet"]
    assert run(alerts.claim("i-2", [raised("r", "D2")], WHOM, LONG, LONG)) == ["raised"]
    run(asyncio.sleep(0.35))
    assert run(alerts.claim("i-1", [raised("s", "D3")], WHOM, LONG, LONG)) == ["raised"]


def test_an_overdue_acknowledgement_is_taken_once(alerts: AlertStore) -> None:
    now = time.time()
    run(alerts.expect_ack("E1", now - 1))
    run(alerts.expect_ack("E2", now + 60))
    run(alerts.expect_ack("E3", now - 2))
    assert run(alerts.acked("E3")) is True  # answered in time: never overdue
    assert run(alerts.acked("E3")) is False
    assert run(alerts.overdue(now)) == ["E1"]
    assert run(alerts.overdue(now)) == []  # taken: another instance does not get it
    assert run(alerts.overdue(now + 61)) == ["E2"]


def test_an_answer_before_the_acknowledgement_is_expected_still_counts(
    alerts: AlertStore,
) -> None:
    # The answer can arrive while the alert is still being raised: its id was in the
    # decision's answer before the alert's acknowledgement began to be expected.
    now = time.time()
    run(alerts.claim("i-1", [raised("r", "G1")], WHOM, LONG, LONG))
    assert run(alerts.acked("G1")) is False  # not expected yet
    run(alerts.expect_ack("G1", now - 1))
    run(alerts.expect_ack("G2", now - 1))  # never answered
    assert run(alerts.overdue(now)) == ["G2"]


def test_the_first_delivery_of_an_alert_is_kept_with_it(alerts: AlertStore) -> None:
    run(alerts.claim("i-1", [raised("r", "F1")], WHOM, LONG, LONG))
    assert "delivered_at" not in (run(alerts.lookup("F1")) or {})
    run(alerts.delivered([("F1", "2026-12-04T10:00:00.000Z"), ("F-unknown", "x")]))
    run(alerts.delivered([("F1", "2026-12-04T10:05:00.000Z")]))  # a second desktop, later
    assert run(alerts.lookup("F1")) == {**WHOM, "delivered_at": "2026-12-04T10:00:00.000Z"}
    assert run(alerts.lookup("F-unknown")) is None


@pytest.fixture(params=IMPLEMENTATIONS)
def timers(request: pytest.FixtureRequest) -> TimerStore:
    return _pick(request, MemoryTimers, RedisTimers)  # type: ignore[no-any-return]


def test_a_due_timer_is_taken_once_per_period(timers: TimerStore) -> None:
    every = timer_key(30_000, "c-1", "i-1")
    other = timer_key(60_000, "c-1", "i-1")
    gone = timer_key(30_000, "c-2", "i-2")
    run(timers.schedule([(every, 1_000), (other, 2_000), (gone, 1_500)]))
    assert run(timers.take(500, 10)) == []
    run(timers.cancel([gone]))
    assert run(timers.take(2_000, 10)) == [(every, 1_000), (other, 2_000)]
    assert run(timers.take(2_000, 10)) == []  # taken: no other caller gets the period
    assert run(timers.take(31_000, 10)) == [(every, 31_000)]  # the next one, a period on
    # More than a period behind: the missed ones are skipped, the next is a period from now.
    assert run(timers.take(200_000, 10)) == [(every, 61_000), (other, 62_000)]
    assert run(timers.take(229_999, 10)) == []
    assert sorted(run(timers.take(260_000, 10))) == [(every, 230_000), (other, 260_000)]


def test_take_hands_out_at_most_the_limit_earliest_first(timers: TimerStore) -> None:
    run(timers.schedule([(timer_key(1_000, "c", f"i-{k}"), 100 + k) for k in range(5)]))
    assert [due for _, due in run(timers.take(1_000, 3))] == [100, 101, 102]
    assert [due for _, due in run(timers.take(1_000, 3))] == [103, 104]
