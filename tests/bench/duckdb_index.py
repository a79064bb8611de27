"""The query index in DuckDB, measured against the SQLite index the ledger uses.

    .venv/bin/pip install duckdb        # for this measurement only; not a project dependency
    .venv/bin/python -m tests.bench.duckdb_index [LEDGER_DIR]

On the 1,000,000-record ledger of tests/bench/test_ledger_bench.py (built under var/bench if
it is not there; LEDGER_DIR to use another), in one run:

- ingest: every frame of the segments read and its index columns taken from the record's
  bytes (``audit.index.entry``, as the indexer does), then inserted in batches of 20,000 into
  a new SQLite index (``LedgerIndex.catch_up``, the code the indexer runs) and into a new
  DuckDB file with the same tables, without secondary indexes (DuckDB prunes by the
  min/max of each row group) and with ART indexes on the columns the pages filter on;
- queries: the first page (101 rows of ts, inst, seq, segment, offset, newest first) of 60
  customer, time-range and outcome queries with the same parameters on each, median and p90.

The bodies a page then reads from the segments cost the same whichever index found them, so
only the index's part is timed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from audit.index import LedgerIndex, entry, index_rows, micros
from audit.segments import Frame, SegmentLog, instances

BATCH = 20_000
QUERIES = 60
CUSTOMERS = 10_000

_SCHEMA = """
CREATE TABLE records (
    inst INTEGER NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL, id TEXT NOT NULL,
    kind TEXT NOT NULL, customer_id TEXT, agent_id TEXT, ruleset TEXT, revision INTEGER,
    segment BIGINT NOT NULL, "offset" BIGINT NOT NULL
);
CREATE TABLE outcomes (
    facet TEXT NOT NULL, value TEXT NOT NULL, ts BIGINT NOT NULL, inst INTEGER NOT NULL,
    seq BIGINT NOT NULL
);
"""
# The columns SQLite's index keeps an index on (its primary keys and secondary indexes).
_ART = """
CREATE INDEX records_key ON records (inst, seq);
CREATE INDEX records_time ON records (ts);
CREATE INDEX records_id ON records (id);
CREATE INDEX records_customer ON records (customer_id);
CREATE INDEX records_agent ON records (agent_id);
CREATE INDEX records_ruleset ON records (ruleset);
CREATE INDEX outcomes_value ON outcomes (facet, value);
"""

PAGE = """SELECT ts, inst, seq, segment, "offset" FROM records WHERE {where}
ORDER BY ts DESC, inst DESC, seq DESC LIMIT 101"""
# SQLite's planner walks the outcome index backwards and stops after 101 rows; DuckDB is
# given the top 101 outcomes first, then their records (its best form of the same page).
OUTCOME_SQLITE = """SELECT r.ts, r.inst, r.seq, r.segment, r."offset"
FROM outcomes o JOIN records r ON r.inst = o.inst AND r.seq = o.seq
WHERE o.facet = ? AND o.value = ? ORDER BY o.ts DESC, o.inst DESC, o.seq DESC LIMIT 101"""
OUTCOME_DUCKDB = """SELECT r.ts, r.inst, r.seq, r.segment, r."offset"
FROM (SELECT ts, inst, seq FROM outcomes WHERE facet = ? AND value = ?
      ORDER BY ts DESC, inst DESC, seq DESC LIMIT 101) o
JOIN records r ON r.inst = o.inst AND r.seq = o.seq
ORDER BY o.ts DESC, o.inst DESC, o.seq DESC"""


def frames(ledger_dir: Path) -> Iterator[tuple[int, Frame]]:
    for inst, name in enumerate(instances(ledger_dir), 1):
        log = SegmentLog(ledger_dir, name, readonly=True)
        try:
            for frame in log.frames(check=False):
                yield inst, frame
        finally:
            log.close()


def read_only(ledger_dir: Path) -> tuple[int, float]:
    """Records and seconds to read the frames and take their index columns, with no index:
    the part of each ingest below that is the same whatever the database."""
    started = time.perf_counter()
    count = 0
    for _, frame in frames(ledger_dir):
        entry(frame)
        count += 1
    return count, time.perf_counter() - started


def ingest_sqlite(ledger_dir: Path, work: Path) -> tuple[int, float, int]:
    """Records indexed, seconds, and the file's bytes: a new SQLite index by ``catch_up``."""
    path = work / "index.db"
    index = LedgerIndex(ledger_dir, path)
    started = time.perf_counter()
    count = 0
    try:
        for name in instances(ledger_dir):
            log = SegmentLog(ledger_dir, name, readonly=True)
            try:
                count += index.catch_up(log, batch=BATCH)
            finally:
                log.close()
        elapsed = time.perf_counter() - started
        index.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        index.close()
    return count, elapsed, path.stat().st_size


def ingest_duckdb(duckdb: Any, ledger_dir: Path, path: Path, art: bool) -> tuple[int, float, int]:
    """Records indexed, seconds, and the file's bytes: the same columns into DuckDB."""
    import numpy as np

    con = duckdb.connect(str(path))
    con.execute(_SCHEMA)
    if art:
        con.execute(_ART)
    started = time.perf_counter()
    count = 0

    def flush(rows: list[tuple[Any, ...]], outs: list[tuple[Any, ...]]) -> None:
        names = ("inst", "seq", "ts", "id", "kind", "customer_id", "agent_id", "ruleset")
        batch = {n: np.array([r[k] for r in rows], dtype=object) for k, n in enumerate(names)}
        batch["revision"] = np.array([r[8] for r in rows], dtype=object)
        batch["segment"] = np.array([r[9] for r in rows], dtype=np.int64)
        batch["offset"] = np.array([r[10] for r in rows], dtype=np.int64)
        for n in ("inst", "seq", "ts"):
            batch[n] = batch[n].astype(np.int64)
        outcomes = {
            n: np.array([o[k] for o in outs], dtype=object)
            for k, n in enumerate(("facet", "value", "ts", "inst", "seq"))
        }
        for n in ("ts", "inst", "seq"):
            outcomes[n] = outcomes[n].astype(np.int64)
        con.execute("BEGIN")
        con.register("batch", batch)
        con.register("batch_outcomes", outcomes)
        con.execute("INSERT INTO records SELECT * FROM batch")
        con.execute("INSERT INTO outcomes SELECT * FROM batch_outcomes")
        con.unregister("batch")
        con.unregister("batch_outcomes")
        con.execute("COMMIT")

    rows: list[tuple[Any, ...]] = []
    outs: list[tuple[Any, ...]] = []
    for inst, frame in frames(ledger_dir):
        record_rows, outcome_rows = index_rows(inst, [frame])  # what SQLite's index holds
        rows += record_rows
        outs += outcome_rows
        if len(rows) >= BATCH:
            flush(rows, outs)
            count += len(rows)
            rows, outs = [], []
    if rows:
        flush(rows, outs)
        count += len(rows)
    elapsed = time.perf_counter() - started
    con.execute("CHECKPOINT")
    con.close()
    return count, elapsed, path.stat().st_size


def queries(seed: int = 3) -> dict[str, list[tuple[Any, ...]]]:
    """The parameters of each query, the same for every index."""
    rng = random.Random(seed)
    customer = [(f"c-{rng.randrange(CUSTOMERS)}",) for _ in range(QUERIES)]
    window = [
        (
            micros(f"2026-02-{rng.randint(1, 20):02d}T00:00:00Z"),
            micros(f"2026-02-{rng.randint(21, 28):02d}T00:00:00Z"),
        )
        for _ in range(QUERIES)
    ]
    outcome = [("offer", "waive-fee")] * QUERIES
    return {"customer": customer, "time-range": window, "outcome": outcome}


def timed(
    runs: dict[str, Callable[[tuple[Any, ...]], list[Any]]], params: list[tuple[Any, ...]]
) -> dict[str, list[float]]:
    """Each query on each index in turn (side by side in time), seconds by index."""
    for run in runs.values():
        run(params[0])  # the first query of a freshly opened file reads its catalogue
    timings: dict[str, list[float]] = {label: [] for label in runs}
    for p in params:
        pages = []
        for label, run in runs.items():
            started = time.perf_counter()
            rows = run(p)
            timings[label].append(time.perf_counter() - started)
            pages.append([tuple(row) for row in rows])
        assert pages[0] and all(page == pages[0] for page in pages), f"indexes disagree on {p}"
    return timings


def runner(conn: Any, text: str) -> Callable[[tuple[Any, ...]], list[Any]]:
    """A first-page query on ``conn`` (a sqlite3 or DuckDB connection): its rows."""

    def run(params: tuple[Any, ...]) -> list[Any]:
        rows: list[Any] = conn.execute(text, params).fetchall()
        return rows

    return run


def sql(name: str, duck: bool) -> str:
    if name == "customer":
        return PAGE.format(where="customer_id = ?")
    if name == "time-range":
        return PAGE.format(where="ts >= ? AND ts < ?")
    return OUTCOME_DUCKDB if duck else OUTCOME_SQLITE


def ms(timings: list[float]) -> str:
    ordered = sorted(timings)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(timings) * 1000:7.2f} ms, p90 {p90 * 1000:7.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ledger_dir", type=Path, nargs="?", help="default: the bench fixture")
    parser.add_argument("--work", type=Path, help="where to build the indexes (a temp dir)")
    args = parser.parse_args(argv)
    try:
        import duckdb
    except ImportError:
        print(
            "DuckDB is not installed, so there is nothing to compare: install it into the "
            "virtualenv for this measurement only (.venv/bin/pip install duckdb)."
        )
        return 0
    if args.ledger_dir is None:
        from tests.bench.test_ledger_bench import million_record_ledger

        args.ledger_dir = million_record_ledger()
    ledger_dir: Path = args.ledger_dir
    work = Path(tempfile.mkdtemp(prefix="duckdb-index-", dir=args.work))
    print(
        f"DuckDB {duckdb.__version__} against SQLite on {ledger_dir} "
        f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    try:
        count, seconds = read_only(ledger_dir)
        print(
            f"read    (no index)    {count:,} records in {seconds:6.1f} s = "
            f"{count / seconds:8,.0f}/s (frames read, index columns taken, nothing stored)",
            flush=True,
        )
        count, seconds, size = ingest_sqlite(ledger_dir, work)
        print(
            f"ingest  sqlite        {count:,} records in {seconds:6.1f} s = "
            f"{count / seconds:8,.0f}/s, {size / 1e6:6.0f} MB",
            flush=True,
        )
        for art in (False, True):
            label = "duckdb+art" if art else "duckdb"
            count, seconds, size = ingest_duckdb(duckdb, ledger_dir, work / f"{label}.db", art)
            print(
                f"ingest  {label:<12}  {count:,} records in {seconds:6.1f} s = "
                f"{count / seconds:8,.0f}/s, {size / 1e6:6.0f} MB",
                flush=True,
            )
        index = LedgerIndex(ledger_dir, work / "index.db")
        cons = {
            label: duckdb.connect(str(work / f"{label}.db"), read_only=True)
            for label in ("duckdb", "duckdb+art")
        }
        try:
            for name, params in queries().items():
                runs = {"sqlite": runner(index.conn, sql(name, duck=False))}
                for label, con in cons.items():
                    runs[label] = runner(con, sql(name, duck=True))
                for label, timings in timed(runs, params).items():
                    print(f"query   {label:<12}  {name:<10}  first page: {ms(timings)}", flush=True)
        finally:
            index.close()
            for con in cons.values():
                con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
