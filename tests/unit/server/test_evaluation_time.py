"""The instant a decision is evaluated at."""

from __future__ import annotations

from datetime import UTC, datetime

from server.service.decisions import evaluation_time


def test_decisions_are_evaluated_at_the_clock_rounded_up_to_the_millisecond() -> None:
    """Whole milliseconds (as records write them), never before the clock (events counted
    just now are not in the future)."""
    for _ in range(1_000):
        before = datetime.now(UTC)
        now = evaluation_time()
        assert now.microsecond % 1000 == 0
        assert now >= before
        assert (now - before).total_seconds() < 0.01
