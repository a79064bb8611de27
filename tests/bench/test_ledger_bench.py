"""The ledger: sustained appends to SQLite, append latency at a fixed offered rate, and the
first page of a customer query on a ledger of 1,000,000 records.

Records are real decision records: retention-desk decisions on varied contexts, built by
audit.recording.decision_record exactly as the service builds them (pii masked).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from audit.masking import Masker
from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord, seal
from audit.recording import decision_record
from audit.sqlite import SqliteLedgerStore
from audit.writer import LedgerWriter
from engine import compile_ruleset
from tests.support.live_server import ROOT

pytestmark = pytest.mark.bench

BENCH_DIR = ROOT / "var" / "bench"
MILLION = 1_000_000
CUSTOMERS = 10_000
LAYOUT = "v3"  # bump when the SQLite layout or the record schema changes


def decision_records(count: int, seed: int = 7) -> list[LedgerRecord]:
    """``count`` varied retention-desk decision records, as the service writes them."""
    compiled = compile_ruleset((ROOT / "rulesets" / "retention-desk.yaml").read_text("utf-8"))
    masker = Masker(b"bench-masking-key-0123456789")
    rng = random.Random(seed)
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    out = []
    for k in range(count):
        context = {
            "customer": {
                "tier": rng.choice(["bronze", "silver", "gold", "platinum"]),
                "tenure_months": rng.randint(0, 120),
                "churn_score": round(rng.random(), 3),
                "email": f"customer{k}@example.com",
                "plan": rng.choice(["basic", "standard", "premium"]),
                "monthly_spend": round(rng.uniform(10, 150), 2),
                "past_due_amount": rng.choice([0, 0, 0, 25.5]),
            },
            "interaction": {"channel": "voice", "intent": rng.choice(["cancel", "billing"])},
            "history": {"contacts_7d": rng.randint(0, 6)},
        }
        decision = compiled.evaluate(context, now=now, as_of={"customer": now})
        out.append(
            decision_record(
                decision,
                record_id=f"d-{k}",
                context=context,
                as_of={"customer": now - timedelta(minutes=5)},
                sources={"customer": "crm"},
                customer_id=f"c-{k % CUSTOMERS}",
                agent_id=f"agent-{k % 50}",
                latency_us=90,
                masker=masker,
            )
        )
    return out


@pytest.fixture(scope="module")
def records() -> list[LedgerRecord]:
    return decision_records(2_000)


def test_sustained_appends_to_sqlite(
    benchmark: Any, records: list[LedgerRecord], tmp_path: Path
) -> None:
    """8 producer threads submit 40,000 records as fast as the writer takes them."""
    total = 40_000
    store = SqliteLedgerStore(tmp_path / "ledger.db")
    writer = LedgerWriter(store, max_pending=total)
    futures: list[Any] = []
    lock = threading.Lock()

    def produce(start: int) -> None:
        mine = [
            writer.submit(msgspec.structs.replace(records[k % len(records)], id=f"t-{k}"))
            for k in range(start, total, 8)
        ]
        with lock:
            futures.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in futures:
        f.result()
    elapsed = time.perf_counter() - started
    batches = writer.batches
    writer.close()
    store.close()
    size = len(msgspec.json.encode(records[0]))
    benchmark.extra_info.update(
        {
            "kind": "ledger-throughput",
            "records": total,
            "seconds": elapsed,
            "records_per_s": total / elapsed,
            "batches": batches,
            "record_bytes": size,
            "load_average": os.getloadavg(),
        }
    )
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_append_latency_at_2000_per_second(
    benchmark: Any, records: list[LedgerRecord], tmp_path: Path
) -> None:
    """Open loop: an append every 0.5 ms for 8 s; latency from the scheduled time to durable."""
    rate, seconds = 2_000, 8.0
    store = SqliteLedgerStore(tmp_path / "ledger.db")
    writer = LedgerWriter(store)
    latencies: list[float] = []

    async def run() -> None:
        start = time.perf_counter() + 0.05
        tasks = []

        async def one(k: int, scheduled: float) -> None:
            await writer.append(msgspec.structs.replace(records[k % len(records)], id=f"l-{k}"))
            latencies.append(time.perf_counter() - scheduled)

        for k in range(int(rate * seconds)):
            scheduled = start + k / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(k, scheduled)))
        await asyncio.gather(*tasks)

    asyncio.run(run())
    writer.close()
    store.close()
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    benchmark.extra_info.update(
        {
            "kind": "ledger-latency",
            "rate": rate,
            "appends": len(ordered),
            "p50_ms": pct(50),
            "p99_ms": pct(99),
            "p999_ms": pct(99.9),
            "load_average": os.getloadavg(),
        }
    )
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def million_record_ledger() -> Path:
    """A 1,000,000-record ledger (10,000 customers), built once and kept under var/bench."""
    path = BENCH_DIR / f"ledger-1m-{LAYOUT}.db"
    if path.exists():
        return path
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in BENCH_DIR.glob(partial.name + "*"):
        leftover.unlink()
    templates = decision_records(500, seed=11)
    # Building a fixture, not recording decisions: no fsync per batch.
    store = SqliteLedgerStore(partial, instance="bench", durable=False)
    prev = "sha256:" + "0" * 64
    day = datetime(2026, 1, 1, tzinfo=UTC)
    step = 20_000
    for low in range(0, MILLION, step):
        batch = []
        for k in range(low, low + step):
            template = templates[k % len(templates)]
            record = msgspec.structs.replace(
                template, id=f"d-{k}", customer_id=f"c-{k % CUSTOMERS}"
            )
            at = (day + timedelta(seconds=k * 10)).isoformat().replace("+00:00", "Z")
            placed, body = seal(record, seq=k + 1, recorded_at=at, instance="bench", prev_hash=prev)
            prev = placed.hash
            batch.append((placed, body))
        store.append(batch)
        print(f"ledger fixture: {low + step:,} of {MILLION:,} records", flush=True)
    store.close()
    conn = sqlite3.connect(partial)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    partial.rename(path)
    return path


@pytest.fixture(scope="module")
def million() -> Iterator[Path]:
    yield million_record_ledger()


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("customer", lambda rng: LedgerQuery(customer_id=f"c-{rng.randrange(CUSTOMERS)}")),
        ("outcome", lambda rng: LedgerQuery(outcome="offer:waive-fee")),
        (
            "time-range",
            lambda rng: LedgerQuery(
                since=f"2026-02-{rng.randint(1, 20):02d}T00:00:00Z",
                until=f"2026-02-{rng.randint(21, 28):02d}T00:00:00Z",
            ),
        ),
    ],
)
def test_first_page_of_a_query_on_a_million_records(
    benchmark: Any, million: Path, name: str, query: Any
) -> None:
    reader = LedgerReader(million)
    rng = random.Random(3)
    try:
        count = reader._conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        assert count == MILLION
        timings = []
        for _ in range(60):
            q = query(rng)
            started = time.perf_counter()
            page = reader.page(q)
            timings.append(time.perf_counter() - started)
            assert page.records
        benchmark.extra_info.update(
            {
                "kind": "ledger-query",
                "query": name,
                "records": MILLION,
                "page": 100,
                "median_ms": statistics.median(timings) * 1000,
                "p90_ms": sorted(timings)[int(len(timings) * 0.9)] * 1000,
                "load_average": os.getloadavg(),
            }
        )
        benchmark.group = "ledger"
        benchmark.pedantic(lambda: reader.page(query(rng)), rounds=20, iterations=1)
    finally:
        reader.close()


def test_shipping_to_postgresql(
    benchmark: Any, records: list[LedgerRecord], tmp_path: Path, pg_schema: str
) -> None:
    """50,000 records in the spool, shipped to the real PostgreSQL: records/s."""
    from audit.postgres import PostgresLedgerStore
    from audit.shipper import LedgerShipper
    from tests.support.postgres import URL

    total = 50_000
    spool = tmp_path / "ledger.db"
    store = SqliteLedgerStore(spool, instance="bench")
    writer = LedgerWriter(store, max_pending=total)
    futures = [
        writer.submit(msgspec.structs.replace(records[k % len(records)], id=f"s-{k}"))
        for k in range(total)
    ]
    for f in futures:
        f.result()
    writer.close()
    started = time.perf_counter()
    shipper = LedgerShipper(
        spool, "bench", lambda: PostgresLedgerStore(URL, instance="bench", schema=pg_schema)
    )
    assert shipper.wait_until_shipped(total, timeout=600)
    elapsed = time.perf_counter() - started
    shipper.close()
    store.close()
    benchmark.extra_info.update(
        {
            "kind": "ledger-shipping",
            "records": total,
            "seconds": elapsed,
            "records_per_s": total / elapsed,
            "load_average": os.getloadavg(),
        }
    )
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
