"""What rule authors call: deploy, list, read, activate (and roll back), canary and shadow, and
approve or reject a revision waiting for a second author.
Each route reads the request, makes one call to ``server.service.rulesets.Rulesets`` and
writes its answer."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import Parameter

from server.http import answer, principal_of, problems, requires, service
from server.schemas import (
    FILENAME_PATTERN,
    MESSAGE_MAX,
    ActivateRequest,
    RejectRequest,
    RetireRequest,
    Revision,
    RolloutRequest,
    RulesetName,
)
from server.service.answers import (
    Deployed,
    Reviewed,
    RevisionDocument,
    Routing,
    RulesetDetail,
    RulesetList,
    TestRun,
)
from server.service.errors import Invalid, Unsupported

DOCUMENT_TYPES = (
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "application/json",
    "text/plain",
)


@post(
    "/v1/rulesets",
    opt=requires("author"),
    tags=["rulesets"],
    request_max_body_size=None,  # checked against FRONTLINE_MAX_RULESET_BYTES below
    status_code=201,
    responses={
        200: answer(Deployed, "Unchanged (deployed before), or a dry run (dry_run true)"),
        202: answer(Deployed, "Stored, waiting for another author's approval"),
        **problems(409, 415, 422, 507),
    },
)
async def deploy(
    request: Request[Any, Any, Any],
    activate: bool = Parameter(default=True, description="activate the revision if it passes"),
    allow_untested: bool = Parameter(
        default=False,
        description="deploy a document whose tests guard nothing (none, or one that checks "
        "nothing), which is otherwise refused",
    ),
    dry_run: bool = Parameter(
        default=False,
        description="check the document as a deploy would (compile, analysis, tests) and "
        "answer 200 with revision null and dry_run true, storing and activating nothing",
    ),
    filename: str | None = Parameter(
        default=None,
        max_length=100,
        pattern=FILENAME_PATTERN,
        description="the document's file name, which every error location names "
        "(rules.yaml:30:11) instead of <request>",
    ),
    message: str | None = Parameter(
        default=None,
        min_length=1,
        max_length=MESSAGE_MAX,
        description="why this revision: kept with it, shown in the ruleset's history",
    ),
) -> Response[Deployed]:
    """Deploy a document (YAML or JSON body): 201 with the new revision, 200 if unchanged,
    422 with every error located (or every failing test, or why its tests guard nothing:
    no tests, or one that checks nothing, unless ``allow_untested``), the active revision
    untouched.
    With FRONTLINE_REQUIRE_APPROVAL=1: 202, the revision stored pending and serving nobody
    until another author approves it.
    With ``dry_run=true``: the same checks and the same 422, nothing stored, 200 with
    ``revision`` null and ``dry_run`` true (approval does not apply)."""
    rulesets = service(request).rulesets
    media = (request.headers.get("content-type") or "application/yaml").split(";")[0].strip()
    if media.lower() not in DOCUMENT_TYPES:
        raise Unsupported(
            f"send the document as YAML or JSON ({', '.join(DOCUMENT_TYPES[:1])}), not {media}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        rulesets.check_size(len(body))  # refused as it arrives, not once all is read
    if dry_run:
        checked = await rulesets.dry_run(
            bytes(body), filename=filename or "", allow_untested=allow_untested
        )
        return Response(checked, status_code=200)
    done, created = await rulesets.deploy(
        bytes(body),
        principal_of(request),
        activate=activate,
        filename=filename or "",
        allow_untested=allow_untested,
        message=message,
    )
    if done.status == "pending":
        return Response(done, status_code=202)
    return Response(done, status_code=201 if created else 200)


@get("/v1/rulesets", opt=requires("author", "auditor"), tags=["rulesets"], responses=problems())
async def list_rulesets(request: Request[Any, Any, Any]) -> RulesetList:
    """Every ruleset with its active revision, canary, shadow, number of revisions and the
    revisions waiting for approval."""
    return service(request).rulesets.list(principal_of(request))


@get(
    "/v1/rulesets/{name:str}",
    opt=requires("author", "auditor"),
    tags=["rulesets"],
    responses=problems(404),
)
async def read_ruleset(request: Request[Any, Any, Any], name: RulesetName) -> RulesetDetail:
    """One ruleset: its routing, its revision history and the revisions waiting for approval
    (each with its diff against the active revision and its tests' results)."""
    return service(request).rulesets.read(name, principal_of(request))


@get(
    "/v1/rulesets/{name:str}/revisions/{revision:int}",
    opt=requires("author", "auditor"),
    tags=["rulesets"],
    responses=problems(404),
)
async def read_revision(
    request: Request[Any, Any, Any], name: RulesetName, revision: Revision
) -> RevisionDocument:
    """One revision's document, as its author wrote it."""
    return service(request).rulesets.document(name, revision)


@get(
    "/v1/rulesets/{name:str}/revisions/{revision:int}/tests",
    opt=requires("author", "auditor"),
    tags=["rulesets"],
    responses=problems(404),
)
async def revision_tests(
    request: Request[Any, Any, Any], name: RulesetName, revision: Revision
) -> TestRun:
    """Run one revision's own tests now: each test's name, whether it passed, and why not."""
    return await service(request).rulesets.run_tests(name, revision)


@post(
    "/v1/rulesets/{name:str}/activate",
    opt=requires("author"),
    status_code=200,
    tags=["rulesets"],
    responses=problems(404, 409, 507),
)
async def activate(
    request: Request[Any, Any, Any], name: RulesetName, data: ActivateRequest
) -> Routing:
    """Activate a revision: a newer one, or an older one to roll back."""
    return await service(request).rulesets.activate(name, data.revision, principal_of(request))


@post(
    "/v1/rulesets/{name:str}/retire",
    opt=requires("author"),
    status_code=200,
    tags=["rulesets"],
    responses=problems(404, 409, 507),
)
async def retire(
    request: Request[Any, Any, Any], name: RulesetName, data: RetireRequest
) -> Routing:
    """Retire a ruleset (``{"reason": "..."}``, required): recorded, then it serves no new
    decision or interaction, which get a 409 saying when and by whom it was retired. Its
    revisions and history stay readable; activating a revision (or a deploy that activates
    one) brings it back. 409 if it is retired already."""
    return await service(request).rulesets.retire(name, data.reason, principal_of(request))


@post(
    "/v1/rulesets/{name:str}/rollout",
    opt=requires("author"),
    status_code=200,
    tags=["rulesets"],
    responses=problems(404, 409, 507),
)
async def rollout(
    request: Request[Any, Any, Any], name: RulesetName, data: RolloutRequest
) -> Routing:
    """``{revision, percent}``: serve a revision to that share of customers (0 ends it).
    ``{shadow: revision}``: evaluate it beside the served one and record differences
    (``{shadow: null}`` stops)."""
    rulesets, principal = service(request).rulesets, principal_of(request)
    canary = data.revision is not None or data.percent is not None
    if canary == (data.shadow is not msgspec.UNSET):
        raise Invalid("send either revision and percent (a canary) or shadow (a shadow revision)")
    if canary:
        if data.revision is None or data.percent is None:
            raise Invalid("a canary needs both revision and percent")
        return await rulesets.canary(name, data.revision, data.percent, principal)
    target = data.shadow if isinstance(data.shadow, int) else None
    return await rulesets.shadow(name, target, principal)


@post(
    "/v1/rulesets/{name:str}/revisions/{revision:int}/approve",
    opt=requires("author"),
    status_code=200,
    tags=["rulesets"],
    responses=problems(403, 404, 409, 507),
)
async def approve(
    request: Request[Any, Any, Any], name: RulesetName, revision: Revision
) -> Reviewed:
    """Approve a revision waiting for approval, which activates it (recorded first, as an
    activation is). 403 to the author who deployed it; 409 unless it is pending."""
    return await service(request).rulesets.approve(name, revision, principal_of(request))


@post(
    "/v1/rulesets/{name:str}/revisions/{revision:int}/reject",
    opt=requires("author"),
    status_code=200,
    tags=["rulesets"],
    responses=problems(403, 404, 409, 507),
)
async def reject(
    request: Request[Any, Any, Any],
    name: RulesetName,
    revision: Revision,
    data: RejectRequest | None = None,
) -> Reviewed:
    """Reject a revision waiting for approval (``{"reason": "..."}``, optional): it never
    serves. 403 to the author who deployed it; 409 unless it is pending."""
    reason = data.reason if data is not None else None
    return await service(request).rulesets.reject(name, revision, reason, principal_of(request))


ROUTES = [
    deploy,
    list_rulesets,
    read_ruleset,
    read_revision,
    revision_tests,
    activate,
    retire,
    rollout,
    approve,
    reject,
]
