"""What the use cases answer, field by field: the shapes the HTTP API documents in /schema.

A decision's answer is a TypedDict: the engine builds it as a dict (``Decision.to_dict``), and
the decision path adds its ids without copying it into another type (a conversion would cost
about 3 µs a decision). Every other answer is a msgspec Struct. Each shape is checked against
what the server really answers (tests/integration/test_answers.py, schemathesis).
"""

from typing import Any, Literal, NotRequired, TypedDict

import msgspec

from audit.record import Kind, LedgerRecord

# -- decisions and interactions ----------------------------------------------------------------


class Eligible(TypedDict):
    """An offer the customer is eligible for, and the rule that made it so."""

    rule: str
    offer: str
    params: dict[str, Any]
    because: str | None


class Escalation(TypedDict):
    """Where to route the customer, and the rule that says so."""

    rule: str
    queue: str
    priority: int | None
    because: str | None


class DecisionAlert(TypedDict):
    """A warning to show the agent; ``alert_id`` is what an acknowledgement names."""

    alert_id: str
    rule: str
    severity: Literal["info", "warning", "critical"]
    message: str


class NextStep(TypedDict):
    """Where a guided decision tree stands: a question to ask, an outcome, or an error."""

    tree: str
    node: str
    path: list[str]
    ask: NotRequired[str]
    answer: NotRequired[str]
    outcome: NotRequired[str]
    say: NotRequired[str | None]
    queue: NotRequired[str | None]
    error: NotRequired[str]


class InvalidField(TypedDict):
    """A context value of the wrong type or outside its enum: it reads as unknown."""

    field: str
    expected: str
    got: str


class DecisionError(TypedDict):
    """A table, rule or tree that could not give its answer (the rest of the decision
    stands): a unique table that matched several rows, a tree node no branch of which holds,
    arithmetic that failed (division by zero, a number out of range) and left it unknown."""

    error: str
    table: NotRequired[str]
    rule: NotRequired[str]
    tree: NotRequired[str]


class Receipt(TypedDict):
    """Where the decision's record is in the ledger: the promise that it is durable in that
    instance's log, and covered by a signed tree head within about a second."""

    instance: str
    seq: int
    leaf_hash: str  # sha256:<hex>, the record's leaf in the instance's Merkle tree


class DecisionAnswer(TypedDict):
    """A decision: what the customer is eligible for, where to route them, what to warn the
    agent about, table outputs, the next step of a tree, and what the evaluation lacked."""

    decision_id: str
    ruleset: str
    revision: int | None
    digest: str
    evaluated_at: str | None
    eligible: list[Eligible]
    escalation: Escalation | None
    alerts: list[DecisionAlert]
    tables: dict[str, dict[str, Any]]
    next_step: NextStep | None
    missing_fields: list[str]
    stale_fields: list[str]
    invalid_fields: list[InvalidField]
    errors: list[DecisionError]
    trace: dict[str, Any] | None
    degraded: NotRequired[bool]  # present (true) when a store answered from a fallback
    customer_id: str
    agent_id: str
    interaction_id: str | None
    receipt: Receipt


# -- customers ---------------------------------------------------------------------------------


class FieldInfo(msgspec.Struct, kw_only=True):
    """Where a cached field came from and how old it is."""

    source: str | None
    as_of: str | None
    age_ms: int | None


class ContextWritten(msgspec.Struct, kw_only=True):
    """The context as stored after a write, and the alerts the write raised."""

    customer_id: str
    values: dict[str, Any]
    fields: dict[str, FieldInfo]
    alerts_raised: list[str]


class ContextRead(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The cached context (masked fields masked for agents and auditors)."""

    customer_id: str
    values: dict[str, Any]
    fields: dict[str, FieldInfo]
    degraded: bool = False  # served from this instance's last copy while the store is away


class EventRecorded(msgspec.Struct, kw_only=True):
    customer_id: str
    type: str
    at: str
    alerts_raised: list[str]


class AckRecorded(msgspec.Struct, kw_only=True):
    alert_id: str
    outcome: str
    record_id: str


# -- rulesets ----------------------------------------------------------------------------------


class Canary(msgspec.Struct, kw_only=True):
    revision: int
    percent: int


class TestCounts(msgspec.Struct, kw_only=True):
    passed: int
    failed: int


class Deployed(msgspec.Struct, kw_only=True):
    """A deploy: the revision the document is (new, or the same digest deployed before)."""

    name: str
    revision: int
    digest: str
    created: bool
    activated: bool
    tests: TestCounts


class Routing(msgspec.Struct, kw_only=True):
    """Which revisions of a ruleset serve."""

    name: str
    active_revision: int | None
    canary: Canary | None
    shadow: int | None


class RulesetSummary(msgspec.Struct, kw_only=True):
    name: str
    revisions: int
    active_revision: int | None
    canary: Canary | None
    shadow: int | None
    description: str | None


class RulesetList(msgspec.Struct, kw_only=True):
    rulesets: list[RulesetSummary]


class RevisionRef(msgspec.Struct, kw_only=True):
    revision: int
    digest: str


class RulesetDetail(msgspec.Struct, kw_only=True):
    name: str
    active_revision: int | None
    canary: Canary | None
    shadow: int | None
    revisions: list[RevisionRef]


class RevisionDocument(msgspec.Struct, kw_only=True):
    name: str
    revision: int
    digest: str
    document: str


class TestOutcome(msgspec.Struct, kw_only=True):
    name: str
    passed: bool
    failures: list[str]


class TestRun(msgspec.Struct, kw_only=True):
    name: str
    revision: int
    passed: int
    failed: int
    tests: list[TestOutcome]


# -- audit -------------------------------------------------------------------------------------


class Actor(msgspec.Struct, kw_only=True):
    principal: str
    role: str


class RulesetRefAnswer(msgspec.Struct, kw_only=True):
    name: str
    revision: int | None
    digest: str


class Record(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A ledger record as the API shows it (the ledger's own record type, field for field).

    Each ``context`` entry is ``[value, source, age_ms]``: the value the decision read, where
    it came from (``request`` for the request's overrides) and how old it was, in ms."""

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
    ruleset: RulesetRefAnswer | None = None
    evaluated_at: str | None = None
    context: dict[str, tuple[Any, str | None, int | None]] = {}
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    missing_fields: list[str] = []
    stale_fields: list[str] = []
    latency_us: int | None = None
    data: dict[str, Any] = {}
    hash: str = ""


def record_answer(record: LedgerRecord) -> Record:
    return msgspec.convert(msgspec.to_builtins(record), Record)


class AuditPage(msgspec.Struct, kw_only=True):
    """Ledger records, newest first, and the cursor of the next page (null on the last)."""

    records: list[Record]
    next_cursor: str | None


class ExplainedRule(msgspec.Struct, kw_only=True):
    section: str
    rule: str
    because: str | None


class ExplainedValue(msgspec.Struct, kw_only=True):
    value: Any
    source: str | None
    age_ms: int | None


class Explanation(msgspec.Struct, kw_only=True):
    """A decision record in the words an auditor reads it in."""

    ruleset: RulesetRefAnswer | None
    evaluated_at: str | None
    fired: list[ExplainedRule]
    offers: list[str | None]
    queue: str | None
    alerts: list[str | None]
    context: dict[str, ExplainedValue]
    missing_fields: list[str]
    stale_fields: list[str]
    invalid_fields: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    rules_evaluated: Any


class HumanStep(msgspec.Struct, kw_only=True):
    """What happened on the agent's side after a decision, from the ledger: an alert raised,
    held back by the contact policy, delivered to the desktop, answered or escalated."""

    at: str  # when it was recorded
    kind: str  # alert, alert_suppressed, alert_delivered, ack, alert_escalated
    alert_id: str | None
    rule: str | None = None
    outcome: str | None = None  # an ack's: acknowledged, acted, accepted, overridden, ...
    note: str | None = None  # an override's reason
    after_ms: int | None = None  # an ack's time since the alert reached the desktop
    reason: str | None = None  # why the policy held an alert back
    supervisor: str | None = None  # whom an escalation went to
    by: str | None = None  # who answered


class RecordExplained(msgspec.Struct, kw_only=True):
    record: Record
    explanation: Explanation
    human: list[HumanStep] = []  # the alerts of the decision's interaction, and the answers


class IndexCheck(msgspec.Struct, kw_only=True):
    ok: bool
    indexed: int
    problems: list[str]


class InstanceCheck(msgspec.Struct, kw_only=True):
    ok: bool
    records: int
    head_seq: int
    head_hash: str
    broken_at: int | None
    reason: str | None
    index: IndexCheck


class SignedTreeHead(msgspec.Struct, kw_only=True):
    """An instance's signed statement of its log: the first ``tree_size`` records have the
    Merkle root ``root_hash``. ``signature`` is Ed25519 over the five lines
    ``frontline tree head v1``, instance, tree_size, root_hash and time."""

    instance: str
    tree_size: int
    root_hash: str
    time: str
    signature: str
    public_key: str
    seq: int  # where the tree head itself is in the log


class Checkpoints(msgspec.Struct, kw_only=True):
    """The latest signed tree head of every instance whose log this server reads."""

    checkpoints: list[SignedTreeHead]


class InclusionProof(msgspec.Struct, kw_only=True):
    """A record, its bytes as stored, and the path from its leaf to a signed root: checkable
    with nothing but the instance's public key (``frontline audit verify-proof``)."""

    record: Record
    record_bytes: str  # base64 of the stored bytes; leaf_hash is SHA-256(0x00 || them)
    leaf_index: int  # the record's seq - 1
    leaf_hash: str
    tree_head: SignedTreeHead
    inclusion_path: list[str]  # sha256:<hex>, nearest sibling first (RFC 9162 §2.1.3)


class ConsistencyProof(msgspec.Struct, kw_only=True):
    """Proof that the tree of ``from_size`` leaves is a prefix of the tree of ``to_size``."""

    instance: str
    from_size: int
    to_size: int
    from_root: str
    to_root: str
    proof: list[str]  # sha256:<hex> (RFC 9162 §2.1.4)


class Erased(msgspec.Struct, kw_only=True):
    """An erasure done: its own record's id and how many records lost their bodies."""

    erasure_id: str
    records: int
    instances: list[str]


class Verified(msgspec.Struct, kw_only=True):
    """The chain of every instance walked: ok, or the first broken link and why."""

    ok: bool
    records: int
    broken_instance: str | None
    broken_at: int | None
    reason: str | None
    instances: dict[str, InstanceCheck]


class Change(msgspec.Struct, kw_only=True):
    change: str
    count: int
    examples: list[str]


class ReplayReport(msgspec.Struct, kw_only=True):
    """How many recorded decisions a candidate would decide otherwise, by what changed."""

    ruleset: str | None
    candidate_digest: str
    replayed: int
    changed: int
    unchanged: int
    skipped: int
    read_masked_values: int
    read_unrecorded_fields: int
    unrecorded_fields: list[str]
    rules: list[Change]
    offers: list[Change]
    queues: list[Change]
    alerts: list[Change]
    errors: list[Change]
