"""The authorization server's endpoints: token, introspection (RFC 7662), revocation
(RFC 7009), JWKS and metadata (RFC 8414). The authorization endpoint is in `authorize`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.ratelimit import Limit, RateLimiter, retry_after
from bpo.identity import authorize, grants, service
from bpo.identity.clients import AUTH_METHODS, OAuthClient
from bpo.identity.guards import PUBLIC, ring_of
from bpo.identity.schemas import IntrospectionResponse, OAuthError, TokenResponse
from bpo.identity.scopes import USER_SCOPES
from bpo.identity.server import (
    BpoAuthorizationServer,
    FormRequest,
    client_id_of,
    repeated_parameter,
)
from bpo.identity.server import endpoint_url as _endpoint_url

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_OAUTH_ERRORS = {
    code: ResponseSpec(OAuthError, description=text, media_type="application/json")
    for code, text in ((400, "invalid_request, invalid_grant, unsupported_grant_type, …"),
                       (401, "invalid_client"),
                       (429, "too many token requests (see Retry-After)"))
}  # fmt: skip


class _Form:
    """A form-encoded OAuth request, read once."""

    def __init__(self, pairs: list[tuple[str, str]], headers: Mapping[str, str]) -> None:
        self.pairs = pairs
        self.fields = dict(pairs)
        self.client_id = client_id_of(headers, pairs)


async def _read_form(request: Request[Any, Any, State]) -> _Form | Response[Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        return _oauth_error(400, "invalid_request", f"the body must be {FORM}")
    pairs = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
    if (name := repeated_parameter(pairs)) is not None:
        return _oauth_error(400, "invalid_request", f"the parameter {name} is repeated")
    return _Form(pairs, request.headers)  # case-insensitive names


async def _throttled(request: Request[Any, Any, State], form: _Form) -> Response[Any] | None:
    """Per client and per IP address; an atomic counter in Redis shared by every process."""
    settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.limiter
    ip = request.client.host if request.client else "unknown"
    limits = [
        Limit("token requests from this address", f"token:ip:{ip}", settings.token_rate_per_ip, 60)
    ]
    if form.client_id:
        limits.append(
            Limit(
                "token requests for this client",
                f"token:client:{form.client_id[:64]}",
                settings.token_rate_per_client,
                60,
            )
        )
    exceeded = await limiter.hit_all(limits)
    if exceeded is None:
        return None
    limit, wait = exceeded
    response = _oauth_error(429, "slow_down", f"too many {limit.name}; retry later")
    response.headers["Retry-After"] = retry_after(wait)
    return response


async def _server(request: Request[Any, Any, State]) -> BpoAuthorizationServer:
    ring = await ring_of(request.app.state)
    server: BpoAuthorizationServer = request.app.state.oauth
    server.ring = ring
    return server


@post(
    "/oauth/token",
    summary="Token endpoint (RFC 6749 §3.2)",
    description="Form-encoded body. `client_credentials` for API clients (HTTP Basic or "
    "`client_id` + `client_secret`); `authorization_code` with `code_verifier` (PKCE S256) "
    "and `refresh_token` (rotated on every use) for sign-in apps.",
    tags=["oauth"],
    status_code=200,
    responses=_OAUTH_ERRORS,
    opt={PUBLIC: True},
    operation_id="issueToken",
)
async def token(request: Request[Any, Any, State], state: State) -> Response[TokenResponse]:
    form = await _read_form(request)
    if isinstance(form, Response):
        return form
    if (limited := await _throttled(request, form)) is not None:
        return limited
    server = await _server(request)
    if form.fields.get("grant_type") == "client_credentials":
        # Nothing to lock or write back: the client is read, and the outcome recorded, by
        # statements shared with the concurrent token requests (identity.service); the
        # answer waits for the commit that holds its record.
        client = None
        if form.client_id and len(form.client_id) <= 64:
            client = await state.oauth_clients(form.client_id)
        status, body, headers, exchange = _decide(request, server, form, client)
        await state.token_events(_event(request, form, client, status, body, exchange))
    else:
        async with state.db.sessionmaker() as session, session.begin():
            client = await service.load_client(session, form.client_id, server.ring.secret_key)
            exchange = grants.Exchange(client)
            await service.preload_token_request(session, exchange, form.fields)
            status, body, headers, exchange = _decide(request, server, form, client, exchange)
            if status == 200:
                await service.write_back(session, exchange)
            event = _event(request, form, client, status, body, exchange)
            await service.record_token_events(session, [event])
    body.pop("_claims", None)
    _count_token(state, form.fields.get("grant_type"), status)
    # A token (documented as TokenResponse) or an OAuthError; both are plain JSON objects.
    return Response(cast(TokenResponse, body), status_code=status, headers=dict(headers) | NO_STORE)


_GRANT_TYPES = frozenset({"client_credentials", "authorization_code", "refresh_token"})


def _count_token(state: State, grant_type: str | None, status: int) -> None:
    if status == 200:
        label = grant_type if grant_type in _GRANT_TYPES else "other"
        doc = "Access tokens issued, by grant type."
        state.metrics.counter("bpo_tokens_issued", doc, ["grant_type"]).labels(label).inc()


def _decide(
    request: Request[Any, Any, State],
    server: BpoAuthorizationServer,
    form: _Form,
    client: OAuthClient | None,
    exchange: grants.Exchange | None = None,
) -> tuple[int, Any, list[Any], grants.Exchange]:
    """Authlib's answer to the token request, from what was loaded beforehand."""
    exchange = exchange or grants.Exchange(client)
    # Authlib reads headers by their canonical names; Litestar's are case-insensitive.
    oauth_request = FormRequest("POST", _endpoint_url(request), request.headers, form.pairs)
    status, body, headers = server.run(exchange, server.create_token_response, oauth_request)
    return status, body, headers, exchange


def _event(
    request: Request[Any, Any, State],
    form: _Form,
    client: OAuthClient | None,
    status: int,
    body: Any,
    exchange: grants.Exchange,
) -> dict[str, Any]:
    return service.token_event(
        pairs=form.pairs,
        client_id=form.client_id,  # from HTTP Basic or the form
        client=client,
        issued=exchange.issued,
        error=None if status == 200 else body.get("error"),
        ip=request.client.host if request.client else None,
        request_id=request.scope.get("state", {}).get("request_id"),
    )


@post(
    "/oauth/introspect",
    summary="Token introspection (RFC 7662): a client learns about its own tokens",
    tags=["oauth"],
    status_code=200,
    responses=_OAUTH_ERRORS,
    opt={PUBLIC: True},
    operation_id="introspectToken",
)
async def introspect(
    request: Request[Any, Any, State], db_session: NamedDependency[AsyncSession]
) -> Response[IntrospectionResponse]:
    answer = await _token_endpoint(request, db_session, "introspection")
    if isinstance(answer, Response):
        return answer
    status, body, headers, _ = answer
    return Response(cast(IntrospectionResponse, body), status_code=status, headers=headers)


@post(
    "/oauth/revoke",
    summary="Token revocation (RFC 7009): access tokens by jti, refresh tokens by family",
    tags=["oauth"],
    status_code=200,
    responses=_OAUTH_ERRORS,
    opt={PUBLIC: True},
    operation_id="revokeToken",
)
async def revoke(
    request: Request[Any, Any, State], db_session: NamedDependency[AsyncSession]
) -> Response[Any]:
    answer = await _token_endpoint(request, db_session, "revocation")
    if isinstance(answer, Response):
        return answer
    status, body, headers, exchange = answer
    if status == 200 and exchange.revoked is not None:
        await service.apply_revocation(db_session, exchange.revoked)
    return Response(body or {}, status_code=status, headers=headers)


async def _token_endpoint(
    request: Request[Any, Any, State], session: AsyncSession, name: str
) -> tuple[int, Any, dict[str, str], grants.Exchange] | Response[Any]:
    """Introspection or revocation: the client and the presented token loaded, then Authlib."""
    form = await _read_form(request)
    if isinstance(form, Response):
        return form
    server = await _server(request)
    client = await service.load_client(session, form.client_id, server.ring.secret_key)
    exchange = grants.Exchange(client)
    presented = form.fields.get("token", "")
    if client is not None and presented and len(presented) <= 4096:
        exchange.token = await service.load_presented_token(
            session, server.ring, request.app.state.settings.issuer, presented
        )
    oauth_request = FormRequest("POST", _endpoint_url(request), request.headers, form.pairs)
    status, body, headers = server.run(
        exchange, server.create_endpoint_response, name, oauth_request
    )
    return status, body, dict(headers) | NO_STORE, exchange


def _oauth_error(status: int, error: str, description: str) -> Response[Any]:
    return Response(
        {"error": error, "error_description": description}, status_code=status, headers=NO_STORE
    )


@get(
    "/.well-known/jwks.json",
    summary="The public signing keys (next, active, previous)",
    tags=["oauth"],
    media_type="application/jwk-set+json",
    opt={PUBLIC: True},
    operation_id="getJwks",
)
async def jwks(state: State) -> Response[Any]:
    ring = await ring_of(state)
    return Response(
        ring.jwks,
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@get(
    "/.well-known/oauth-authorization-server",
    summary="Authorization server metadata (RFC 8414)",
    tags=["oauth"],
    opt={PUBLIC: True},
    operation_id="getAuthorizationServerMetadata",
)
async def metadata(state: State) -> dict[str, Any]:
    issuer: str = state.settings.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "scopes_supported": list(USER_SCOPES),
        "authorization_response_iss_parameter_supported": True,
    }


route_handlers = [token, introspect, revoke, jwks, metadata, *authorize.route_handlers]
