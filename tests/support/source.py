"""A stand-in for the system that owns customer context: a real HTTP server on a thread whose
answers a test sets (a context, 404, a 500, or a delay)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ContextSource:
    def __init__(self) -> None:
        self.contexts: dict[str, dict[str, Any]] = {}
        self.status: int | None = None  # answer this instead when set
        self.delay = 0.0
        self.requests: list[str] = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source.requests.append(self.path)
                time.sleep(source.delay)
                customer = self.path.rsplit("/", 1)[-1]
                if source.status is not None:
                    self._answer(source.status, {"error": "failing on purpose"})
                elif customer in source.contexts:
                    self._answer(200, source.contexts[customer])
                else:
                    self._answer(404, {"error": "unknown customer"})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/customers/{{customer_id}}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
