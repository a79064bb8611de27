"""API keys: one per principal and role, kept only as hashes, compared in constant time.

``FRONTLINE_API_KEYS="role:principal:secret,..."`` lists them; a secret may be given already
hashed as ``sha256:<hex>``. Without it, the first start creates one key per role, stores their
hashes in ``<data dir>/keys.json`` and prints the keys once; later starts read the hashes.
``frontline keys create`` adds a key to that file (``add_key``), and a running server reads
the file again when it changes (``KeyFile``), so a lost key is replaced without a restart.

A presented key is hashed; its hash picks a bucket and is compared with the bucket's stored
hashes by ``hmac.compare_digest``. Secrets themselves are never stored nor compared.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from adapters.files import write_file

ROLES = ("agent", "supervisor", "author", "auditor", "integration", "admin")
# Who the keys created on first start belong to (the starter rulesets escalate to team-lead).
FIRST_NAMES = {"agent": "agent-1", "supervisor": "team-lead"}
# A principal's name, as requests name agents (server.schemas.Id).
NAME = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


@dataclass(frozen=True)
class Principal:
    """Who a key belongs to. For agents ``name`` is the agent id."""

    name: str
    role: str


class KeyListError(ValueError):
    """A key list that cannot be used."""


def hash_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeyRing:
    def __init__(self, entries: dict[str, Principal]) -> None:
        # Bucketed by the first 16 hex digits of the hash; the full hashes of a bucket are
        # compared with compare_digest, so no comparison stops early on secret material.
        self._buckets: dict[str, list[tuple[str, Principal]]] = {}
        for digest, principal in entries.items():
            self._buckets.setdefault(digest[7:23], []).append((digest, principal))
        self._count = len(entries)

    def __len__(self) -> int:
        return self._count

    def identify(self, presented: str) -> Principal | None:
        digest = hash_secret(presented)
        found = None
        for known, principal in self._buckets.get(digest[7:23], ()):
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """``role:principal:secret`` entries separated by commas."""
        entries: dict[str, Principal] = {}
        for n, raw in enumerate(text.split(","), start=1):
            item = raw.strip()
            if not item:
                continue
            parts = item.split(":", 2)
            if len(parts) != 3 or not all(parts):
                raise KeyListError(
                    f"FRONTLINE_API_KEYS entry {n} must look like role:principal:secret"
                )
            role, name, secret = parts
            if role not in ROLES:
                raise KeyListError(
                    f"FRONTLINE_API_KEYS entry {n}: unknown role {role!r}; expected one of "
                    + ", ".join(ROLES)
                )
            if secret.startswith("sha256:"):
                digest = secret.lower()
                if len(digest) != 71 or any(c not in "0123456789abcdef" for c in digest[7:]):
                    raise KeyListError(
                        f"FRONTLINE_API_KEYS entry {n}: sha256: must be followed by 64 hex digits"
                    )
            else:
                if len(secret) < 16:
                    raise KeyListError(
                        f"FRONTLINE_API_KEYS entry {n}: the secret must be at least 16 characters"
                    )
                digest = hash_secret(secret)
            entries[digest] = Principal(name, role)
        if not entries:
            raise KeyListError("FRONTLINE_API_KEYS lists no keys")
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """The ring of the key file at ``path`` (KeyListError if it is not one Frontline
        wrote)."""
        return cls(read_key_file(path))

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[KeyRing, dict[str, str]]:
        """The key file's ring; if there is none, create one key per role.

        Returns the ring and, only when just created, ``{role: key}`` to print once.
        """
        if path.is_file():
            return cls.load(path), {}
        created = {role: new_secret(role) for role in ROLES}
        principals = {role: Principal(FIRST_NAMES.get(role, role), role) for role in ROLES}
        entries = {hash_secret(key): principals[role] for role, key in created.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, _key_file_bytes(entries), replace=False)  # whole, or not at all
        return cls(entries), created


def new_secret(role: str) -> str:
    """A new key for ``role`` (its role is visible in it, which helps whoever holds several)."""
    return f"fl_{role}_{secrets.token_urlsafe(24)}"


def read_key_file(path: Path) -> dict[str, Principal]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {d: Principal(p["name"], p["role"]) for d, p in data.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise KeyListError(
            f"{path}: not a key file Frontline wrote ({type(exc).__name__}); restore "
            "it, or move it away and restart to create new keys"
        ) from None


def _key_file_bytes(entries: dict[str, Principal]) -> bytes:
    return json.dumps({d: {"name": p.name, "role": p.role} for d, p in entries.items()}).encode()


def add_key(path: Path, role: str, name: str) -> str:
    """A new key for principal ``name`` in ``role``, its hash added to the key file at
    ``path`` (created if there is none); the key itself is returned, to be shown once.

    Concurrent additions are serialised by a lock on the file's directory; the file is
    replaced whole (``write_file``), so a server reading it sees the old list or the new.
    """
    if role not in ROLES:
        raise KeyListError(f"unknown role {role!r}; expected one of " + ", ".join(ROLES))
    if not NAME.match(name):
        raise KeyListError(
            f"{name!r} cannot name a principal: use 1 to 128 letters, digits and . _ : @ -"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        entries = read_key_file(path) if path.is_file() else {}
        key = new_secret(role)
        entries[hash_secret(key)] = Principal(name, role)
        write_file(path, _key_file_bytes(entries))
    finally:
        os.close(directory)  # and with it the lock
    return key


class KeyFile:
    """Keeps a server's key ring in step with its key file: ``changed()`` answers the file's
    new ring when it was rewritten since the last look (a ``stat``), else None."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen = self._stamp()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def changed(self) -> KeyRing | None:
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return None
        ring = KeyRing.load(self.path)  # a damaged file raises, and is looked at again later
        self._seen = stamp
        return ring


class StreamTickets:
    """Short-lived tickets that open an alert stream without a key in its URL.

    Browsers cannot send headers with a WebSocket or an EventSource, and whatever is in a URL
    ends up in logs. A desktop asks ``POST /v1/stream-tickets`` with its key in the
    ``Authorization`` header and opens the stream with ``?ticket=``: the ticket names the
    principal, expires after ``lifetime`` seconds, and is signed (HMAC-SHA256) with a key
    every instance derives from the same secret, so any instance accepts it.
    ``flt1.<role>.<name, base64url>.<expires, unix seconds>.<signature, base64url>``
    """

    PREFIX = "flt1"

    def __init__(self, secret: bytes, lifetime: int = 60) -> None:
        self._key = hmac.new(secret, b"frontline stream tickets", hashlib.sha256).digest()
        self.lifetime = lifetime

    def issue(self, principal: Principal, now: float) -> tuple[str, int]:
        """A ticket for ``principal`` and when it expires (unix seconds)."""
        expires = int(now) + self.lifetime
        name = base64.urlsafe_b64encode(principal.name.encode()).decode().rstrip("=")
        body = f"{self.PREFIX}.{principal.role}.{name}.{expires}"
        return f"{body}.{self._sign(body)}", expires

    def redeem(self, ticket: str, now: float) -> Principal | None:
        """The principal of a genuine ticket that has not expired; None otherwise."""
        parts = ticket.split(".")
        if len(parts) != 5 or parts[0] != self.PREFIX or not parts[3].isdigit():
            return None
        body = ".".join(parts[:4])
        if not hmac.compare_digest(self._sign(body), parts[4]) or int(parts[3]) < now:
            return None
        try:
            name = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return Principal(name, parts[1])

    def _sign(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()
