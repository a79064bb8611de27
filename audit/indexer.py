"""The indexer: a process of its own that keeps the query index up with one instance's log.

    server process                                  indexer process
    LedgerWriter ─ commit ─▶ IndexFollower.notify ─▶ a byte on its stdin ─▶ catch_up: read
                                                                           frames after the
    /metrics ◀── lag(): head − watermark, and the age                       watermark, index
                 of the oldest record not indexed                          them (index.db)

Indexing costs about as much CPU as appending, and SQLite's inserts hold Python's GIL in
pieces: in the server's own process they slowed appends and stalled the event loop. In a
process of its own it runs on another core and touches nothing on the commit path; the
index is derived, so the index being behind is never a loss, and queries read the
not-yet-indexed tail of the log meanwhile. The process indexes what is written when its
stdin closes (the server stopping, or dying), then exits; the follower starts it again if
it dies.

    python -m audit.indexer LEDGER_DIR INSTANCE [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from audit.index import (
    INDEX_FILE,
    IndexLayoutError,
    LedgerIndex,
    micros,
    read_indexed,
    remove_index,
    torn_by_a_restart,
)
from audit.segments import SegmentLog

log = logging.getLogger("frontline.ledger")

RESTART_AFTER = 1.0  # seconds between attempts to start a stopped indexer
NICENESS = 0


def lag(ledger_dir: Path, log_: SegmentLog, head_seq: int) -> tuple[int, float]:
    """How far the index is behind ``log_`` whose head is ``head_seq``: the records not yet
    indexed, and the age in seconds of the oldest of them (0 when none)."""
    path = ledger_dir / INDEX_FILE
    mark_seq, segment, offset = 0, 0, 0
    if path.exists():
        index = LedgerIndex(ledger_dir)
        try:
            row = index.conn.execute(
                "SELECT indexed_seq, segment, next_offset FROM instances WHERE name = ?",
                (log_.instance,),
            ).fetchone()
        finally:
            index.close()
        if row is not None:
            mark_seq, segment, offset = row
    behind = max(0, head_seq - mark_seq)
    if not behind:
        return 0, 0.0
    frame = log_.read(segment, offset) if segment else next(log_.frames(mark_seq), None)
    if frame is None:  # the mark is at a segment's end: the next record opens the next one
        frame = next(log_.frames(mark_seq), None)
    if frame is None:
        return behind, 0.0
    recorded = micros(read_indexed(frame.body).recorded_at)
    now = datetime.now(UTC).timestamp() * 1_000_000
    return behind, max(0.0, (now - recorded) / 1_000_000)


class IndexFollower:
    """Starts and feeds the indexer process of one instance's log."""

    def __init__(self, ledger_dir: Path, instance: str, *, interval: float = 0.5) -> None:
        self.ledger_dir = Path(ledger_dir)
        self.instance = instance
        self.interval = interval
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._checked = 0.0
        self._closed = False
        self._start()

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audit.indexer",
                str(self.ledger_dir),
                self.instance,
                "--interval",
                str(self.interval),
            ],
            stdin=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": _import_root()},
        )
        assert self._proc.stdin is not None
        os.set_blocking(self._proc.stdin.fileno(), False)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def notify(self, head_seq: int = 0) -> None:
        """Records were committed: wake the indexer (never blocks; from any thread)."""
        with self._lock:
            proc = self._proc
            if self._closed or proc is None:
                return
            now = time.monotonic()
            if now - self._checked > RESTART_AFTER:
                self._checked = now
                if proc.poll() is not None:
                    log.error(
                        "the ledger indexer of %s stopped (exit %s); starting it again",
                        self.instance,
                        proc.returncode,
                    )
                    self._start()
                    proc = self._proc
            assert proc is not None and proc.stdin is not None
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(proc.stdin.fileno(), b".")

    def close(self, timeout: float = 30.0) -> None:
        """Let the indexer index what is written, then stop it."""
        with self._lock:
            self._closed = True
            proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _import_root() -> str:
    """The directory ``audit`` is imported from, ahead of the caller's PYTHONPATH."""
    root = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{rest}" if rest else root


def follow(ledger_dir: Path, instance: str, interval: float, wake: int | None = None) -> None:
    """Index ``instance``'s log until ``wake`` (a pipe's reading end; stdin by default)
    closes, then index what is left and return."""
    log_ = SegmentLog(ledger_dir, instance, readonly=True)
    index = _open_index(ledger_dir)
    index.write_unsynced(instance)
    stdin = sys.stdin.buffer.fileno() if wake is None else wake
    index.forget_after(instance, log_.head()[0])
    failing = False
    try:
        while True:
            ready, _, _ = select.select([stdin], [], [], interval)
            closing = bool(ready) and not os.read(stdin, 65536)
            try:
                if index.replaced():
                    index.reopen()
                index.catch_up(log_)
                failing = False
            except Exception as exc:  # tried again next time; queries read the log meanwhile
                if not failing:
                    log.error("the ledger index of %s could not be updated: %s", instance, exc)
                failing = True
            if closing:
                index.synced(instance)
                return
    finally:
        index.close()


def _open_index(ledger_dir: Path) -> LedgerIndex:
    """The index, built again from the segments if it cannot be trusted: it is of another
    layout (an upgrade), not a database, or was written unsynced before the machine
    restarted. It is derived; nothing is lost."""
    try:
        index = LedgerIndex(ledger_dir)
        torn = torn_by_a_restart(index)
        if not torn:
            return index
        index.close()
        why = (
            f"the machine restarted while the indexer of {', '.join(torn)} was writing it "
            "without syncing"
        )
    except IndexLayoutError:
        why = "it is of another layout"
    except sqlite3.DatabaseError as exc:
        why = f"it cannot be read ({exc})"
    log.warning("rebuilding the ledger's query index from the segments: %s", why)
    remove_index(ledger_dir)
    return LedgerIndex(ledger_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m audit.indexer", description=__doc__)
    parser.add_argument("ledger_dir", type=Path)
    parser.add_argument("instance")
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="frontline indexer: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        follow(args.ledger_dir, args.instance, args.interval)


if __name__ == "__main__":
    main()
