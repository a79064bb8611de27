"""The engine's expression and document fuzzing, now through ``POST /v1/rulesets`` on a live
server: whatever the document, the answer is 200/201 (it deployed) or a 4xx problem naming what
is wrong, never a 5xx, and the server keeps answering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.live_server import LiveServer
from tests.unit.engine.test_compile_fuzz import (
    PYTHON_TREES,
    SLOTS,
    TOKEN_SOURCES,
    YAML_TEXTS,
    mutated_documents,
    unparsed,
    with_expression,
)

FAST = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def deploy(server: LiveServer) -> Iterator[Any]:
    headers = server.auth("author")
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def post(text: str, media: str = "application/yaml") -> None:
            response = client.post(
                "/v1/rulesets?activate=false",
                content=text.encode("utf-8", "surrogatepass"),
                headers={**headers, "content-type": media},
            )
            assert response.status_code in (200, 201, 400, 413, 422), (
                response.status_code,
                response.text[:500],
            )
            if response.status_code >= 400:
                problem = response.json()
                assert problem["status"] == response.status_code and problem["detail"]

        yield post
    assert httpx.get(server.url + "/healthz").status_code == 200


@FAST
@given(source=TOKEN_SOURCES, slot=SLOTS, encoding=st.sampled_from(["json", "yaml"]))
def test_token_soup_expressions_deploy_or_are_refused(
    deploy: Any, source: str, slot: str, encoding: str
) -> None:
    document = with_expression(source, slot)
    if encoding == "json":
        deploy(json.dumps(document), "application/json")
    else:
        deploy(yaml.safe_dump(document))


@FAST
@given(source=PYTHON_TREES.map(unparsed).filter(bool), slot=SLOTS)
def test_random_python_expressions_deploy_or_are_refused(
    deploy: Any, source: str, slot: str
) -> None:
    deploy(yaml.safe_dump(with_expression(source, slot)))


@FAST
@given(document=mutated_documents())
def test_mutated_documents_deploy_or_are_refused(deploy: Any, document: dict[str, Any]) -> None:
    deploy(json.dumps(document), "application/json")


@FAST
@given(text=st.one_of(st.text(min_size=1, max_size=200), YAML_TEXTS))
def test_random_texts_deploy_or_are_refused(deploy: Any, text: str) -> None:
    deploy(text)
