"""The file ruleset store and the key files under a disk that refuses a write (full, over
quota, failing): one sentence naming the file, nothing half-written, nothing changed. The
refusal is injected where the OS answers (``os.fsync`` of the new file's bytes); the real
full disk is in tests/integration/test_full_disk.py."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from adapters.files import FileRulesetStore, write_file
from engine import Routing, StoreWriteFailed
from server.keys import KeyRing

REFUSALS = [
    pytest.param(errno.ENOSPC, "No space left on device", id="full"),
    pytest.param(errno.EDQUOT, "Disk quota exceeded", id="over-quota"),
    pytest.param(errno.EIO, "Input/output error", id="failing"),
]


@pytest.fixture
def refuse(monkeypatch: pytest.MonkeyPatch) -> object:
    """``refuse(code)``: every fsync from now on fails with ``code``."""

    def arm(code: int) -> None:
        def fsync(fd: int) -> None:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr("adapters.files.os.fsync", fsync)

    return arm


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("code", "says"), REFUSALS)
def test_a_refused_revision_changes_nothing_and_names_its_file(
    tmp_path: Path, refuse: object, code: int, says: str
) -> None:
    store = FileRulesetStore(tmp_path / "rulesets")
    store.put_revision("desk", "sha256:1", "one")
    store.set_routing("desk", Routing(active=1))
    before = files_under(tmp_path)
    refuse(code)  # type: ignore[operator]
    with pytest.raises(StoreWriteFailed) as refused:
        store.put_revision("desk", "sha256:2", "two")
    assert str(refused.value) == (
        f"revision 2 of ruleset 'desk' could not be stored: writing rulesets/desk/2.txt failed "
        f"({says})"
    )
    with pytest.raises(
        StoreWriteFailed, match=r"routing of ruleset 'desk' .* rulesets/desk/routing\.json"
    ):
        store.set_routing("desk", Routing(active=1, canary=1, percent=5, version=1))
    with pytest.raises(StoreWriteFailed, match="revision 1 of ruleset 'new'"):
        store.put_revision("new", "sha256:3", "three")
    assert files_under(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "rulesets").iterdir()) == ["desk"]


@pytest.mark.parametrize(("code", "says"), REFUSALS)
def test_a_refused_key_file_is_not_left_behind(
    tmp_path: Path, refuse: object, code: int, says: str
) -> None:
    refuse(code)  # type: ignore[operator]
    with pytest.raises(OSError, match=says) as refused:
        KeyRing.load_or_create(tmp_path / "keys.json")
    assert refused.value.filename == str(tmp_path / "keys.json")
    assert list(tmp_path.iterdir()) == []


def test_a_file_written_once_is_never_replaced(tmp_path: Path) -> None:
    write_file(tmp_path / "key", b"first", replace=False)
    with pytest.raises(FileExistsError):
        write_file(tmp_path / "key", b"second", replace=False)
    assert files_under(tmp_path) == {"key": b"first"}
