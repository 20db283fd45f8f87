"""Authlib's authorization server, wired into Litestar.

Authlib's server core is synchronous. Everything a request needs from the database is loaded
asynchronously first (the client, the code or refresh token it presents, the user behind
it) and handed over through a context variable, so the Authlib call itself does no I/O and
never blocks the event loop. What Authlib produces (codes, tokens, revocations) is collected
in the same `Exchange` and written back asynchronously, in the request's transaction
(`bpo.identity.service`).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidScopeError

from bpo.identity import grants
from bpo.identity.clients import OAuthClient
from bpo.identity.keys import KeyRing
from bpo.identity.scopes import USER_SCOPES
from bpo.identity.tokens import MAX_LIFETIME_S, issue_access_token

REFRESH_LIFETIME_S = 30 * 24 * 3600


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
    """An OAuth request: method, URL, headers and the already-read form or query."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], pairs: list[tuple[str, str]]
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = FormPayload(pairs)

    @property
    def args(self) -> dict[str, str]:
        return dict(self.payload.data) if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return dict(self.payload.data) if self.method != "GET" else {}


class BpoAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, ring: KeyRing, issuer: str, audience: str) -> None:
        super().__init__(scopes_supported=list(USER_SCOPES))
        self.ring, self.issuer, self.audience = ring, issuer, audience
        self.register_grant(grants.TenantClientCredentialsGrant)
        self.register_grant(grants.CodeGrant, [grants.PkceS256Only()])
        self.register_grant(grants.RotatingRefreshGrant)
        self.register_endpoint(grants.Introspection)
        self.register_endpoint(grants.Revocation)
        self.register_token_generator("default", self._generate)

    def run(self, exchange: grants.Exchange, call: Any, *args: Any) -> tuple[int, Any, list[Any]]:
        """Run one Authlib entry point with `exchange` preloaded. No I/O inside."""
        token = grants.exchange_var.set(exchange)
        try:
            status, body, headers = call(*args)
        finally:
            grants.exchange_var.reset(token)
        return status, body, list(headers)

    # --- Authlib's hooks ----------------------------------------------------------------

    def query_client(self, client_id: str) -> OAuthClient | None:
        client = grants.current().client
        return client if client is not None and client.client_id == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        grants.current().issued.append(token)

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def validate_requested_scope(self, scope: str | None) -> None:
        unknown = set((scope or "").split()) - set(USER_SCOPES)
        if unknown:
            raise InvalidScopeError(description=f"unknown scopes: {' '.join(sorted(unknown))}")

    def _generate(
        self,
        grant_type: str,
        client: OAuthClient,
        user: grants.Grantee | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        if user is None:  # client credentials: the client itself (RFC 9068 §2.2)
            granted = " ".join(client.granted_scopes(scope))
            subject, tenant, staff_role = client.client_id, client.tenant_id, None
        else:
            # What was granted then, narrowed to what the person's role allows now: a refresh
            # after a demotion carries the new role's scopes only.
            now_allowed = set(user.scope.split())
            granted = " ".join(sorted(set((scope or "").split()) & now_allowed))
            subject, tenant, staff_role = str(user.user_id), user.tenant_id, user.staff_role
        access_token, claims = issue_access_token(
            self.ring,
            issuer=self.issuer,
            audience=self.audience,
            subject=subject,
            client_id=client.client_id,
            scope=granted,
            tenant=tenant,
            staff_role=staff_role,
        )
        token = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": MAX_LIFETIME_S,
            "scope": granted,
            "_claims": claims,  # for the issuance record; removed before the response
        }
        if include_refresh_token and user is not None:
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token


def repeated_parameter(pairs: list[tuple[str, str]]) -> str | None:
    """The first parameter that appears twice (RFC 6749 §3.1, §3.2: request parameters
    MUST NOT be included more than once; which one would count is ambiguous)."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            return name
        seen.add(name)
    return None


def client_id_of(headers: Mapping[str, str], pairs: list[tuple[str, str]]) -> str | None:
    """The client id a request names (Basic credentials first, then the form)."""
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


def endpoint_url(request: Any) -> str:
    """The endpoint's URL as the issuer names it. Authlib refuses plain-http URLs (except on
    loopback); behind a TLS-terminating proxy the request itself arrives over http."""
    return f"{request.app.state.settings.issuer}{request.scope['path']}"
