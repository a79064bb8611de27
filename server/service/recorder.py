"""Writing to the ledger from a use case: an action is reported only once its record is
durable, and a ledger that cannot take it makes the use case fail as unavailable."""

from __future__ import annotations

import structlog

from audit.record import LedgerRecord
from audit.writer import LedgerBusy, LedgerError, LedgerWriter
from server.service.errors import Unavailable

log = structlog.get_logger("frontline")


class Recorder:
    """The ledger writer as use cases see it."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    async def append(self, record: LedgerRecord) -> LedgerRecord:
        """Append durably and return the record as sealed in the chain (its ``seq``,
        ``instance`` and ``hash`` set), or raise Unavailable (never report an unrecorded
        action)."""
        try:
            return await self.writer.append(record)
        except LedgerBusy as exc:
            raise Unavailable(str(exc), title="The ledger is busy", retry_after=1) from None
        except LedgerError as exc:
            log.error("ledger append failed", record_id=record.id, error=str(exc))
            reason = exc.__cause__ or exc
            raise Unavailable(
                f"this could not be recorded, so it was not done: {reason}; try again shortly",
                retry_after=1,
            ) from None

    def later(self, record: LedgerRecord, what: str) -> None:
        """Queue ``record`` without waiting for it: for records nothing waits on (a shadow
        revision's differences). A failure is logged as ``what`` not recorded."""

        def done(future: object) -> None:
            error = future.exception()  # type: ignore[attr-defined]
            if error is not None:
                log.warning(f"{what} not recorded", record_id=record.id, error=str(error))

        try:
            self.writer.submit_nowait(record).add_done_callback(done)
        except LedgerError as exc:
            log.warning(f"{what} not recorded", record_id=record.id, error=str(exc))
