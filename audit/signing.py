"""Signed tree heads: an instance's promise, under its Ed25519 key, of its log's Merkle root.

A tree head says "the first ``tree_size`` records of ``instance``'s log have the Merkle root
``root_hash``", at ``time``. What is signed is this text, one field per line, so that anyone
can rebuild it from a tree head's JSON and check the signature with any Ed25519 tool:

    frontline tree head v1
    <instance>
    <tree_size>
    <root_hash, as sha256:<hex>>
    <time, RFC 3339 UTC>

The private key is a PEM (PKCS #8) file kept outside the ledger's directory, readable by its
owner only, so that write access to the ledger is not enough to sign a rewritten history.
Public keys are written ``ed25519:<base64 of the 32 raw bytes>``; that is what an auditor pins.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.merkle import Frontier
from audit.record import hash_text

_PREFIX = "ed25519:"


class SigningKeyError(ValueError):
    """A key file or a public key cannot be used; the message says why in one sentence."""


class TreeHead(msgspec.Struct, frozen=True, kw_only=True):
    """A signed statement of one instance's log: its size and Merkle root at a time."""

    instance: str
    tree_size: int
    root_hash: str
    time: str
    signature: str = ""  # base64 of the Ed25519 signature of ``message()``

    def message(self) -> bytes:
        """The bytes the signature covers."""
        return (
            f"frontline tree head v1\n{self.instance}\n{self.tree_size}\n"
            f"{self.root_hash}\n{self.time}\n"
        ).encode()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> tuple[TreeHead, str]:
        """The tree head a ``tree_head`` record's ``data`` (or an answer's ``tree_head``)
        holds, and the public key it names ("" if none); TypeError if it is not one."""
        fields = {k: v for k, v in data.items() if k not in ("public_key", "seq")}
        return cls(**fields), str(data.get("public_key") or "")


class Signer:
    """Signs tree heads with one instance's private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = public_key_text(key.public_key())

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, head: TreeHead) -> TreeHead:
        """``head`` with its signature."""
        signature = self._key.sign(head.message())
        return msgspec.structs.replace(head, signature=base64.b64encode(signature).decode())


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _PREFIX + base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An ``ed25519:<base64>`` public key (or the path of a file holding one)."""
    text = text.strip()
    if not text.startswith(_PREFIX) and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8").strip()
    if not text.startswith(_PREFIX):
        raise SigningKeyError(f"{text[:40]!r} is not a public key written ed25519:<base64>")
    try:
        raw = base64.b64decode(text[len(_PREFIX) :], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SigningKeyError(
            f"{text[:60]!r} is not an Ed25519 public key (32 bytes in base64)"
        ) from None


def verify_tree_head(head: TreeHead, public_key: Ed25519PublicKey) -> bool:
    """Whether ``head``'s signature is the key's over its fields."""
    try:
        signature = base64.b64decode(head.signature, validate=True)
        public_key.verify(signature, head.message())
    except (ValueError, InvalidSignature):
        return False
    return True


def load_signer(path: Path, *, create: bool) -> tuple[Signer, bool]:
    """The signer whose private key is in ``path``; with ``create``, a new key is made there
    (owner-only) when the file does not exist. Returns the signer and whether it was made."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise SigningKeyError(
                f"{path}: no signing key there; set FRONTLINE_SIGNING_KEY to the key file"
            ) from None
        signer = Signer.generate()
        _write_private(path, signer._key)
        return signer, True
    except OSError as exc:
        raise SigningKeyError(f"{path}: the signing key cannot be read ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(
            f"{path}: not an unencrypted PEM private key; it must be the Ed25519 key Frontline "
            "made, or one made with `openssl genpkey -algorithm ed25519`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: the key is not an Ed25519 key")
    return Signer(key), False


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def tree_head_problem(
    data: dict[str, Any],
    tree: Frontier,
    public_key: str | None,
    pinned: Ed25519PublicKey | None = None,
) -> str | None:
    """What is wrong with a ``tree_head`` record's ``data``, stored after the records of
    ``tree``, as the end of a sentence ("the tree head at record 7 ..."); None if nothing.

    With ``public_key`` the head must name and be signed by that key; without one, by the key
    it names (which shows the log changed, but not a head forged with another key)."""
    try:
        head, named = TreeHead.from_data(data)
        key = pinned or parse_public_key(public_key or named)
    except (TypeError, SigningKeyError):
        return "is not a readable tree head"
    if public_key is not None and named != public_key:
        return (
            f"names the key {named}, not {public_key}: the key file was replaced, or the "
            "head was forged"
        )
    if not verify_tree_head(head, key):
        return "does not carry a valid signature"
    root = hash_text(tree.root())
    if head.tree_size != tree.size or head.root_hash != root:
        return (
            f"promised {head.tree_size} records with root {head.root_hash}, but the log holds "
            f"{tree.size} before it with root {root}: records were changed, removed or added"
        )
    return None
