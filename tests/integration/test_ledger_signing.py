"""A real server signs its ledger: every decision answers with a receipt naming its record's
place in the log, a signed tree head covers it within about a second, the public key comes
from `frontline audit public-key`, and a server whose log was rewritten refuses to start."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from audit.merkle import root_of, verify_consistency
from audit.record import decode, hash_bytes, hash_text, leaf_hash
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
    _forge(data, seq, b'"c-1"', b'"c-2"')

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


def _forge(data: Path, seq: int, change: bytes, to: bytes) -> None:
    """Rewrite record ``seq`` with its frame's hash recomputed (write access, no key)."""
    segment = data / "ledger" / "local" / segment_name(1)
    raw = bytearray(segment.read_bytes())
    offset = len(MAGIC)
    for _ in range(seq - 1):
        offset += HEADER.size + HEADER.unpack_from(raw, offset)[0]
    length, _ = HEADER.unpack_from(raw, offset)
    body = bytes(raw[offset + HEADER.size : offset + HEADER.size + length])
    forged = body.replace(change, to, 1)
    assert forged != body and len(forged) == len(body)
    raw[offset : offset + HEADER.size + length] = HEADER.pack(length, leaf_hash(forged)) + forged
    segment.write_bytes(bytes(raw))


def test_proofs_checkpoints_and_consistency_are_checked_offline(tmp_path: Path) -> None:
    data = tmp_path / "data"
    auditor_files = tmp_path / "auditor"
    auditor_files.mkdir()
    with LiveServer(data) as server, httpx.Client(base_url=server.url) as client:
        auditor = server.auth("auditor")
        ids = [
            client.post(
                "/v1/decisions",
                json={**BODY, "customer_id": f"c-{k}"},
                headers=server.auth("agent"),
            ).json()["decision_id"]
            for k in range(12)
        ]
        proof = client.get(f"/v1/audit/decisions/{ids[4]}/proof", headers=auditor)
        assert proof.status_code == 200, proof.text
        saved = auditor_files / "proof.json"
        saved.write_text(proof.text)

        kept = client.get("/v1/audit/checkpoints/latest", headers=auditor).json()["checkpoints"]
        (first,) = kept
        (auditor_files / "checkpoint.json").write_text(json.dumps(first))
        for k in range(5):
            client.post(
                "/v1/decisions",
                json={**BODY, "customer_id": f"d-{k}"},
                headers=server.auth("agent"),
            )
        deadline = time.monotonic() + 5
        later = first
        while later["tree_size"] <= first["tree_size"] and time.monotonic() < deadline:
            time.sleep(0.1)
            (later,) = client.get("/v1/audit/checkpoints/latest", headers=auditor).json()[
                "checkpoints"
            ]
        assert later["tree_size"] > first["tree_size"]
        consistency = client.get(
            "/v1/audit/consistency",
            params={"instance": "local", "from": first["tree_size"], "to": later["tree_size"]},
            headers=auditor,
        ).json()
        verify_consistency(
            first["tree_size"],
            later["tree_size"],
            hash_bytes(first["root_hash"]),
            hash_bytes(later["root_hash"]),
            [hash_bytes(h) for h in consistency["proof"]],
        )
        bad = [
            ("/v1/audit/consistency", {"instance": "local", "from": 5, "to": 3}, 400),
            ("/v1/audit/consistency", {"instance": "local", "from": 0, "to": 10**9}, 400),
            ("/v1/audit/consistency", {"instance": "nobody", "from": 0, "to": 1}, 404),
            ("/v1/audit/decisions/no-such-id/proof", {}, 404),
        ]
        for path, params, status in bad:
            answer = client.get(path, params=params, headers=auditor)
            assert answer.status_code == status, (path, params, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
        assert (
            client.get("/v1/audit/checkpoints/latest", headers=server.auth("agent")).status_code
            == 403
        )

    public_key = frontline("audit", "public-key", "--data-dir", str(data)).stdout.strip()
    checked = frontline("audit", "verify-proof", str(saved), "--public-key", public_key)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"ok: record {ids[4]} (decision) is record ")

    other = frontline(
        "audit", "verify-proof", str(saved), "--public-key", "ed25519:" + "A" * 43 + "="
    )
    assert other.returncode == 1 and "not signed by" in other.stdout
    body = json.loads(saved.read_text())
    raw = base64.b64decode(body["record_bytes"])
    body["record_bytes"] = base64.b64encode(raw.replace(b'"c-4"', b'"c-5"')).decode()
    (auditor_files / "altered.json").write_text(json.dumps(body))
    altered = frontline(
        "audit", "verify-proof", str(auditor_files / "altered.json"), "--public-key", public_key
    )
    assert altered.returncode == 1 and "do not hash to the proof's leaf_hash" in altered.stdout
    body["leaf_hash"] = hash_text(leaf_hash(base64.b64decode(body["record_bytes"])))
    (auditor_files / "forged.json").write_text(json.dumps(body))
    forged = frontline(
        "audit", "verify-proof", str(auditor_files / "forged.json"), "--public-key", public_key
    )
    assert forged.returncode == 1 and "does not lead to the root" in forged.stdout

    since = frontline(
        "audit",
        "verify",
        "--data-dir",
        str(data),
        "--since",
        str(auditor_files / "checkpoint.json"),
    )
    assert since.returncode == 0, since.stdout
    assert "extends the checkpoint" in since.stdout

    # Someone with write access rewrites an early decision, frame hash and all.
    seq = body["leaf_index"] + 1
    _forge(data, seq, b'"c-4"', b'"c-7"')
    rewritten = frontline(
        "audit",
        "verify",
        "--data-dir",
        str(data),
        "--since",
        str(auditor_files / "checkpoint.json"),
    )
    assert rewritten.returncode == 1
    assert "its history was rewritten" in rewritten.stdout
    assert f"broken at record {seq + 1}" in rewritten.stdout  # the chain's next link breaks too


def _files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` (the server's own log aside) whose bytes contain ``needle``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.name != "server.log" and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def test_an_erasure_blanks_a_customer_and_every_proof_still_holds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secret = "Erin-Quint-7741"  # a value only this customer's records hold
    with LiveServer(data) as server, httpx.Client(base_url=server.url) as client:
        agent = server.auth("agent")
        others = [
            client.post("/v1/decisions", json={**BODY, "customer_id": f"k-{k}"}, headers=agent)
            for k in range(3)
        ]
        erased = [
            client.post(
                "/v1/decisions",
                json={
                    **BODY,
                    "customer_id": "c-erase",
                    "context": {"customer": {"tier": "gold", "segment": secret}},
                },
                headers=agent,
            )
            for _ in range(2)
        ]
        assert all(a.status_code == 200 for a in others + erased)
        time.sleep(1.2)  # a tree head covers them all
        auditor = server.auth("auditor")
        kept_proof = client.get(
            f"/v1/audit/decisions/{others[1].json()['decision_id']}/proof", headers=auditor
        ).json()
        assert secret.encode() in b"".join(p.read_bytes() for p in data.rglob("*.seg"))

        asked = {"customer_id": "c-erase", "reason": "GDPR Art. 17 request 2026-118"}
        assert client.post("/v1/audit/erasures", json=asked, headers=auditor).status_code == 403
        done = client.post("/v1/audit/erasures", json=asked, headers=server.auth("admin"))
        assert done.status_code == 200, done.text
        assert done.json()["records"] == 2

        gone = client.get(
            f"/v1/audit/decisions/{erased[0].json()['decision_id']}", headers=auditor
        ).json()["record"]
        assert gone["kind"] == "erased" and gone.get("customer_id") is None
        assert gone["data"]["erasure"] == done.json()["erasure_id"]
        page = client.get(
            "/v1/audit/decisions", params={"customer_id": "c-erase"}, headers=auditor
        ).json()
        assert page["records"] == []
        (erasure,) = client.get(
            "/v1/audit/decisions", params={"kind": "erasure"}, headers=auditor
        ).json()["records"]
        assert erasure["data"]["reason"] == asked["reason"]
        assert "c-erase" not in json.dumps(erasure)  # the erasure names the customer masked
        verified = client.get("/v1/audit/verify", headers=auditor).json()
        assert verified["ok"], verified
        again = client.get(
            f"/v1/audit/decisions/{others[1].json()['decision_id']}/proof", headers=auditor
        ).json()
        assert again["inclusion_path"] == kept_proof["inclusion_path"]
        erased_proof = client.get(
            f"/v1/audit/decisions/{erased[0].json()['decision_id']}/proof", headers=auditor
        ).json()
        assert erased_proof["leaf_hash"] == erased[0].json()["receipt"]["leaf_hash"]

    assert _files_holding(data, secret.encode()) == []
    assert _files_holding(data, b'"c-erase"') == []
    public_key = frontline("audit", "public-key", "--data-dir", str(data)).stdout.strip()
    saved = tmp_path / "proof.json"
    saved.write_text(json.dumps(kept_proof))
    checked = frontline("audit", "verify-proof", str(saved), "--public-key", public_key)
    assert checked.returncode == 0, checked.stdout
    saved.write_text(json.dumps(erased_proof))
    checked = frontline("audit", "verify-proof", str(saved), "--public-key", public_key)
    assert checked.returncode == 0, checked.stdout
    assert "was erased" in checked.stdout and "its leaf is still record" in checked.stdout
    verified = frontline("audit", "verify", "--data-dir", str(data))
    assert verified.returncode == 0, verified.stdout
    with LiveServer(data):  # its start checks every signed tree head again
        pass
