"""The service's refusals: what went wrong, in one plain sentence, with no HTTP in it.

Each kind says why a use case was not carried out; ``server.http.answer_for`` is the one place
that turns them (and anything else raised) into problem details with a status.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A use case Frontline will not carry out. ``detail`` is the sentence the caller reads,
    ``title`` an optional heading, ``errors`` itemised causes (located document errors, failed
    tests), ``retry_after`` the seconds after which trying again may work."""

    def __init__(
        self,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.title = title
        self.errors = errors
        self.retry_after = retry_after


class Invalid(ServiceError):
    """The request itself is malformed: a bad time, an empty document, contradictory fields."""


class Forbidden(ServiceError):
    """The caller may use the route but not on this agent, interaction, customer or alert."""


class NotFound(ServiceError):
    """What the request names does not exist (or no longer does)."""


class Conflict(ServiceError):
    """The request contradicts what exists: an interaction about another customer."""


class TooLarge(ServiceError):
    """A document or body larger than the configured limit."""


class Unsupported(ServiceError):
    """A document sent in a form the service does not read."""


class Refused(ServiceError):
    """Well formed, and still not done: a ruleset with errors or failing tests, a decision
    whose evaluation failed."""


class TooMany(ServiceError):
    """The caller already holds as many of something as it may (alert streams)."""


class Unavailable(ServiceError):
    """Something the use case needs is busy or away; trying again later may work."""
