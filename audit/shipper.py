"""Shipping an instance's log from its segments to PostgreSQL, in order, once.

    LedgerWriter ──▶ segments (durable: the request is answered)
                          │  LedgerShipper thread: read after PostgreSQL's head, COPY a batch
                          ▼
                     PostgreSQL (instance, seq)

The segments are the spool: decisions never wait for PostgreSQL, they are durable in the
log. The shipper asks
PostgreSQL for this instance's last ``seq`` before every batch, so a batch whose commit was
acknowledged or not (a connection cut mid-commit) is never shipped twice, and a restart
resumes exactly where PostgreSQL stands. While PostgreSQL is unreachable the spool grows and
the shipper retries with a backoff capped at ``max_backoff``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audit.postgres import PostgresLedgerStore, row
from audit.record import hash_text
from audit.segments import Frame, SegmentLog


class ChainMismatch(RuntimeError):
    """PostgreSQL's chain for this instance is not the spool's."""


@dataclass(frozen=True)
class ShipperStatus:
    connected: bool
    shipped_seq: int
    spool_seq: int
    last_error: str | None

    @property
    def lag(self) -> int:
        return self.spool_seq - self.shipped_seq


class LedgerShipper:
    def __init__(
        self,
        ledger_dir: Path | str,
        instance: str,
        target: Callable[[], PostgresLedgerStore],
        *,
        batch: int = 5_000,
        idle: float = 0.05,
        max_backoff: float = 5.0,
    ) -> None:
        self.ledger_dir = Path(ledger_dir)
        self.instance = instance
        self._log = SegmentLog(self.ledger_dir, instance, readonly=True)
        self._last: Frame | None = None  # the last frame shipped: the next batch reads on
        self._target_factory = target
        self._batch = batch
        self._idle = idle
        self._max_backoff = max_backoff
        self._target: PostgresLedgerStore | None = None
        self._stop = threading.Event()
        self._shipped = 0
        self._error: str | None = None
        self.batches = 0
        self.records = 0
        self._thread = threading.Thread(target=self._run, name="ledger-shipper", daemon=True)
        self._thread.start()

    def status(self) -> ShipperStatus:
        head = max(self._log.head()[0], self._shipped)
        return ShipperStatus(self._target is not None, self._shipped, head, self._error)

    def wait_until_shipped(self, seq: int, timeout: float) -> bool:
        """Block until PostgreSQL holds this instance's records up to ``seq``."""
        deadline = time.monotonic() + timeout
        while self._shipped < seq:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Ship what can be shipped within ``timeout``, then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._target is not None:
            if self.status().lag == 0:
                break
            time.sleep(0.02)
        self._stop.set()
        self._thread.join(timeout)
        if self._target is not None:
            self._target.close()

    def _run(self) -> None:
        backoff = 0.05
        try:
            while not self._stop.is_set():
                try:
                    if self._target is None:
                        self._target = self._target_factory()
                    shipped = self._ship_one(self._target)
                    self._error = None
                    backoff = 0.05
                    if not shipped:
                        self._stop.wait(self._idle)
                except Exception as exc:  # PostgreSQL unreachable, connection cut, ...
                    self._error = f"{type(exc).__name__}: {exc}"
                    self._drop_target()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
        finally:
            self._log.close()

    def _ship_one(self, target: PostgresLedgerStore) -> int:
        head, head_hash = target.head()
        rows = []
        last = self._last
        if last is not None and last.seq == head and hash_text(last.leaf) == head_hash:
            frames = self._log.frames(head, (last.segment, last.end))
        else:
            frames = self._log.frames(head - 1 if head else 0)
            if head:
                self._check_same_chain(next(frames, None), head, head_hash)
        self._shipped = head
        for frame in frames:
            rows.append(row(self.instance, frame.seq, frame.body, hash_text(frame.leaf)))
            last = frame
            if len(rows) >= self._batch:
                break
        if not rows:
            return 0
        target.append_rows(rows)
        self._shipped = int(rows[-1][1])
        self._last = last
        self.batches += 1
        self.records += len(rows)
        return len(rows)

    def _check_same_chain(self, mine: Frame | None, head: int, head_hash: str) -> None:
        """Refuse to ship onto a chain PostgreSQL holds for this instance name that is not
        this log's: two servers with one instance name would otherwise skip records."""
        if mine is None or mine.seq != head or hash_text(mine.leaf) != head_hash:
            raise ChainMismatch(
                f"PostgreSQL holds a different chain for instance {self.instance!r} (its "
                f"record {head} is not this spool's); give each server its own "
                "FRONTLINE_INSTANCE"
            )

    def _drop_target(self) -> None:
        target, self._target = self._target, None
        if target is not None:
            with contextlib.suppress(Exception):  # the connection is already gone
                target.close()
