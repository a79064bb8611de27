"""The ledger: sealing a record, sustained appends with the indexer running, the index's lag at
30,000 appends/s offered, append latency at 2,000/s, where an append's microseconds go, first
pages and filtered exports on a ledger of 1,000,000 records, and shipping to PostgreSQL.

Records are real decision records: retention-desk decisions on varied contexts, built by
audit.recording.decision_record exactly as the service builds them (pii masked). Appends go
through ``LedgerWriter`` into a ``SegmentLog`` (one write and one fdatasync per batch) with
the indexer process (``audit.indexer.IndexFollower``) following the log, as the server runs
them. Each figure lands in the benchmark JSON's ``extra_info`` under a ``kind``
(``ledger-seal``, ``ledger-throughput``, ``ledger-index-lag``, ``ledger-latency``,
``ledger-append-budget``, ``ledger-query``, ``ledger-export``, ``ledger-shipping``) for
tests/bench/report.py.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import os
import random
import secrets
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest

from audit.index import LedgerIndex, reindex
from audit.indexer import IndexFollower, lag
from audit.masking import Masker
from audit.query import LedgerQuery, LedgerReader, csv_lines
from audit.record import GENESIS, LedgerRecord, RulesetRef, Sealed, leaf_hash, seal
from audit.recording import decision_record
from audit.replay import replay_range
from audit.segments import HEADER, MAGIC, SegmentLog, segment_name
from audit.writer import LedgerWriter, Pending
from engine import Decision, compile_ruleset
from tests.support.live_server import ROOT

pytestmark = pytest.mark.bench

BENCH_DIR = ROOT / "var" / "bench"
MILLION = 1_000_000
CUSTOMERS = 10_000  # 100 records each in the fixture
AGENTS = 50
RULESETS = 40  # 25,000 records each in the fixture: a ruleset's export is ~25k records
FIXTURE = "ledger-1m-segments-v2"  # bump when the segment layout, index or record schema changes
INSTANCE = "bench"

SEAL_TARGET_US = 5.0
SOURCES = {"customer": "crm"}
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
AS_OF = {"customer": NOW - timedelta(minutes=5)}


@pytest.fixture(scope="module", autouse=True)
def _only_under_make_bench(request: pytest.FixtureRequest) -> None:
    # Module-scoped, so that it runs before the module's fixtures (the 1,000,000-record
    # ledger takes about a minute to build).
    if not request.config.getoption("benchmark_only"):
        pytest.skip("benchmarks run under `make bench` (pytest tests/bench --benchmark-only)")


def decisions(count: int, seed: int = 7) -> Iterator[tuple[int, Decision, LedgerRecord]]:
    """``count`` varied retention-desk decisions and their records, as the service writes them."""
    compiled = compile_ruleset((ROOT / "rulesets" / "retention-desk.yaml").read_text("utf-8"))
    masker = Masker(b"bench-masking-key-0123456789")
    rng = random.Random(seed)
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
        decision = compiled.evaluate(context, now=NOW, as_of={"customer": NOW})
        record = decision_record(
            decision,
            record_id=f"d-{k}",
            context=context,
            as_of=AS_OF,
            sources=SOURCES,
            customer_id=f"c-{k % CUSTOMERS}",
            agent_id=f"agent-{k % AGENTS}",
            latency_us=90,
            masker=masker,
        )
        yield k, decision, record


def decision_records(count: int, seed: int = 7) -> list[LedgerRecord]:
    return [record for _, _, record in decisions(count, seed)]


@pytest.fixture(scope="module")
def records() -> list[LedgerRecord]:
    return decision_records(2_000)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# Figures one test measures and a later one in the same run reads (the batch size the
# sustained run settled on, for the append budget).
MEASURED: dict[str, float] = {}


# -- the previous design's sealing: a measurement baseline, not used by the service ----------
#
# Until the ledger moved to segments, a record was a frozen struct that also stored ``fired``,
# a context value as an object (a field read but not had as {"age_ms":…,"source":…,
# "value":null}), the empty outputs and the missing/stale fields inside ``outputs`` as well,
# and ``hash`` inside the stored bytes. Sealing encoded it with sorted keys, once, with a
# random placeholder for the hash. Copied here so that both are measured in the same run.


class PreviousDesignContextValue(msgspec.Struct, frozen=True, kw_only=True):
    value: Any
    source: str | None = None
    age_ms: int | None = None


class PreviousDesignFiredRule(msgspec.Struct, frozen=True, kw_only=True):
    section: str
    rule: str
    because: str | None = None


class PreviousDesignRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: Literal["decision", "alert", "ack", "ruleset", "shadow", "checkpoint"]
    seq: int = 0
    recorded_at: str = ""
    instance: str = ""
    actor: Any = None
    customer_id: str | None = None
    agent_id: str | None = None
    interaction_id: str | None = None
    ruleset: RulesetRef | None = None
    evaluated_at: str | None = None
    context: dict[str, PreviousDesignContextValue] = {}
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    fired: list[PreviousDesignFiredRule] = []
    missing_fields: list[str] = []
    stale_fields: list[str] = []
    latency_us: int | None = None
    data: dict[str, Any] = {}
    prev_hash: str = ""
    hash: str = ""


_PREVIOUS_DESIGN_ENCODER = msgspec.json.Encoder(order="sorted")
_PREVIOUS_DESIGN_PLACEHOLDER = "sha256:" + secrets.token_hex(32)
_PREVIOUS_DESIGN_FIELD = b'"hash":"' + _PREVIOUS_DESIGN_PLACEHOLDER.encode() + b'"'


def previous_design_seal(
    record: PreviousDesignRecord, *, seq: int, recorded_at: str, instance: str, prev_hash: str
) -> tuple[PreviousDesignRecord, bytes]:
    """The previous design's ``seal``, as it was: one sorted-key encoding with a placeholder
    for the hash, the placeholder replaced for the hashed form and for the stored form."""
    encode = _PREVIOUS_DESIGN_ENCODER.encode
    placed = msgspec.structs.replace(
        record,
        seq=seq,
        recorded_at=recorded_at,
        instance=instance,
        prev_hash=prev_hash,
        hash=_PREVIOUS_DESIGN_PLACEHOLDER,
    )
    encoded = encode(placed)
    if encoded.count(_PREVIOUS_DESIGN_FIELD) != 1:  # pragma: no cover - a guessed placeholder
        body = encode(msgspec.structs.replace(placed, hash=""))
    else:
        body = encoded.replace(_PREVIOUS_DESIGN_FIELD, b'"hash":""')
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return msgspec.structs.replace(placed, hash=digest), encoded.replace(
        _PREVIOUS_DESIGN_PLACEHOLDER.encode(), digest.encode()
    )


_PREVIOUS_DESIGN_RULESET_KEYS = ("ruleset", "revision", "digest", "evaluated_at")


def previous_design_record(decision: Decision, record: LedgerRecord) -> PreviousDesignRecord:
    """The record the previous design wrote for ``decision``: ``record``'s values (masked as
    they are) in the previous schema."""
    context = {}
    for path in decision.read_paths:
        had = record.context.get(path)
        if had is not None:
            context[path] = PreviousDesignContextValue(
                value=had.value, source=had.source, age_ms=had.age_ms
            )
        else:  # a field read but not had was stored as a null value with its source and age
            prefix = path.split(".", 1)[0]
            when = AS_OF.get(prefix)
            context[path] = PreviousDesignContextValue(
                value=None,
                source=SOURCES.get(prefix),
                age_ms=None if when is None else int((NOW - when).total_seconds() * 1000),
            )
    rendered = decision.to_dict()
    outputs = {
        key: record.outputs.get(key, value)
        for key, value in rendered.items()
        if key not in _PREVIOUS_DESIGN_RULESET_KEYS
    }
    return PreviousDesignRecord(
        id=record.id,
        kind=record.kind,
        customer_id=record.customer_id,
        agent_id=record.agent_id,
        ruleset=record.ruleset,
        evaluated_at=record.evaluated_at,
        context=context,
        inputs=record.inputs,
        outputs=outputs,
        fired=[
            PreviousDesignFiredRule(section=f.section, rule=f.rule, because=f.because)
            for f in record.fired
        ],
        missing_fields=record.missing_fields,
        stale_fields=record.stale_fields,
        latency_us=record.latency_us,
    )


# -- sealing ---------------------------------------------------------------------------------


def test_sealing_a_decision_record_against_the_previous_design(benchmark: Any) -> None:
    """Encode + hash of one real decision record, this design's seal and the previous one's
    interleaved in the same run; median µs per record and bytes per record for each."""
    pairs = [(record, previous_design_record(d, record)) for _, d, record in decisions(2_000)]
    at, prev = "2026-11-22T10:00:00.123456Z", GENESIS
    clock = time.perf_counter_ns
    now_ns: list[float] = []
    before_ns: list[float] = []
    for _ in range(15):
        for seq, (record, previous) in enumerate(pairs, 1):
            started = clock()
            seal(record, seq=seq, recorded_at=at, instance=INSTANCE, prev_hash=prev)
            middle = clock()
            previous_design_seal(
                previous, seq=seq, recorded_at=at, instance=INSTANCE, prev_hash=prev
            )
            now_ns.append(middle - started)
            before_ns.append(clock() - middle)
    overhead = statistics.median(clock() - clock() for _ in range(10_000))
    sizes = [
        len(seal(r, seq=1, recorded_at=at, instance=INSTANCE, prev_hash=prev).body)
        for r, _ in pairs
    ]
    previous_sizes = [
        len(previous_design_seal(p, seq=1, recorded_at=at, instance=INSTANCE, prev_hash=prev)[1])
        for _, p in pairs
    ]
    seal_us = (statistics.median(now_ns) - overhead) / 1000
    previous_us = (statistics.median(before_ns) - overhead) / 1000
    benchmark.extra_info.update(
        {
            "kind": "ledger-seal",
            "records": len(pairs),
            "rounds": 15,
            "seal_us": seal_us,
            "seal_mean_us": (statistics.fmean(now_ns) - overhead) / 1000,
            "previous_seal_us": previous_us,
            "previous_seal_mean_us": (statistics.fmean(before_ns) - overhead) / 1000,
            "record_bytes": statistics.fmean(sizes),
            "record_bytes_median": statistics.median(sizes),
            "previous_record_bytes": statistics.fmean(previous_sizes),
            "previous_record_bytes_median": statistics.median(previous_sizes),
            "target_us": SEAL_TARGET_US,
            "load_average": load_average(),
        }
    )
    print(
        f"\nseal: {seal_us:.2f} µs/record ({statistics.fmean(sizes):,.0f} B) against the "
        f"previous design's {previous_us:.2f} µs ({statistics.fmean(previous_sizes):,.0f} B)"
    )
    benchmark.group = "ledger-seal"
    cycle = itertools.count()

    def one() -> None:
        k = next(cycle)
        seal(pairs[k % len(pairs)][0], seq=k + 1, recorded_at=at, instance=INSTANCE, prev_hash=prev)

    benchmark.pedantic(one, rounds=20_000, iterations=1, warmup_rounds=2_000)


# -- appends with the indexer running ------------------------------------------------------


class LagSampler:
    """``audit.indexer.lag`` every ``every`` seconds on a thread, as /metrics reads it."""

    def __init__(self, ledger_dir: Path, writer: LedgerWriter, every: float = 0.1) -> None:
        self.ledger_dir, self.writer, self.every = ledger_dir, writer, every
        self.samples: list[tuple[float, int, float]] = []  # (at, records behind, seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        store = self.writer.store
        assert isinstance(store, SegmentLog)
        while not self._stop.wait(self.every):
            behind, seconds = lag(self.ledger_dir, store, self.writer.head[0])
            self.samples.append((time.perf_counter(), behind, seconds))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def series(self, since: float) -> list[tuple[float, int, float]]:
        """The samples as (seconds since ``since``, records behind, seconds behind)."""
        return [(round(at - since, 2), n, round(lag_s, 3)) for at, n, lag_s in self.samples]

    @property
    def max_records(self) -> int:
        return max((s[1] for s in self.samples), default=0)

    @property
    def max_seconds(self) -> float:
        return max((s[2] for s in self.samples), default=0.0)


def indexer_cpu_seconds() -> float:
    """CPU seconds used so far by this process's indexer processes (0 where /proc is not)."""
    total = 0.0
    tasks = Path(f"/proc/{os.getpid()}/task")
    if not tasks.is_dir():
        return total
    for children in tasks.glob("*/children"):
        for pid in children.read_text().split():
            try:
                if b"audit.indexer" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue  # it exited meanwhile
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class GcPauses:
    """The garbage collector's pauses while measuring, with what the harness built before
    frozen (``gc.freeze``): the test's fixtures and pytest's own objects would otherwise be
    walked by every full collection, a 30-50 ms stall of this process that is not the
    ledger's."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)
        gc.unfreeze()

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    @property
    def full(self) -> int:
        return sum(1 for generation, _ in self.pauses if generation == 2)

    @property
    def longest_ms(self) -> float:
        return max((seconds for _, seconds in self.pauses), default=0.0) * 1000


def start_indexer(ledger_dir: Path, writer: LedgerWriter) -> IndexFollower:
    """The indexer process following ``writer``'s log, as the server starts it; returns once
    the process has opened the index."""
    follower = IndexFollower(ledger_dir, INSTANCE)
    writer.on_commit(follower.notify)
    deadline = time.monotonic() + 30
    while not (ledger_dir / "index.db").exists():
        assert time.monotonic() < deadline, "the indexer process did not start"
        time.sleep(0.02)
    time.sleep(0.2)
    return follower


def wait_until_indexed(ledger_dir: Path, log: SegmentLog, head: int, timeout: float = 120) -> float:
    """Seconds until the index holds every record up to ``head``."""
    started = time.perf_counter()
    while lag(ledger_dir, log, head)[0]:
        assert time.perf_counter() - started < timeout, "the index did not catch up"
        time.sleep(0.01)
    return time.perf_counter() - started


def body_bytes(log: SegmentLog, records: int) -> float:
    """Mean stored bytes of a record (its body, without the frame's header)."""
    files = sum((log.directory / segment_name(s)).stat().st_size for s in log.segments())
    return (files - len(MAGIC) * len(log.segments())) / records - HEADER.size


def run_producers(produce: Callable[[int], list[Pending]], producers: int) -> tuple[float, float]:
    """Run ``produce(n)`` for n in 0..producers-1, each on a thread, and wait until every record
    they submitted is durable; return the CPU seconds this process and the indexer spent."""
    cpu, indexer_cpu = time.process_time(), indexer_cpu_seconds()
    pendings: list[Pending] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        mine = produce(n)
        with lock:
            pendings.extend(mine)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in pendings:
        p.result()
    return time.process_time() - cpu, indexer_cpu_seconds() - indexer_cpu


SUSTAINED_RECORDS = 120_000  # about 4 s at 30,000/s: the index's lag has time to build up


def test_sustained_appends_with_the_indexer_running(
    benchmark: Any, records: list[LedgerRecord], tmp_path: Path
) -> None:
    """8 producer threads submit 120,000 records as fast as the writer takes them, the indexer
    process following the log; the index's lag sampled every 100 ms."""
    total = SUSTAINED_RECORDS
    log = SegmentLog(tmp_path, INSTANCE)
    writer = LedgerWriter(log, max_pending=total)
    follower = start_indexer(tmp_path, writer)

    def produce(start: int) -> list[Pending]:
        return [
            writer.submit(msgspec.structs.replace(records[k % len(records)], id=f"t-{k}"))
            for k in range(start, total, 8)
        ]

    sampler = LagSampler(tmp_path, writer)
    started = time.perf_counter()
    cpu, indexer_cpu = run_producers(produce, 8)
    elapsed = time.perf_counter() - started
    catch_up = wait_until_indexed(tmp_path, log, writer.head[0])
    sampler.stop()
    batches = writer.batches
    writer.close()
    follower.close()
    index = LedgerIndex(tmp_path)
    try:
        indexed = index.conn.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        index.close()
    assert indexed == total
    MEASURED["batch"] = total / batches
    MEASURED["append_us"] = elapsed / total * 1e6
    benchmark.extra_info.update(
        {
            "kind": "ledger-throughput",
            "records": total,
            "seconds": elapsed,
            "records_per_s": total / elapsed,
            "batches": batches,
            "record_bytes": round(body_bytes(log, total)),
            "producers": 8,
            "indexer": "process",
            "lag_samples": len(sampler.samples),
            "lag_max_records": sampler.max_records,
            "lag_max_s": sampler.max_seconds,
            "catch_up_s": catch_up,
            "writer_process_cpu": cpu / elapsed,
            "indexer_cpu": indexer_cpu / elapsed,
            "lag_series": sampler.series(started),
            "load_average": load_average(),
        }
    )
    log.close()
    print(
        f"\nsustained: {total / elapsed:,.0f} records/s, {total / batches:,.0f} per batch; index "
        f"lag at most {sampler.max_records:,} records / {sampler.max_seconds:.2f} s "
        f"({len(sampler.samples)} samples), caught up {catch_up:.2f} s after the last commit; "
        f"CPU: this process {cpu / elapsed:.0%}, the indexer {indexer_cpu / elapsed:.0%} "
        f"(load average {os.getloadavg()[0]:.2f})"
    )
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


LAG_RATE, LAG_SECONDS = 30_000, 8.0


def test_index_lag_at_30000_per_second(
    benchmark: Any, records: list[LedgerRecord], tmp_path: Path
) -> None:
    """8 producer threads offer 30,000 records/s between them for 8 s, on a fixed schedule
    (open loop), the indexer process following the log: whether the index keeps up at the
    target rate, not only over a burst. Its lag sampled every 100 ms."""
    rate, seconds, producers = LAG_RATE, LAG_SECONDS, 8
    total = int(rate * seconds)
    log = SegmentLog(tmp_path, INSTANCE)
    writer = LedgerWriter(log)
    follower = start_indexer(tmp_path, writer)
    start = time.perf_counter() + 0.1

    def produce(first: int) -> list[Pending]:
        mine = []
        k = first
        while k < total:
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.perf_counter()
            while k < total and start + k / rate <= now:  # every record of ours now due
                mine.append(
                    writer.submit(msgspec.structs.replace(records[k % len(records)], id=f"p-{k}"))
                )
                k += producers
        return mine

    sampler = LagSampler(tmp_path, writer)
    cpu, indexer_cpu = run_producers(produce, producers)
    elapsed = time.perf_counter() - start
    head = writer.head[0]
    behind_at_end = lag(tmp_path, log, head)
    catch_up = wait_until_indexed(tmp_path, log, head)
    sampler.stop()
    writer.close()
    follower.close()
    log.close()
    late = [s for s in sampler.samples if s[0] >= start + seconds / 2]
    benchmark.extra_info.update(
        {
            "kind": "ledger-index-lag",
            "rate": rate,
            "seconds": seconds,
            "records": total,
            "records_per_s": total / elapsed,
            "producers": producers,
            "lag_samples": len(sampler.samples),
            "lag_max_records": sampler.max_records,
            "lag_max_s": sampler.max_seconds,
            "lag_max_s_second_half": max((s[2] for s in late), default=0.0),
            "lag_at_end_records": behind_at_end[0],
            "lag_at_end_s": behind_at_end[1],
            "catch_up_s": catch_up,
            "writer_process_cpu": cpu / elapsed,
            "indexer_cpu": indexer_cpu / elapsed,
            "lag_series": sampler.series(start),
            "load_average": load_average(),
        }
    )
    print(
        f"\nindex lag at {rate:,}/s offered ({total / elapsed:,.0f}/s appended): at most "
        f"{sampler.max_records:,} records / {sampler.max_seconds:.2f} s "
        f"({len(sampler.samples)} samples; {behind_at_end[1]:.2f} s at the end), caught up "
        f"{catch_up:.2f} s after; CPU: this process {cpu / elapsed:.0%}, the indexer "
        f"{indexer_cpu / elapsed:.0%} (load average {os.getloadavg()[0]:.2f})"
    )
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_append_latency_at_2000_per_second(
    benchmark: Any, records: list[LedgerRecord], tmp_path: Path
) -> None:
    """Open loop: an append every 0.5 ms for 8 s, the indexer process following the log;
    latency from the scheduled time to durable (the harness's objects frozen, see GcPauses).

    The sends are timed by a thread that sleeps with sub-millisecond precision and hands each
    append to the event loop. The loop cannot time them itself: its epoll wait is rounded up to
    whole milliseconds, which sent appends a median 0.42 ms after their time (measured), a
    delay of the harness and not of the ledger."""
    rate, seconds = 2_000, 8.0
    log = SegmentLog(tmp_path, INSTANCE)
    writer = LedgerWriter(log)
    follower = start_indexer(tmp_path, writer)
    sampler = LagSampler(tmp_path, writer)
    latencies: list[float] = []
    dispatch: list[float] = []  # how late the loop started each append (the harness's share)
    count = int(rate * seconds)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def one(k: int, scheduled: float) -> None:
            dispatch.append(time.perf_counter() - scheduled)
            await writer.append(msgspec.structs.replace(records[k % len(records)], id=f"l-{k}"))
            latencies.append(time.perf_counter() - scheduled)
            if len(latencies) == count:
                finished.set()

        def start(k: int, scheduled: float) -> None:
            task = loop.create_task(one(k, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def sender() -> None:
            first = time.perf_counter() + 0.05
            for k in range(count):
                scheduled = first + k / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                loop.call_soon_threadsafe(start, k, scheduled)

        threading.Thread(target=sender, name="sender", daemon=True).start()
        await finished.wait()

    with GcPauses() as pauses:
        cpu, indexer_cpu = time.process_time(), indexer_cpu_seconds()
        asyncio.run(run())
        cpu, indexer_cpu = time.process_time() - cpu, indexer_cpu_seconds() - indexer_cpu
    sampler.stop()
    batches = writer.batches
    writer.close()
    follower.close()
    log.close()
    ordered = sorted(latencies)
    benchmark.extra_info.update(
        {
            "kind": "ledger-latency",
            "rate": rate,
            "seconds": seconds,
            "appends": len(ordered),
            "batches": batches,
            "indexer": "process",
            "p50_ms": percentile(ordered, 50) * 1000,
            "p99_ms": percentile(ordered, 99) * 1000,
            "p999_ms": percentile(ordered, 99.9) * 1000,
            "max_ms": ordered[-1] * 1000,
            "dispatch_p50_ms": percentile(sorted(dispatch), 50) * 1000,
            "lag_max_records": sampler.max_records,
            "lag_max_s": sampler.max_seconds,
            "writer_process_cpu": cpu / seconds,
            "indexer_cpu": indexer_cpu / seconds,
            "gc_full_collections": pauses.full,
            "gc_longest_pause_ms": pauses.longest_ms,
            "load_average": load_average(),
        }
    )
    MEASURED["latency_batch"] = len(ordered) / batches
    info = benchmark.extra_info
    print(
        f"\nlatency at {rate:,}/s: p50 {info['p50_ms']:.3f} ms, p99 {info['p99_ms']:.3f} ms, "
        f"p99.9 {info['p999_ms']:.3f} ms, max {info['max_ms']:.2f} ms (sent a median "
        f"{info['dispatch_p50_ms']:.3f} ms late); "
        f"{len(ordered) / batches:.2f} records per batch; CPU: this process "
        f"{cpu / seconds:.0%}, the indexer {indexer_cpu / seconds:.0%}; longest GC pause "
        f"{pauses.longest_ms:.1f} ms ({pauses.full} full) (load average {os.getloadavg()[0]:.2f})"
    )
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


# -- where an append's microseconds go ----------------------------------------------------


def _batch_costs(tmp_path: Path, sealed: list[Sealed], size: int, rounds: int) -> dict[str, float]:
    """Per record: framing and one write of a ``size``-record batch, its fdatasync, and the
    whole of ``SegmentLog.append`` (durable) for the same batch size."""
    pack = HEADER.pack
    path = tmp_path / f"frames-{size}.seg"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    write: list[float] = []
    sync: list[float] = []
    appended: list[float] = []
    log = SegmentLog(tmp_path / f"log-{size}", INSTANCE)
    seq = 0
    clock = time.perf_counter
    try:
        for r in range(rounds):
            low = (r * size) % max(1, len(sealed) - size)
            batch = sealed[low : low + size]
            started = clock()
            data = b"".join([pack(len(s.body), s.leaf) + s.body for s in batch])
            os.write(fd, data)
            middle = clock()
            os.fdatasync(fd)
            write.append(middle - started)
            sync.append(clock() - middle)
            chained = []
            for s in batch:  # the same bodies, numbered to follow the log's head
                seq += 1
                chained.append(Sealed(msgspec.structs.replace(s.record, seq=seq), s.body, s.leaf))
            started = clock()
            log.append(chained)
            appended.append(clock() - started)
    finally:
        os.close(fd)
        log.close()
    return {
        "batch": size,
        "write_us": statistics.median(write) / size * 1e6,
        "fdatasync_us": statistics.median(sync) / size * 1e6,
        "fdatasync_ms_per_batch": statistics.median(sync) * 1000,
        "segment_append_us": statistics.median(appended) / size * 1e6,
    }


def test_where_the_microseconds_of_an_append_go(
    benchmark: Any, records: list[LedgerRecord], tmp_path: Path
) -> None:
    """Encode, hash, frame + write and fdatasync per record at the batch size of the
    sustained run (also at one record per batch and at the latency run's batch size), and the
    index's cost per record (``catch_up`` time / records)."""
    at = "2026-11-22T10:00:00.123456Z"
    encoder = msgspec.json.Encoder()
    clock = time.perf_counter_ns
    replace_ns: list[int] = []
    encode_ns: list[int] = []
    hash_ns: list[int] = []
    for _ in range(10):
        for seq, record in enumerate(records, 1):
            t0 = clock()
            placed = msgspec.structs.replace(
                record, seq=seq, recorded_at=at, instance=INSTANCE, prev_hash=GENESIS, hash=""
            )
            t1 = clock()
            body = encoder.encode(placed)
            t2 = clock()
            placed.hash = "sha256:" + leaf_hash(body).hex()
            t3 = clock()
            replace_ns.append(t1 - t0)
            encode_ns.append(t2 - t1)
            hash_ns.append(t3 - t2)
    overhead = statistics.median(clock() - clock() for _ in range(10_000))

    def us(samples: list[int]) -> float:
        return max(0.0, (statistics.median(samples) - overhead) / 1000)

    prev = GENESIS
    sealed = []
    for seq, record in enumerate(records, 1):
        s = seal(record, seq=seq, recorded_at=at, instance=INSTANCE, prev_hash=prev)
        prev = s.record.hash
        sealed.append(s)
    typical = round(MEASURED.get("batch", 500))
    sizes = {1, round(MEASURED.get("latency_batch", 2)), typical}
    by_batch = [_batch_costs(tmp_path, sealed, size, 60) for size in sorted(sizes)]

    # The index: catch_up of a 40,000-record log, as the indexer process runs it.
    indexed_dir = tmp_path / "indexed"
    log = SegmentLog(indexed_dir, INSTANCE, durable=False)
    prev, seq = GENESIS, 0
    for _ in range(0, 40_000, len(records)):
        batch = []
        for record in records:
            seq += 1
            s = seal(record, seq=seq, recorded_at=at, instance=INSTANCE, prev_hash=prev)
            prev = s.record.hash
            batch.append(s)
        log.append(batch)
    log.close()
    reading = SegmentLog(indexed_dir, INSTANCE, readonly=True)
    index = LedgerIndex(indexed_dir)
    index.write_unsynced(INSTANCE)  # as the indexer process writes
    started = time.perf_counter()
    count = index.catch_up(reading)
    index_seconds = time.perf_counter() - started
    index.close()
    reading.close()

    typical_costs = next(c for c in by_batch if c["batch"] == typical)
    parts = {
        "replace_us": us(replace_ns),
        "encode_us": us(encode_ns),
        "hash_us": us(hash_ns),
        "write_us": typical_costs["write_us"],
        "fdatasync_us": typical_costs["fdatasync_us"],
    }
    benchmark.extra_info.update(
        {
            "kind": "ledger-append-budget",
            "batch": typical,
            **parts,
            "segment_append_us": typical_costs["segment_append_us"],
            "commit_path_us": sum(parts.values()),
            "index_us": index_seconds / count * 1e6,
            "index_records": count,
            "sustained_append_us": MEASURED.get("append_us"),
            "batches": by_batch,
            "load_average": load_average(),
        }
    )
    print(
        "\nappend budget at "
        + f"{typical} records per batch: "
        + ", ".join(f"{k[:-3]} {v:.2f} µs" for k, v in parts.items())
        + f"; index {index_seconds / count * 1e6:.2f} µs per record (another process)"
    )
    for c in by_batch:
        print(
            f"  batch {c['batch']}: write {c['write_us']:.2f} µs/record, fdatasync "
            f"{c['fdatasync_ms_per_batch']:.3f} ms/batch = {c['fdatasync_us']:.2f} µs/record, "
            f"SegmentLog.append {c['segment_append_us']:.2f} µs/record"
        )
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


# -- a ledger of 1,000,000 records -------------------------------------------------------------


def fixture_time(k: int) -> str:
    """``recorded_at`` of the fixture's record ``k``: one every 10 s from 2026-01-01."""
    moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=k * 10)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def million_record_ledger() -> Path:
    """A 1,000,000-record ledger directory (10,000 customers, 50 agents, 40 rulesets) with its
    index, built once and kept under var/bench."""
    path = BENCH_DIR / FIXTURE
    if (path / "index.db").exists():
        return path
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    partial = BENCH_DIR / f"{FIXTURE}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    templates = decision_records(500, seed=11)
    digest = templates[0].ruleset.digest if templates[0].ruleset is not None else ""
    rulesets = [
        RulesetRef(name=f"ruleset-{n:02d}", revision=1 + n % 3, digest=digest)
        for n in range(RULESETS)
    ]
    # Building a fixture, not recording decisions: no fdatasync per batch.
    log = SegmentLog(partial, INSTANCE, durable=False)
    prev = GENESIS
    step = 20_000
    replace = msgspec.structs.replace
    started = time.perf_counter()
    for low in range(0, MILLION, step):
        batch = []
        for k in range(low, low + step):
            record = replace(
                templates[k % len(templates)],
                id=f"d-{k}",
                customer_id=f"c-{k % CUSTOMERS}",
                agent_id=f"agent-{k % AGENTS}",
                ruleset=rulesets[k % RULESETS],
            )
            s = seal(
                record, seq=k + 1, recorded_at=fixture_time(k), instance=INSTANCE, prev_hash=prev
            )
            prev = s.record.hash
            batch.append(s)
        log.append(batch)
        if (low + step) % 200_000 == 0:
            print(f"ledger fixture: {low + step:,} of {MILLION:,} records written", flush=True)
    log.close()
    written = time.perf_counter() - started

    def progress(done: int, read: int, total: int) -> None:
        if done % 200_000 == 0 and read < total:
            print(f"ledger fixture: {done:,} records indexed ({read / total:.0%})", flush=True)

    started = time.perf_counter()
    counts = reindex(partial, progress)
    print(
        f"ledger fixture: written in {written:.1f} s, indexed in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    assert counts == {INSTANCE: MILLION}
    partial.rename(path)
    return path


@pytest.fixture(scope="module")
def million() -> Iterator[Path]:
    yield million_record_ledger()


QUERIES: list[tuple[str, Callable[[random.Random], LedgerQuery]]] = [
    ("customer", lambda rng: LedgerQuery(customer_id=f"c-{rng.randrange(CUSTOMERS)}")),
    ("outcome", lambda rng: LedgerQuery(outcome="offer:waive-fee")),
    (
        "time-range",
        lambda rng: LedgerQuery(
            since=f"2026-02-{rng.randint(1, 20):02d}T00:00:00Z",
            until=f"2026-02-{rng.randint(21, 28):02d}T00:00:00Z",
        ),
    ),
    ("ruleset", lambda rng: LedgerQuery(ruleset=f"ruleset-{rng.randrange(RULESETS):02d}")),
    ("agent", lambda rng: LedgerQuery(agent_id=f"agent-{rng.randrange(AGENTS)}")),
]
QUERY_TARGETS_MS = {"customer": 20.0, "time-range": 50.0}


@pytest.mark.parametrize(("name", "query"), QUERIES, ids=[name for name, _ in QUERIES])
def test_first_page_of_a_query_on_a_million_records(
    benchmark: Any, million: Path, name: str, query: Callable[[random.Random], LedgerQuery]
) -> None:
    """The first page (100 records, newest first) of 60 queries of one filter."""
    reader = LedgerReader(million)
    rng = random.Random(3)
    try:
        count = reader.index.conn.execute("SELECT count(*) FROM records").fetchone()[0]
        assert count == MILLION
        timings = []
        for _ in range(60):
            q = query(rng)
            started = time.perf_counter()
            page = reader.page(q)
            timings.append(time.perf_counter() - started)
            assert len(page.records) == 100
        info = {
            "kind": "ledger-query",
            "query": name,
            "records": MILLION,
            "page": 100,
            "median_ms": statistics.median(timings) * 1000,
            "p90_ms": percentile(sorted(timings), 90) * 1000,
            "load_average": load_average(),
        }
        if name in QUERY_TARGETS_MS:
            info["target_ms"] = QUERY_TARGETS_MS[name]
        benchmark.extra_info.update(info)
        print(
            f"\nfirst page, {name}: median {info['median_ms']:.2f} ms, p90 {info['p90_ms']:.2f} ms"
        )
        benchmark.group = "ledger-query"
        benchmark.pedantic(lambda: reader.page(query(rng)), rounds=20, iterations=1)
    finally:
        reader.close()


EXPORT_TARGET = 20_000  # records/s


@pytest.mark.parametrize("via", ["bodies", "csv"])
@pytest.mark.parametrize("by", ["ruleset", "customer"])
def test_filtered_export_on_a_million_records(
    benchmark: Any, million: Path, by: str, via: str
) -> None:
    """A filtered export streamed to the end: one ruleset's ~25,000 records, or 50 customers'
    100 each one after another; as JSONL (the stored bytes, ``LedgerReader.bodies``) or as
    CSV (``iterate`` + ``csv_lines``)."""
    reader = LedgerReader(million)
    queries = (
        [LedgerQuery(ruleset="ruleset-07")]
        if by == "ruleset"
        else [LedgerQuery(customer_id=f"c-{n * 197}") for n in range(50)]
    )
    try:
        started = time.perf_counter()
        count = 0
        size = 0
        for q in queries:
            if via == "bodies":
                for body in reader.bodies(q):
                    count += 1
                    size += len(body) + 1
            else:
                for line in csv_lines(reader.iterate(q)):
                    count += 1
                    size += len(line)
                count -= 1  # the header
        elapsed = time.perf_counter() - started
    finally:
        reader.close()
    expected = MILLION // RULESETS if by == "ruleset" else 50 * (MILLION // CUSTOMERS)
    assert count == expected
    benchmark.extra_info.update(
        {
            "kind": "ledger-export",
            "filter": by,
            "via": via,
            "records": count,
            "bytes": size,
            "seconds": elapsed,
            "records_per_s": count / elapsed,
            "target_per_s": EXPORT_TARGET,
            "load_average": load_average(),
        }
    )
    print(
        f"\nexport by {by} via {via}: {count:,} records in {elapsed:.2f} s "
        f"= {count / elapsed:,.0f}/s"
    )
    benchmark.group = "ledger-export"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


# -- shipping ------------------------------------------------------------------------------------


REPLAY_RECORDS = 200_000
REPLAY_FIXTURE = "ledger-200k-replay-v1"  # bump when the segment layout or record changes
REPLAY_TARGET_S = 30.0


def replay_ledger() -> Path:
    """200,000 retention-desk decisions, as the service records them, one every 3 s over a
    week, with their index; built once and kept under var/bench."""
    path = BENCH_DIR / REPLAY_FIXTURE
    if (path / "index.db").exists():
        return path
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    partial = BENCH_DIR / f"{REPLAY_FIXTURE}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    templates = decision_records(2_000, seed=13)
    log = SegmentLog(partial, INSTANCE, durable=False)  # a fixture: no fdatasync per batch
    prev = GENESIS
    start = datetime(2026, 11, 25, tzinfo=UTC)
    for low in range(0, REPLAY_RECORDS, 20_000):
        batch = []
        for k in range(low, low + 20_000):
            at = (start + timedelta(seconds=3 * k)).isoformat(timespec="microseconds")
            s = seal(
                msgspec.structs.replace(templates[k % len(templates)], id=f"r-{k}"),
                seq=k + 1,
                recorded_at=at.replace("+00:00", "Z"),
                instance=INSTANCE,
                prev_hash=prev,
            )
            prev = s.record.hash
            batch.append(s)
        log.append(batch)
    log.close()
    assert reindex(partial) == {INSTANCE: REPLAY_RECORDS}
    partial.rename(path)
    return path


def test_replaying_200000_decisions(benchmark: Any) -> None:
    """A candidate revision of retention-desk (one threshold changed) replayed over 200,000
    recorded decisions, as ``frontline replay --since`` and ``POST /v1/replays`` run it, with
    progress reported along the way."""
    ledger_dir = replay_ledger()
    text = (ROOT / "rulesets" / "retention-desk.yaml").read_text("utf-8")
    changed = text.replace("history.contacts_7d >= 2", "history.contacts_7d >= 3")
    assert changed != text, "the candidate must differ from the recorded revision"
    candidate = compile_ruleset(changed)
    calls: list[tuple[float, int, int | None]] = []
    started = time.perf_counter()

    def progress(done: int, total: int | None) -> None:
        calls.append((time.perf_counter() - started, done, total))

    reader = LedgerReader(ledger_dir)
    try:
        report = replay_range(reader, candidate, since="2026-11-01T00:00:00Z", progress=progress)
    finally:
        reader.close()
    seconds = time.perf_counter() - started
    first_progress = min((at for at, done, _ in calls if done > 0), default=None)
    benchmark.extra_info.update(
        {
            "kind": "ledger-replay",
            "records": REPLAY_RECORDS,
            "replayed": report.replayed,
            "changed": report.changed,
            "skipped": report.skipped,
            "seconds": seconds,
            "records_per_s": REPLAY_RECORDS / seconds,
            "progress_calls": len(calls),
            "first_progress_s": first_progress,
            "load_average": load_average(),
        }
    )
    print(
        f"\nreplay: {REPLAY_RECORDS:,} decisions in {seconds:.1f} s "
        f"({REPLAY_RECORDS / seconds:,.0f}/s), {report.changed:,} would change; {len(calls)} "
        f"progress reports, the first after {first_progress or 0:.2f} s"
    )
    assert report.replayed == REPLAY_RECORDS and report.changed > 0 and not report.skipped
    assert calls and calls[-1][1] == calls[-1][2] == REPLAY_RECORDS
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_shipping_to_postgresql(
    benchmark: Any, records: list[LedgerRecord], tmp_path: Path, pg_schema: str
) -> None:
    """50,000 records in the segments, shipped to the real PostgreSQL: records/s."""
    from audit.postgres import PostgresLedgerStore
    from audit.shipper import LedgerShipper
    from tests.support.postgres import URL

    total = 50_000
    log = SegmentLog(tmp_path, INSTANCE)
    writer = LedgerWriter(log, max_pending=total)
    pendings = [
        writer.submit(msgspec.structs.replace(records[k % len(records)], id=f"s-{k}"))
        for k in range(total)
    ]
    for p in pendings:
        p.result()
    writer.close()
    started = time.perf_counter()
    shipper = LedgerShipper(
        tmp_path, INSTANCE, lambda: PostgresLedgerStore(URL, instance=INSTANCE, schema=pg_schema)
    )
    assert shipper.wait_until_shipped(total, timeout=600)
    elapsed = time.perf_counter() - started
    batches = shipper.batches
    shipper.close()
    log.close()
    target = PostgresLedgerStore(URL, instance=INSTANCE, schema=pg_schema)
    try:
        assert target.count() == total
    finally:
        target.close()
    benchmark.extra_info.update(
        {
            "kind": "ledger-shipping",
            "records": total,
            "seconds": elapsed,
            "records_per_s": total / elapsed,
            "batches": batches,
            "load_average": load_average(),
        }
    )
    print(f"\nshipping: {total:,} records in {elapsed:.2f} s = {total / elapsed:,.0f}/s")
    benchmark.group = "ledger"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
