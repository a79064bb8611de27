"""The ledger's storage port. Implementations: ``audit.segments`` (each instance's own log,
the truth) and ``audit.postgres`` (the shared copy the logs are shipped to). One contract
suite runs against each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from audit.record import Sealed


class LedgerStore(Protocol):
    """Appends one instance's sealed records durably and reads them back in ``seq`` order.

    Every server process is an instance with its own hash chain; a store object serves the
    chain of ``instance``, and several instances may share the storage underneath.
    """

    instance: str

    def head(self) -> tuple[int, str]:
        """The last ``seq`` and ``hash`` stored: ``(0, GENESIS)`` for an empty ledger."""
        ...

    def append(self, batch: Sequence[Sealed]) -> None:
        """Store a batch of sealed records; return only once it is durable (fsync'd)."""
        ...

    def scan(self, after_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Stored ``(seq, bytes)`` in ``seq`` order, starting after ``after_seq``."""
        ...

    def close(self) -> None: ...
