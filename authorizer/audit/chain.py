"""The audit trail's integrity: a SHA-256 hash chain over records and Ed25519-signed checkpoints.

Every record's ``hash`` covers its content and the previous record's hash
(``prev_hash``; the first record follows ``GENESIS``). Editing a record breaks its own
hash; inserting or removing one breaks the next record's link; removing the newest
records is caught by signed checkpoints (the sequence number and hash of the record
that was newest when the checkpoint was written), which a database user without the
signing key cannot forge.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64
#: Columns that are not part of a record's hashed content.
NOT_HASHED = frozenset({"seq", "hash", "prev_hash"})


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes a record's hash covers: its content as sorted, compact JSON (UTF-8)."""
    content = {k: v for k, v in row.items() if k not in NOT_HASHED}
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def chain_hash(row: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) of the previous hash and the record's canonical content."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(row)).hexdigest()


def checkpoint_message(seq: int, record_hash: str, at_ms: int) -> bytes:
    """What a checkpoint signs: ``seq:hash:at_ms``."""
    return f"{seq}:{record_hash}:{at_ms}".encode("ascii")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8) file.

    Raises:
        ValueError: not an Ed25519 private key.
    """
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (a private key file also works).

    Raises:
        ValueError: not an Ed25519 key.
    """
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def generate_key(path: Path) -> None:
    """Write a new Ed25519 private key (PEM, mode 0600) and its public key beside it (``.pub``)."""
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    path.with_suffix(".pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short id of a public key (first 16 hex digits of the SHA-256 of its raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, seq: int, record_hash: str, at_ms: int) -> str:
    """Base64 signature of a checkpoint."""
    return sign_message(key, checkpoint_message(seq, record_hash, at_ms))


def signature_valid(public_key: Ed25519PublicKey, seq: int, record_hash: str, at_ms: int, signature: str) -> bool:
    """Whether a checkpoint's signature is genuine."""
    return message_signature_valid(public_key, checkpoint_message(seq, record_hash, at_ms), signature)


def archive_message(first_seq: int, last_seq: int, first_prev_hash: str, last_hash: str, file_sha256: str,
                    at_ms: int) -> bytes:
    """What an archive marker signs: the removed segment's bounds, its edge hashes and its file's SHA-256."""
    return f"archive:{first_seq}:{last_seq}:{first_prev_hash}:{last_hash}:{file_sha256}:{at_ms}".encode("ascii")


def sign_message(key: Ed25519PrivateKey, message: bytes) -> str:
    """Base64 Ed25519 signature of ``message``."""
    return base64.b64encode(key.sign(message)).decode("ascii")


def message_signature_valid(public_key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is a genuine signature of ``message``."""
    try:
        public_key.verify(base64.b64decode(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Problem:
    """Something verification found.

    Attributes:
        kind: ``altered`` (a record's content no longer matches its hash), ``link_broken``
            (records were inserted or removed before this one), ``truncated`` (records a
            checkpoint vouches for are gone), ``bad_checkpoint`` (a forged or altered
            checkpoint), ``bad_archive`` (a forged archive marker, or archived segments
            that do not join), ``archive_missing`` / ``archive_altered`` (an archive file
            is gone or differs from what its marker signed), ``unchained`` (records from
            before the chain existed).
        seq: the record or checkpoint sequence number concerned.
        decision_id: the record's decision id, when there is one.
        message: what it means, in English.
    """

    kind: str
    seq: int
    decision_id: str
    message: str


@dataclass
class Verification:
    """The outcome of :func:`authorizer.audit.store.AuditStore.verify`."""

    records: int
    checkpoints: int
    head_seq: int | None
    head_hash: str | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """True when nothing but pre-chain records was found."""
        return all(p.kind == "unchained" for p in self.problems)
