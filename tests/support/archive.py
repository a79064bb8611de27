"""A ledger written before a test's server starts: records of an earlier instance, appended
to their own segment log and indexed, as ``frontline serve`` finds them on start.

    archive(data_dir / "ledger", records)
    with LiveServer(data_dir) as server: ...
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from audit.index import reindex
from audit.record import LedgerRecord
from audit.segments import SegmentLog
from audit.writer import LedgerWriter


def archive(ledger_dir: Path, records: Iterable[LedgerRecord]) -> None:
    """Append ``records`` to the ``archive`` instance's log under ``ledger_dir``, durably
    enough for a test, and build the query index over them."""
    log = SegmentLog(ledger_dir, "archive", durable=False)
    writer = LedgerWriter(log)
    try:
        pending = [writer.submit(record) for record in records]
        for done in pending:
            done.result(30)
    finally:
        writer.close()
        log.close()
    reindex(ledger_dir)
