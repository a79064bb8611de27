"""Documents that try to escape, run for ever or allocate without bound, deployed through
``POST /v1/rulesets``: each is refused with a 4xx naming the problem within one second, the
active revision is untouched, and the server goes on answering."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.live_server import LiveServer

HEAD = """ruleset: hostile
context:
  customer.tier: string
  customer.score: number
  customer.tags: {type: list, items: string}
"""


def rule(when: str) -> str:
    return HEAD + f"eligibility:\n  - id: r\n    when: {when}\n    offer: o\n"


HOSTILE = {
    "import a module": rule("__import__('os').system('id') == 0"),
    "read a file": rule("open('/etc/passwd').read() == 'x'"),
    "reach a dunder": rule("customer.tier.__class__.__mro__ == 1"),
    "call a method": rule("customer.tier.upper() == 'X'"),
    "lambda": rule("(lambda: True)()"),
    "comprehension": rule("[x for x in customer.tags] == []"),
    "subscript": rule("customer.tags[0] == 'a'"),
    "power": rule("customer.score ** 99999999 > 1"),
    "f-string": rule("f'{customer.tier}' == 'a'"),
    "look-around regex": rule("matches(customer.tier, '(?<=a)b')"),
    "huge list literal": rule(
        "customer.tier in [" + ", ".join(f"'v{k}'" for k in range(5000)) + "]"
    ),
    "deep nesting": rule("(" * 500 + "customer.score > 1" + ")" * 500),
    "long expression": rule("customer.score > 1" + " or customer.score > 1" * 3000),
    "tree that loops": HEAD
    + """trees:
  - id: loop
    start: a
    nodes:
      a: {ask: A?, answer: answers.a, next: [{goto: b}]}
      b: {ask: B?, answer: answers.b, next: [{goto: a}]}
""",
    "yaml bomb": 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    + "".join(
        f"{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)},*{chr(97 + k)},*{chr(97 + k)},"
        f"*{chr(97 + k)},*{chr(97 + k)},*{chr(97 + k)},*{chr(97 + k)},*{chr(97 + k)},"
        f"*{chr(97 + k)}]\n"
        for k in range(8)
    )
    + "ruleset: hostile\n",
    "too many rules": HEAD
    + "eligibility:\n"
    + "".join(f"  - {{id: r{k}, when: customer.score > {k}, offer: o}}\n" for k in range(20000)),
}


@pytest.mark.parametrize("attempt", list(HOSTILE))
def test_a_hostile_document_is_refused_within_a_second(server: LiveServer, attempt: str) -> None:
    author = {**server.auth("author"), "content-type": "application/yaml"}
    started = time.perf_counter()
    response = httpx.post(
        server.url + "/v1/rulesets", content=HOSTILE[attempt], headers=author, timeout=30
    )
    elapsed = time.perf_counter() - started
    assert 400 <= response.status_code < 500, (attempt, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    assert elapsed < 1.0, f"{attempt}: refused after {elapsed:.2f} s"
    listed = httpx.get(server.url + "/v1/rulesets/hostile", headers=server.auth("author"))
    assert listed.status_code == 404  # nothing was stored
    alive = httpx.get(server.url + "/healthz")
    assert alive.status_code == 200
