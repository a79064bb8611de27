"""What auditors call: ledger queries and exports, one decision explained, chain verification,
and (with authors) replays of a candidate document over recorded decisions. Each route reads
the request, makes its call to ``server.service.audit.Audit`` and writes the answer (a page,
a streamed export, a report, or a replay's progress as JSON lines).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import structlog
from litestar import Request, get, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter
from litestar.response import Stream

from audit.query import MAX_PAGE
from audit.replay import Progress
from server.http import answer, principal_of, problems, requires, service
from server.schemas import FILENAME_PATTERN, ErasureRequest, ReplayRequest, RerunRequest
from server.service.answers import (
    AuditPage,
    Checkpoints,
    ConsistencyProof,
    Erased,
    ExplanationPack,
    InclusionProof,
    RecordExplained,
    ReplayReport,
    Rerun,
    Verified,
)

log = structlog.get_logger("frontline")


class Export(Stream):
    """A streamed export whose own media type wins over the route's default (JSON).

    Litestar 2.25's ``Stream.to_asgi_response`` prefers the media type it is handed by the
    route over the one the response was built with, contrary to its docstring.
    """

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = self.media_type
        return super().to_asgi_response(*args, **kwargs)


@dataclass
class _ExportOperation(Operation):
    """The decisions query answers JSON, or streams JSON lines or CSV with ``format``: all
    three are documented for the 200 answer."""

    def __post_init__(self) -> None:
        ok = self.responses.get("200") if self.responses else None
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            text = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            ok.content["application/x-ndjson"] = text
            ok.content["text/csv"] = text


@get(
    "/v1/audit/decisions",
    opt=requires("auditor"),
    tags=["audit"],
    responses={**problems(), 200: answer(AuditPage, "A page of records, or a streamed export")},
    operation_class=_ExportOperation,
)
async def query_decisions(
    request: Request[Any, Any, Any],
    customer_id: str | None = None,
    agent_id: str | None = None,
    ruleset: str | None = None,
    revision: int | None = Parameter(default=None, ge=1, le=2**31 - 1),
    kind: str | None = None,
    outcome: str | None = Parameter(
        default=None, description="offer:<offer>, queue:<queue>, alert:<rule> or rule:<rule>"
    ),
    since: str | None = Parameter(default=None, description="RFC 3339, inclusive"),
    until: str | None = Parameter(default=None, description="RFC 3339, exclusive"),
    cursor: str | None = Parameter(default=None, description="next_cursor of a page"),
    limit: int = Parameter(default=100, ge=1, le=MAX_PAGE),
    format: Literal["json", "jsonl", "csv"] = "json",
) -> Any:
    """Ledger records, newest first: a page (``json``) or a streamed export (``jsonl``,
    ``csv``) of every matching record from the cursor on."""
    audit = service(request).audit
    query = audit.query(
        customer_id=customer_id,
        agent_id=agent_id,
        ruleset=ruleset,
        revision=revision,
        kind=kind,
        outcome=outcome,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    if format == "json":
        return await audit.page(query)
    return Export(
        audit.export(query, format),
        media_type="application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="decisions.{format}"'},
    )


@get(
    "/v1/audit/decisions/{decision_id:str}",
    opt=requires("auditor"),
    tags=["audit"],
    responses=problems(404),
)
async def read_decision(request: Request[Any, Any, Any], decision_id: str) -> RecordExplained:
    """One record, with an explanation: what fired and why, on which values, what was
    missing, stale or invalid."""
    return await service(request).audit.read(decision_id)


@get(
    "/v1/audit/decisions/{decision_id:str}/explanation",
    opt=requires("auditor"),
    tags=["audit"],
    responses=problems(404),
)
async def explain_decision(request: Request[Any, Any, Any], decision_id: str) -> ExplanationPack:
    """The explanation pack of a decision: the outcome; its principal reasons (at most four,
    ranked: the escalation, then offers in document order, then alerts by severity), each a
    reason code and the text the agent saw; the data it used, with source and age (pii
    masked as recorded); the revision and the stored text of the rules that decided; what
    the agent was shown and did; and, for each rule that fired and each offer not given, the
    smallest change of one input that would have flipped it, checked by evaluating the
    revision again. The printable view is `/audit/explanation?id=<decision id>`."""
    return await service(request).audit.explanation(decision_id)


@get(
    "/v1/audit/decisions/{decision_id:str}/proof",
    opt=requires("auditor"),
    tags=["audit"],
    responses=problems(404, 503),
)
async def prove_decision(request: Request[Any, Any, Any], decision_id: str) -> InclusionProof:
    """A record, its stored bytes and its inclusion proof against the signed tree head that
    follows it: check it offline with `frontline audit verify-proof FILE --public-key KEY`.
    A record newer than every tree head waits for the next (at most about a second)."""
    return await service(request).audit.proof(decision_id)


@post(
    "/v1/audit/erasures",
    opt=requires("admin"),
    status_code=200,
    tags=["audit"],
    responses=problems(503),
)
async def erase_customer(request: Request[Any, Any, Any], data: ErasureRequest) -> Erased:
    """Erase a customer's records: their bodies are blanked in the segments, the index and
    PostgreSQL, their leaf hashes kept, so every checkpoint and every other record's proof
    still verify; an ``erasure`` record, written first, names what was erased and why."""
    return await service(request).audit.erase(data.customer_id, data.reason, principal_of(request))


@get("/v1/audit/checkpoints/latest", opt=requires("auditor"), tags=["audit"], responses=problems())
async def latest_checkpoints(request: Request[Any, Any, Any]) -> Checkpoints:
    """The latest signed tree head of every instance: keep one, and later ask for a
    consistency proof from it (or run `frontline audit verify --since FILE`)."""
    return await service(request).audit.checkpoints()


@get("/v1/audit/consistency", opt=requires("auditor"), tags=["audit"], responses=problems(404))
async def prove_consistency(
    request: Request[Any, Any, Any],
    instance: str = Parameter(max_length=128),
    from_size: int = Parameter(query="from", ge=0, le=2**62),
    to_size: int = Parameter(query="to", ge=0, le=2**62),
) -> ConsistencyProof:
    """Proof that the instance's log of ``from`` records is a prefix of its log of ``to``
    records (RFC 9162 consistency proof)."""
    return await service(request).audit.consistency(instance, from_size, to_size)


@get("/v1/audit/verify", opt=requires("auditor"), tags=["audit"], responses=problems())
async def verify_chain(request: Request[Any, Any, Any]) -> Verified:
    """Walk every instance's hash chain; report the first broken link of each."""
    return await service(request).audit.verify()


@post(
    "/v1/audit/decisions/{decision_id:str}/rerun",
    opt=requires("author", "auditor"),
    status_code=200,
    tags=["audit"],
    responses=problems(404, 422),
)
async def rerun_decision(
    request: Request[Any, Any, Any],
    decision_id: str,
    data: RerunRequest,
    filename: str | None = Parameter(
        default=None,
        max_length=100,
        pattern=FILENAME_PATTERN,
        description="the document's file name, which every error location names",
    ),
) -> Rerun:
    """Run a candidate on one recorded decision: a draft ``document`` (YAML or JSON text),
    or a deployed ``revision`` of ``ruleset``, evaluated on the decision's recorded inputs
    as a replay does. The answer sets what the agent was shown (``served``) beside what the
    candidate shows (``draft``) and names the parts that differ. 404 for an unknown decision
    id; 422 for a document with errors (located, in ``filename`` if given) or of another
    ruleset. Values are as the ledger keeps them: masked fields read as their keyed hashes."""
    return await service(request).audit.rerun(
        decision_id,
        data.document,
        ruleset=data.ruleset,
        revision=data.revision,
        filename=filename or "",
    )


REPLAY_LINES = "application/x-ndjson"
PROGRESS_SECONDS = 0.1  # at most this often, a progress line


@dataclass
class _ReplayOperation(Operation):
    """A replay answers its report as JSON, or streams JSON lines (progress, then the report)
    to a client that accepts ``application/x-ndjson``: both are documented for the 200."""

    def __post_init__(self) -> None:
        ok = self.responses.get("200") if self.responses else None
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content[REPLAY_LINES] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


class _Abandoned(Exception):
    """The client of a streamed replay went away: the replay stops."""


@post(
    "/v1/replays",
    opt=requires("author", "auditor"),
    status_code=200,
    tags=["audit"],
    responses={**problems(404, 422), 200: answer(ReplayReport, "The replay's report")},
    operation_class=_ReplayOperation,
)
async def replay(request: Request[Any, Any, Any], data: ReplayRequest) -> Any:
    """Re-evaluate recorded decisions with a candidate: how many would change, by rule,
    offer, queue, alert, parameters, priority, severity, table output, tree outcome and text,
    with example decision ids. The candidate is a ``document``, or a deployed ``revision`` of
    ``ruleset``; ``since`` and ``until`` are RFC 3339 times or ages such as ``7d``.

    A client that sends ``Accept: application/x-ndjson`` gets the same answer streamed as JSON
    lines, so that a page can show a long replay moving: ``{"progress": {"done": n, "total":
    m}}`` every tenth of a second or so (``done`` decisions read of ``total``, counted before
    the replay starts), then one ``{"report": {...}}`` line, the report the JSON answer holds.
    Lines rather than server-sent events: the replay is a POST with a body, which EventSource
    cannot send, and ``fetch`` reads lines as they arrive. What fails before the replay starts
    (a document that does not compile, a bad time) is a problem response as usual; what fails
    once the stream has begun ends it with an ``{"error": {...}}`` line holding the problem,
    since the status was already sent. A client that goes away stops the replay.
    """
    prepared = await service(request).audit.replay(
        data.document,
        since=data.since,
        until=data.until,
        examples=data.examples,
        ruleset=data.ruleset,
        revision=data.revision,
    )
    if request.accept.best_match(["application/json", REPLAY_LINES]) != REPLAY_LINES:
        return await asyncio.to_thread(prepared.run)
    return Export(
        _replay_lines(prepared.run),
        media_type=REPLAY_LINES,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _replay_lines(
    run: Callable[[Progress], ReplayReport],
) -> AsyncIterator[bytes]:
    """``run`` in a worker thread; its progress and then its report (or the problem that
    ended it) as JSON lines, each sent as soon as it is made."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    abandoned = threading.Event()
    last = 0.0

    def send(item: dict[str, Any] | None) -> None:
        line = None if item is None else msgspec.json.encode(item) + b"\n"
        loop.call_soon_threadsafe(lines.put_nowait, line)

    def step(done: int, total: int | None) -> None:
        nonlocal last
        if abandoned.is_set():
            raise _Abandoned
        now = time.monotonic()
        if done and done != total and now - last < PROGRESS_SECONDS:
            return
        last = now
        send({"progress": {"done": done, "total": total}})

    def work() -> None:
        try:
            send({"report": run(step)})
        except _Abandoned:
            pass
        except Exception as exc:  # the status is sent: the stream ends with the problem
            log.exception("replay failed", error_type=type(exc).__name__)
            failed = {
                "type": "about:blank",
                "title": "Internal server error",
                "status": 500,
                "detail": "the replay failed; the error has been logged",
            }
            send({"error": failed})
        finally:
            send(None)

    worker = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        while (line := await lines.get()) is not None:
            yield line
        await worker
    finally:
        abandoned.set()


ROUTES = [
    query_decisions,
    read_decision,
    explain_decision,
    prove_decision,
    latest_checkpoints,
    prove_consistency,
    erase_customer,
    verify_chain,
    replay,
    rerun_decision,
]
