"""A data directory with a damaged or hand-edited file stops `frontline serve` at once with one
sentence naming the file and what is wrong, before anything says ready."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from audit.segments import HEADER, MAGIC, Frame, segment_name, walk
from tests.support.live_server import API_KEYS, LiveServer, serve_once


def serve(data_dir: Path, keys: bool = True) -> tuple[int, str]:
    env = {**os.environ}
    env.pop("FRONTLINE_API_KEYS", None)
    if keys:
        env["FRONTLINE_API_KEYS"] = API_KEYS
    return serve_once(data_dir, env, timeout=30)


@pytest.fixture(scope="module")
def used(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory a server has run on (starter rulesets, a ledger), then stopped."""
    data = tmp_path_factory.mktemp("used")
    LiveServer(data).start().stop()
    return data


def damage(used: Path, tmp_path: Path, how: Callable[[Path], None]) -> Path:
    copy = tmp_path / "data"
    subprocess.run(["cp", "-a", str(used), str(copy)], check=True)
    (copy / "server.log").unlink(missing_ok=True)
    how(copy)
    return copy


CASES = {
    "a hand-edited revision": (
        lambda d: (d / "rulesets/retention-desk/1.txt").write_text(
            (d / "rulesets/retention-desk/1.txt")
            .read_text()
            .replace("Repeat contact from a high-tier customer", "Edited by hand")
        ),
        "revision 1 of ruleset 'retention-desk' no longer matches its digest",
    ),
    "a broken revision list": (
        lambda d: (d / "rulesets/billing-disputes/revisions.json").write_text("[{"),
        "rulesets/billing-disputes/revisions.json: not a revision list Frontline wrote",
    ),
    "broken routing": (
        lambda d: (d / "rulesets/service-outage/routing.json").write_text('{"live": 1}'),
        "rulesets/service-outage/routing.json: not routing Frontline wrote",
    ),
    "broken reviews": (
        lambda d: (d / "rulesets/service-outage/reviews.json").write_text('{"1": {"ok": 1}}'),
        "rulesets/service-outage/reviews.json: not a review Frontline wrote",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_file_stops_the_server_in_one_sentence(
    used: Path, tmp_path: Path, case: str
) -> None:
    how, says = CASES[case]
    code, output = serve(damage(used, tmp_path, how))
    assert code == 1, output
    assert len(output.splitlines()) == 1 and says in output, output
    assert "Traceback" not in output and "ready" not in output


def test_a_damaged_key_file_stops_the_server_in_one_sentence(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "keys.json").write_text("not json{")
    code, output = serve(data, keys=False)
    assert code == 1 and len(output.splitlines()) == 1, output
    assert f"{data / 'keys.json'}: not a key file Frontline wrote" in output


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose ledger holds 16 records in four segments of four, as a log
    that rolled over would (segments are 64 MiB; these are cut by hand)."""
    data = tmp_path_factory.mktemp("segmented")
    with LiveServer(data) as server:
        for n in range(13):
            body = {"ruleset": "retention-desk", "customer_id": f"c-{n}", "agent_id": "agent-7"}
            answer = httpx.post(
                server.url + "/v1/decisions", json=body, headers=server.auth("agent"), timeout=30
            )
            assert answer.status_code == 200, answer.text
    log = data / "ledger" / "local"
    frames = [f for f in walk(log / segment_name(1), 1) if isinstance(f, Frame)]
    # 3 starter deploys, 13 decisions and the signed tree heads among and after them: the
    # first 16 records are kept (what follows is cut, as a log whose tail was never written)
    frames = frames[:16]
    assert [f.seq for f in frames] == list(range(1, 17))
    (log / segment_name(1)).unlink()
    for k in range(0, 16, 4):
        part = frames[k : k + 4]
        framed = b"".join(HEADER.pack(len(f.body), f.leaf) + f.body for f in part)
        (log / segment_name(part[0].seq)).write_bytes(MAGIC + framed)
    (data / "ledger" / "index.db").unlink()  # it points into the segment cut up; rebuilt
    return data


def segment(data: Path, first: int) -> Path:
    return data / "ledger" / "local" / segment_name(first)


def flip(path: Path, at: int) -> None:
    """Flip one bit of the byte at ``at`` (negative: from the end)."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def frame_offsets(path: Path, first: int) -> list[int]:
    return [f.offset for f in walk(path, first) if isinstance(f, Frame)]


SEGMENT_CASES = {
    "a flipped byte in a sealed segment": (
        lambda d: flip(segment(d, 5), frame_offsets(segment(d, 5), 5)[2] + 100),
        "record 7 in {s5} at byte {at} is damaged",
        "later segments follow it",
    ),
    "a flipped byte in the last segment, whole records after it": (
        lambda d: flip(segment(d, 13), frame_offsets(segment(d, 13), 13)[1] + 100),
        "record 14 in {s13} at byte {at} is damaged",
        "whole records follow it",
    ),
    "a damaged length in the last segment, whole records after it": (
        lambda d: flip(segment(d, 13), frame_offsets(segment(d, 13), 13)[1] + 3),
        "record 14 in {s13} at byte {at} is damaged",
        "not a torn last write and nothing was cut",
    ),
    "a foreign file named as a segment": (
        lambda d: segment(d, 99).write_text("these are not the records you are looking for\n"),
        "{s99} does not start with a ledger segment's header",
        "move it out of",
    ),
    "a sealed segment whose header lost its first bytes": (
        lambda d: segment(d, 9).write_bytes(segment(d, 9).read_bytes()[3:]),
        "{s9} does not start with a ledger segment's header",
        "restore the segment from a backup",
    ),
    "a sealed segment cut short inside its header": (
        lambda d: segment(d, 9).write_bytes(MAGIC[:4]),
        "{s9} is cut short inside its segment header",
        "later segments follow it",
    ),
    "a missing segment": (
        lambda d: segment(d, 9).unlink(),
        "{s5} holds records 5 to 8, but the next segment, 00000000000000000013.seg, starts "
        "at record 13",
        "restore the segments",
    ),
}


@pytest.mark.parametrize("case", sorted(SEGMENT_CASES))
def test_a_damaged_ledger_segment_stops_the_server_in_one_sentence(
    segmented: Path, tmp_path: Path, case: str
) -> None:
    """Nothing is cut or skipped: the damaged segment is left exactly as it was found."""
    how, says, also = SEGMENT_CASES[case]
    data = damage(segmented, tmp_path, how)
    log = data / "ledger" / "local"
    before = {p.name: p.read_bytes() for p in log.iterdir()}
    code, output = serve(data)
    assert code == 1, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output
    names = {f"s{n}": str(segment(data, n)) for n in (5, 9, 13, 99)}
    expected = re.escape(says.format(**names, at="AT")).replace("AT", r"\d+")
    assert re.search(expected, output) and also in output, output
    assert {p.name: p.read_bytes() for p in log.iterdir()} == before


def test_a_torn_last_write_is_still_cut_and_the_server_starts(
    segmented: Path, tmp_path: Path
) -> None:
    """Half a frame at the end of the last segment was never acknowledged: it is cut (and
    kept beside the segment), every whole record stays, and the chain verifies."""
    data = damage(
        segmented,
        tmp_path,
        lambda d: segment(d, 13).write_bytes(
            segment(d, 13).read_bytes() + HEADER.pack(1000, b"\0" * 32) + b'{"id":"half'
        ),
    )
    with LiveServer(data) as server:
        verified = httpx.get(
            server.url + "/v1/audit/verify", headers=server.auth("auditor"), timeout=30
        ).json()
    assert verified["ok"], verified
    assert [p.name for p in (data / "ledger" / "local").glob("*.torn-*")] == [
        f"{segment_name(13)}.torn-{segment(segmented, 13).stat().st_size}"
    ]
