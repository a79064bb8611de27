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
    # what the question's answer field takes: a desktop offers the enum's values as choices,
    # yes and no for a boolean, a number input for an integer or a number
    answer_type: NotRequired[Literal["string", "integer", "number", "boolean", "datetime", "list"]]
    answer_enum: NotRequired[list[str]]
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


class ContextUsed(TypedDict):
    """A field the decision read (``context_used: true`` asks for them): its value as the
    reader may see it (masked where it may not), where it came from (``request`` for a value
    the request carried) and how old it was, or that it was missing. ``label`` is the field's
    ``description`` in the ruleset, or its path."""

    field: str
    label: str
    value: Any
    source: str | None
    age_ms: int | None
    missing: bool
    stale: bool


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
    context_used: NotRequired[list[ContextUsed]]  # present when the request asked for it
    customer_id: str
    agent_id: str
    interaction_id: str | None
    receipt: Receipt


class WhoAmI(msgspec.Struct, kw_only=True):
    """Who a key belongs to: the principal (for an agent, the agent id) and the role."""

    id: str
    role: Literal["agent", "supervisor", "author", "auditor", "integration", "admin"]


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


class Unreached(msgspec.Struct, kw_only=True):
    """What no test of a document reached, by kind."""

    eligibility: list[str]
    escalation: list[str]
    alerts: list[str]
    table_rows: dict[str, list[int]]  # table id → row numbers, from 1
    tree_nodes: dict[str, list[str]]  # tree id → node ids


class TestCoverage(msgspec.Struct, kw_only=True):
    """How much of a document its own tests reached: rules that fired (for escalation, that
    won), table rows that matched, tree nodes walked."""

    reached: int
    total: int
    percent: float
    unreached: Unreached


class TestOutcome(msgspec.Struct, kw_only=True):
    name: str
    passed: bool
    failures: list[str]


class DocumentProblem(msgspec.Struct, kw_only=True):
    """Something found in a document, where it is: what a 422 lists in ``errors``, and a
    deploy's ``warnings``."""

    message: str
    line: int | None
    column: int | None
    path: str
    file: str | None


class Deployed(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A deploy: the revision the document is (new, or the same digest deployed before); what
    the analysis found that does not refuse it (rows that can never win, gaps of a table
    marked complete, conditions that contradict themselves); how much of it its tests
    reached. ``status`` and ``test_results`` are there when the revision waits for approval
    (202). A dry run (``dry_run: true``) answers the same checks with ``revision`` null,
    nothing created or activated."""

    name: str
    revision: int | None  # null in a dry run: nothing was stored
    digest: str
    created: bool
    activated: bool
    tests: TestCounts
    coverage: TestCoverage
    warnings: list[DocumentProblem]
    status: Literal["pending"] | None = None
    test_results: list[TestOutcome] = []
    dry_run: bool = False


class Retirement(msgspec.Struct, kw_only=True):
    """Why a ruleset was retired, by whom (a key's principal) and when (RFC 3339)."""

    reason: str
    retired_by: str | None
    retired_at: str | None


class Routing(msgspec.Struct, kw_only=True):
    """Which revisions of a ruleset serve; who made that so and when (null: the starter
    library, or a change made before this was kept); whether it was retired (then nothing
    serves, and ``active_revision`` is the revision it served last)."""

    name: str
    active_revision: int | None
    canary: Canary | None
    shadow: int | None
    changed_by: str | None
    changed_at: str | None
    retired: Retirement | None


ReviewStatus = Literal["pending", "approved", "rejected"]


class PendingRevision(msgspec.Struct, kw_only=True):
    """A revision waiting for a second author's approval: who deployed it and when, what it
    changes (a unified diff of the documents, from the revision ``against``, the active one,
    or from nothing), its tests' results, and whether the key that asked may approve or
    reject it (``can_review``: an author other than the one who deployed it)."""

    revision: int
    digest: str
    status: Literal["pending"]
    deployed_by: str
    deployed_at: str
    against: int | None
    diff: str
    tests: TestCounts
    test_results: list[TestOutcome]
    can_review: bool


class RulesetSummary(msgspec.Struct, kw_only=True):
    name: str
    revisions: int
    active_revision: int | None
    canary: Canary | None
    shadow: int | None
    changed_by: str | None
    changed_at: str | None
    retired: Retirement | None  # null unless retired: then it serves nobody
    description: str | None
    pending: list[PendingRevision]


class RulesetList(msgspec.Struct, kw_only=True):
    rulesets: list[RulesetSummary]


class ReviewState(msgspec.Struct, kw_only=True):
    """The review of a revision deployed while approval was required."""

    status: ReviewStatus
    deployed_by: str
    deployed_at: str
    decided_by: str | None
    decided_at: str | None
    reason: str | None


class RevisionRef(msgspec.Struct, kw_only=True):
    """One revision in a ruleset's history: who deployed it (a key's principal; null for the
    starter library, or a revision stored before this was kept), when (RFC 3339), why (the
    deploy's message, null without one), and its review."""

    revision: int
    digest: str
    deployed_by: str | None
    deployed_at: str | None
    message: str | None
    review: ReviewState | None  # null: deployed while approval was not required


class RoutingChange(msgspec.Struct, kw_only=True):
    """One change of what serves a ruleset: which change (``deploy``, ``activate``,
    ``rollback``, ``rollout``, ``shadow``, ``approve``, ``retire``; null if made before this
    was kept), who made it and when (null: the starter library), and the routing it made
    (``retired`` is the reason when it retired the ruleset)."""

    version: int
    action: str | None
    changed_by: str | None
    changed_at: str | None
    active_revision: int
    canary: Canary | None
    shadow: int | None
    retired: str | None


class RulesetDetail(msgspec.Struct, kw_only=True):
    """One ruleset: what serves it, who made that so and when, whether it was retired, its
    revisions (each with who deployed it, when and why) and those waiting for approval."""

    name: str
    active_revision: int | None
    canary: Canary | None
    shadow: int | None
    changed_by: str | None
    changed_at: str | None
    retired: Retirement | None
    revisions: list[RevisionRef]
    pending: list[PendingRevision]
    changes: list[RoutingChange]  # newest first, the latest 50


class Reviewed(msgspec.Struct, kw_only=True):
    """An approval or a rejection: the revision's review now, and what serves the ruleset
    after it (an approval activates the revision)."""

    name: str
    revision: int
    digest: str
    status: ReviewStatus
    deployed_by: str
    deployed_at: str
    decided_by: str | None
    decided_at: str | None
    reason: str | None
    active_revision: int | None
    canary: Canary | None
    shadow: int | None
    changed_by: str | None
    changed_at: str | None
    retired: Retirement | None


class RevisionDocument(msgspec.Struct, kw_only=True):
    """One revision's document as its author wrote it, and who deployed it, when and why."""

    name: str
    revision: int
    digest: str
    deployed_by: str | None
    deployed_at: str | None
    message: str | None
    document: str


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
    kind: str  # alert, alert_suppressed, alert_delivered, ack, alert_escalated, escalation_raised
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


# -- the explanation pack of one decision ----------------------------------------------------


class PackRevision(msgspec.Struct, kw_only=True):
    """The revision that decided. ``stored``: its text was read from the ruleset store and
    hashes to the digest the decision recorded (the rules below are that text's)."""

    name: str
    revision: int | None
    digest: str
    stored: bool


class PackOffer(msgspec.Struct, kw_only=True):
    offer: str
    rule: str
    params: dict[str, Any] = {}


class PackEscalation(msgspec.Struct, kw_only=True):
    queue: str
    rule: str
    priority: int | None = None


class PackAlert(msgspec.Struct, kw_only=True):
    rule: str
    severity: str
    message: str  # as the agent was shown it (pii parts masked)


class PackOutcome(msgspec.Struct, kw_only=True):
    """What the decision gave, as recorded."""

    offers: list[PackOffer]
    escalation: PackEscalation | None
    alerts: list[PackAlert]
    next_step: dict[str, Any] | None
    tables: dict[str, Any]


class PackReason(msgspec.Struct, kw_only=True):
    """One of the principal reasons: a stable code and the text the agent saw."""

    rank: int
    code: str  # the rule's reason_code, or <section>/<rule id> when it has none
    section: str
    rule: str
    text: str


class PackDatum(msgspec.Struct, kw_only=True):
    """A value the decision read, as the record holds it (a pii value stays masked)."""

    field: str
    value: Any
    source: str | None  # where it came from; null for a value the request carried
    age_ms: int | None  # how old it was when the decision was taken
    masked: bool
    stale: bool
    read_by: list[str]  # the deciding rules that read it (<section>/<rule>)


class PackRule(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A rule that decided, from the stored revision's text."""

    section: str
    rule: str
    reason_code: str
    derived_code: bool = False  # the rule has no reason_code: <section>/<rule id>
    when: str  # the condition as written
    because: str | None = None
    line: int | None = None  # where the rule starts in the stored text
    offer: str | None = None
    queue: str | None = None
    priority: int | None = None
    severity: str | None = None


class PackUnknownRule(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A rule whose condition was neither true nor false: a field it reads was missing (or
    held a value of the wrong type, read as unknown), so it could not fire."""

    section: str
    rule: str
    when: str  # the condition as written
    missing: list[str]  # the fields it read and did not have
    line: int | None = None
    offer: str | None = None
    queue: str | None = None
    severity: str | None = None


class PackTableInput(msgspec.Struct, kw_only=True):
    field: str
    value: Any  # as recorded; null when the decision did not have it
    missing: bool


class PackTableRow(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A row that gave the table's outputs: its number (from 1) and its cells as written,
    the input tests first, then the outputs."""

    row: int
    cells: list[Any]
    line: int | None = None


class PackTable(msgspec.Struct, kw_only=True):
    """A decision table of the revision: what it gave and why."""

    table: str
    outputs: dict[str, Any] | None  # as recorded; null when no row matched
    inputs: list[PackTableInput] = []
    output_names: list[str] = []
    hit: str | None = None
    description: str | None = None
    line: int | None = None
    matched_rows: list[PackTableRow] = []  # empty when the recorded inputs were not replayed


class PackChange(msgspec.Struct, kw_only=True):
    """A change of one input, checked by evaluating the revision again with it."""

    field: str
    old: Any  # null when it was missing
    new: Any  # null when removed
    removed: bool
    change: str  # "customer.tenure_months ≥ 24"
    text: str  # the change and what it would have done


class PackCounterfactual(msgspec.Struct, kw_only=True):
    """The smallest confirmed change of one input that flips a rule that fired (``fired``)
    or gives an offer that was not given (``not_given``), and changes of other inputs that
    would have done it too."""

    target: Literal["fired", "not_given"]
    section: str
    rule: str | None
    offer: str | None
    queue: str | None
    text: str
    field: str
    old: Any
    new: Any
    removed: bool
    change: str
    effect: str
    alternatives: list[PackChange]


class PackUnflipped(msgspec.Struct, kw_only=True):
    """A target no change of one input was found to flip, and why."""

    target: Literal["fired", "not_given"]
    section: str
    rule: str | None
    offer: str | None
    queue: str | None
    reason: str


class PackNotExplored(msgspec.Struct, kw_only=True):
    field: str
    reason: str  # masked, read through matches(), ...
    text: str  # "not explored: customer.email (masked)"


class PackExploration(msgspec.Struct, kw_only=True):
    """How the counterfactuals were looked for, and how much work it took."""

    targets: int  # targets explored
    skipped_targets: int  # beyond max_targets
    evaluations: int  # re-evaluations of the revision, in all
    budget_per_target: int
    max_targets: int
    replay_matches: bool  # the recorded inputs give the recorded outcome again
    note: str | None


class ExplanationPack(msgspec.Struct, kw_only=True):
    """Everything an auditor needs to explain one decision: what it gave, its principal
    reasons (at most four, ranked), the data it used, the rules that decided as stored,
    what the agent saw and did, and the smallest changes of one input that would have
    changed it. Read from the ledger; pii stays masked as the record holds it."""

    decision_id: str
    customer_id: str | None
    agent_id: str | None
    interaction_id: str | None
    recorded_at: str
    evaluated_at: str | None
    revision: PackRevision | None
    outcome: PackOutcome
    reasons: list[PackReason]
    more_reasons: int  # rules that fired beyond the four reasons
    data: list[PackDatum]
    missing_fields: list[str]
    stale_fields: list[str]
    invalid_fields: list[dict[str, Any]]
    rules: list[PackRule]
    tables: list[PackTable]
    unknown_rules: list[PackUnknownRule]
    human: list[HumanStep]
    counterfactuals: list[PackCounterfactual]
    unflipped: list[PackUnflipped]
    not_explored: list[PackNotExplored]
    exploration: PackExploration


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


class Shown(msgspec.Struct, kw_only=True):
    """What an agent is shown of a decision, part by part: the eligible rules and each one's
    offer parameters, the escalation rule with its queue and priority, the alerts raised and
    their severities, every table's outputs, the tree's outcome or the node it asks at, every
    text the agent reads (``because:<section>:<rule>``, ``message:<rule>``, ``ask``,
    ``say``), and the error of an evaluation that failed."""

    eligible: list[str]
    params: dict[str, Any]
    escalation: str | None
    queue: str | None
    priority: int | None
    alerts: list[str]
    severities: dict[str, Any]
    tables: dict[str, Any]
    next_step: str | None
    texts: dict[str, Any]
    error: str | None


class RerunSide(msgspec.Struct, kw_only=True):
    """One side of a rerun: the revision (null for a draft document), its digest, and what
    it shows the agent."""

    revision: int | None
    digest: str
    shown: Shown


class PartChange(msgspec.Struct, kw_only=True):
    """One part that differs: the served value and the draft's (for a part that maps rules,
    tables or texts to values, only the entries that differ)."""

    served: Any
    draft: Any


class Rerun(msgspec.Struct, kw_only=True):
    """A candidate evaluated on one recorded decision's inputs (at its time, each value as
    old as it was): what the agent was shown (``served``) beside what the candidate shows
    (``draft``), the parts that differ (``changed``, in ``audit.shown`` order, and each one's
    values in ``differences``), the fields whose recorded values are masked (the candidate
    read their keyed hashes), and the fields the candidate read that the record does not
    hold (unknown to it)."""

    decision_id: str
    ruleset: str
    evaluated_at: str | None
    served: RerunSide
    draft: RerunSide
    changed: list[str]
    differences: dict[str, PartChange]
    read_masked_fields: list[str]
    unrecorded_fields: list[str]


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
    params: list[Change]
    priorities: list[Change]
    severities: list[Change]
    tables: list[Change]
    tree: list[Change]
    texts: list[Change]
    errors: list[Change]


# -- operations --------------------------------------------------------------------------------


class Health(msgspec.Struct, kw_only=True):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Readiness(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Whether the server can decide now, and if not, why."""

    status: Literal["ready", "not ready"]
    problems: list[str] = []  # msgspec copies a mutable default
