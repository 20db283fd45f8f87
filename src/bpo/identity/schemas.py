"""What the token endpoint answers (RFC 6749 §5.1 and §5.2), for the OpenAPI document."""

from __future__ import annotations

import msgspec


class TokenResponse(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class OAuthError(msgspec.Struct):
    """OAuth errors keep RFC 6749's shape (not RFC 9457): every OAuth client reads it."""

    error: str
    error_description: str | None = None
