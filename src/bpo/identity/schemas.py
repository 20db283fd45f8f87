"""What the OAuth endpoints answer (RFC 6749 §5.1/§5.2, RFC 7662), for the OpenAPI document."""

from __future__ import annotations

import msgspec


class TokenResponse(msgspec.Struct, omit_defaults=True):
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    refresh_token: str | None = None  # authorization_code and refresh_token grants


class OAuthError(msgspec.Struct):
    """OAuth errors keep RFC 6749's shape (not RFC 9457): every OAuth client reads it."""

    error: str
    error_description: str | None = None


class IntrospectionResponse(msgspec.Struct, omit_defaults=True):
    """RFC 7662 §2.2: only `active` for a token that is not (or not the caller's)."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    sub: str | None = None
    aud: str | None = None
    iss: str | None = None
    jti: str | None = None
    tenant: str | None = None
    staff_role: str | None = None
