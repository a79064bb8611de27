"""A child process for the crash test: appends from 4 threads and 4 asyncio tasks, printing
each record's id the moment its append has returned (durable), until it is killed.

    python -m tests.support.ledger_child LEDGER_PATH PREFIX
"""

from __future__ import annotations

import asyncio
import sys
import threading
from itertools import count

from audit.record import LedgerRecord, RulesetRef
from audit.sqlite import SqliteLedgerStore
from audit.writer import LedgerWriter

REF = RulesetRef(name="retention-desk", revision=1, digest="sha256:00")


def record(record_id: str) -> LedgerRecord:
    return LedgerRecord(
        id=record_id,
        kind="decision",
        customer_id=f"c-{hash(record_id) % 100}",
        agent_id="agent-7",
        ruleset=REF,
        outputs={"eligible": [{"rule": "fee-waiver", "offer": "waive-fee"}], "alerts": []},
    )


def main() -> None:
    path, prefix = sys.argv[1], sys.argv[2]
    writer = LedgerWriter(SqliteLedgerStore(path), max_batch=64)
    out_lock = threading.Lock()
    numbers = count()

    def acknowledged(record_id: str) -> None:
        with out_lock:
            sys.stdout.write(record_id + "\n")
            sys.stdout.flush()

    def thread_appender() -> None:
        while True:
            record_id = f"{prefix}-t{next(numbers)}"
            writer.append_blocking(record(record_id))
            acknowledged(record_id)

    async def task_appender() -> None:
        while True:
            record_id = f"{prefix}-a{next(numbers)}"
            await writer.append(record(record_id))
            acknowledged(record_id)

    for _ in range(4):
        threading.Thread(target=thread_appender, daemon=True).start()

    async def tasks() -> None:
        await asyncio.gather(*(task_appender() for _ in range(4)))

    asyncio.run(tasks())


if __name__ == "__main__":
    main()
