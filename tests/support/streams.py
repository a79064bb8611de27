"""Clients of an agent's alert stream (or a supervisor's, with ``of="supervisors"``) for tests:
SSE (httpx) and WebSocket (websockets), each reading on a thread of its own into a queue."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect


class SseAlerts:
    """Reads ``GET /v1/agents/<agent>/alerts`` as server-sent events."""

    def __init__(
        self,
        url: str,
        agent_id: str,
        key: str,
        last_event_id: str | None = None,
        *,
        of: str = "agents",
    ) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self._headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last_event_id:
            self._headers["Last-Event-ID"] = last_event_id
        self._url = f"{url}/v1/{of}/{agent_id}/alerts"
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._opened.wait(10):
            raise RuntimeError("the alert stream did not open")

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._url, headers=self._headers) as response:
                self.status = response.status_code
                self._opened.set()
                event: dict[str, str] = {}
                for line in response.iter_lines():
                    if not line:
                        if "data" in event:
                            self.events.put({"id": event.get("id"), **json.loads(event["data"])})
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()

    def next(self, timeout: float = 5.0, customer_id: str | None = None) -> dict[str, Any]:
        """The next alert (about ``customer_id``, skipping others, when given)."""
        return _next(self.events, timeout, customer_id)

    def close(self) -> None:
        self._client.close()


class SocketAlerts:
    """Reads the same stream over a WebSocket (key and cursor in the query string)."""

    def __init__(
        self,
        url: str,
        agent_id: str,
        key: str,
        last_event_id: str | None = None,
        *,
        of: str = "agents",
        query: str | None = None,
    ) -> None:
        if query is None:
            query = f"access_token={key}"
        if last_event_id:
            query += f"&last_event_id={last_event_id}"
        target = url.replace("http://", "ws://") + f"/v1/{of}/{agent_id}/alerts?{query}"
        self.socket: ClientConnection = connect(target, open_timeout=10)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for text in self.socket:
                message = json.loads(text)
                if message.get("type") in ("alert", "escalation"):
                    message["received"] = time.perf_counter()
                    self.events.put(message)
        except Exception:  # closed
            pass

    def next(self, timeout: float = 5.0, customer_id: str | None = None) -> dict[str, Any]:
        """The next alert (about ``customer_id``, skipping others, when given)."""
        return _next(self.events, timeout, customer_id)

    def close(self) -> None:
        self.socket.close()


def _next(
    events: queue.Queue[dict[str, Any]], timeout: float, customer_id: str | None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = events.get(timeout=max(0.0, deadline - time.monotonic()))
        if customer_id is None or found.get("customer_id") == customer_id:
            return found
