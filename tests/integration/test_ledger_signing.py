"""A real server signs its ledger: every decision answers with a receipt naming its record's
place in the log, a signed tree head covers it within about a second, the public key comes
from `frontline audit public-key`, and a server whose log was rewritten refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from audit.merkle import root_of
from audit.record import decode, hash_text, leaf_hash
from audit.segments import HEADER, MAGIC, SegmentLog, segment_name
from audit.signing import TreeHead, parse_public_key, verify_tree_head
from tests.support.live_server import ROOT, LiveServer

BODY = {"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": "agent-7"}


def frontline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FRONTLINE_SIGNING_KEY": ""},
    )


def test_a_receipt_is_covered_by_a_signed_tree_head_within_a_second(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with LiveServer(data) as server, httpx.Client(base_url=server.url) as client:
        answer = client.post("/v1/decisions", json=BODY, headers=server.auth("agent"))
        assert answer.status_code == 200, answer.text
        receipt = answer.json()["receipt"]
        assert receipt["instance"] == "local"
        record = client.get(
            f"/v1/audit/decisions/{answer.json()['decision_id']}", headers=server.auth("auditor")
        ).json()["record"]
        assert (record["seq"], record["hash"]) == (receipt["seq"], receipt["leaf_hash"])

        answered = time.monotonic()
        covering: dict[str, object] | None = None
        while covering is None and time.monotonic() - answered < 5:
            heads = client.get(
                "/v1/audit/decisions",
                params={"kind": "tree_head", "limit": 10},
                headers=server.auth("auditor"),
            ).json()["records"]
            covering = next((h for h in heads if h["data"]["tree_size"] >= receipt["seq"]), None)
            time.sleep(0.05)
        assert covering is not None, "no tree head covered the decision within 5 s"

    printed = frontline("audit", "public-key", "--data-dir", str(data))
    assert printed.returncode == 0, printed.stderr
    public_key = printed.stdout.strip()
    assert public_key.startswith("ed25519:")
    assert server.output().count(public_key) == 1  # printed once, when the key was made

    log = SegmentLog(data / "ledger", "local", readonly=True)
    bodies = [body for _, body in log.scan()]
    log.close()
    for seq, body in enumerate(bodies, 1):
        stored = decode(body)
        if stored.kind != "tree_head":
            continue
        fields = dict(stored.data)
        assert fields.pop("public_key") == public_key
        head = TreeHead(**fields)
        assert head.tree_size == seq - 1
        assert head.root_hash == hash_text(root_of([leaf_hash(b) for b in bodies[: seq - 1]]))
        assert verify_tree_head(head, parse_public_key(public_key))


def test_a_server_whose_log_was_rewritten_refuses_to_start(tmp_path: Path) -> None:
    """A decision's bytes changed and its frame's hash recomputed (what write access to the
    files allows): the next start stops with one sentence naming the instance and record."""
    data = tmp_path / "data"
    with LiveServer(data) as server, httpx.Client(base_url=server.url) as client:
        answer = client.post("/v1/decisions", json=BODY, headers=server.auth("agent"))
        seq = answer.json()["receipt"]["seq"]
    segment = data / "ledger" / "local" / segment_name(1)
    raw = bytearray(segment.read_bytes())
    offset = len(MAGIC)
    for _ in range(seq - 1):
        offset += HEADER.size + HEADER.unpack_from(raw, offset)[0]
    length, _ = HEADER.unpack_from(raw, offset)
    body = bytes(raw[offset + HEADER.size : offset + HEADER.size + length])
    forged = body.replace(b'"c-1"', b'"c-2"', 1)
    assert forged != body
    raw[offset : offset + HEADER.size + length] = HEADER.pack(length, leaf_hash(forged)) + forged
    segment.write_bytes(bytes(raw))

    refused = LiveServer(data)
    try:
        started = refused.start(timeout=30)
    except RuntimeError:  # the start is meant to fail; its output says why
        started = None
    finally:
        output = refused.output()
        refused.stop()
    assert started is None, output
    lines = [line for line in output.splitlines() if "tree head" in line]
    assert lines and "of instance local promised" in lines[0], output
