"""Authlib's authorization server, wired into Litestar.

Authlib's server core is synchronous. Everything a grant needs from the database is loaded
asynchronously first (the client, by the id the request names) and handed over through a
context variable, so the Authlib call itself does no I/O and never blocks the event loop;
what it produces (issued tokens) is collected and written back asynchronously, in the
request's transaction.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant

from bpo.core.security import secret_matches
from bpo.identity.keys import KeyRing
from bpo.identity.scopes import CLIENT_SCOPES
from bpo.identity.tokens import MAX_LIFETIME_S, issue_access_token

AUTH_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True, slots=True)
class OAuthClient(ClientMixin):  # type: ignore[misc]
    """An API client as Authlib sees it: loaded before the grant runs."""

    client_id: str
    tenant_id: uuid.UUID
    scopes: tuple[str, ...]
    secret_digest: bytes
    previous_secret_digest: bytes | None
    previous_secret_expires_at: datetime | None
    secret_key: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(self.granted_scopes(scope))

    def granted_scopes(self, scope: str | None) -> list[str]:
        """The requested scopes (all of the client's when none are asked for)."""
        return sorted(set(scope.split()) if scope else set(self.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        if secret_matches(self.secret_key, client_secret, self.secret_digest):
            return True
        overlap = self.previous_secret_expires_at
        return (
            self.previous_secret_digest is not None
            and overlap is not None
            and overlap > datetime.now(UTC)
            and secret_matches(self.secret_key, client_secret, self.previous_secret_digest)
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class TenantClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials; a scope the client does not hold is `invalid_scope`, not dropped."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        requested = set((self.request.payload.scope or "").split())
        if not requested <= set(self.request.client.scopes):
            unknown = " ".join(sorted(requested - set(self.request.client.scopes)))
            raise InvalidScopeError(description=f"the client may not ask for: {unknown}")


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """A token request: method, URL, headers and the already-read form."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], pairs: list[tuple[str, str]]
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = FormPayload(pairs)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return dict(self.payload.data)


@dataclass
class Exchange:
    """What one token request loaded beforehand and what Authlib produced."""

    client: OAuthClient | None
    issued: list[dict[str, Any]] = field(default_factory=list)


_exchange: contextvars.ContextVar[Exchange] = contextvars.ContextVar("bpo_oauth_exchange")


class BpoAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, ring: KeyRing, issuer: str, audience: str) -> None:
        super().__init__(scopes_supported=list(CLIENT_SCOPES))
        self.ring, self.issuer, self.audience = ring, issuer, audience
        self.register_grant(TenantClientCredentialsGrant)
        self.register_token_generator("default", self._generate)

    def run_token_request(
        self, request: FormRequest, client: OAuthClient | None
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]], Exchange]:
        """Authlib's token endpoint, with the client loaded beforehand. No I/O inside."""
        exchange = Exchange(client)
        token = _exchange.set(exchange)
        try:
            status, body, headers = self.create_token_response(request)
        finally:
            _exchange.reset(token)
        return status, body, headers, exchange

    # --- Authlib's hooks ----------------------------------------------------------------

    def query_client(self, client_id: str) -> OAuthClient | None:
        client = _exchange.get().client
        return client if client is not None and client.client_id == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        _exchange.get().issued.append(token)

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def _generate(
        self,
        grant_type: str,
        client: OAuthClient,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        granted = " ".join(client.granted_scopes(scope))
        access_token, claims = issue_access_token(
            self.ring,
            issuer=self.issuer,
            audience=self.audience,
            subject=client.client_id,  # RFC 9068 §2.2: the client itself, for this grant
            client_id=client.client_id,
            scope=granted,
            tenant=client.tenant_id,
        )
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": MAX_LIFETIME_S,
            "scope": granted,
            "_claims": claims,  # for the issuance record; removed before the response
        }


def client_id_of(headers: dict[str, str], pairs: list[tuple[str, str]]) -> str | None:
    """The client id a token request names (Basic credentials first, then the form)."""
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        if ":" in decoded:
            return unquote(decoded.split(":", 1)[0])  # RFC 6749 §2.3.1: form-urlencoded
        return None
    values = [value for key, value in pairs if key == "client_id"]
    return values[0] if len(values) == 1 else None
