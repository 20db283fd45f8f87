"""Authlib's grants and endpoints, fed from what the request preloaded (`Exchange`).

- client credentials: a scope the client does not hold is `invalid_scope`, not dropped;
- authorization code: PKCE with S256 only, for every client (plain or none is refused);
  codes are single use, bound to client, redirect URI and challenge;
- refresh: rotates on every use (a new refresh token with each access token);
- introspection (RFC 7662) and revocation (RFC 7009), each for the client's own tokens.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from bpo.core.security import token_digest

if TYPE_CHECKING:
    from bpo.identity.clients import OAuthClient

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]
ALL_METHODS = [*SECRET_METHODS, "none"]


digest = token_digest  # codes and refresh tokens are stored as their SHA-256


@dataclass(frozen=True, slots=True)
class Grantee:
    """The person a code or refresh token stands for, as loaded now (active, still a member)."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID | None
    staff_role: str | None
    scope: str


@dataclass(frozen=True, slots=True)
class CodeRecord:
    digest: bytes
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    digest: bytes
    family_id: uuid.UUID
    client_id: str
    scope: str

    def check_client(self, client: OAuthClient) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A presented token for introspection or revocation, with its current standing."""

    kind: Literal["access_token", "refresh_token"]
    client_id: str
    active: bool
    expires_at: int
    claims: dict[str, Any] = field(default_factory=dict)
    jti: str | None = None
    family_id: uuid.UUID | None = None

    def check_client(self, client: OAuthClient) -> bool:
        return client.client_id == self.client_id

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    def is_revoked(self) -> bool:
        return not self.active


@dataclass
class Exchange:
    """What one request loaded beforehand, and what Authlib produced from it."""

    client: OAuthClient | None
    code: CodeRecord | None = None
    refresh: RefreshRecord | None = None
    user: Grantee | None = None
    token: TokenRecord | None = None
    issued: list[dict[str, Any]] = field(default_factory=list)
    codes: list[dict[str, Any]] = field(default_factory=list)
    code_consumed: bool = False
    refresh_rotated: bool = False
    revoked: TokenRecord | None = None


exchange_var: contextvars.ContextVar[Exchange] = contextvars.ContextVar("bpo_oauth_exchange")


def current() -> Exchange:
    return exchange_var.get()


class TenantClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        requested = set((self.request.payload.scope or "").split())
        held = set(self.request.client.scopes)
        if not requested <= held:
            unknown = " ".join(sorted(requested - held))
            raise InvalidScopeError(description=f"the client may not ask for: {unknown}")


class PkceS256Only(CodeChallenge):  # type: ignore[misc]
    """RFC 7636 with S256 required of every client (RFC 9700 §2.1.1); `plain` is refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is refused)")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier' (PKCE is required)")
        super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge_method(self, authorization_code: CodeRecord) -> str:
        return "S256"


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    AUTHORIZATION_CODE_LENGTH = 43  # ~256 bits from Authlib's alphabet

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        grantee: Grantee = request.user
        current().codes.append(
            {
                "code_digest": digest(code),
                "client_id": request.client.client_id,
                "redirect_uri": request.payload.redirect_uri,
                "scope": grantee.scope,
                "code_challenge": request.payload.data["code_challenge"],
                "grantee": grantee,
            }
        )

    def query_authorization_code(self, code: str, client: OAuthClient) -> CodeRecord | None:
        record = current().code
        if record is None or record.client_id != client.client_id:
            return None
        return record if record.digest == digest(code) else None

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        current().code_consumed = True

    def authenticate_user(self, authorization_code: CodeRecord) -> Grantee | None:
        return current().user


class RotatingRefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        record = current().refresh
        return record if record is not None and record.digest == digest(refresh_token) else None

    def authenticate_user(self, refresh_token: RefreshRecord) -> Grantee | None:
        return current().user

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        current().refresh_rotated = True


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ALL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return current().token

    def check_permission(self, token: TokenRecord, client: OAuthClient, request: Any) -> bool:
        return token.check_client(client)  # a client learns about its own tokens only

    def introspect_token(self, token: TokenRecord) -> dict[str, Any]:
        claims = token.claims
        names = ("scope", "sub", "aud", "iss", "iat", "jti", "nbf", "tenant", "staff_role")
        body: dict[str, Any] = {key: claims[key] for key in names if key in claims}
        body |= {"active": True, "client_id": token.client_id, "exp": token.expires_at}
        body["token_type"] = "Bearer" if token.kind == "access_token" else "refresh_token"
        return body


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ALL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return current().token

    def revoke_token(self, token: TokenRecord, request: Any) -> None:
        current().revoked = token
