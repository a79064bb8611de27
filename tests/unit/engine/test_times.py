"""Times as the ledger and the API write them: RFC 3339 in UTC, ending in Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from engine.times import format_time, parse_time

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), ZONES)
def test_milliseconds_are_written_as_isoformat_writes_them(when: datetime, zone: timezone) -> None:
    aware = when.replace(tzinfo=zone)
    expected = aware.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
    assert format_time(aware) == expected + "Z"
    assert parse_time(format_time(aware)) == aware.replace(
        microsecond=aware.microsecond // 1000 * 1000
    )


def test_other_precisions_and_the_shape_of_a_time() -> None:
    when = datetime(2026, 12, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert format_time(when) == "2026-12-05T06:07:08.000Z"
    assert format_time(when, "microseconds") == "2026-12-05T06:07:08.000009Z"
    assert format_time(when, "seconds") == "2026-12-05T06:07:08Z"
    assert format_time(datetime(33, 1, 1, tzinfo=UTC)) == "0033-01-01T00:00:00.000Z"
