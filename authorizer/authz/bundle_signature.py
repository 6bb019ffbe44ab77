"""The signature of a compiled (Wasm) policy bundle: made by the bundle service, checked by
the in-process PDP before the bundle may decide anything.

A compact JWS (RFC 7515) with RS256 by the bundle signing key (the key OPA verifies its own
bundles with), over ``{"iat": <signing time, epoch seconds>, "revision": <the manifest's
revision>, "sha256": <hex digest of the tarball>}``, carried in the ``X-Bundle-Signature`` header
of the bundle's answer. ``iat`` lets a PDP refuse a bundle signed before the one it runs (an
older policy replayed).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

#: The header carrying the bundle's signature.
SIGNATURE_HEADER = "X-Bundle-Signature"


class BundleRejected(Exception):
    """A fetched bundle was refused: bad signature, digest or revision mismatch, missing or
    unusable members. The last good bundle keeps deciding."""


@dataclass(frozen=True)
class SignedClaims:
    """What a verified signature says.

    Attributes:
        revision: the bundle's revision.
        issued_at: when it was signed, epoch seconds (UTC).
    """

    revision: str
    issued_at: int


def sign_bundle(tarball: bytes, revision: str, key: RSAKey, key_id: str, issued_at: int | None = None) -> str:
    """The compact JWS over ``tarball``'s digest and ``revision`` (see the module's docstring).

    Args:
        tarball: the bundle's bytes as served.
        revision: its manifest's revision.
        key: the RSA private key.
        key_id: the ``kid`` header (names the key to operators).
        issued_at: the signing time, epoch seconds (default: now).

    Returns:
        The compact serialization (``header.payload.signature``).
    """
    payload = json.dumps({"iat": int(time.time()) if issued_at is None else issued_at, "revision": revision,
                          "sha256": hashlib.sha256(tarball).hexdigest()}, sort_keys=True)
    return jws.serialize_compact({"alg": "RS256", "kid": key_id}, payload.encode("utf-8"), key, algorithms=["RS256"])


def verify_bundle(tarball: bytes, signature: str | None, key: RSAKey) -> SignedClaims:
    """Check ``signature`` over ``tarball``; return what it signs.

    Raises:
        BundleRejected: no signature, not RS256 by ``key``, another tarball's digest, no revision
            or no signing time.
    """
    if not signature:
        raise BundleRejected(f"the bundle has no {SIGNATURE_HEADER}")
    try:
        token = jws.deserialize_compact(signature, key, algorithms=["RS256"])
        claims = json.loads(token.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise BundleRejected(f"the bundle's signature does not verify: {exc}") from None
    if not isinstance(claims, dict) or claims.get("sha256") != hashlib.sha256(tarball).hexdigest():
        raise BundleRejected("the signature is for another bundle (digest mismatch)")
    revision, issued_at = claims.get("revision"), claims.get("iat")
    if not isinstance(revision, str) or not revision:
        raise BundleRejected("the signature names no revision")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        raise BundleRejected("the signature names no signing time (iat)")
    return SignedClaims(revision, issued_at)
