"""Who may act on what: the one rule for an agent key.

An agent key acts only for its own agent: its own agent id, the interactions it started, the
alerts sent to it, and the customers it is handling in a live interaction. A supervisor key
reads only its own supervisor stream. Every use case that takes an agent id, an interaction,
an alert, a customer or a supervisor id from such a key asks ``authorize``; other roles
(integration, author, auditor, admin) are already limited by the routes they may call.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.keys import Principal
from server.service.errors import Forbidden


def authorize(principal: Principal, owners: Iterable[str], subject: str) -> None:
    """Raise Forbidden unless ``principal`` is not a personal key (agent, supervisor), or is
    one of ``owners`` (whom ``subject`` belongs to). ``subject`` names it for the message:
    "agent 'a-2'", "interaction 'i-1'", "customer 'c-9'", "alert 'x'", "supervisor 's'"."""
    if principal.role not in PERSONAL or principal.name in owners:
        return
    raise Forbidden(
        f"this key belongs to {principal.role} {principal.name!r} and cannot act on {subject}"
    )


PERSONAL = ("agent", "supervisor")  # keys that act for one person only
