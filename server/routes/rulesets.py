"""What rule authors call: deploy, list, read, activate (and roll back), canary and shadow.

A deploy is compiled, type-checked and tested in a worker thread (a large document takes a
fraction of a second) and activated only if all of that passes; the active revision keeps
serving otherwise. Every change is recorded in the ledger, with the key that made it, before
the response says it happened.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import Parameter

from audit.record import Actor
from audit.recording import ruleset_record
from engine import DeployRefused, Routing, RulesetError, UnknownRuleset
from server.core import Frontline, Problem, log
from server.http import principal_of, problem, problems, requires, service
from server.ids import new_id
from server.schemas import ActivateRequest, Revision, RolloutRequest, RulesetName

DOCUMENT_TYPES = (
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "application/json",
    "text/plain",
)


def _routing(routing: Routing) -> dict[str, Any]:
    return {
        "active_revision": routing.active,
        "canary": (
            {"revision": routing.canary, "percent": routing.percent}
            if routing.canary is not None
            else None
        ),
        "shadow": routing.shadow,
    }


def _actor(request: Request[Any, Any, Any]) -> Actor:
    principal = principal_of(request)
    return Actor(principal=principal.name, role=principal.role)


def _changed(
    frontline: Frontline, action: str, name: str, revision: int | None, actor: Actor
) -> None:
    """Count and log a change once the ledger holds it."""
    if frontline.metrics is not None:
        frontline.metrics.ruleset_changes.labels(action).inc()
    log.info(
        "ruleset changed",
        action=action,
        ruleset=name,
        revision=revision,
        actor=actor.principal,
        role=actor.role,
    )


@post(
    "/v1/rulesets",
    opt=requires("author"),
    tags=["rulesets"],
    request_max_body_size=None,  # checked against FRONTLINE_MAX_RULESET_BYTES below
    status_code=201,
    responses=problems(409, 415, 422),
)
async def deploy(
    request: Request[Any, Any, Any],
    activate: bool = Parameter(default=True, description="activate the revision if it passes"),
) -> Response[dict[str, Any]]:
    """Deploy a document (YAML or JSON body): 201 with the new revision, 200 if unchanged,
    422 with every error located (or every failing test), the active revision untouched."""
    frontline = service(request)
    media = (request.headers.get("content-type") or "application/yaml").split(";")[0].strip()
    if media.lower() not in DOCUMENT_TYPES:
        raise Problem(
            415, f"send the document as YAML or JSON ({', '.join(DOCUMENT_TYPES[:1])}), not {media}"
        )
    limit = frontline.max_ruleset_bytes
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise Problem(413, f"the document is larger than {limit:,} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"the document is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise Problem(400, "the request body is empty; send a ruleset document")
    try:
        done = await asyncio.to_thread(
            frontline.registry.deploy, text, filename="<request>", activate=activate
        )
    except DeployRefused as exc:
        return problem(
            422,
            f"the document's own tests failed ({len(exc.errors)}); nothing was deployed",
            title="Deploy refused",
            errors=[p.to_dict() for p in exc.errors],
        )
    except RulesetError as exc:
        first = exc.errors[0] if exc.errors else None
        return problem(
            422,
            f"the document has {len(exc.errors)} error(s); first: {first}"
            if first
            else "the document was refused",
            title="Invalid ruleset",
            errors=[p.to_dict() for p in exc.errors],
        )
    passed = sum(r.passed for r in done.tests)
    if done.created or done.activated:
        await frontline.append(
            ruleset_record(
                record_id=new_id(),
                action="deploy",
                name=done.name,
                revision=done.revision,
                digest=done.digest,
                actor=_actor(request),
                details={
                    "created": done.created,
                    "activated": done.activated,
                    "tests": {"passed": passed, "failed": len(done.tests) - passed},
                },
            )
        )
        _changed(frontline, "deploy", done.name, done.revision, _actor(request))
    return Response(
        {
            "name": done.name,
            "revision": done.revision,
            "digest": done.digest,
            "created": done.created,
            "activated": done.activated,
            "tests": {"passed": passed, "failed": len(done.tests) - passed},
        },
        status_code=201 if done.created else 200,
    )


@get("/v1/rulesets", opt=requires("author", "auditor"), tags=["rulesets"], responses=problems())
async def list_rulesets(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every ruleset with its active revision, canary, shadow and number of revisions."""
    frontline = service(request)
    out = []
    for name in frontline.registry.names():
        revisions = frontline.registry.revisions(name)
        entry: dict[str, Any] = {"name": name, "revisions": len(revisions)}
        try:
            routing = frontline.registry.routing(name)
            entry.update(_routing(routing))
            entry["description"] = frontline.registry.active(name).description
        except UnknownRuleset:
            entry.update({"active_revision": None, "canary": None, "shadow": None})
            entry["description"] = None
        out.append(entry)
    return {"rulesets": out}


@get(
    "/v1/rulesets/{name:str}",
    opt=requires("author", "auditor"),
    tags=["rulesets"],
    responses=problems(404),
)
async def read_ruleset(request: Request[Any, Any, Any], name: RulesetName) -> dict[str, Any]:
    """One ruleset: its routing and its revision history."""
    frontline = service(request)
    try:
        revisions = frontline.registry.revisions(name)
    except UnknownRuleset as exc:
        raise Problem(404, str(exc)) from None
    try:
        routing = _routing(frontline.registry.routing(name))
    except UnknownRuleset:
        routing = {"active_revision": None, "canary": None, "shadow": None}
    return {
        "name": name,
        **routing,
        "revisions": [{"revision": r.revision, "digest": r.digest} for r in revisions],
    }


@get(
    "/v1/rulesets/{name:str}/revisions/{revision:int}",
    opt=requires("author", "auditor"),
    tags=["rulesets"],
    responses=problems(404),
)
async def read_revision(
    request: Request[Any, Any, Any], name: RulesetName, revision: Revision
) -> dict[str, Any]:
    """One revision's document, as its author wrote it."""
    frontline = service(request)
    stored = frontline.registry.store.get_revision(name, revision)
    if stored is None:
        raise Problem(404, f"ruleset {name!r} has no revision {revision}")
    return {
        "name": stored.name,
        "revision": stored.revision,
        "digest": stored.digest,
        "document": stored.text,
    }


@get(
    "/v1/rulesets/{name:str}/revisions/{revision:int}/tests",
    opt=requires("author", "auditor"),
    tags=["rulesets"],
    responses=problems(404),
)
async def revision_tests(
    request: Request[Any, Any, Any], name: RulesetName, revision: Revision
) -> dict[str, Any]:
    """Run one revision's own tests now: each test's name, whether it passed, and why not."""
    frontline = service(request)
    try:
        compiled = await asyncio.to_thread(frontline.registry.get, name, revision)
    except UnknownRuleset as exc:
        raise Problem(404, str(exc)) from None
    results = await asyncio.to_thread(compiled.run_tests)
    return {
        "name": name,
        "revision": revision,
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
        "tests": [r.to_dict() for r in results],
    }


@post(
    "/v1/rulesets/{name:str}/activate",
    opt=requires("author"),
    status_code=200,
    tags=["rulesets"],
    responses=problems(404),
)
async def activate(
    request: Request[Any, Any, Any], name: RulesetName, data: ActivateRequest
) -> dict[str, Any]:
    """Activate a revision: a newer one, or an older one to roll back."""
    frontline = service(request)
    registry = frontline.registry
    previous = registry.active_revision(name)
    try:
        compiled = await asyncio.to_thread(registry.activate, name, data.revision)
    except UnknownRuleset as exc:
        raise Problem(404, str(exc)) from None
    action = "rollback" if previous is not None and data.revision < previous else "activate"
    await frontline.append(
        ruleset_record(
            record_id=new_id(),
            action=action,
            name=name,
            revision=data.revision,
            digest=compiled.digest,
            actor=_actor(request),
            details={"previous": previous},
        )
    )
    _changed(frontline, action, name, data.revision, _actor(request))
    return {"name": name, **_routing(registry.routing(name))}


@post(
    "/v1/rulesets/{name:str}/rollout",
    opt=requires("author"),
    status_code=200,
    tags=["rulesets"],
    responses=problems(404),
)
async def rollout(
    request: Request[Any, Any, Any], name: RulesetName, data: RolloutRequest
) -> dict[str, Any]:
    """``{revision, percent}``: serve a revision to that share of customers (0 ends it).
    ``{shadow: revision}``: evaluate it beside the served one and record differences
    (``{shadow: null}`` stops)."""
    frontline = service(request)
    registry = frontline.registry
    canary = data.revision is not None or data.percent is not None
    shadow = data.shadow is not msgspec.UNSET
    if canary == shadow:
        raise Problem(
            400, "send either revision and percent (a canary) or shadow (a shadow revision)"
        )
    try:
        if canary:
            if data.revision is None or data.percent is None:
                raise Problem(400, "a canary needs both revision and percent")
            routing = await asyncio.to_thread(registry.rollout, name, data.revision, data.percent)
            revision: int | None = data.revision
            details: dict[str, Any] = {"percent": data.percent}
        else:
            target = data.shadow if isinstance(data.shadow, int) else None
            routing = await asyncio.to_thread(registry.shadow, name, target)
            revision = target
            details = {"shadow": target}
    except UnknownRuleset as exc:
        raise Problem(404, str(exc)) from None
    digest = registry.get(name, revision).digest if revision is not None else ""
    await frontline.append(
        ruleset_record(
            record_id=new_id(),
            action="rollout" if canary else "shadow",
            name=name,
            revision=revision,
            digest=digest,
            actor=_actor(request),
            details=details,
        )
    )
    _changed(frontline, "rollout" if canary else "shadow", name, revision, _actor(request))
    return {"name": name, **_routing(routing)}


ROUTES = [deploy, list_rulesets, read_ruleset, read_revision, revision_tests, activate, rollout]
