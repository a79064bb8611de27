"""Stream tickets: signed, naming their principal, expiring; anything altered is refused."""

from __future__ import annotations

from server.keys import Principal, StreamTickets

AGENT = Principal("agent.7@desk", "agent")


def test_a_ticket_names_its_principal_until_it_expires() -> None:
    tickets = StreamTickets(b"s" * 32, lifetime=60)
    ticket, expires = tickets.issue(AGENT, 1_000.0)
    assert expires == 1_060 and "agent.7@desk" not in ticket  # the name is encoded
    assert tickets.redeem(ticket, 1_030.0) == AGENT
    assert tickets.redeem(ticket, 1_061.0) is None  # expired
    # Another server with the same secret accepts it; one with another secret does not.
    assert StreamTickets(b"s" * 32).redeem(ticket, 1_000.0) == AGENT
    assert StreamTickets(b"t" * 32).redeem(ticket, 1_000.0) is None


def test_an_altered_ticket_is_refused() -> None:
    tickets = StreamTickets(b"s" * 32)
    ticket, _ = tickets.issue(AGENT, 1_000.0)
    prefix, role, name, expires, mac = ticket.split(".")
    for forged in (
        ".".join([prefix, "admin", name, expires, mac]),  # another role
        ".".join([prefix, role, "YWdlbnQtOA", expires, mac]),  # another agent
        ".".join([prefix, role, name, str(int(expires) + 3600), mac]),  # a longer life
        ".".join([prefix, role, name, expires, mac[:-2] + "AA"]),  # a guessed signature
        "flt1.agent",
        "",
        "test-agent-key-000001",  # a key is not a ticket
    ):
        assert tickets.redeem(forged, 1_000.0) is None, forged
