"""The baseline: a bare Litestar endpoint that only validates a decision request's body.

Same framework, server, loop and HTTP parser as Frontline (server/run.py), so the difference
between the two is what Frontline itself costs per request.

    python -m tests.bench.bare_app --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import dataclasses

from litestar import Litestar, post

from server.schemas import DecisionRequest
from server.settings import Settings


@post("/v1/decisions", status_code=200)
async def validate_only(data: DecisionRequest) -> dict[str, str]:
    return {"customer_id": data.customer_id, "ruleset": data.ruleset}


def create_app() -> Litestar:
    return Litestar(route_handlers=[validate_only], openapi_config=None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bare_app")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from server import run

    settings = dataclasses.replace(Settings(), port=args.port, workers=args.workers)
    run.serve(settings, app_factory=create_app)


if __name__ == "__main__":
    main()
