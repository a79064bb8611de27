"""What auditors call: ledger queries and exports, one decision explained, chain verification,
and (with authors) replays of a candidate document over recorded decisions.

SQLite reads block, so each runs in a worker thread; an export streams a page at a time, so
neither the server's memory nor its event loop holds the whole answer. The ledger keeps
``pii`` fields masked (keyed hashes), so no route here can return them in clear.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter
from litestar.response import Stream

from audit.query import MAX_PAGE, LedgerQuery, LedgerReader, QueryError, csv_header, csv_row
from audit.record import LedgerRecord, to_builtins
from audit.replay import Progress, replay_range
from audit.verify import verify_ledger
from engine import RulesetError, compile_ruleset
from engine.runtime import to_datetime
from server.core import Problem, log
from server.http import problem, problems, requires, service
from server.schemas import ReplayRequest

EXPORT_PAGE = 500


class Export(Stream):
    """A streamed export whose own media type wins over the route's default (JSON).

    Litestar 2.25's ``Stream.to_asgi_response`` prefers the media type it is handed by the
    route over the one the response was built with, contrary to its docstring.
    """

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = self.media_type
        return super().to_asgi_response(*args, **kwargs)


def _ledger_dir(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.settings.ledger_dir


def _time(name: str, value: str | None) -> str | None:
    """An RFC 3339 filter, normalised to how the ledger writes ``recorded_at``."""
    if value is None:
        return None
    when = to_datetime(value)
    if when is None:
        raise Problem(400, f"{name} {value!r} is not an RFC 3339 time")
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _query(
    customer_id: str | None,
    agent_id: str | None,
    ruleset: str | None,
    revision: int | None,
    kind: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
    cursor: str | None,
    limit: int,
) -> LedgerQuery:
    query = LedgerQuery(
        customer_id=customer_id,
        agent_id=agent_id,
        ruleset=ruleset,
        revision=revision,
        kind=kind,
        outcome=outcome,
        since=_time("since", since),
        until=_time("until", until),
        cursor=cursor,
        limit=limit,
    )
    try:
        return query.validated()
    except QueryError as exc:
        raise Problem(400, str(exc)) from None


async def _export(
    path: Any, query: LedgerQuery, line: Callable[[Any], bytes], raw: bool
) -> AsyncIterator[bytes]:
    """Every matching record, newest first, as lines ``line`` makes of its stored bytes
    (``raw``) or of the decoded record; read a batch at a time in a worker thread."""
    reader = await asyncio.to_thread(LedgerReader, path)
    try:
        source = reader.bodies(query, EXPORT_PAGE) if raw else reader.iterate(query, EXPORT_PAGE)
        while True:
            chunk = await asyncio.to_thread(_take, source, EXPORT_PAGE)
            if not chunk:
                return
            yield b"".join(line(item) for item in chunk)
    finally:
        reader.close()


def _take(source: Iterator[Any], count: int) -> list[Any]:
    return list(itertools.islice(source, count))


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
    responses=problems(),
    operation_class=_ExportOperation,
)
async def query_decisions(
    request: Request[Any, Any, Any],
    customer_id: str | None = None,
    agent_id: str | None = None,
    ruleset: str | None = None,
    revision: int | None = Parameter(default=None, ge=1),
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
    query = _query(
        customer_id, agent_id, ruleset, revision, kind, outcome, since, until, cursor, limit
    )
    path = _ledger_dir(request)
    if format == "json":
        reader = await asyncio.to_thread(LedgerReader, path)
        try:
            page = await asyncio.to_thread(reader.page, query)
        finally:
            reader.close()
        return {
            "records": [to_builtins(r) for r in page.records],
            "next_cursor": page.next_cursor,
        }

    async def csv() -> AsyncIterator[bytes]:
        yield csv_header().encode("utf-8")
        async for chunk in _export(path, query, lambda r: csv_row(r).encode("utf-8"), False):
            yield chunk

    return Export(
        _export(path, query, lambda body: body + b"\n", True) if format == "jsonl" else csv(),
        media_type="application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="decisions.{format}"'},
    )


@get(
    "/v1/audit/decisions/{decision_id:str}",
    opt=requires("auditor"),
    tags=["audit"],
    responses=problems(404),
)
async def read_decision(request: Request[Any, Any, Any], decision_id: str) -> dict[str, Any]:
    """One record, with an explanation: what fired and why, on which values, what was
    missing, stale or invalid."""
    reader = await asyncio.to_thread(LedgerReader, _ledger_dir(request))
    try:
        record = await asyncio.to_thread(reader.get, decision_id)
    finally:
        reader.close()
    if record is None:
        raise Problem(404, f"the ledger has no record {decision_id!r}")
    return {"record": to_builtins(record), "explanation": explain(record)}


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
    explanation: dict[str, Any] = {
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
    return explanation


@get("/v1/audit/verify", opt=requires("auditor"), tags=["audit"], responses=problems())
async def verify_chain(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Walk every instance's hash chain; report the first broken link of each."""
    report = await asyncio.to_thread(verify_ledger, _ledger_dir(request))
    return report.to_dict()


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
    responses=problems(422),
    operation_class=_ReplayOperation,
)
async def replay(request: Request[Any, Any, Any], data: ReplayRequest) -> Any:
    """Re-evaluate recorded decisions with a candidate document: how many would change, by
    rule, offer, queue and alert, with example decision ids.

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
    frontline = service(request)
    if len(data.document.encode("utf-8")) > frontline.max_ruleset_bytes:
        raise Problem(413, f"the document is larger than {frontline.max_ruleset_bytes:,} bytes")
    try:
        candidate = await asyncio.to_thread(compile_ruleset, data.document, filename="<replay>")
    except RulesetError as exc:
        return problem(
            422,
            f"the candidate has {len(exc.errors)} error(s); first: {exc.errors[0]}",
            title="Invalid ruleset",
            errors=[p.to_dict() for p in exc.errors],
        )
    since = _time("since", data.since)
    until = _time("until", data.until)
    path = _ledger_dir(request)

    def run(progress: Progress | None = None) -> dict[str, Any]:
        reader = LedgerReader(path)
        try:
            return replay_range(
                reader,
                candidate,
                since=since,
                until=until,
                examples=data.examples,
                progress=progress,
            ).to_dict()
        finally:
            reader.close()

    if request.accept.best_match(["application/json", REPLAY_LINES]) != REPLAY_LINES:
        return await asyncio.to_thread(run)
    return Export(
        _replay_lines(run),
        media_type=REPLAY_LINES,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _replay_lines(
    run: Callable[[Progress], dict[str, Any]],
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


ROUTES = [query_decisions, read_decision, verify_chain, replay]
