"""RFC 9068 access tokens: ES256 JWTs with `typ: at+jwt`, at most 10 minutes.

Verification is strict and cheap-first, after Authlib's JOSE CVE history: the token's size
and header are checked before any cryptography (only ES256, only `at+jwt`, no `crit`, a kid
from our ring), then the signature against that one key, then the claims.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from bpo.identity.keys import KeyRing

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type, not a secret)
MAX_LIFETIME_S = 600
MAX_TOKEN_BYTES = 4096  # ours are ~600 bytes; a 1 MB header is refused before parsing
LEEWAY_S = 30
# Built once: passing `algorithms=` makes joserfc build a registry on every call.
_ES256_ONLY = JWSRegistry(algorithms=[ALGORITHM])
_REQUIRED = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")


class InvalidToken(Exception):
    """The bearer token is refused; `reason` says why (for logs and the problem detail)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    client_id: str
    scopes: frozenset[str]
    tenant: uuid.UUID | None
    staff_role: str | None
    jti: str
    expires_at: int
    raw: dict[str, Any]


def issue_access_token(
    ring: KeyRing,
    *,
    issuer: str,
    audience: str,
    subject: str,
    client_id: str,
    scope: str,
    tenant: uuid.UUID | None = None,
    staff_role: str | None = None,
    lifetime_s: int = MAX_LIFETIME_S,
) -> tuple[str, dict[str, Any]]:
    """Sign a token with the ring's active key. Returns (token, claims)."""
    assert ring.signing_key is not None, "the key ring is not loaded"
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + min(lifetime_s, MAX_LIFETIME_S),
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "client_id": client_id,
        "scope": scope,
    }
    if tenant is not None:
        claims["tenant"] = str(tenant)
    if staff_role is not None:
        claims["staff_role"] = staff_role
    header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": ring.active_kid}
    payload = json.dumps(claims, separators=(",", ":")).encode()
    token = jws.serialize_compact(header, payload, ring.signing_key, registry=_ES256_ONLY)
    return token, claims


def verify_access_token(
    ring: KeyRing, token: str, *, issuer: str, audience: str, now: float | None = None
) -> AccessClaims:
    """The token's claims, or InvalidToken saying what is wrong."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a compact JWS")
    header = _json_segment(parts[0], "header")
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
    if str(header.get("typ", "")).lower() not in (TOKEN_TYPE, f"application/{TOKEN_TYPE}"):
        raise InvalidToken("typ must be at+jwt (RFC 9068)")
    if "crit" in header:
        raise InvalidToken("critical header parameters are not supported")
    key = ring.public_keys.get(str(header.get("kid")))
    if key is None:
        raise InvalidToken("unknown or retired signing key")
    try:
        verified = jws.deserialize_compact(token, key, registry=_ES256_ONLY)
    except JoseError as exc:
        raise InvalidToken("bad signature") from exc
    claims = _json_bytes(verified.payload, "claims")
    return _check_claims(claims, issuer, audience, time.time() if now is None else now)


def _check_claims(claims: dict[str, Any], issuer: str, audience: str, now: float) -> AccessClaims:
    missing = [name for name in _REQUIRED if name not in claims]
    if missing:
        raise InvalidToken(f"missing claims: {', '.join(missing)}")
    if claims["iss"] != issuer:
        raise InvalidToken("wrong issuer")
    aud = claims["aud"]
    if audience not in (aud if isinstance(aud, list) else [aud]):
        raise InvalidToken("wrong audience")
    times = {name: claims.get(name) for name in ("exp", "iat", "nbf")}
    if any(
        v is not None and (not isinstance(v, int) or isinstance(v, bool)) for v in times.values()
    ):
        raise InvalidToken("exp, iat and nbf must be whole seconds")
    if claims["exp"] <= now - LEEWAY_S:
        raise InvalidToken("expired")
    if claims["iat"] > now + LEEWAY_S or (claims.get("nbf") or 0) > now + LEEWAY_S:
        raise InvalidToken("not yet valid")
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_S:
        raise InvalidToken("lifetime longer than allowed")
    tenant = claims.get("tenant")
    try:
        tenant_id = uuid.UUID(tenant) if tenant is not None else None
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed tenant claim") from exc
    scope = claims.get("scope") or ""
    if not isinstance(scope, str):
        raise InvalidToken("scope must be a string")
    return AccessClaims(
        subject=str(claims["sub"]),
        client_id=str(claims["client_id"]),
        scopes=frozenset(scope.split()),
        tenant=tenant_id,
        staff_role=claims.get("staff_role"),
        jti=str(claims["jti"]),
        expires_at=claims["exp"],
        raw=claims,
    )


def _json_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken(f"{what} is not base64url") from exc
    return _json_bytes(raw, what)


def _json_bytes(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidToken(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidToken(f"{what} is not a JSON object")
    return value
