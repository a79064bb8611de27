"""The live server's OpenAPI document tells a reader of the API docs what each operation is:
a summary written for people (not Litestar's name made from the handler's), a description,
the bearer key on exactly the operations that refuse a request without one, and a typed schema
for every 2xx answer that has a body."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.live_server import LiveServer

METHODS = ("get", "post", "put", "patch", "delete")
NO_BODY = {"204", "205"}


def typed(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether ``schema`` says what the answer holds: a named shape, text, or an object or
    list whose fields or items are typed (an empty schema or a bare object says nothing)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return typed(components["schemas"][name], components)
    if "oneOf" in schema or "anyOf" in schema:
        return all(typed(s, components) for s in schema.get("oneOf", schema.get("anyOf")))
    kind = schema.get("type")
    if kind == "object":
        return "properties" in schema
    if kind == "array":
        return typed(schema.get("items", {}), components)
    return kind is not None


def gaps(operation: dict[str, Any], components: dict[str, Any]) -> list[str]:
    """What a reader would miss in ``operation``, key aside."""
    found = []
    summary = operation.get("summary") or ""
    # Litestar's default summary is the handler's name in title case, and so ends its default
    # operation id ("V1DecisionsCreateDecision" / "CreateDecision").
    if not summary or operation["operationId"].endswith(summary):
        found.append("summary")
    if not (operation.get("description") or "").strip():
        found.append("description")
    answers = {s: r for s, r in operation["responses"].items() if re.fullmatch(r"2\d\d", s)}
    if not answers:
        found.append("2xx answer")
    for status, response in answers.items():
        if status in NO_BODY:
            continue
        content = response.get("content") or {}
        if not content or not all(typed(m.get("schema", {}), components) for m in content.values()):
            found.append(f"{status} schema")
    return found


def test_every_operation_has_a_summary_a_description_and_typed_answers(
    server: LiveServer,
) -> None:
    document = httpx.get(server.url + "/schema/openapi.json").json()
    missing = {
        f"{method.upper()} {path}": found
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS and (found := gaps(operation, document["components"]))
    }
    assert missing == {}


def test_the_bearer_key_is_documented_on_exactly_the_operations_that_need_it(
    server: LiveServer,
) -> None:
    """Each operation is called without a key: those that answer 401 must name the bearer
    scheme, the others (health, readiness) must not."""
    document = httpx.get(server.url + "/schema/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "security" not in document  # no key by default: each operation says
    wrong = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if method not in METHODS:
                    continue
                url = re.sub(r"\{\w+\}", "1", path)  # an id, a name or a revision
                needs_key = client.request(method, url, json={}).status_code == 401
                documented = operation.get("security") == [{"bearer": []}]
                if needs_key != documented:
                    wrong.append((method, path, needs_key, operation.get("security")))
    assert wrong == []
    assert document["paths"]["/healthz"]["get"].get("security") is None
