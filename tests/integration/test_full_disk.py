"""A full disk, for real: the data directory is on a small tmpfs mounted for each test and
filled to its last byte. Changes to rulesets answer 507 naming the file that could not be
written and leave nothing half-written, the served revisions stay as they were, decisions
answer 503 and /readyz says not ready until there is room again; a server that cannot write
its data directory does not start, in one sentence."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import API_KEYS, ROOT, LiveServer, serve_once

DOCUMENT = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")
DECISION = {"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": "agent-7"}


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """An empty 8 MiB file system of its own, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here, which needs root: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take every free byte of ``disk`` with one file, then give ``leave`` bytes back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    return filler


def revision_of(description: str) -> str:
    return DOCUMENT.replace("description: >-\n", f"description: >-\n  {description}\n", 1)


def deploy(server: LiveServer, text: str, activate: bool = True) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/rulesets",
        params={"activate": str(activate).lower()},
        content=text.encode(),
        headers={**server.auth("author"), "content-type": "application/yaml"},
        timeout=30,
    )


def change(server: LiveServer, path: str, body: dict[str, int]) -> httpx.Response:
    url = f"{server.url}/v1/rulesets/retention-desk/{path}"
    return httpx.post(url, json=body, headers=server.auth("author"), timeout=30)


def decide(server: LiveServer) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/decisions", json=DECISION, headers=server.auth("agent"), timeout=30
    )


def ready(server: LiveServer) -> httpx.Response:
    return httpx.get(server.url + "/readyz", timeout=10)


def leftovers(rulesets: Path) -> list[str]:
    """Temporary files, and revision texts no revision list names."""
    found = [p.name for p in rulesets.rglob(".*")]
    found += [p.name for p in rulesets.glob("retention-desk/*.txt") if p.stem not in {"1", "2"}]
    return found


def test_a_full_disk_refuses_changes_in_one_sentence_and_keeps_what_serves(
    disk: Path, tmp_path: Path
) -> None:
    """Deploy, activate and rollout on a full disk answer 507 naming the file; the decisions
    it cannot record answer 503 and the server is not ready; once there is room again
    everything works and the ledger verifies."""
    with LiveServer(disk / "data", log=tmp_path / "server.log") as server:
        assert deploy(server, revision_of("Second."), activate=False).status_code == 201
        assert decide(server).status_code == 200
        filler = fill(disk)

        # Each change is recorded in the ledger before it is applied, so on a full disk it
        # is refused either by the ledger (503: not recorded, so not done) or, when the
        # ledger's page still had room, by the ruleset store (507, naming the file).
        refused = deploy(server, revision_of("Third."))
        assert refused.status_code in (503, 507), refused.text
        detail = refused.json()["detail"]
        if refused.status_code == 507:
            assert "revision 3 of ruleset 'retention-desk' could not be stored" in detail, detail
            assert "rulesets/retention-desk/" in detail
        else:
            assert "could not be recorded, so it was not done" in detail, detail
        assert "No space left on device" in detail
        for path, body in (
            ("activate", {"revision": 2}),
            ("rollout", {"revision": 2, "percent": 10}),
        ):
            answer = change(server, path, body)
            assert answer.status_code in (503, 507), answer.text
            said = answer.json()["detail"]
            assert said.startswith(
                "the routing of ruleset 'retention-desk' could not be stored: writing "
                "rulesets/retention-desk/routing.json failed (No space left on device)"
            ) or ("could not be recorded, so it was not done" in said), answer.text
        shown = httpx.get(
            server.url + "/v1/rulesets/retention-desk", headers=server.auth("author"), timeout=10
        ).json()
        assert shown["active_revision"] == 1 and shown["canary"] is None
        # A revision's text is stored before its deploy is recorded; one the ledger could not
        # record serves nobody, and deploying it again records it.
        assert [r["revision"] for r in shown["revisions"]] in ([1, 2], [1, 2, 3])
        assert [p for p in leftovers(disk / "data" / "rulesets") if p != "3.txt"] == []
        if refused.status_code == 507:
            assert leftovers(disk / "data" / "rulesets") == []

        # The page the segment's last write began may still hold a few records.
        answers = []
        while len(answers) < 50 and all(a.status_code == 200 for a in answers):
            answers.append(decide(server))
        failed = [a for a in answers if a.status_code != 200]
        assert failed and all(a.status_code == 503 for a in failed), [a.text for a in answers]
        assert "could not be recorded, so it was not done" in failed[0].json()["detail"]
        assert "No space left on device" in failed[0].json()["detail"]
        assert failed[0].headers["retry-after"] == "1"
        # Cutting off the refused batch's partial bytes gives some blocks back: take them
        # again, so that the disk is as full as the refusal found it.
        fill(disk)
        not_ready = ready(server)
        assert not_ready.status_code == 503, not_ready.text
        assert any("ledger" in p for p in not_ready.json()["problems"]), not_ready.text

        filler.unlink()
        deadline = time.monotonic() + 10
        while ready(server).status_code != 200:
            assert time.monotonic() < deadline, ready(server).text
            time.sleep(0.1)
        answer = decide(server)
        assert answer.status_code == 200 and answer.json()["revision"] == 1, answer.text
        again = deploy(server, revision_of("Third."))
        assert again.status_code in (200, 201) and again.json()["revision"] == 3, again.text
        assert again.json()["activated"] is True, again.text
        verified = httpx.get(
            server.url + "/v1/audit/verify", headers=server.auth("auditor"), timeout=30
        ).json()
        assert verified["ok"], verified


def serve(data_dir: Path) -> tuple[int, str]:
    env = {**os.environ, "FRONTLINE_API_KEYS": API_KEYS}
    env.pop("FRONTLINE_MASKING_KEY", None)
    return serve_once(data_dir, env)


@pytest.mark.parametrize(
    ("leave", "says"),
    [
        pytest.param(0, "server.lock: No space left on device", id="no-room-at-all"),
        pytest.param(
            64 << 10,
            "ruleset 'retention-desk' could not be stored: writing rulesets/",
            id="room-for-a-little",
        ),
    ],
)
def test_a_first_start_on_a_full_disk_stops_in_one_sentence_and_leaves_nothing_half_made(
    disk: Path, leave: int, says: str
) -> None:
    """No traceback and nothing half-made: no part of the starter rulesets, no masking key
    cut short; once there is room the same directory starts."""
    filler = fill(disk, leave)
    data = disk / "data"
    code, output = serve(data)
    assert code == 1, output
    assert len(output.splitlines()) == 1 and "cannot start: " in output and says in output, output
    assert "Traceback" not in output
    assert not (data / "rulesets").exists()
    key = data / "masking.key"
    assert not key.exists() or len(key.read_bytes()) == 32
    filler.unlink()
    with LiveServer(data) as server:
        assert decide(server).status_code == 200
