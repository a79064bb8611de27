"""Request bodies of the HTTP API, validated by Litestar (msgspec) before a handler runs.

Unknown fields are refused (``forbid_unknown_fields``), so a misspelt ``customer_id`` is a
400 naming it instead of a decision made without it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]
RulesetName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
Revision = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
# A file's name, as an author's errors name it: no directories, nothing hidden.
FILENAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9 ._+-]{0,99}$"
MESSAGE_MAX = 500  # a deploy's message, a retirement's reason
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
Source = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Timestamp = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class DecisionRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ruleset: RulesetName
    customer_id: Id
    agent_id: Id
    interaction: Id | None = None
    context: dict[str, Any] | None = None
    answers: dict[str, Any] | None = None
    revision: Revision | None = None
    tree: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    trace: bool = False


class InteractionRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ruleset: RulesetName
    customer_id: Id
    agent_id: Id
    context: dict[str, Any] | None = None
    answers: dict[str, Any] | None = None
    tree: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class ContextWrite(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    values: dict[str, Any]
    source: Source | None = None
    as_of: Timestamp | None = None


class EventRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
    at: Timestamp | None = None
    data: dict[str, Any] = {}


class ActivateRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    revision: Revision


class RetireRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MESSAGE_MAX)]


class RejectRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class RolloutRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Either a canary (``revision`` and ``percent``) or a shadow (``shadow``; null stops it)."""

    revision: Revision | None = None
    percent: Percent | None = None
    shadow: Revision | msgspec.UnsetType | None = msgspec.UNSET


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A candidate to replay: a ``document``, or a deployed ``revision`` of ``ruleset``; over
    the decisions recorded from ``since`` (RFC 3339, or an age such as ``7d``) to ``until``."""

    document: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    ruleset: RulesetName | None = None
    revision: Annotated[int, msgspec.Meta(ge=1)] | None = None
    since: Timestamp
    until: Timestamp | None = None
    examples: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5


class RerunRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The candidate to run on a recorded decision: a ``document``, or a deployed
    ``revision`` of ``ruleset``."""

    document: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    ruleset: RulesetName | None = None
    revision: Revision | None = None


class ErasureRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    customer_id: Id
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class AckRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outcome: Literal["acknowledged", "acted", "accepted", "overridden", "dismissed"]
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
