"""A RulesetStore in a directory: the embedded default's ruleset history, kept across restarts.

    <root>/<ruleset>/revisions.json   [{"revision": 1, "digest": "sha256:..."}, ...]
    <root>/<ruleset>/<revision>.txt   the author's text, verbatim
    <root>/<ruleset>/routing.json     {"active": 3, "canary": 4, "percent": 10, "shadow": null,
                                       "version": 7, "change": "<id of its ledger record>"}
    <root>/<ruleset>/routing.lock     locked while a routing is compared and replaced

Every file is written to a temporary name, fsync'd and renamed over the old one, so a crash
leaves the old version or the new one. One server owns the directory (the embedded default),
perhaps with several workers: a routing is compared with the stored one and replaced under an
``flock`` of ``routing.lock``, so a worker never replaces a newer routing with an older one.
Several servers share rulesets through ``adapters.redis`` instead. A ``routing.json`` written
before routings had versions reads as version 0.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine import Routing, StoreCorrupt, StoredRevision

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class FileRulesetStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def put_revision(self, name: str, digest: str, text: str) -> tuple[StoredRevision, bool]:
        directory = self._dir(name)
        with self._lock:
            index = self._index(name)
            for entry in index:
                if entry["digest"] == digest:
                    found = self.get_revision(name, entry["revision"])
                    assert found is not None
                    return found, False
            revision = len(index) + 1
            directory.mkdir(parents=True, exist_ok=True)
            _write(directory / f"{revision}.txt", text.encode("utf-8"))
            index.append({"revision": revision, "digest": digest})
            _write(directory / "revisions.json", json.dumps(index).encode())
        return StoredRevision(name, revision, digest, text), True

    def get_revision(self, name: str, revision: int) -> StoredRevision | None:
        index = self._index(name)
        if not 0 < revision <= len(index):
            return None
        path = self._dir(name) / f"{revision}.txt"
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreCorrupt(f"{path}: cannot be read as a ruleset revision ({exc})") from None
        return StoredRevision(name, revision, index[revision - 1]["digest"], text)

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
            _write(directory / "routing.json", json.dumps(asdict(routing)).encode())
            return True

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


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
