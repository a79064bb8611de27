"""A RulesetStore in a directory: the embedded default's ruleset history, kept across restarts.

    <root>/<ruleset>/revisions.json   [{"revision": 1, "digest": "sha256:...",
                                        "deployed_by": "ann", "deployed_at": "<RFC 3339>",
                                        "message": "..."}, ...] (who, when and why: absent
                                       from lists written before they were kept)
    <root>/<ruleset>/<revision>.txt   the author's text, verbatim
    <root>/<ruleset>/routing.json     {"active": 3, "canary": 4, "percent": 10, "shadow": null,
                                       "version": 7, "change": "<id of its ledger record>"}
    <root>/<ruleset>/routing.lock     locked while a routing is compared and replaced
    <root>/<ruleset>/history.jsonl    every routing stored, one JSON line each, oldest first
    <root>/<ruleset>/reviews.json     {"3": {"status": "pending", "deployed_by": "ann", ...}}:
                                      the review of each revision deployed while approval was
                                      required (engine.ports.Review)
    <root>/<ruleset>/reviews.lock     locked while a review is compared and replaced

Every file is written to a temporary name, fsync'd and renamed over the old one, so a crash
leaves the old version or the new one. A write the disk refuses (full, over quota, failing)
removes its temporary file and raises StoreWriteFailed naming the file: a revision whose list
could not be written is removed again, so the store holds what it held before. One server
owns the directory (the embedded default), perhaps with several workers: a routing is
compared with the stored one and replaced under an ``flock`` of ``routing.lock``, so a worker
never replaces a newer routing with an older one. Several servers share rulesets through
``adapters.redis`` instead. A ``routing.json`` written before routings had versions reads as
version 0.

A revision's review is written before the revision list that makes the revision exist, so a
revision is never seen without the review it was deployed with; an entry for a revision the
list does not hold (a write cut short) is ignored, and replaced when that number is stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog

from engine import Provenance, Review, Routing, StoreCorrupt, StoredRevision, StoreWriteFailed

log = structlog.get_logger("frontline")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class FileRulesetStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def put_revision(
        self,
        name: str,
        digest: str,
        text: str,
        review: Review | None = None,
        provenance: Provenance | None = None,
    ) -> tuple[StoredRevision, bool]:
        directory = self._dir(name)
        with self._lock:
            index = self._index(name)
            for entry in index:
                if entry["digest"] == digest:
                    found = self.get_revision(name, entry["revision"])
                    assert found is not None
                    return found, False
            revision = len(index) + 1
            what = f"revision {revision} of ruleset {name!r}"
            path = directory / f"{revision}.txt"
            new = not directory.exists()
            try:
                directory.mkdir(parents=True, exist_ok=True)
                write_file(path, text.encode("utf-8"))
                self._put_review(name, revision, review)
                entry = {"revision": revision, "digest": digest}
                if provenance is not None:
                    entry.update(asdict(provenance))
                index.append(entry)
                write_file(directory / "revisions.json", json.dumps(index).encode())
            except OSError as exc:
                self._undo(name, revision, new)
                raise self._refused(what, exc) from None
        return StoredRevision(name, revision, digest, text, provenance), True

    def get_revision(self, name: str, revision: int) -> StoredRevision | None:
        index = self._index(name)
        if not 0 < revision <= len(index):
            return None
        path = self._dir(name) / f"{revision}.txt"
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreCorrupt(f"{path}: cannot be read as a ruleset revision ({exc})") from None
        entry = index[revision - 1]
        return StoredRevision(name, revision, entry["digest"], text, Provenance.from_data(entry))

    def revisions(self, name: str) -> list[StoredRevision]:
        out = []
        for entry in self._index(name):
            found = self.get_revision(name, entry["revision"])
            if found is not None:
                out.append(found)
        return out

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "revisions.json").is_file())

    def set_routing(self, name: str, routing: Routing) -> bool:
        directory = self._dir(name)
        with self._lock, open(directory / "routing.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            stored = self.get_routing(name)
            if stored is not None and stored.version >= routing.version:
                return False
            try:
                write_file(directory / "routing.json", json.dumps(asdict(routing)).encode())
            except OSError as exc:
                raise self._refused(f"the routing of ruleset {name!r}", exc) from None
            try:
                with open(directory / "history.jsonl", "a+b") as history:
                    size = history.seek(0, os.SEEK_END)
                    # A line a crash cut short ends here, so that this one starts its own.
                    cut = size > 0 and history.seek(size - 1) >= 0 and history.read(1) != b"\n"
                    line = json.dumps(asdict(routing)).encode() + b"\n"
                    history.write(b"\n" + line if cut else line)
                    history.flush()
                    os.fsync(history.fileno())
            except OSError as exc:
                # The routing is stored and serves; the history misses it (the ledger has it).
                log.warning("routing history not written", ruleset=name, error=str(exc))
            return True

    def history(self, name: str, limit: int = 50) -> list[Routing]:
        if not _NAME.match(name):
            return []
        path = self._dir(name) / "history.jsonl"
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreCorrupt(f"{path}: cannot be read ({exc})") from None
        found = []
        for line in reversed(lines):
            try:
                found.append(Routing(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line a crash cut short
            if len(found) == limit:
                break
        return found

    def reviews(self, name: str) -> dict[int, Review]:
        held = len(self._index(name))
        return {n: r for n, r in self._reviews(name).items() if n <= held}

    def set_review(self, name: str, revision: int, review: Review, *, expect: str) -> bool:
        if not _NAME.match(name) or not self._dir(name).is_dir():
            return False
        directory = self._dir(name)
        with self._lock, open(directory / "reviews.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            found = self.reviews(name)
            if revision not in found or found[revision].status != expect:
                return False
            try:
                self._write_reviews(name, {**found, revision: review})
            except OSError as exc:
                what = f"the review of revision {revision} of ruleset {name!r}"
                raise self._refused(what, exc) from None
            return True

    def _put_review(self, name: str, revision: int, review: Review | None) -> None:
        """Give a revision about to be stored its review (or none: an entry a write cut short
        left for its number goes). Under ``_lock``; OSError if it cannot be written."""
        if review is None and not (self._dir(name) / "reviews.json").exists():
            return
        with open(self._dir(name) / "reviews.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = self._reviews(name)
            if review is None and revision not in found:
                return
            if review is None:
                del found[revision]
            else:
                found[revision] = review
            self._write_reviews(name, found)

    def _reviews(self, name: str) -> dict[int, Review]:
        """Every entry of ``reviews.json``, those of revisions not stored included."""
        if not _NAME.match(name):
            return {}
        path = self._dir(name) / "reviews.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreCorrupt(f"{path}: not reviews Frontline wrote ({exc})") from None
        if not isinstance(data, dict) or not all(k.isdigit() for k in data):
            raise StoreCorrupt(f"{path}: not reviews Frontline wrote")
        try:
            return {int(k): Review.from_data(v, str(path)) for k, v in data.items()}
        except ValueError as exc:
            raise StoreCorrupt(str(exc)) from None

    def _write_reviews(self, name: str, reviews: dict[int, Review]) -> None:
        data = {str(n): asdict(r) for n, r in sorted(reviews.items())}
        write_file(self._dir(name) / "reviews.json", json.dumps(data).encode())

    def _undo(self, name: str, revision: int, new: bool) -> None:
        """Remove what a failed ``put_revision`` wrote: its text, unless its list was written
        after all (only the directory's sync failed), and the ruleset's directory if it made
        it."""
        directory = self._dir(name)
        with contextlib.suppress(OSError, StoreCorrupt):
            if len(self._index(name)) < revision:
                (directory / f"{revision}.txt").unlink(missing_ok=True)
            if new:
                for made in ("reviews.json", "reviews.lock"):
                    (directory / made).unlink(missing_ok=True)
                directory.rmdir()

    def _refused(self, what: str, error: OSError) -> StoreWriteFailed:
        """``what`` could not be stored: the sentence names the file, relative to the data
        directory, and the disk's reason."""
        where = Path(error.filename or self.root)
        if where.is_relative_to(self.root.parent):
            where = where.relative_to(self.root.parent)
        return StoreWriteFailed(
            f"{what} could not be stored: writing {where} failed ({error.strerror or error})"
        )

    def get_routing(self, name: str) -> Routing | None:
        if not _NAME.match(name):
            return None  # no such name can exist
        path = self._dir(name) / "routing.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreCorrupt(f"{path}: not routing Frontline wrote ({exc})") from None
        try:
            return Routing(**data)
        except TypeError:
            raise StoreCorrupt(f"{path}: not routing Frontline wrote ({data!r:.80})") from None

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            # Names are checked by the document model; this guards the path itself.
            raise ValueError(f"invalid ruleset name {name!r}")
        return self.root / name

    def _index(self, name: str) -> list[dict[str, Any]]:
        if not _NAME.match(name):
            return []  # no such name can exist
        path = self._dir(name) / "revisions.json"
        try:
            index = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StoreCorrupt(f"{path}: not a revision list Frontline wrote ({exc})") from None
        if not isinstance(index, list) or not all(
            isinstance(e, dict) and isinstance(e.get("digest"), str) for e in index
        ):
            raise StoreCorrupt(f"{path}: not a revision list Frontline wrote")
        found: list[dict[str, Any]] = index
        return found


def write_file(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, synced, then
    renamed over it (``replace``) or linked to its name (otherwise: FileExistsError if it is
    there), and the directory synced. An OSError leaves no temporary file behind and carries
    ``path`` as its ``filename``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
