"""Admission: refused when requests would wait (the event loop's delay above target for an
interval), or at the cap on requests in flight; admitted again once the delay falls."""

from __future__ import annotations

import asyncio
import time

from server.admission import Gate


def test_a_delay_above_target_for_an_interval_sheds_and_a_short_one_does_not() -> None:
    gate = Gate(100, target=0.005, interval=0.05)
    gate.in_flight = 10  # requests are piling up
    gate.observe(0.020, time.monotonic())  # one slow turn of the loop
    assert not gate.shedding and gate.admits() is None
    time.sleep(0.06)
    gate.observe(0.020, time.monotonic())  # still behind after more than an interval
    assert gate.shedding and gate.admits() == b"behind"
    gate.observe(0.001, time.monotonic())  # caught up
    assert not gate.shedding and gate.admits() is None


def test_a_late_loop_with_few_requests_in_flight_does_not_shed() -> None:
    """Late for a long while, but with 2 requests in flight the lateness is not theirs (a
    thread of the process holding the GIL): nothing is refused."""
    gate = Gate(100, target=0.005, interval=0.025)
    gate.in_flight = 2
    gate.observe(0.020, time.monotonic())
    time.sleep(0.03)
    gate.observe(0.020, time.monotonic())
    assert gate.shedding and gate.admits() is None
    gate.in_flight = 8
    assert gate.admits() == b"behind"


def test_one_late_probe_does_not_shed() -> None:
    """A single stall (one probe 40 ms late, then on time again) refuses nothing."""
    gate = Gate(100, target=0.005, interval=0.025)
    gate.observe(0.040, time.monotonic())
    assert not gate.shedding
    time.sleep(0.03)
    gate.observe(0.001, time.monotonic())
    assert not gate.shedding


def test_the_cap_on_requests_in_flight_still_holds() -> None:
    gate = Gate(2)
    gate.in_flight = 2
    assert gate.admits() == b"cap"
    gate.in_flight = 1
    assert gate.admits() is None


def test_a_loop_too_busy_to_run_the_probe_sheds() -> None:
    """If the probe itself has not run for several intervals, the loop is stuck: refused
    without waiting for a measurement."""

    async def scenario() -> tuple[bool, bool, float]:
        gate = Gate(100, target=0.005, interval=0.05)
        watching = asyncio.create_task(gate.watch(period=0.005))
        await asyncio.sleep(0.03)
        calm = gate.shedding
        time.sleep(0.25)  # the loop is blocked: the probe is overdue by 4 intervals and more
        blocked = gate.shedding
        await asyncio.sleep(0.03)  # the probe runs again and sees the loop on time
        watching.cancel()
        return calm, blocked, gate.delay

    calm, blocked, delay = asyncio.run(scenario())
    assert not calm and blocked
    assert delay < 0.005
