"""The ledger record: one schema for writing, querying and exporting, and its hash chain.

A record is encoded once, when the ledger writer places it in its instance's chain: JSON in
the struct's own field order (no key sorting), fields that carry nothing left out. Those
bytes are what the log stores and what every hash covers:

    hash      = SHA-256( 0x00 || record bytes )          (an RFC 6962 leaf hash)
    prev_hash = the previous record's hash, inside the record bytes

so changing any byte of a stored record breaks its own hash, and deleting, inserting or
swapping records breaks the next record's ``prev_hash``. Checking a record needs only its
bytes: nothing is re-encoded, so the check does not depend on how the record was encoded.
``hash`` itself is never inside the bytes; a reader takes it from the log's frame.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, get_args

import msgspec

Kind = Literal[
    "decision",
    "alert",
    "alert_suppressed",
    "alert_escalated",
    "alert_delivered",
    "escalation_raised",
    "ack",
    "ruleset",
    "shadow",
    "checkpoint",
    "tree_head",
    "erasure",
    "erased",
]
KINDS: tuple[str, ...] = get_args(Kind)
GENESIS = "sha256:" + "0" * 64


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who caused the record: the key's principal and role."""

    principal: str
    role: str


class RulesetRef(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    revision: int | None
    digest: str


class ContextValue(msgspec.Struct, frozen=True, array_like=True):
    """A context value the decision read, where it came from and how old it was.

    Stored as an array, ``[value, source, age_ms]``: ``["gold", "crm", 300000]``, or
    ``[3, null, null]`` for a value sent with the request.
    """

    value: Any
    source: str | None = None
    age_ms: int | None = None


class FiredRule(msgspec.Struct, frozen=True, kw_only=True):
    section: str  # eligibility | escalation | alerts
    rule: str
    because: str | None = None


class LedgerRecord(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One entry of the ledger: a decision, an alert raised, held back by the contact policy
    or re-raised to a supervisor, an ack, a ruleset change, a shadow difference, or a
    retention checkpoint.

    ``seq``, ``recorded_at``, ``instance`` and ``prev_hash`` are set by the ledger writer when
    it seals the record; ``hash`` is read back from the log, never stored in the record.
    Treat a record as immutable (``msgspec.structs.replace`` makes a changed copy): only
    ``seal`` sets ``hash``, on the copy it has just made.
    ``context`` holds the fields the evaluation read and had; a field it read and did not
    have is named once, in ``missing_fields``.
    """

    id: str
    kind: Kind
    seq: int = 0
    recorded_at: str = ""
    instance: str = ""
    prev_hash: str = ""
    actor: Actor | None = None
    customer_id: str | None = None
    agent_id: str | None = None
    interaction_id: str | None = None
    ruleset: RulesetRef | None = None
    evaluated_at: str | None = None
    context: dict[str, ContextValue] = {}
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    missing_fields: list[str] = []
    stale_fields: list[str] = []
    latency_us: int | None = None
    data: dict[str, Any] = {}
    hash: str = ""

    @property
    def fired(self) -> list[FiredRule]:
        """Each rule that fired, with its section and reason (read from ``outputs``)."""
        outputs = self.outputs
        fired = [
            FiredRule(section="eligibility", rule=e["rule"], because=e.get("because"))
            for e in outputs.get("eligible") or ()
        ]
        escalation = outputs.get("escalation")
        if escalation:
            fired.append(
                FiredRule(
                    section="escalation", rule=escalation["rule"], because=escalation.get("because")
                )
            )
        fired.extend(
            FiredRule(section="alerts", rule=a["rule"]) for a in outputs.get("alerts") or ()
        )
        return fired


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(LedgerRecord)
_LEAF = hashlib.sha256(b"\x00")


def leaf_hash(body: bytes) -> bytes:
    """The 32-byte hash of a record's stored bytes: SHA-256(0x00 || bytes)."""
    h = _LEAF.copy()
    h.update(body)
    return h.digest()


def is_tombstone(body: bytes) -> bool:
    """Whether stored bytes are an erased record's tombstone (audit/erasure.py): bytes that no
    longer hash to their frame's leaf, by design."""
    return b'"kind":"erased"' in body[:200]


def hash_text(leaf: bytes) -> str:
    """A hash as records and APIs write it: ``sha256:<hex>``."""
    return "sha256:" + leaf.hex()


def hash_bytes(text: str) -> bytes:
    """The 32 bytes of a ``sha256:<hex>`` hash; ValueError if it is not one."""
    if not text.startswith("sha256:") or len(text) != 71:
        raise ValueError(f"{text!r} is not a sha256:<64 hex digits> hash")
    return bytes.fromhex(text[7:])


def encode(record: LedgerRecord) -> bytes:
    """A record's JSON in the schema's field order, without ``hash``."""
    if record.hash:
        record = msgspec.structs.replace(record, hash="")
    return _ENCODER.encode(record)


def decode(body: bytes | str, hash: str = "") -> LedgerRecord:
    """Stored bytes back into the schema, carrying ``hash`` (from the log's frame);
    raises msgspec.ValidationError or DecodeError if they are not a record."""
    record = _DECODER.decode(body)
    record.hash = hash
    return record


def to_builtins(record: LedgerRecord) -> dict[str, Any]:
    """The record as plain JSON-compatible values (for HTTP), with its hash."""
    out: dict[str, Any] = msgspec.to_builtins(record)
    return out


class Sealed(msgspec.Struct, frozen=True, array_like=True):
    """A record placed in its chain: the record (``hash`` set), its stored bytes, and the
    32-byte leaf hash the log frames them with."""

    record: LedgerRecord
    body: bytes
    leaf: bytes


def seal(
    record: LedgerRecord, *, seq: int, recorded_at: str, instance: str, prev_hash: str
) -> Sealed:
    """Place a record in the chain: encode it once and hash the bytes."""
    placed = msgspec.structs.replace(
        record, seq=seq, recorded_at=recorded_at, instance=instance, prev_hash=prev_hash, hash=""
    )
    body = _ENCODER.encode(placed)
    leaf = leaf_hash(body)
    placed.hash = "sha256:" + leaf.hex()
    return Sealed(placed, body, leaf)
