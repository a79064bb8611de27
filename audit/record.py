"""The ledger record: one schema for writing, querying and exporting, and its hash chain.

Every record carries ``prev_hash`` (the previous record's ``hash``) and ``hash``:

    hash = sha256( canonical JSON of the record with hash = "" )

The canonical JSON sorts every object's keys (msgspec ``order="sorted"``), so the same record
always hashes the same, whoever wrote it. Changing any byte of a stored record, deleting one,
or swapping two breaks the chain at the first record affected.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

import msgspec

Kind = Literal["decision", "alert", "ack", "ruleset", "shadow", "checkpoint"]
KINDS: tuple[str, ...] = ("decision", "alert", "ack", "ruleset", "shadow", "checkpoint")
GENESIS = "sha256:" + "0" * 64


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who caused the record: the key's principal and role."""

    principal: str
    role: str


class RulesetRef(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    revision: int | None
    digest: str


class ContextValue(msgspec.Struct, frozen=True, kw_only=True):
    """A context value the decision read, where it came from and how old it was."""

    value: Any
    source: str | None = None
    age_ms: int | None = None


class FiredRule(msgspec.Struct, frozen=True, kw_only=True):
    section: str  # eligibility | escalation | alerts
    rule: str
    because: str | None = None


class LedgerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the ledger: a decision, an alert delivery or ack, a ruleset change, a
    shadow difference, or a retention checkpoint.

    ``seq``, ``recorded_at``, ``prev_hash`` and ``hash`` are set by the ledger writer.
    """

    id: str
    kind: Kind
    seq: int = 0
    recorded_at: str = ""
    instance: str = ""
    actor: Actor | None = None
    customer_id: str | None = None
    agent_id: str | None = None
    interaction_id: str | None = None
    ruleset: RulesetRef | None = None
    evaluated_at: str | None = None
    context: dict[str, ContextValue] = {}
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    fired: list[FiredRule] = []
    missing_fields: list[str] = []
    stale_fields: list[str] = []
    latency_us: int | None = None
    data: dict[str, Any] = {}
    prev_hash: str = ""
    hash: str = ""

    def indexed(self) -> tuple[Any, ...]:
        """The columns every store indexes a record by, between its instance and its body:
        seq, id, kind, recorded_at, customer_id, agent_id, ruleset name and revision."""
        ruleset = self.ruleset
        return (
            self.seq,
            self.id,
            self.kind,
            self.recorded_at,
            self.customer_id,
            self.agent_id,
            ruleset.name if ruleset else None,
            ruleset.revision if ruleset else None,
        )

    def outcomes(self) -> list[tuple[str, str]]:
        """(kind, value) pairs a query can filter on: offers, queues, alert rules, rules."""
        found: list[tuple[str, str]] = []
        for item in self.outputs.get("eligible") or ():
            found.append(("offer", str(item.get("offer"))))
        escalation = self.outputs.get("escalation")
        if escalation:
            found.append(("queue", str(escalation.get("queue"))))
        for alert in self.outputs.get("alerts") or ():
            found.append(("alert", str(alert.get("rule"))))
        found.extend(("rule", f.rule) for f in self.fired)
        return found


_ENCODER = msgspec.json.Encoder(order="sorted")
_DECODER = msgspec.json.Decoder(LedgerRecord)


def encode(record: LedgerRecord) -> bytes:
    """The record's canonical JSON: sorted keys, compact, UTF-8."""
    return _ENCODER.encode(record)


def decode(data: bytes | str) -> LedgerRecord:
    """A stored record back into its schema; raises msgspec.ValidationError if it is not one."""
    return _DECODER.decode(data)


def to_builtins(record: LedgerRecord) -> dict[str, Any]:
    """The record as plain JSON-compatible values (for exports and HTTP)."""
    out: dict[str, Any] = msgspec.to_builtins(record, order="sorted")
    return out


def digest(record: LedgerRecord) -> str:
    """The hash a record must carry: sha256 of its canonical JSON with ``hash`` empty."""
    body = encode(msgspec.structs.replace(record, hash="")) if record.hash else encode(record)
    return "sha256:" + hashlib.sha256(body).hexdigest()


# A placeholder no caller can guess, so it occurs in an encoded record only where put.
_PLACEHOLDER = "sha256:" + secrets.token_hex(32)
_FIELD = b'"hash":"' + _PLACEHOLDER.encode() + b'"'


def seal(
    record: LedgerRecord, *, seq: int, recorded_at: str, instance: str, prev_hash: str
) -> tuple[LedgerRecord, bytes]:
    """Place a record in the chain; return it and its stored bytes.

    The record is encoded once, with a random placeholder for its hash: the canonical form
    (``hash`` empty) and the stored form (``hash`` set) are both that one encoding with the
    placeholder replaced, which costs far less than encoding the record twice.
    """
    placed = msgspec.structs.replace(
        record,
        seq=seq,
        recorded_at=recorded_at,
        instance=instance,
        prev_hash=prev_hash,
        hash=_PLACEHOLDER,
    )
    encoded = encode(placed)
    if encoded.count(_FIELD) != 1:  # pragma: no cover - only if the placeholder were guessed
        body = encode(msgspec.structs.replace(placed, hash=""))
    else:
        body = encoded.replace(_FIELD, b'"hash":""')
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return msgspec.structs.replace(placed, hash=digest), encoded.replace(
        _PLACEHOLDER.encode(), digest.encode()
    )
