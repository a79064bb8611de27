"""An agent's live alerts (WebSocket, or SSE with ``Accept: text/event-stream``) and acks.

Both stream forms carry the same messages: the alert as JSON, its id as the event id. A
desktop that reconnects sends the last id it saw (SSE ``Last-Event-ID``, or ``last_event_id``
in the query) and receives what it missed, then the live alerts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar import Request, WebSocket, get, post, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import ServerSentEvent, ServerSentEventMessage

from server.edge import STREAM
from server.http import KEYED, principal_of, problems, requires, service, socket_guard
from server.keys import StreamTickets
from server.schemas import AckRequest, Id
from server.service.answers import AckRecorded
from server.service.errors import Forbidden, TooMany, Unavailable

_encode = msgspec.json.Encoder().encode
# Only the agent the alerts are for: not even an admin key reads another agent's desktop.
_AGENT_ONLY = requires("agent", query_token=True, admin=False)
_SUPERVISOR_ONLY = requires("supervisor", query_token=True, admin=False)
# A WebSocket refused for too many streams closes with: 4429 (this agent has its most open;
# as HTTP's 429), 1013 (the server has its most open: "try again later").
_CLOSE: dict[type[Exception], int] = {TooMany: 4429, Unavailable: 1013}
_SSE = ResponseSpec(
    data_container=str,
    media_type="text/event-stream",
    description="Server-sent events: `event: alert`, `id:` the alert id, `data:` the "
    "alert as JSON; a `: keep-alive` comment every 15 s of silence",
    generate_examples=False,
)


@get(
    "/v1/agents/{agent_id:str}/alerts",
    opt={**_AGENT_ONLY, STREAM: True},
    summary="Follow an agent's alerts",
    security=KEYED,
    tags=["alerts"],
    media_type="text/event-stream",
    responses={**problems(), 200: _SSE},
)
async def alert_events(request: Request[Any, Any, Any], agent_id: Id) -> ServerSentEvent:
    """The agent's alerts as server-sent events (the WebSocket on this path carries the same).

    Resumable: ``Last-Event-ID`` (or ``last_event_id`` in the query) names the last alert seen.
    """
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    return _events(service(request).alerts.follow(principal_of(request), agent_id, last), "alert")


def _events(messages: AsyncIterator[dict[str, Any] | None], kind: str) -> ServerSentEvent:
    async def events() -> AsyncIterator[ServerSentEventMessage]:
        async for message in messages:
            if message is None:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
            else:
                yield ServerSentEventMessage(
                    data=_encode(message).decode(), event=kind, id=message["id"]
                )

    return ServerSentEvent(events(), retry_duration=1000)


@websocket("/v1/agents/{agent_id:str}/alerts", guards=[socket_guard(_AGENT_ONLY)])
async def alert_socket(socket: WebSocket[Any, Any, Any], agent_id: str) -> None:
    """The agent's alerts over a WebSocket: one JSON text message per alert."""
    follow = service(socket).alerts.follow
    await _stream(socket, lambda last: follow(principal_of(socket), agent_id, last), "agent")


async def _stream(
    socket: WebSocket[Any, Any, Any],
    follow: Callable[[str | None], AsyncIterator[dict[str, Any] | None]],
    whose: str,
) -> None:
    """Open ``follow``'s stream over ``socket`` (refused with a close code, before accepting,
    when it may not be opened), one JSON text message per item, until either side ends."""
    try:
        messages = follow(socket.query_params.get("last_event_id"))
    except Forbidden:
        await socket.close(code=4403, reason=f"this key belongs to another {whose}")
        return
    except (TooMany, Unavailable) as exc:
        await socket.close(code=_CLOSE[type(exc)], reason=exc.detail[:120])
        return
    await socket.accept()
    try:
        async for message in messages:
            if message is None:
                await socket.send_text('{"type":"keep-alive"}')
            else:
                await socket.send_text(_encode({"type": "alert", **message}).decode())
    except WebSocketDisconnect:
        return


@post(
    "/v1/alerts/{alert_id:str}/ack",
    opt=requires("agent"),
    status_code=200,
    summary="Acknowledge an alert",
    security=KEYED,
    tags=["alerts"],
    responses=problems(404),
)
async def ack_alert(
    request: Request[Any, Any, Any], alert_id: str, data: AckRequest
) -> AckRecorded:
    """The agent acknowledged, acted on or dismissed an alert; recorded in the ledger."""
    return await service(request).alerts.ack(
        alert_id, data.outcome, data.note, principal_of(request)
    )


@get(
    "/v1/supervisors/{supervisor_id:str}/alerts",
    opt={**_SUPERVISOR_ONLY, STREAM: True},
    summary="Follow a supervisor's escalations",
    security=KEYED,
    tags=["alerts"],
    media_type="text/event-stream",
    responses={**problems(), 200: _SSE},
)
async def escalation_events(request: Request[Any, Any, Any], supervisor_id: Id) -> ServerSentEvent:
    """The supervisor's escalations as server-sent events (``event: escalation``): alerts
    that needed an acknowledgement and got none within their ``ack_within``. The WebSocket on
    this path carries the same; resumable like an agent's stream."""
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    follow = service(request).alerts.follow_supervisor
    return _events(follow(principal_of(request), supervisor_id, last), "escalation")


@websocket("/v1/supervisors/{supervisor_id:str}/alerts", guards=[socket_guard(_SUPERVISOR_ONLY)])
async def escalation_socket(socket: WebSocket[Any, Any, Any], supervisor_id: str) -> None:
    """The supervisor's escalations over a WebSocket: one JSON text message each."""
    follow = service(socket).alerts.follow_supervisor
    await _stream(
        socket, lambda last: follow(principal_of(socket), supervisor_id, last), "supervisor"
    )


class StreamTicket(msgspec.Struct, kw_only=True):
    ticket: str  # for ?ticket= on the stream's URL
    expires_at: int  # unix seconds; the stream must be opened before then


@post(
    "/v1/stream-tickets",
    opt=requires("agent", "supervisor", "auditor", admin=False),
    status_code=201,
    summary="Get a ticket to open an alert stream",
    security=KEYED,
    tags=["alerts"],
    responses=problems(),
)
async def stream_ticket(request: Request[Any, Any, Any]) -> StreamTicket:
    """A ticket that opens this key's alert stream for the next minute, so that the key itself
    never travels in a URL (WebSockets and EventSource cannot send headers; URLs are logged):
    open ``/v1/agents/{id}/alerts?ticket=...`` (or a supervisor's) with it. An auditor's
    ticket starts an export the browser saves by itself:
    ``/v1/audit/decisions?format=jsonl&ticket=...``."""
    tickets: StreamTickets = request.app.state.tickets
    ticket, expires = tickets.issue(principal_of(request), time.time())
    return StreamTicket(ticket=ticket, expires_at=expires)


ROUTES = [
    alert_events,
    alert_socket,
    ack_alert,
    escalation_events,
    escalation_socket,
    stream_ticket,
]
