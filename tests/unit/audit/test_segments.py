"""The segment log: framing, rolling, recovery of a torn last write, one writer, readers."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from audit.record import GENESIS, LedgerRecord, Sealed, decode, hash_text, leaf_hash, seal
from audit.segments import MAGIC, LogError, SegmentLog, check_log, instances, segment_name
from audit.verify import verify

ROOT = Path(__file__).resolve().parents[3]


def chain(start: int, n: int, prev: str = GENESIS, instance: str = "local") -> list[Sealed]:
    """Records ``start`` … ``start + n - 1`` of a chain whose record ``start - 1`` is ``prev``."""
    out = []
    for seq in range(start, start + n):
        record = LedgerRecord(id=f"d-{seq}", kind="decision", customer_id=f"c-{seq % 3}")
        placed = seal(
            record,
            seq=seq,
            recorded_at="2026-11-22T10:00:00.000000Z",
            instance=instance,
            prev_hash=prev,
        )
        prev = placed.record.hash
        out.append(placed)
    return out


def written(log: SegmentLog, *sizes: int) -> list[Sealed]:
    """Append batches of these sizes to ``log``, continuing its chain; return the records."""
    seq, prev = log.head()
    records: list[Sealed] = []
    for size in sizes:
        batch = chain(seq + 1, size, prev, log.instance)
        log.append(batch)
        records.extend(batch)
        seq, prev = batch[-1].record.seq, batch[-1].record.hash
    return records


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SegmentLog]:
    opened = SegmentLog(tmp_path, "local")
    yield opened
    opened.close()


def first_segment(tmp_path: Path) -> Path:
    return tmp_path / "local" / segment_name(1)


def parse(path: Path) -> list[tuple[int, bytes, bytes]]:
    """A segment file read by hand: (length, leaf, body) of each frame."""
    data = path.read_bytes()
    assert data[: len(MAGIC)] == MAGIC
    frames, at = [], len(MAGIC)
    while at < len(data):
        length, leaf = struct.unpack_from("<I32s", data, at)
        body = data[at + 36 : at + 36 + length]
        frames.append((length, leaf, body))
        at += 36 + length
    assert at == len(data)
    return frames


# -- framing -------------------------------------------------------------------------------


def test_a_segment_is_the_magic_then_length_hash_and_bytes_of_each_record(
    tmp_path: Path, log: SegmentLog
) -> None:
    """A segment, named by its first seq, is FLSEG1 then each record's length, leaf hash, bytes."""
    records = written(log, 3, 2)
    path = first_segment(tmp_path)
    assert path.name == "00000000000000000001.seg"
    frames = parse(path)
    assert [body for _, _, body in frames] == [s.body for s in records]
    assert [length for length, _, _ in frames] == [len(s.body) for s in records]
    for (_, leaf, body), s in zip(frames, records, strict=True):
        assert leaf == hashlib.sha256(b"\x00" + body).digest()
        assert s.record.hash == "sha256:" + leaf.hex()
        assert b'"hash"' not in body and s.record.prev_hash.encode() in body
    assert log.head() == (5, records[-1].record.hash)


def test_frames_carry_their_seq_place_and_bytes(log: SegmentLog) -> None:
    """frames() and scan() give each record's seq, segment, offset and bytes, after a seq."""
    records = written(log, 4, 3)
    frames = list(log.frames())
    assert [f.seq for f in frames] == list(range(1, 8))
    assert frames[0].offset == len(MAGIC)
    assert all(a.end == b.offset for a, b in itertools.pairwise(frames))
    assert [f.body for f in frames] == [s.body for s in records]
    assert [f.seq for f in log.frames(5)] == [6, 7]
    resumed = log.frames(4, (frames[4].segment, frames[4].offset))
    assert [f.seq for f in resumed] == [5, 6, 7]
    assert [seq for seq, _ in log.scan(2, limit=3)] == [3, 4, 5]
    again = log.read(frames[3].segment, frames[3].offset)
    assert again is not None and (again.body, again.leaf) == (frames[3].body, frames[3].leaf)
    assert log.read(frames[3].segment, frames[3].offset + 1) is None


def test_a_batch_that_does_not_follow_the_head_is_refused(log: SegmentLog) -> None:
    """A batch whose first seq is not head + 1 is refused whole, and the log is unchanged."""
    records = written(log, 3)
    with pytest.raises(LogError, match="record 3 does not follow record 3 of local"):
        log.append(chain(3, 2, records[1].record.hash))
    with pytest.raises(LogError, match="record 6 does not follow record 3"):
        log.append(chain(6, 1, records[-1].record.hash))
    assert [seq for seq, _ in log.scan()] == [1, 2, 3]


def test_each_instance_has_its_own_directory_and_a_usable_name(tmp_path: Path) -> None:
    """Instances are listed from their directories; a name unusable as a directory is refused."""
    a, b = SegmentLog(tmp_path, "fl-a-0"), SegmentLog(tmp_path, "fl-b-1")
    written(a, 2)
    written(b, 1)
    assert instances(tmp_path) == ["fl-a-0", "fl-b-1"]
    assert [s for s, _ in a.scan()] == [1, 2] and [s for s, _ in b.scan()] == [1]
    a.close()
    b.close()
    for bad in ("..", "a/b", "", "-lead"):
        with pytest.raises(LogError, match="must be 1-128 letters"):
            SegmentLog(tmp_path, bad)
    SegmentLog(tmp_path, "bench-0-f00d:").close()  # a host:port-like name is a usable one


# -- rolling -------------------------------------------------------------------------------


def test_segments_roll_by_size_between_batches(tmp_path: Path) -> None:
    """Once a segment holds segment_bytes the next batch opens one named by its first seq."""
    log = SegmentLog(tmp_path, "local", segment_bytes=600)
    sizes = (3, 3, 1, 4, 2)
    records = written(log, *sizes)
    expected: list[int] = []  # the rule, worked out by hand from the frames' sizes
    size = 0
    starts = itertools.accumulate((0, *sizes))
    for first, count in zip(starts, sizes, strict=False):
        if not expected or size >= 600:
            expected.append(first + 1)
            size = len(MAGIC)
        size += sum(36 + len(s.body) for s in records[first : first + count])
    assert log.segments() == expected and len(expected) > 2
    directory = tmp_path / "local"
    for first, following in itertools.pairwise([*expected, len(records) + 1]):
        frames = parse(directory / segment_name(first))  # whole frames, nothing else
        assert [body for _, _, body in frames] == [
            s.body for s in records[first - 1 : following - 1]
        ]
    assert [f.body for f in log.frames()] == [s.body for s in records]
    later = expected[-1]
    assert next(log.frames(later - 1)).seq == later
    log.close()
    reopened = SegmentLog(tmp_path, "local", segment_bytes=600)
    assert reopened.head() == (13, records[-1].record.hash)
    written(reopened, 1)
    assert reopened.segments()[-1] == (14 if size >= 600 else later)
    assert verify(reopened).ok
    reopened.close()


def test_removing_segments_never_takes_the_one_being_written(tmp_path: Path) -> None:
    """remove_segments_through drops whole segments at or below a seq, never the last one."""
    log = SegmentLog(tmp_path, "local", segment_bytes=1)  # every batch its own segment
    written(log, 2, 2, 2)
    assert log.segments() == [1, 3, 5]
    assert log.remove_segments_through(3) == [1]  # 3 shares a segment with 4: it stays
    assert log.remove_segments_through(100) == [3]
    assert log.segments() == [5]
    assert [s for s, _ in log.scan()] == [5, 6]
    log.close()


# -- recovery ------------------------------------------------------------------------------


def _next_frame(records: list[Sealed]) -> bytes:
    """The frame the record after ``records`` would be stored as."""
    (following,) = chain(records[-1].record.seq + 1, 1, records[-1].record.hash)
    return struct.pack("<I32s", len(following.body), following.leaf) + following.body


class Reopened(NamedTuple):
    log: SegmentLog
    records: list[Sealed]
    intact: bytes  # the file as the last acknowledged write left it
    tail: bytes  # what came after it
    frame: bytes  # the whole frame of record 6


def reopened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: Callable[[bytes], bytes]
) -> Reopened:
    """A log of 5 records, then ``cut(frame of record 6)`` written after them, reopened."""
    log = SegmentLog(tmp_path, "local")
    records = written(log, 3, 2)
    log.close()
    path = first_segment(tmp_path)
    intact = path.read_bytes()
    frame = _next_frame(records)
    tail = cut(frame)
    path.write_bytes(intact + tail)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="frontline.ledger"):
        log = SegmentLog(tmp_path, "local")
    return Reopened(log, records, intact, tail, frame)


@pytest.mark.parametrize(
    ("cut", "kept"),
    [
        pytest.param(lambda frame: frame[:20], 0, id="partial-header"),
        pytest.param(lambda frame: frame[:60], 0, id="partial-body"),
        pytest.param(lambda frame: frame[:-3] + b"XYZ", 0, id="hash-mismatch"),
        pytest.param(lambda frame: frame + frame[:10], 1, id="whole-then-partial"),
    ],
)
def test_recovery_cuts_a_torn_last_write_and_keeps_its_bytes(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    cut: Callable[[bytes], bytes],
    kept: int,
) -> None:
    """A torn last write is cut off, its bytes kept in <segment>.torn-<offset>, in one sentence."""
    log, records, intact, tail, frame = reopened(tmp_path, caplog, cut)
    path = first_segment(tmp_path)
    at = len(intact) + kept * len(frame)  # where the first incomplete frame started
    assert path.read_bytes() == (intact + tail)[:at]  # nothing before it is touched
    aside = path.with_name(f"{path.name}.torn-{at}")
    assert aside.read_bytes() == tail[at - len(intact) :]
    messages = [r.getMessage() for r in caplog.records if r.name == "frontline.ledger"]
    assert messages == [
        f"ledger local: cut a torn last write of {len(intact) + len(tail) - at} bytes "
        f"at byte {at} of {path.name} (kept in {aside.name}); "
        f"records up to {5 + kept} are intact"
    ]
    assert log.head()[0] == 5 + kept
    assert [f.body for f in log.frames()][:5] == [s.body for s in records]
    written(log, 2)
    assert verify(log).ok and log.head()[0] == 7 + kept
    log.close()


def test_recovery_leaves_an_intact_log_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reopening a log that ends with a whole frame cuts nothing and logs nothing."""
    log, records, intact, _, _ = reopened(tmp_path, caplog, lambda frame: b"")
    assert first_segment(tmp_path).read_bytes() == intact
    assert not list((tmp_path / "local").glob("*.torn-*"))
    assert not [r for r in caplog.records if r.name == "frontline.ledger"]
    assert log.head() == (5, records[-1].record.hash)
    log.close()


def test_recovery_removes_a_segment_whose_creation_was_cut_short(tmp_path: Path) -> None:
    """A last segment holding only part of its header is removed; the head is the one before."""
    log = SegmentLog(tmp_path, "local")
    records = written(log, 3)
    log.close()
    stub = tmp_path / "local" / segment_name(4)
    stub.write_bytes(MAGIC[:3])
    log = SegmentLog(tmp_path, "local")
    assert not stub.exists()
    assert log.head() == (3, records[-1].record.hash)
    written(log, 1)
    assert log.segments() == [1] and verify(log).ok
    log.close()


def test_a_file_that_is_not_a_segment_is_refused_not_cut(tmp_path: Path) -> None:
    """A last segment file that does not start as a segment stops the log with one sentence."""
    (tmp_path / "local").mkdir()
    path = tmp_path / "local" / segment_name(1)
    path.write_bytes(b"PK\x03\x04 something else")
    for _ in range(2):  # and says so again, rather than that someone holds the log
        with pytest.raises(
            LogError,
            match="does not start with a ledger segment's header, so Frontline did not write it",
        ):
            SegmentLog(tmp_path, "local")
    assert path.read_bytes() == b"PK\x03\x04 something else"


def test_damage_before_the_last_write_is_refused_not_cut(tmp_path: Path) -> None:
    """A damaged record followed by intact ones is not a torn write: nothing is cut or lost."""
    log = SegmentLog(tmp_path, "local")
    written(log, 3, 5)
    log.close()
    path = first_segment(tmp_path)
    data = bytearray(path.read_bytes())
    data[data.index(b'"d-3"') + 2] ^= 0x01  # record 3 of 8, acknowledged long ago
    path.write_bytes(bytes(data))
    for _ in range(2):
        with pytest.raises(
            LogError, match=r"record 3 in .* at byte \d+ is damaged .* and whole records follow it"
        ):
            SegmentLog(tmp_path, "local")
    assert path.read_bytes() == bytes(data)
    assert not list((tmp_path / "local").glob("*.torn-*"))
    report = verify(SegmentLog(tmp_path, "local", readonly=True))
    assert (report.ok, report.broken_at) == (False, 3)


def test_a_failed_write_leaves_no_partial_batch(tmp_path: Path) -> None:
    """A write the disk refuses part-way is cut back: the log holds whole batches and goes on."""
    script = f"""
import json, resource, signal, sys
sys.path[:0] = [{str(ROOT)!r}, {str(Path(__file__).parent)!r}]
from test_segments import chain, written
from audit.segments import LogError, SegmentLog
log = SegmentLog({str(tmp_path)!r}, "local")
written(log, 3)
size = log.directory.joinpath("00000000000000000001.seg").stat().st_size
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 300, hard))
try:
    written(log, 10)
    error = None
except LogError as exc:
    error = str(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
after = log.directory.joinpath("00000000000000000001.seg").stat().st_size
head = log.head()[0]
written(log, 2)
print(json.dumps([error, size, after, head, log.head()[0]]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    error, size, after, head, final = json.loads(done.stdout)
    assert error is not None and f"segment {segment_name(1)} could not take " in error
    assert "File too large" in error
    assert after == size and head == 3 and final == 5
    log = SegmentLog(tmp_path, "local")
    assert not list((tmp_path / "local").glob("*.torn-*"))
    assert [s for s, _ in log.scan()] == [1, 2, 3, 4, 5]
    assert verify(log).ok
    log.close()


# -- one writer, many readers ---------------------------------------------------------------


def test_a_second_writer_on_one_instance_is_refused(tmp_path: Path, log: SegmentLog) -> None:
    """While a log is open for writing, another writer of that instance is refused in a sentence."""
    written(log, 2)
    with pytest.raises(LogError) as refused:
        SegmentLog(tmp_path, "local")
    assert str(refused.value) == (
        f"another process is writing the ledger of instance 'local' in {tmp_path / 'local'}; "
        "give each server its own FRONTLINE_INSTANCE"
    )
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from audit.segments import SegmentLog; SegmentLog({str(tmp_path)!r}, 'local')",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert other.returncode != 0 and "another process is writing the ledger" in other.stderr
    SegmentLog(tmp_path, "other").close()  # another instance is not blocked
    reader = SegmentLog(tmp_path, "local", readonly=True)  # nor is a reader
    assert reader.head()[0] == 2
    reader.close()
    log.close()
    again = SegmentLog(tmp_path, "local")  # once closed, the next writer may open it
    assert again.head()[0] == 2
    again.close()


def test_a_reader_sees_exactly_the_whole_frames(tmp_path: Path, log: SegmentLog) -> None:
    """A read-only log sees whole frames only, never a frame being written, and changes nothing."""
    records = written(log, 3, 2)
    path = first_segment(tmp_path)
    partial = _next_frame(records)[:50]
    with open(path, "ab") as f:  # a write in progress: half of record 6
        f.write(partial)
    before = path.read_bytes()
    reader = SegmentLog(tmp_path, "local", readonly=True)
    assert reader.head() == (5, records[-1].record.hash)
    assert [body for _, body in reader.scan()] == [s.body for s in records]
    assert path.read_bytes() == before
    assert not list((tmp_path / "local").glob("*.torn-*"))
    with pytest.raises(LogError, match="read-only"):
        reader.append(chain(6, 1, records[-1].record.hash))
    reader.close()


def test_a_reader_follows_the_writer_across_segments(tmp_path: Path) -> None:
    """A reader's head and frames follow a writer as it appends and rolls segments."""
    log = SegmentLog(tmp_path, "local", segment_bytes=400)
    reader = SegmentLog(tmp_path, "local", readonly=True)
    assert reader.head() == (0, GENESIS)
    seen = []
    for size in (2, 3, 1, 4):
        batch = written(log, size)
        assert reader.head() == (batch[-1].record.seq, batch[-1].record.hash)
        seen.extend(batch)
    assert len(log.segments()) > 1
    assert [f.body for f in reader.frames()] == [s.body for s in seen]
    log.close()
    reader.close()


def test_readers_never_see_part_of_a_batch_while_it_is_written(tmp_path: Path) -> None:
    """Readers polling during appends only ever see whole records that hash to their frame."""
    log = SegmentLog(tmp_path, "local", segment_bytes=20_000, durable=False)
    stop = threading.Event()
    problems: list[str] = []
    seen = [0]

    def poll() -> None:
        reader = SegmentLog(tmp_path, "local", readonly=True)
        while True:
            done = stop.is_set()  # one more look after the last append
            frames = list(reader.frames(check=False))
            for k, frame in enumerate(frames, start=1):
                if frame.seq != k or leaf_hash(frame.body) != frame.leaf:
                    problems.append(f"frame {frame.seq} at {k}")
                decode(frame.body, hash_text(frame.leaf))
            head = reader.head()[0]
            if head < len(frames):
                problems.append(f"head {head} behind {len(frames)} frames")
            seen[0] = max(seen[0], len(frames))
            if done:
                break
        reader.close()

    thread = threading.Thread(target=poll)
    thread.start()
    for _ in range(60):
        written(log, 25)
    stop.set()
    thread.join()
    log.close()
    assert problems == []
    assert seen[0] == 1500


def test_verify_reads_a_frame_being_written_as_in_progress_only_when_live(
    tmp_path: Path, log: SegmentLog
) -> None:
    """A partial last frame is a write in progress to a live verify, damage to an offline one."""
    records = written(log, 3)
    with open(first_segment(tmp_path), "ab") as f:
        f.write(_next_frame(records)[:50])
    reader = SegmentLog(tmp_path, "local", readonly=True)
    live = verify(reader)
    assert live.ok and live.head_seq == 3
    offline = verify(reader, live=False)
    assert (offline.ok, offline.broken_at, offline.head_seq) == (False, 4, 3)
    assert "its frame is cut short" in (offline.reason or "")
    reader.close()


def test_a_reader_never_skips_a_damaged_segment_that_later_ones_follow(tmp_path: Path) -> None:
    """Frames after a damaged one in a sealed segment are not skipped in silence: readers
    stop with a sentence naming the file, and the startup check and verify say the same."""
    log = SegmentLog(tmp_path, "local", segment_bytes=1)  # every batch starts a segment
    written(log, 3, 3, 2)
    log.close()
    path = first_segment(tmp_path)
    data = bytearray(path.read_bytes())
    data[data.index(b'"d-2"') + 2] ^= 0x01
    path.write_bytes(bytes(data))
    reader = SegmentLog(tmp_path, "local", readonly=True)
    seen = []
    with pytest.raises(LogError, match=r"record 2 in .*01\.seg at byte \d+ is damaged .* later"):
        seen.extend(frame.seq for frame in reader.frames())
    assert seen == [1]
    with pytest.raises(LogError, match=r"record 2 in .*01\.seg .* later segments follow it"):
        check_log(tmp_path / "local")
    assert (verify(reader).ok, verify(reader).broken_at) == (False, 2)
