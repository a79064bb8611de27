"""The first stages: ``parse`` (text → plain data and the positions of its nodes) and
``shape`` (plain data → the document model: keys, value kinds, unique ids and test names).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from engine.compiler.build import Build
from engine.errors import RulesetError
from engine.model import parse_document
from engine.source import load_document


def parse(b: Build) -> None:
    source = b.source
    if isinstance(source, Mapping):
        b.data = _plain(source)
        return
    try:
        b.data, b.locator = load_document(source, b.filename)
    except RulesetError as exc:
        b.problems.extend(exc.errors)


def _plain(value: Any) -> Any:
    """A deep copy of a mapping given by a caller, with keys as strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def shape(b: Build) -> None:
    doc, problems = parse_document(b.data, b.locator)
    b.problems.extend(problems)
    b.doc = doc
    if doc is None:
        return
    for section in ("eligibility", "escalation", "alerts", "tables", "trees"):
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(doc, section)):
            if item.id in seen:
                b.problem(
                    (section, i, "id"),
                    f"duplicate {section} id {item.id!r} (first "
                    f"used at {section}[{seen[item.id]}])",
                )
            else:
                seen[item.id] = i
    names: dict[str, int] = {}
    for i, test in enumerate(doc.tests):
        if test.name in names:
            b.problem(("tests", i, "name"), f"duplicate test name {test.name!r}")
        names.setdefault(test.name, i)


def document_digest(data: Any) -> str:
    """``sha256:`` of the canonical JSON of a document: equal content, equal digest."""
    canonical = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
