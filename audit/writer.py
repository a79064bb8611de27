"""``LedgerWriter``: group commit for many concurrent callers, with back-pressure, never dropping.

    callers (asyncio tasks, threads)          writer thread
    ─ append(record) ──▶ pending queue ──▶ take up to max_batch
      (waits while the queue is full,         seal each: seq, recorded_at, prev_hash; encode
       up to wait_timeout, then                once, hash the bytes
       LedgerBusy)                             store.append(batch): one write, one fdatasync
                                               resolve every caller of the batch; tell the
                                               listeners (the indexer) the new head
    ◀── sealed record, once durable ─────────┘

A caller's ``append`` returns only when the batch holding its record is committed, so a
decision answered after ``append`` can never be lost. If the store fails, every caller of that
batch gets the error and the chain does not advance. ``close()`` drains what is pending.

Given a ``Signer``, the writer also keeps the log's Merkle tree (its right edge, audit/merkle.py)
and, at most ``head_interval`` seconds after a record arrives and again when it closes, appends
a ``tree_head`` record: the tree's size and root before it, signed. Opening such a writer reads
the whole log once to rebuild the tree, and refuses a log whose records no longer give the root
a stored tree head signed (``LedgerTampered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from _thread import allocate_lock as _allocate_lock
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from audit.merkle import TILE_LEAVES, Frontier
from audit.ports import LedgerStore
from audit.proofs import read_pruned, write_tiles
from audit.record import LedgerRecord, decode, hash_text, leaf_hash, seal
from audit.signing import Signer, TreeHead, parse_public_key, tree_head_problem
from engine.times import format_time

log = logging.getLogger("frontline.ledger")


class LedgerError(Exception):
    """The ledger could not record; the caller's action must not be reported as done."""


class LedgerBusy(LedgerError):
    """Too many records are waiting; the caller waited ``wait_timeout`` and should back off."""


class LedgerClosed(LedgerError):
    """The writer is closed."""


class LedgerTampered(LedgerError):
    """The log does not give the root one of its signed tree heads promised; the message
    names the instance and the record."""


def utc_now() -> str:
    return format_time(datetime.now(UTC), "microseconds")


class LedgerWriter:
    """Appends records to a LedgerStore in group-committed batches. Thread- and asyncio-safe."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        max_batch: int = 2_000,
        max_pending: int = 20_000,
        wait_timeout: float = 2.0,
        clock: Callable[[], str] = utc_now,
        signer: Signer | None = None,
        head_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._instance = store.instance
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._wait_timeout = wait_timeout
        self._clock = clock
        self._pending: deque[tuple[LedgerRecord, Waiter]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._seq, self._hash = store.head()
        self.batches = 0
        self.records = 0
        self.last_batch_size = 0
        self.last_commit_seconds = 0.0
        self._listeners: list[Callable[[int], None]] = []
        self._signer = signer
        self._head_interval = head_interval
        self._tree: Frontier | None = None
        self._covered = 0  # records a tree head covers, the tree heads themselves included
        self._signed_at = time.monotonic()  # of the last tree head (or of the start)
        self.latest_head: TreeHead | None = None
        # Where the roots of complete runs of leaves are kept for proofs (a segment log's
        # directory; a store without one keeps none).
        self._tiles_dir: Path | None = getattr(store, "directory", None)
        if signer is not None:
            kept = load_tree(self._tiles_dir, store.head()) if self._tiles_dir else None
            if kept is not None:  # left by the start's check of the whole log
                self._tree, self.latest_head = kept
            else:
                rebuilt = rebuild_tree(store, signer.public_key)
                if rebuilt.lacking is None:
                    self._tree, self.latest_head = rebuilt.tree, rebuilt.latest
                    self._keep_tiles(0)
                else:
                    log.warning("the ledger is not signed: %s", rebuilt.lacking)
            # Records after the latest head (a crash came before the next) are due a head.
            head = self.latest_head
            self._covered = head.tree_size + 1 if head is not None else 0
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    @property
    def store(self) -> LedgerStore:
        """Where the records go."""
        return self._store

    @property
    def instance(self) -> str:
        """The instance whose chain this writer extends."""
        return self._instance

    @property
    def public_key(self) -> str | None:
        """The key its tree heads are signed with (None: it signs none)."""
        return self._signer.public_key if self._signer is not None else None

    @property
    def pending(self) -> int:
        """Records waiting to be committed."""
        return len(self._pending)

    @property
    def accepting(self) -> bool:
        """Whether appends are taken: not closed, and the writer thread is running."""
        return not self._closing and self._thread.is_alive()

    @property
    def head(self) -> tuple[int, str]:
        """The last committed ``seq`` and ``hash``."""
        return self._seq, self._hash

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(head seq)`` from the writer thread after every committed batch
        (the index follows the log this way); it must return at once."""
        self._listeners.append(listener)

    def submit(self, record: LedgerRecord) -> Pending:
        """Queue a record, waiting up to ``wait_timeout`` for room; the returned ``Pending``
        resolves with the sealed record once it is durable."""
        pending = Pending()
        self._enqueue(record, pending, wait=True)
        return pending

    def submit_nowait(self, record: LedgerRecord) -> Pending:
        """Queue a record if there is room now; raise LedgerBusy (without waiting) otherwise."""
        pending = Pending()
        self._enqueue(record, pending, wait=False)
        return pending

    def append_blocking(self, record: LedgerRecord, timeout: float | None = None) -> LedgerRecord:
        """Append from a thread; returns the sealed record once it is durable."""
        return self.submit(record).result(timeout)

    async def append(self, record: LedgerRecord) -> LedgerRecord:
        """Append from asyncio; returns the sealed record once it is durable.

        The writer settles every record of a batch awaited on one event loop with a single
        wake-up of that loop. Waiting for queue space (back-pressure) happens off the loop.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LedgerRecord] = loop.create_future()
        try:
            self._enqueue(record, (loop, future), wait=False)
        except LedgerBusy:
            await asyncio.to_thread(self._enqueue, record, (loop, future), True)
        return await future

    def _enqueue(self, record: LedgerRecord, waiter: Waiter, wait: bool) -> None:
        deadline = time.monotonic() + self._wait_timeout
        with self._cond:
            while len(self._pending) >= self._max_pending and not self._closing:
                remaining = deadline - time.monotonic()
                if not wait or remaining <= 0:
                    raise LedgerBusy(
                        f"the ledger has {len(self._pending)} records waiting; try again shortly"
                    )
                self._cond.wait(remaining)
            if self._closing:
                raise LedgerClosed("the ledger writer is closed")
            self._pending.append((record, waiter))
            self._cond.notify_all()

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop accepting records, commit everything pending, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _take(self) -> list[tuple[LedgerRecord, Waiter]]:
        """The next batch; empty when closing with nothing pending, or when a tree head is
        due before anything arrives."""
        with self._cond:
            while not self._pending and not self._closing:
                due = self._head_due()
                if due is not None and due <= 0:
                    return []
                self._cond.wait(due)
            batch: list[tuple[LedgerRecord, Waiter]] = []
            while self._pending and len(batch) < self._max_batch:
                batch.append(self._pending.popleft())
            self._cond.notify_all()  # room for callers waiting on back-pressure
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                self._commit(batch)
            due = self._head_due()
            if due is not None and (due <= 0 or (self._closing and not self._pending)):
                self._sign_head()
            if not batch and self._closing and not self._pending:
                return  # closing, and nothing left

    def _keep_tiles(self, first: int) -> None:
        """Store the tile roots the tree completed (numbered from ``first``) for proofs."""
        assert self._tree is not None
        roots, self._tree.tiles = self._tree.tiles, []
        if self._tiles_dir is not None:
            try:
                write_tiles(self._tiles_dir, first, roots)
            except OSError as exc:  # proofs read the leaves instead; nothing is lost
                log.warning("tile roots not stored: %s", exc)

    def _head_due(self) -> float | None:
        """Seconds until a tree head is due (0 or less: now); None when every record is
        covered by one, or the writer signs none."""
        if self._tree is None or self._tree.size <= self._covered:
            return None
        return self._signed_at + self._head_interval - time.monotonic()

    def _sign_head(self) -> None:
        """Append a signed tree head covering every record so far (from the writer thread)."""
        assert self._tree is not None and self._signer is not None
        size = self._tree.size
        head = self._signer.sign(
            TreeHead(
                instance=self._instance,
                tree_size=size,
                root_hash=hash_text(self._tree.root()),
                time=self._clock(),
            )
        )
        record = LedgerRecord(
            id=f"tree-head:{self._instance}:{size}",
            kind="tree_head",
            data={**head.to_dict(), "public_key": self._signer.public_key},
        )
        self._signed_at = time.monotonic()
        done = Pending()
        self._commit([(record, done)])
        if done.exception(0) is None:
            self._covered = size + 1  # the tree head itself needs no other to cover it
            self.latest_head = head

    def _commit(self, batch: list[tuple[LedgerRecord, Waiter]]) -> None:
        started = time.perf_counter()
        recorded_at = self._clock()
        seq, prev = self._seq, self._hash
        sealed = []
        instance = self._instance
        for record, _ in batch:
            seq += 1
            placed = seal(
                record, seq=seq, recorded_at=recorded_at, instance=instance, prev_hash=prev
            )
            prev = placed.record.hash
            sealed.append(placed)
        try:
            self._store.append(sealed)
        except Exception as exc:  # the store failed: nobody in this batch is recorded
            error = LedgerError(f"the ledger could not commit {len(batch)} records: {exc}")
            error.__cause__ = exc  # the store's own sentence, for those who show one
            _settle([(waiter, None, error) for _, waiter in batch])
            return  # the transaction rolled back, so the chain's head is unchanged
        self._seq, self._hash = seq, prev
        tree = self._tree
        if tree is not None:
            done = tree.size // TILE_LEAVES  # the number of the next run to complete
            for s in sealed:
                tree.append(s.leaf)
            if tree.tiles:
                self._keep_tiles(done)
        self.batches += 1
        self.records += len(batch)
        self.last_batch_size = len(batch)
        self.last_commit_seconds = time.perf_counter() - started
        _settle([(waiter, s.record, None) for s, (_, waiter) in zip(sealed, batch, strict=True)])
        for listener in self._listeners:
            listener(seq)


class Pending:
    """A thread's claim on a record being committed; ``result()`` waits until it is durable.

    The subset of ``concurrent.futures.Future`` that callers use, on one plain lock (held
    until settled): a Future builds a Condition per record, which cost more than sealing
    the record when eight threads append at full speed.
    """

    __slots__ = ("_callbacks", "_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = _allocate_lock()
        self._done.acquire()
        self._value: LedgerRecord | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Pending], object]] | None = []

    def done(self) -> bool:
        return not self._done.locked()

    def result(self, timeout: float | None = None) -> LedgerRecord:
        """The sealed record once durable; raises the ledger's error, or TimeoutError."""
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("the record is not committed yet")
        self._done.release()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            self.result(timeout)
        except TimeoutError:
            raise
        except BaseException as exc:
            return exc
        return None

    def add_done_callback(self, callback: Callable[[Pending], object]) -> None:
        """Call ``callback(self)`` once settled (at once if it already is)."""
        with _CALLBACKS:
            waiting = self._callbacks
            if waiting is not None:
                waiting.append(callback)
                return
        callback(self)

    def _settle(self, value: LedgerRecord | None, error: BaseException | None) -> None:
        self._value, self._error = value, error
        with _CALLBACKS:
            callbacks, self._callbacks = self._callbacks, None
        self._done.release()
        for callback in callbacks or ():
            callback(self)


_CALLBACKS = threading.Lock()

# A caller waiting for its record: a thread's Pending, or an asyncio future and its loop.
Waiter = Pending | tuple[asyncio.AbstractEventLoop, "asyncio.Future[LedgerRecord]"]


def _settle(outcomes: list[tuple[Waiter, LedgerRecord | None, Exception | None]]) -> None:
    """Resolve every waiter; one call_soon_threadsafe per event loop, not per record."""
    by_loop: dict[
        asyncio.AbstractEventLoop,
        list[tuple[asyncio.Future[LedgerRecord], LedgerRecord | None, Exception | None]],
    ] = {}
    for waiter, placed, error in outcomes:
        if isinstance(waiter, Pending):
            waiter._settle(placed, error)
        else:
            loop, future = waiter
            by_loop.setdefault(loop, []).append((future, placed, error))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_on_loop, items)


def _settle_on_loop(
    items: list[tuple[asyncio.Future[LedgerRecord], LedgerRecord | None, Exception | None]],
) -> None:
    for future, placed, error in items:
        if future.done():  # the caller was cancelled; the record is durable regardless
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(placed)  # type: ignore[arg-type]


class TreeRebuild:
    """Rebuilds a log's Merkle tree record by record, checking each stored tree head against
    the records before it: LedgerTampered if one does not match (its key is not
    ``public_key``, its signature fails, or its root differs).

    A log whose start retention removed begins with the leaf hashes retention kept (in
    ``directory``); if they were not kept (a ledger pruned before its records were signed),
    the tree cannot be rebuilt and ``lacking`` says why."""

    def __init__(self, instance: str, public_key: str, directory: Path | None = None) -> None:
        self.instance = instance
        self.public_key = public_key
        self.directory = directory
        self._pinned = parse_public_key(public_key)
        self.tree = Frontier()
        self.latest: TreeHead | None = None
        self.lacking: str | None = None

    def feed(self, seq: int, body: bytes, leaf: bytes) -> None:
        """Take record ``seq`` (its bytes, and their leaf hash)."""
        if self.lacking is not None:
            return
        if seq != self.tree.size + 1:
            kept = None
            if self.tree.size == 0 and self.directory is not None:
                kept = read_pruned(self.directory, seq - 1)
            if kept is None:
                self.lacking = (
                    f"the log of instance {self.instance} starts at record {seq}, and the leaf "
                    f"hashes of records 1 to {seq - 1} were not kept when they were removed"
                )
                return
            for old in kept:
                self.tree.append(old)
        if b'"tree_head"' in body:
            record = decode(body)
            if record.kind == "tree_head":
                problem = tree_head_problem(record.data, self.tree, self.public_key, self._pinned)
                if problem is not None:
                    raise LedgerTampered(
                        f"the tree head at record {seq} of instance {self.instance} {problem}"
                    )
                self.latest = TreeHead.from_data(record.data)[0]
        self.tree.append(leaf)


def rebuild_tree(store: LedgerStore, public_key: str) -> TreeRebuild:
    """The Merkle tree of everything ``store`` holds, each tree head checked (TreeRebuild)."""
    rebuild = TreeRebuild(store.instance, public_key, getattr(store, "directory", None))
    for seq, body in store.scan():
        rebuild.feed(seq, body, leaf_hash(body))
    return rebuild


TREE = "tree"  # beside the segments: the tree as of the log's head, left by the start's check


def save_tree(directory: Path, head: tuple[int, str], rebuild: TreeRebuild) -> None:
    """Keep ``rebuild``'s tree (and its tiles) for the writer that opens the log next, so it
    need not read the whole log again; it is used only while the log's head is ``head``."""
    tree = rebuild.tree
    write_tiles(directory, 0, tree.tiles)
    tree.tiles = []
    kept = {
        "seq": head[0],
        "hash": head[1],
        "size": tree.size,
        "hashes": [h.hex() for h in tree.hashes],
        "latest_head": rebuild.latest.to_dict() if rebuild.latest else None,
    }
    temp = directory / (TREE + ".new")
    temp.write_bytes(json.dumps(kept).encode())
    os.replace(temp, directory / TREE)


def load_tree(directory: Path, head: tuple[int, str]) -> tuple[Frontier, TreeHead | None] | None:
    """The tree ``save_tree`` kept, if it is of the log as it is now (same head); the file is
    used once."""
    path = directory / TREE
    try:
        kept = json.loads(path.read_bytes())
        path.unlink()
        if kept["seq"] != head[0] or kept["hash"] != head[1] or kept["size"] != head[0]:
            return None
        tree = Frontier(kept["size"], [bytes.fromhex(h) for h in kept["hashes"]])
        latest = TreeHead(**kept["latest_head"]) if kept["latest_head"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return tree, latest
