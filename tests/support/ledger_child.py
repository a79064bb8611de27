"""A child process for the crash tests: appends from 4 threads and 4 asyncio tasks to the
segment log of instance ``local`` under LEDGER_DIR, printing each record's id the moment its
append has returned (durable), until it is killed.

    python -m tests.support.ledger_child LEDGER_DIR PREFIX [PAD_BYTES]

``PAD_BYTES`` pads every record with that many bytes, so a batch is one long ``write`` that a
kill can cut short (a torn last write).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from itertools import count

from audit.record import LedgerRecord, RulesetRef
from audit.segments import SegmentLog
from audit.writer import LedgerWriter

REF = RulesetRef(name="retention-desk", revision=1, digest="sha256:00")
INSTANCE = "local"


def record(record_id: str, pad: int) -> LedgerRecord:
    return LedgerRecord(
        id=record_id,
        kind="decision",
        customer_id=f"c-{hash(record_id) % 100}",
        agent_id="agent-7",
        ruleset=REF,
        outputs={"eligible": [{"rule": "fee-waiver", "offer": "waive-fee"}]},
        data={"pad": "x" * pad} if pad else {},
    )


def main() -> None:
    ledger_dir, prefix = sys.argv[1], sys.argv[2]
    pad = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    writer = LedgerWriter(SegmentLog(ledger_dir, INSTANCE), max_batch=64)
    out_lock = threading.Lock()
    numbers = count()

    def acknowledged(record_id: str) -> None:
        with out_lock:
            sys.stdout.write(record_id + "\n")
            sys.stdout.flush()

    def thread_appender() -> None:
        while True:
            record_id = f"{prefix}-t{next(numbers)}"
            writer.append_blocking(record(record_id, pad))
            acknowledged(record_id)

    async def task_appender() -> None:
        while True:
            record_id = f"{prefix}-a{next(numbers)}"
            await writer.append(record(record_id, pad))
            acknowledged(record_id)

    for _ in range(4):
        threading.Thread(target=thread_appender, daemon=True).start()

    async def tasks() -> None:
        await asyncio.gather(*(task_appender() for _ in range(4)))

    asyncio.run(tasks())


if __name__ == "__main__":
    main()
