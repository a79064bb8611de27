"""One instance's ledger as append-only segment files: the durable truth of the ledger.

    <data dir>/ledger/<instance>/00000000000000000001.seg    records 1 … n
                                 00000000000000040213.seg    records n+1 … (being written)

    segment = "FLSEG1\\n\\0" · frame · frame · …
    frame   = length of the record bytes (u32, little-endian) · leaf hash (32 bytes) · bytes

A segment is named by the ``seq`` of its first record; the records of a segment follow one
another without gaps, so a frame's ``seq`` is its segment's first ``seq`` plus its ordinal.
The leaf hash is the record's ``hash`` (audit/record.py), so the frame's checksum and the
chain are one computation.

A group commit is one ``write`` of all the batch's frames and one ``fdatasync``; ``append``
returns only after both, so an answered decision is on disk. A segment is closed once it
holds ``segment_bytes`` or more, and the next batch starts a new one (created, synced, and
its directory synced). A failed write is cut off again before the error reaches the
writer, so the log never holds a partial batch it did not report, and until the disk has
room for such a batch again (a full disk, a quota) ``failed`` says so; a failed
``fdatasync`` leaves the log refusing appends, since what the disk holds is then unknown.

Recovery (opening a log for writing) walks the last segment and cuts a torn last write: a
partial frame header or body, or a frame whose bytes do not match its hash, and everything
after it. Those bytes were never acknowledged (their ``fdatasync`` did not return), and they
are kept beside the segment in ``<segment>.torn-<offset>`` rather than deleted. Nothing
before the first bad frame is touched. A bad frame that whole frames follow is damage, not a
torn write: it is never cut, and no reader skips it (``check_log``, which a server runs on
every log before it starts, and ``frames`` both name it).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.record import GENESIS, Sealed, hash_text, is_tombstone, leaf_hash

log = logging.getLogger("frontline.ledger")

MAGIC = b"FLSEG1\n\x00"
HEADER = struct.Struct("<I32s")
MAX_RECORD = 64 << 20  # a longer length field can only be a torn or damaged frame
SEGMENT_BYTES = 64 << 20
ROOM = 16 << 10  # free bytes a log opened for writing wants before it calls itself ready
# A log that a write was refused for lack of room stays not ready this long, whatever a probe
# finds: cutting off the refused bytes gives blocks back for a moment, and a probe that sees
# them would call a full disk ready.
SETTLE_SECONDS = 2.0
SUFFIX = ".seg"
_NAME = re.compile(r"^(\d{20})\.seg$")
_INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class LogError(RuntimeError):
    """The log cannot be written or read as asked; the message says why in one sentence."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One stored record: its ``seq``, where it is, its bytes and its leaf hash."""

    seq: int
    segment: int  # the first seq of the segment holding it (its file name)
    offset: int  # where its frame starts in that file
    body: bytes
    leaf: bytes

    @property
    def end(self) -> int:
        """Where the next frame starts."""
        return self.offset + HEADER.size + len(self.body)


def check_instance(name: str) -> str:
    """An instance name usable as a directory name, or LogError."""
    if not _INSTANCE.match(name) or name in (".", ".."):
        raise LogError(
            f"instance name {name!r} must be 1-128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return name


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SUFFIX}"


def segments_of(directory: Path) -> list[int]:
    """The first seqs of the segments in ``directory``, in order."""
    if not directory.is_dir():
        return []
    found = []
    for entry in os.scandir(directory):
        match = _NAME.match(entry.name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def instances(ledger_dir: Path) -> list[str]:
    """The instances with a log under ``ledger_dir``."""
    if not ledger_dir.is_dir():
        return []
    return sorted(
        entry.name
        for entry in os.scandir(ledger_dir)
        if entry.is_dir() and _INSTANCE.match(entry.name)
    )


CHUNK = 4 << 20  # bytes read at a time by a walk


def walk(
    path: Path, segment: int, start: int = 0, seq: int | None = None, *, check: bool = True
) -> Iterator[Frame | int]:
    """The whole frames of the segment file ``path`` (whose first record is ``segment``)
    from byte ``start`` on; if the file holds anything after the last whole frame, the
    offset where that begins is yielded last (0 when the file does not start as a segment).

    ``start`` is 0 (the whole file) or the offset of a frame, whose seq is then ``seq``.
    With ``check`` a frame whose bytes do not match its hash ends the walk as a partial one
    does; without it (a reader following a log its writer has recovered) only the lengths
    are trusted.
    """
    with open(path, "rb") as f:
        if start:
            f.seek(start)
        else:
            if f.read(len(MAGIC)) != MAGIC:
                yield 0
                return
            start = len(MAGIC)
            seq = segment
        assert seq is not None, "a walk from inside a segment needs the seq found there"
        data = b""
        pos = 0  # of data[0] in the file, less ``start``
        offset = 0  # into data
        unpack = HEADER.unpack_from
        while True:
            if offset + HEADER.size > len(data) or offset + HEADER.size + unpack(data, offset)[
                0
            ] > len(data):
                more = f.read(CHUNK)
                if not more:
                    break
                data = data[offset:] + more
                pos += offset
                offset = 0
                continue
            length, leaf = unpack(data, offset)
            end = offset + HEADER.size + length
            if length == 0 or length > MAX_RECORD:
                break
            body = data[offset + HEADER.size : end]
            if check and leaf_hash(body) != leaf and not is_tombstone(body):
                break
            yield Frame(seq, segment, start + pos + offset, body, leaf)
            seq += 1
            offset = end
        if offset < len(data):
            yield start + pos + offset


class SegmentLog:
    """One instance's chain in segment files under ``ledger_dir/<instance>/``.

    Opened for writing (the default) it recovers the last segment and appends; one writer
    per instance, in one process (a lock file says so). Opened ``readonly`` it only reads,
    and may be opened by any number of processes while the writer runs.
    ``durable=False`` skips ``fdatasync``: only for building test fixtures.
    """

    def __init__(
        self,
        ledger_dir: Path | str,
        instance: str = "local",
        *,
        segment_bytes: int = SEGMENT_BYTES,
        durable: bool = True,
        readonly: bool = False,
    ) -> None:
        self.instance = check_instance(instance)
        self.directory = Path(ledger_dir) / instance
        self.segment_bytes = segment_bytes
        self.durable = durable
        self.readonly = readonly
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._lockfd: int | None = None
        self._segment = 0  # the first seq of the segment being written
        self._size = 0
        self._failed: str | None = None
        self._short: tuple[str, int] | None = None  # a write refused, and the bytes it needed
        self._refused_at = 0.0  # when a write was last refused for lack of room (monotonic)
        self._head: tuple[int, str] = (0, GENESIS)
        self._readers: dict[int, int] = {}  # segment → an open descriptor, for ``read``
        self._tip: Frame | None = None  # read-only: the last frame seen, for ``head``
        if not readonly:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._take_lock()
            try:
                self._recover()
            except BaseException:
                self.close()  # let go of the lock: the next attempt says the same
                raise
            if not _room_for(self.directory, ROOM):
                self._short = (f"the ledger's disk is full: {self.directory} has no room", ROOM)

    # -- writing -----------------------------------------------------------------------

    @property
    def failed(self) -> str | None:
        """Why the log takes no more records (a sync or a clean-up failed), or why it could
        not write its last batch while its disk still has no room for one as large; or, for
        a log open for writing, that its disk has no room now (another log on the same disk,
        another worker's, may have filled it before this one tried to write)."""
        if self._failed is not None:
            return self._failed
        if self.readonly:
            return None
        short = self._short
        if short is not None and time.monotonic() - self._refused_at < SETTLE_SECONDS:
            return short[0]
        # Room for the batch alone is not enough: removing its partial bytes frees a block or
        # two, which the next write (a new page, the tree's tiles) needs again.
        if not _room_for(self.directory, max(short[1], ROOM) if short else ROOM):
            return short[0] if short else f"the ledger's disk is full: {self.directory} has no room"
        return None  # room now; the refusal is forgotten only once a batch is stored

    def head(self) -> tuple[int, str]:
        """The last ``seq`` and ``hash`` stored: ``(0, GENESIS)`` for an empty log."""
        if self.readonly:
            return self._read_head()
        return self._head

    def append(self, batch: Sequence[Sealed]) -> None:
        """Store a batch with one write and one fdatasync; return once it is durable."""
        if self.readonly:
            raise LogError("this log is open read-only")
        if not batch:
            return
        first = batch[0].record.seq
        with self._lock:
            if self._failed is not None:
                raise LogError(self._failed)
            if first != self._head[0] + 1:
                raise LogError(
                    f"record {first} does not follow record {self._head[0]} of {self.instance}"
                )
            pack = HEADER.pack
            parts = []
            for s in batch:  # one flat join: no intermediate bytes per frame
                parts.append(pack(len(s.body), s.leaf))
                parts.append(s.body)
            data = b"".join(parts)
            if self._fd is None or self._size >= self.segment_bytes:
                try:
                    self._roll(first)
                except OSError as exc:
                    name = segment_name(first)
                    raise self._refused(name, len(MAGIC) + len(data), exc) from exc
            assert self._fd is not None
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                self._cut_back(exc)
                raise self._refused(segment_name(self._segment), len(data), exc) from exc
            if self.durable:
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    self._failed = (
                        f"the ledger's disk refused to sync ({exc}); what it holds is unknown, "
                        "so the log takes no more records until it is reopened"
                    )
                    raise LogError(self._failed) from exc
            self._size += len(data)
            self._short = None
            last = batch[-1]
            self._head = (last.record.seq, hash_text(last.leaf))

    def _refused(self, name: str, size: int, error: OSError) -> LogError:
        """The error for a write the disk refused; remembered for ``failed``."""
        why = error.strerror or str(error)
        sentence = f"the ledger's segment {name} could not take {size:,} bytes ({why})"
        self._short = (sentence, size)
        self._refused_at = time.monotonic()
        return LogError(sentence)

    def _cut_back(self, error: OSError) -> None:
        """Remove whatever part of a failed write reached the file."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            self._failed = (
                f"a write failed ({error}) and its partial bytes could not be removed; "
                "the log takes no more records until it is reopened"
            )

    def _roll(self, first: int) -> None:
        """Start the segment whose first record is ``first``."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        path = self.directory / segment_name(first)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        try:
            _write_all(fd, MAGIC)
            if self.durable:
                os.fsync(fd)
                _sync_dir(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._segment, self._size = fd, first, len(MAGIC)

    def _take_lock(self) -> None:
        import fcntl

        path = self.directory / "writer.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogError(
                f"another process is writing the ledger of instance {self.instance!r} in "
                f"{self.directory}; give each server its own FRONTLINE_INSTANCE"
            ) from None
        self._lockfd = fd

    def _recover(self) -> None:  # noqa: PLR0912 -- a branch per state a crash leaves the last segment in
        """Find the head; cut a torn last write of the last segment, keeping its bytes."""
        segments = segments_of(self.directory)
        if not segments:
            return
        last = segments[-1]
        path = self.directory / segment_name(last)
        head: Frame | None = None
        cut: int | None = None
        for item in walk(path, last):
            if isinstance(item, Frame):
                head = item
            else:
                cut = item
        if cut == 0:
            if not MAGIC.startswith(path.read_bytes()):
                raise LogError(_not_a_segment(path, sealed=False))
            path.unlink()  # its creation was cut short before its header was written
            _sync_dir(self.directory)
            self._recover()
            return
        if cut is not None:
            if _intact_after(path, cut):
                raise LogError(_damaged(path, head.seq + 1 if head else last, cut, sealed=False))
            self._cut(path, cut, head)
        if head is None and len(segments) > 1:
            previous = segments[-2]
            for item in walk(self.directory / segment_name(previous), previous):
                if isinstance(item, Frame):
                    head = item
        if head is not None:
            self._head = (head.seq, hash_text(head.leaf))
        elif last > 1:
            raise LogError(
                f"{path} holds no record and no earlier segment says what came before record "
                f"{last}; restore the segments of {self.directory} from a backup"
            )
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._fd, self._segment, self._size = fd, last, os.fstat(fd).st_size

    def _cut(self, path: Path, offset: int, head: Frame | None) -> None:
        size = path.stat().st_size
        aside = path.with_name(f"{path.name}.torn-{offset}")
        with open(path, "rb") as f:
            f.seek(offset)
            aside.write_bytes(f.read())
        with open(path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())
        _sync_dir(self.directory)
        intact = f"records up to {head.seq} are intact" if head else "it held no intact record"
        log.warning(
            "ledger %s: cut a torn last write of %d bytes at byte %d of %s (kept in %s); %s",
            self.instance,
            size - offset,
            offset,
            path.name,
            aside.name,
            intact,
        )

    # -- reading -----------------------------------------------------------------------

    def segments(self) -> list[int]:
        """The first seqs of this log's segments, in order."""
        return segments_of(self.directory)

    def frames(
        self, after_seq: int = 0, start: tuple[int, int] | None = None, *, check: bool = True
    ) -> Iterator[Frame]:
        """Stored frames in seq order after ``after_seq``.

        ``start`` — ``(segment, offset)`` of the frame holding ``after_seq + 1``, when the
        caller knows it (the index does) — skips reading the segment from its beginning.
        ``check=False`` trusts the frames' lengths without hashing their bytes (see walk).

        A segment that a later one follows is whole, so a bad frame in it is damage and
        raises LogError: the frames after it are never skipped in silence. In the last one
        the walk stops there (a write in progress, or a torn one that recovery cuts).
        """
        segments = self.segments()
        for k, first in enumerate(segments):
            following = segments[k + 1] if k + 1 < len(segments) else None
            if following is not None and following <= after_seq + 1:
                continue
            path = self.directory / segment_name(first)
            seq = first
            try:
                if start is not None and start[0] == first and start[1] > 0:
                    seq = after_seq + 1
                    items = walk(path, first, start[1], seq, check=check)
                else:
                    items = walk(path, first, check=check)
                for item in items:
                    if not isinstance(item, Frame):
                        if following is None:
                            break
                        if item == 0:
                            raise LogError(_not_a_segment(path, sealed=True))
                        raise LogError(_damaged(path, seq, item, sealed=True))
                    seq = item.seq + 1
                    if item.seq > after_seq:
                        yield item
            except FileNotFoundError:
                continue  # removed by retention while we read

    def scan(self, after_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Stored ``(seq, bytes)`` in seq order, starting after ``after_seq``."""
        for count, frame in enumerate(self.frames(after_seq)):
            if limit is not None and count >= limit:
                return
            yield frame.seq, frame.body

    def prefetch(self, segment: int, offset: int, length: int = 4096) -> None:
        """Ask the kernel to start reading a frame's bytes now (``read`` waits for them):
        many frames asked for at once are read from disk in parallel, not one after another."""
        fd = self._reader(segment)
        if fd is not None:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)

    def _reader(self, segment: int) -> int | None:
        fd = self._readers.get(segment)
        if fd is None:
            try:
                fd = os.open(self.directory / segment_name(segment), os.O_RDONLY)
            except FileNotFoundError:
                return None
            with self._lock:
                if len(self._readers) >= 64:
                    for old in self._readers.values():
                        os.close(old)
                    self._readers.clear()
                self._readers[segment] = fd
        return fd

    def read(self, segment: int, offset: int) -> Frame | None:
        """The frame at ``offset`` of segment ``segment``, if a whole one starts there."""
        fd = self._reader(segment)
        if fd is None:
            return None
        header = os.pread(fd, HEADER.size, offset)
        if len(header) < HEADER.size:
            return None
        length, leaf = HEADER.unpack(header)
        if length == 0 or length > MAX_RECORD:
            return None
        body = os.pread(fd, length, offset + HEADER.size)
        if len(body) != length:
            return None
        return Frame(0, segment, offset, body, leaf)

    def _read_head(self) -> tuple[int, str]:
        """The head of a log written by someone else: read on from where it was last seen."""
        segments = self.segments()
        tip = self._tip
        for first in reversed(segments):
            start = (tip.segment, tip.end) if tip is not None and tip.segment == first else None
            found = tip if start is not None else None
            path = self.directory / segment_name(first)
            try:
                items = (
                    walk(path, first, start[1], tip.seq + 1, check=False)
                    if (start and tip)
                    else walk(path, first, check=False)
                )
                for item in items:
                    if isinstance(item, Frame):
                        found = item
            except FileNotFoundError:
                continue
            if found is not None:
                self._tip = found
                return found.seq, hash_text(found.leaf)
        return (segments[0] - 1, GENESIS) if segments else (0, GENESIS)

    # -- retention ---------------------------------------------------------------------

    def remove_segments_through(self, seq: int) -> list[int]:
        """Delete the whole segments whose records are all at or below ``seq``; never the
        segment being written. Returns the first seqs of the segments removed."""
        segments = self.segments()
        removed = []
        for k, first in enumerate(segments[:-1]):
            if segments[k + 1] - 1 > seq:
                break
            (self.directory / segment_name(first)).unlink()
            removed.append(first)
        if removed:
            _sync_dir(self.directory)
        return removed

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lockfd is not None:
                os.close(self._lockfd)
                self._lockfd = None
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()


def check_log(directory: Path, each: Callable[[Frame], None] | None = None) -> None:
    """Raise LogError, in one sentence naming the file and what is wrong, if the log in
    ``directory`` is damaged: a file named as a segment that does not start as one, a bad or
    cut-short frame in a segment that a later one follows, a segment that does not start
    right after the records before it, or a bad frame in the last segment that whole frames
    follow. A torn last write is not damage (recovery cuts it); every frame's bytes are read
    and hashed, and given to ``each`` (in seq order) once checked."""
    segments = segments_of(directory)
    for k, first in enumerate(segments):  # a foreign file is named before any gap it makes
        path = directory / segment_name(first)
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
        if head != MAGIC and (k + 1 < len(segments) or not MAGIC.startswith(head)):
            raise LogError(_not_a_segment(path, sealed=k + 1 < len(segments)))
    for k, first in enumerate(segments):
        path = directory / segment_name(first)
        sealed = k + 1 < len(segments)
        last_seq, bad = first - 1, None
        for item in walk(path, first):
            if isinstance(item, Frame):
                last_seq = item.seq
                if each is not None:
                    each(item)
            else:
                bad = item
        if bad == 0:
            continue  # the last, created and cut short before its header: recovery removes it
        if bad is not None and (sealed or _intact_after(path, bad)):
            raise LogError(_damaged(path, last_seq + 1, bad, sealed=sealed))
        if sealed and segments[k + 1] != last_seq + 1:
            held = f"records {first} to {last_seq}" if last_seq >= first else "no record"
            raise LogError(
                f"{path} holds {held}, but the next segment, {segment_name(segments[k + 1])}, "
                f"starts at record {segments[k + 1]}; restore the segments of {directory} "
                "from a backup"
            )


def _not_a_segment(path: Path, *, sealed: bool) -> str:
    head = path.read_bytes()[: len(MAGIC)]
    if sealed and MAGIC.startswith(head):
        return (
            f"{path} is cut short inside its segment header, and later segments follow it; "
            "restore it from a backup"
        )
    return (
        f"{path} does not start with a ledger segment's header, so Frontline did not write "
        f"it; move it out of {path.parent}, or restore the segment from a backup"
    )


def _damaged(path: Path, seq: int, offset: int, *, sealed: bool) -> str:
    after = "later segments follow it" if sealed else "whole records follow it"
    return (
        f"record {seq} in {path} at byte {offset} is damaged (its bytes do not match its hash, "
        f"or its frame is cut short) and {after}, so it is not a torn last write and nothing "
        "was cut; restore the segment from a backup"
    )


def _intact_after(path: Path, offset: int) -> bool:
    """Whether a whole frame, its bytes matching its hash, starts anywhere after the bad
    frame at ``offset``: then that frame was damaged after it was written (a torn write
    leaves nothing whole behind it). Frames are looked for where a record's bytes begin."""
    with open(path, "rb") as f:
        f.seek(offset + 1)
        data = f.read()
    at = data.find(b'{"', HEADER.size)
    while at != -1:
        length, leaf = HEADER.unpack_from(data, at - HEADER.size)
        if 0 < length <= len(data) - at and leaf_hash(data[at : at + length]) == leaf:
            return True
        at = data.find(b'{"', at + 1)
    return False


def _room_for(directory: Path, size: int) -> bool:
    """Whether the disk under ``directory`` can take ``size`` more bytes now: space is
    reserved for a scratch file (so a quota counts too), then let go."""
    probe = directory / ".room"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return False
    try:
        os.posix_fallocate(fd, 0, max(size, 1))
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            return False
        stat = os.fstatvfs(fd)  # a file system that cannot reserve: its free space
        return stat.f_bavail * stat.f_frsize >= size
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
