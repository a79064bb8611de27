"""What auditors do: query and export the ledger, read one decision explained, verify the
chain, and (with authors) replay a candidate document over recorded decisions.

SQLite reads block, so each runs in a worker thread; an export reads a page at a time, so
neither the server's memory nor its event loop holds the whole answer. The ledger keeps
``pii`` fields masked (keyed hashes), so nothing here can return them in clear.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import psycopg

from audit.erasure import erase_customer
from audit.masking import Masker
from audit.merkle import EMPTY_ROOT
from audit.postgres import PostgresLedgerStore
from audit.proofs import LogTree
from audit.query import LedgerQuery, LedgerReader, QueryError, csv_header, csv_row
from audit.record import Actor, LedgerRecord, decode, hash_text
from audit.replay import Progress, recorded_inputs, replay_range
from audit.segments import LogError, SegmentLog, instances
from audit.shown import differences, shown
from audit.verify import verify_ledger
from audit.writer import LedgerError, LedgerWriter
from engine import (
    CompiledRuleset,
    EvaluationError,
    RulesetError,
    RulesetRegistry,
    UnknownRuleset,
    compile_ruleset,
)
from engine.times import format_time, time_or_age
from server.keys import Principal
from server.service.answers import (
    AuditPage,
    Checkpoints,
    ConsistencyProof,
    Erased,
    Explanation,
    ExplanationPack,
    HumanStep,
    InclusionProof,
    RecordExplained,
    ReplayReport,
    Rerun,
    SignedTreeHead,
    Verified,
    record_answer,
)
from server.service.errors import Invalid, NotFound, Refused, TooLarge, Unavailable
from server.service.explanations import build_pack

EXPORT_PAGE = 500


def ledger_time(name: str, value: str | None, now: datetime | None = None) -> str | None:
    """An RFC 3339 filter, or an age such as ``7d`` counted back from ``now`` (the clock when
    not given), normalised to how the ledger writes ``recorded_at``."""
    if value is None:
        return None
    when = time_or_age(value, now or datetime.now(UTC))
    if when is None:
        raise Invalid(f"{name} {value!r} is neither an RFC 3339 time nor an age such as 7d or 12h")
    return format_time(when, "microseconds")


@dataclass(frozen=True)
class Replay:
    """A candidate compiled and checked, ready to run over the recorded decisions."""

    ledger_dir: Path
    candidate: CompiledRuleset
    since: str | None
    until: str | None
    examples: int

    def run(self, progress: Progress | None = None) -> ReplayReport:
        """The flip report (blocking: run it in a worker thread)."""
        reader = LedgerReader(self.ledger_dir)
        try:
            report = replay_range(
                reader,
                self.candidate,
                since=self.since,
                until=self.until,
                examples=self.examples,
                progress=progress,
            )
            return msgspec.convert(report.to_dict(), ReplayReport)
        finally:
            reader.close()


class Audit:
    """The ledger as auditors read it."""

    def __init__(
        self,
        ledger_dir: Path,
        max_document_bytes: int,
        public_key: str | None = None,
        *,
        writer: LedgerWriter | None = None,
        masker: Masker | None = None,
        shipped: Callable[[], PostgresLedgerStore] | None = None,
        registry: RulesetRegistry | None = None,
    ) -> None:
        self.ledger_dir = ledger_dir
        self.max_document_bytes = max_document_bytes
        self.public_key = public_key  # what tree heads must be signed by
        self.writer = writer  # where erasures are recorded
        self.masker = masker  # masks the customer id an erasure record names
        self.shipped = shipped  # the shipped copy, which an erasure blanks too
        self.registry = registry  # the stored revisions an explanation pack reads

    def query(
        self,
        *,
        customer_id: str | None = None,
        agent_id: str | None = None,
        ruleset: str | None = None,
        revision: int | None = None,
        kind: str | None = None,
        outcome: str | None = None,
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> LedgerQuery:
        """A checked query (Invalid says what is wrong with it)."""
        query = LedgerQuery(
            customer_id=customer_id,
            agent_id=agent_id,
            ruleset=ruleset,
            revision=revision,
            kind=kind,
            outcome=outcome,
            since=ledger_time("since", since),
            until=ledger_time("until", until),
            cursor=cursor,
            limit=limit,
        )
        try:
            return query.validated()
        except QueryError as exc:
            raise Invalid(str(exc)) from None

    async def page(self, query: LedgerQuery) -> AuditPage:
        """One page of matching records, newest first, and the cursor of the next."""
        reader = await asyncio.to_thread(LedgerReader, self.ledger_dir)
        try:
            page = await asyncio.to_thread(reader.page, query)
        finally:
            reader.close()
        records = [record_answer(r) for r in page.records]
        return AuditPage(records=records, next_cursor=page.next_cursor)

    async def export(self, query: LedgerQuery, format: str) -> AsyncIterator[bytes]:
        """Every matching record from the cursor on, newest first: JSON lines of the stored
        bytes (``jsonl``) or CSV with a header (``csv``), a page at a time."""
        if format == "csv":
            yield csv_header().encode("utf-8")
            async for chunk in self._lines(query, lambda r: csv_row(r).encode("utf-8"), False):
                yield chunk
        else:
            async for chunk in self._lines(query, lambda body: body + b"\n", True):
                yield chunk

    async def _lines(
        self, query: LedgerQuery, line: Callable[[Any], bytes], raw: bool
    ) -> AsyncIterator[bytes]:
        reader = await asyncio.to_thread(LedgerReader, self.ledger_dir)
        try:
            source = (
                reader.bodies(query, EXPORT_PAGE) if raw else reader.iterate(query, EXPORT_PAGE)
            )
            while True:
                chunk = await asyncio.to_thread(_take, source, EXPORT_PAGE)
                if not chunk:
                    return
                yield b"".join(line(item) for item in chunk)
        finally:
            reader.close()

    async def read(self, decision_id: str) -> RecordExplained:
        """One record, with an explanation: what fired and why, on which values, what was
        missing, stale or invalid; and for a decision, the human side: the alerts of its
        interaction (or its own) and what the agent did with them."""
        reader = await asyncio.to_thread(LedgerReader, self.ledger_dir)
        try:
            record = await asyncio.to_thread(reader.get, decision_id)
            human = (
                await asyncio.to_thread(_human_side, reader, record)
                if record is not None and record.kind == "decision"
                else []
            )
        finally:
            reader.close()
        if record is None:
            raise NotFound(f"the ledger has no record {decision_id!r}")
        return RecordExplained(
            record=record_answer(record),
            explanation=msgspec.convert(explain(record), Explanation),
            human=human,
        )

    async def explanation(self, decision_id: str) -> ExplanationPack:
        """The explanation pack of a decision: its outcome, its principal reasons, the data
        it used, the stored text of the rules that decided, the human side, and the smallest
        changes of one input that would have changed it, each checked by evaluating the
        revision again (server/service/explanations.py)."""
        return await asyncio.to_thread(self._explanation, decision_id)

    def _explanation(self, decision_id: str) -> ExplanationPack:
        reader = LedgerReader(self.ledger_dir)
        try:
            record = _decision(reader, decision_id, "only decisions have an explanation pack")
            human = _human_side(reader, record)
        finally:
            reader.close()
        return build_pack(record, human, self.registry, self.masker)

    async def proof(self, decision_id: str, wait: float = 2.0) -> InclusionProof:
        """A record with its inclusion proof against the first signed tree head after it.
        A record newer than every tree head waits up to ``wait`` seconds for one."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            found = await asyncio.to_thread(_inclusion, self.ledger_dir, decision_id)
            if found is not None:
                return found
            if asyncio.get_running_loop().time() >= deadline:
                raise Unavailable(
                    f"record {decision_id!r} is not covered by a signed tree head yet; "
                    "one follows within about a second",
                    retry_after=1,
                )
            await asyncio.sleep(0.1)

    async def erase(self, customer_id: str, reason: str, principal: Principal) -> Erased:
        """Blank every record about ``customer_id`` (segments, index, PostgreSQL), keeping
        their leaf hashes so every proof still holds; the erasure is recorded first."""
        if self.writer is None or self.masker is None:
            raise Unavailable("this server does not erase records")
        masked = self.masker.mask(customer_id) or ""
        try:
            result = await asyncio.to_thread(
                partial(
                    erase_customer,
                    self.ledger_dir,
                    self.writer,
                    customer_id,
                    reason=reason,
                    masked_customer=masked,
                    actor=Actor(principal=principal.name, role=principal.role),
                    shipped=self.shipped,
                )
            )
        except (LedgerError, OSError, psycopg.Error) as exc:
            raise Unavailable(f"the erasure could not be completed: {exc}; run it again") from None
        return Erased(
            erasure_id=result.erasure_id,
            records=len(result.records),
            instances=sorted({name for name, _ in result.records}),
        )

    async def checkpoints(self) -> Checkpoints:
        """The latest signed tree head of every instance in the ledger."""
        heads = await asyncio.to_thread(_latest_heads, self.ledger_dir)
        return Checkpoints(checkpoints=heads)

    async def consistency(self, instance: str, old: int, new: int) -> ConsistencyProof:
        """Proof that ``instance``'s log of ``old`` records is a prefix of its log of ``new``."""
        if instance not in instances(self.ledger_dir):
            raise NotFound(f"the ledger has no instance {instance!r}")
        return await asyncio.to_thread(_consistency, self.ledger_dir, instance, old, new)

    async def verify(self) -> Verified:
        """Walk every instance's hash chain; the first broken link of each."""
        report = await asyncio.to_thread(
            partial(verify_ledger, self.ledger_dir, public_key=self.public_key)
        )
        return msgspec.convert(report.to_dict(), Verified)

    async def replay(
        self,
        document: str | None,
        *,
        since: str | None,
        until: str | None,
        examples: int,
        ruleset: str | None = None,
        revision: int | None = None,
    ) -> Replay:
        """Compile the candidate ``document``, or take the deployed ``revision`` of ``ruleset``,
        and check the range; ``Replay.run`` does it."""
        now = datetime.now(UTC)
        candidate = await self._candidate(document, ruleset, revision, "<replay>")
        return Replay(
            self.ledger_dir,
            candidate,
            ledger_time("since", since, now),
            ledger_time("until", until, now),
            examples,
        )

    async def rerun(
        self,
        decision_id: str,
        document: str | None,
        *,
        ruleset: str | None = None,
        revision: int | None = None,
        filename: str = "",
    ) -> Rerun:
        """Evaluate a candidate (a ``document``, or a deployed ``revision`` of ``ruleset``)
        on one recorded decision's inputs, as a replay does: what the agent was shown beside
        what the candidate shows, and the parts that differ (``audit.shown``). Values stay as
        the ledger keeps them: a masked field reads as its keyed hash, to both sides."""
        candidate = await self._candidate(document, ruleset, revision, filename or "<request>")
        return await asyncio.to_thread(self._rerun, decision_id, candidate, document is None)

    def _rerun(self, decision_id: str, candidate: CompiledRuleset, deployed: bool) -> Rerun:
        reader = LedgerReader(self.ledger_dir)
        try:
            record = _decision(reader, decision_id, "only a decision can be run again")
        finally:
            reader.close()
        served = record.ruleset
        assert served is not None  # a decision names its ruleset
        if candidate.name != served.name:
            raise Refused(
                f"the candidate is ruleset {candidate.name!r} and decision {decision_id!r} was "
                f"made by ruleset {served.name!r}: run a draft of {served.name!r} on it",
                title="Another ruleset",
            )
        asked, masked = recorded_inputs(record.context, record.inputs, record.evaluated_at)
        try:
            decision = asked.evaluate(candidate)
        except EvaluationError as exc:
            shown_by_draft, read = shown({"error": str(exc)}), []
        else:
            shown_by_draft, read = shown(decision.to_dict()), decision.read_paths
        shown_to_agent = shown(record.outputs)
        found = differences(shown_to_agent, shown_by_draft, names=("served", "draft"))
        missing = set(record.missing_fields)
        answer = {
            "decision_id": record.id,
            "ruleset": served.name,
            "evaluated_at": record.evaluated_at,
            "served": {
                "revision": served.revision,
                "digest": served.digest,
                "shown": shown_to_agent,
            },
            "draft": {
                "revision": candidate.revision if deployed else None,
                "digest": candidate.digest,
                "shown": shown_by_draft,
            },
            "changed": list(found),
            "differences": found,
            "read_masked_fields": sorted(masked),
            "unrecorded_fields": sorted(
                {p for p in read if p not in record.context and p not in missing}
            ),
        }
        return msgspec.convert(answer, Rerun)

    async def _candidate(
        self, document: str | None, ruleset: str | None, revision: int | None, filename: str
    ) -> CompiledRuleset:
        """The candidate of a replay or a rerun: ``document`` compiled (Refused with every
        error located in ``filename``), or the deployed ``revision`` of ``ruleset``."""
        if document is None:
            if ruleset is None or revision is None:
                raise Invalid("give the candidate as a document, or as a ruleset and a revision")
            if self.registry is None:
                raise Unavailable("this server does not keep ruleset revisions")
            try:
                return await asyncio.to_thread(self.registry.get, ruleset, revision)
            except UnknownRuleset:
                raise NotFound(f"ruleset {ruleset!r} has no revision {revision}") from None
        if ruleset is not None or revision is not None:
            raise Invalid(
                "give the candidate as a document, or as a ruleset and a revision: not both"
            )
        if len(document.encode("utf-8")) > self.max_document_bytes:
            raise TooLarge(f"the document is larger than {self.max_document_bytes:,} bytes")
        try:
            return await asyncio.to_thread(compile_ruleset, document, filename=filename)
        except RulesetError as exc:
            raise Refused(
                f"the candidate has {len(exc.errors)} error(s); first: {exc.errors[0]}",
                title="Invalid ruleset",
                errors=[p.to_dict() for p in exc.errors],
            ) from None


HUMAN_KINDS = (
    "alert",
    "alert_suppressed",
    "alert_delivered",
    "ack",
    "alert_escalated",
    "escalation_raised",
)
HUMAN_LIMIT = 2_000  # records of the customer read after the decision, at most


def _human_side(reader: LedgerReader, decision: LedgerRecord) -> list[HumanStep]:
    """The records about the decision's alerts after it, oldest first: those of its
    interaction, or (a decision outside one) those whose alert id is the decision's."""
    if decision.customer_id is None or decision.recorded_at == "":
        return []
    query = LedgerQuery(customer_id=decision.customer_id, since=decision.recorded_at)
    interaction = decision.interaction_id
    mine = f"{decision.id}."
    steps = []
    for record in itertools.islice(reader.iterate(query), HUMAN_LIMIT):
        if record.kind not in HUMAN_KINDS:
            continue
        data = record.data
        alert_id = data.get("alert_id")
        if not (
            (interaction is not None and record.interaction_id == interaction)
            or (alert_id is not None and alert_id.startswith(mine))
        ):
            continue
        alerts = record.outputs.get("alerts") or [{}]
        steps.append(
            HumanStep(
                at=record.recorded_at,
                kind=record.kind,
                alert_id=alert_id,
                rule=alerts[0].get("rule") or (alert_id.rsplit(".", 1)[-1] if alert_id else None),
                outcome=data.get("outcome"),
                note=data.get("note"),
                after_ms=data.get("after_ms"),
                reason=data.get("reason"),
                supervisor=data.get("supervisor"),
                by=record.actor.principal if record.actor else None,
            )
        )
    steps.sort(key=lambda step: step.at)
    return steps


def _take(source: Iterator[Any], count: int) -> list[Any]:
    return list(itertools.islice(source, count))


def explain(record: LedgerRecord) -> dict[str, Any]:
    """A decision record in the words an auditor reads it in."""
    outputs = record.outputs
    reasons = {
        ("eligibility", e.get("rule")): e.get("because") for e in outputs.get("eligible") or ()
    }
    fired = [
        {
            "section": f.section,
            "rule": f.rule,
            "because": f.because or reasons.get((f.section, f.rule)),
        }
        for f in record.fired
    ]
    context = {
        path: {"value": v.value, "source": v.source, "age_ms": v.age_ms}
        for path, v in record.context.items()
    }
    trace = outputs.get("trace")
    return {
        "ruleset": (
            {
                "name": record.ruleset.name,
                "revision": record.ruleset.revision,
                "digest": record.ruleset.digest,
            }
            if record.ruleset
            else None
        ),
        "evaluated_at": record.evaluated_at,
        "fired": fired,
        "offers": [e.get("offer") for e in outputs.get("eligible") or ()],
        "queue": (outputs.get("escalation") or {}).get("queue"),
        "alerts": [a.get("rule") for a in outputs.get("alerts") or ()],
        "context": context,
        "missing_fields": record.missing_fields,
        "stale_fields": record.stale_fields,
        "invalid_fields": outputs.get("invalid_fields") or [],
        "errors": outputs.get("errors") or [],
        "rules_evaluated": trace.get("rules") if isinstance(trace, dict) else None,
    }


def _signed(record: LedgerRecord) -> SignedTreeHead | None:
    """The signed tree head ``record`` is, as answers give it; None if it is not one."""
    if record.kind != "tree_head":
        return None
    return msgspec.convert({**record.data, "seq": record.seq}, SignedTreeHead)


def _record(reader: LedgerReader, record_id: str) -> LedgerRecord:
    """The record ``record_id``, or NotFound."""
    record = reader.get(record_id)
    if record is None:
        raise NotFound(f"the ledger has no record {record_id!r}")
    return record


def _decision(reader: LedgerReader, record_id: str, why: str) -> LedgerRecord:
    """The decision record ``record_id``, or NotFound saying what it is instead and ``why``
    that matters."""
    record = _record(reader, record_id)
    if record.kind != "decision" or record.ruleset is None:
        article = "an" if record.kind[0] in "aeiou" else "a"
        raise NotFound(
            f"record {record_id!r} is {article} {record.kind} record, not a decision: {why}"
        )
    return record


def _inclusion(ledger_dir: Path, decision_id: str) -> InclusionProof | None:
    """The proof, or None when no tree head covers the record yet (blocking)."""
    reader = LedgerReader(ledger_dir)
    try:
        record = _record(reader, decision_id)
    finally:
        reader.close()
    log = SegmentLog(ledger_dir, record.instance, readonly=True)
    try:
        frames = log.frames(after_seq=record.seq - 1)
        mine = next(frames, None)
        if mine is None or mine.seq != record.seq:
            raise NotFound(f"record {record.seq} of {record.instance} is no longer in its log")
        head = None
        for frame in frames:  # the first tree head after it covers it
            if b'"tree_head"' in frame.body and (head := _signed(decode(frame.body))):
                break
        if head is None:
            return None
        path = LogTree(log).inclusion(record.seq - 1, head.tree_size)
    finally:
        log.close()
    return InclusionProof(
        record=record_answer(record),
        record_bytes=base64.b64encode(mine.body).decode(),
        leaf_index=record.seq - 1,
        leaf_hash=hash_text(mine.leaf),
        tree_head=head,
        inclusion_path=[hash_text(h) for h in path],
    )


def _latest_heads(ledger_dir: Path) -> list[SignedTreeHead]:
    """The newest tree head of each instance (blocking)."""
    wanted = set(instances(ledger_dir))
    found: dict[str, SignedTreeHead] = {}
    reader = LedgerReader(ledger_dir)
    try:
        for record in reader.iterate(LedgerQuery(kind="tree_head"), page_size=100):
            head = _signed(record)
            if head is not None and record.instance in wanted and record.instance not in found:
                found[record.instance] = head
                if len(found) == len(wanted):
                    break
    finally:
        reader.close()
    return [found[name] for name in sorted(found)]


def _consistency(ledger_dir: Path, instance: str, old: int, new: int) -> ConsistencyProof:
    log = SegmentLog(ledger_dir, instance, readonly=True)
    try:
        size, _ = log.head()
        if not 0 <= old <= new <= size:
            raise Invalid(
                f"sizes must satisfy 0 <= from <= to <= {size} (the log of {instance} holds "
                f"{size} records); got from={old}, to={new}"
            )
        tree = LogTree(log)
        try:
            proof = tree.consistency(old, new)
            old_root = tree.root(0, old) if old else EMPTY_ROOT
            new_root = tree.root(0, new) if new else EMPTY_ROOT
        except (LogError, ValueError) as exc:
            raise Unavailable(f"the log of {instance} cannot be read: {exc}") from None
    finally:
        log.close()
    return ConsistencyProof(
        instance=instance,
        from_size=old,
        to_size=new,
        from_root=hash_text(old_root),
        to_root=hash_text(new_root),
        proof=[hash_text(h) for h in proof],
    )
