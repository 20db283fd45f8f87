"""The authorization server's public endpoints: token, JWKS, metadata (RFC 8414)."""

from __future__ import annotations

from typing import Any, cast

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.identity import service
from bpo.identity.keys import KeyRing
from bpo.identity.schemas import OAuthError, TokenResponse
from bpo.identity.scopes import CLIENT_SCOPES
from bpo.identity.server import AUTH_METHODS, BpoAuthorizationServer, FormRequest, client_id_of

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def ring_of(state: State) -> KeyRing:
    ring: KeyRing | None = state.get("key_ring")
    if ring is None:
        raise Problem(503, "service-unavailable", "signing keys need BPO_SECRET_KEY to be set")
    return await ring.fresh(state.db.engine)


_OAUTH_ERRORS = {
    code: ResponseSpec(OAuthError, description=text, media_type="application/json")
    for code, text in ((400, "invalid_request, unsupported_grant_type, invalid_scope, …"),
                       (401, "invalid_client"))
}  # fmt: skip


@post(
    "/oauth/token",
    summary="Token endpoint (RFC 6749 §3.2): client_credentials",
    description="Form-encoded (`application/x-www-form-urlencoded`) body: `grant_type`, "
    "optional `scope`; client authentication by HTTP Basic or `client_id` + `client_secret`.",
    tags=["oauth"],
    status_code=200,
    responses=_OAUTH_ERRORS,
)
async def token(
    request: Request[Any, Any, State], db_session: NamedDependency[AsyncSession]
) -> Response[TokenResponse]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        return _oauth_error(400, "invalid_request", f"the body must be {FORM}")
    pairs = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
    headers = {k.lower(): v for k, v in request.headers.items()}
    ring = await ring_of(request.app.state)
    server: BpoAuthorizationServer = request.app.state.oauth
    server.ring = ring
    client = await service.load_client(db_session, client_id_of(headers, pairs), ring.secret_key)
    # Authlib reads headers by their canonical names; Litestar's are case-insensitive.
    oauth_request = FormRequest("POST", str(request.url), request.headers, pairs)
    status, body, response_headers, exchange = server.run_token_request(oauth_request, client)
    await service.record_token_request(
        db_session,
        pairs=pairs,
        client=client,
        issued=exchange.issued,
        error=None if status == 200 else body.get("error"),
        ip=request.client.host if request.client else None,
        request_id=request.scope.get("state", {}).get("request_id"),
    )
    body.pop("_claims", None)
    # A token (documented as TokenResponse) or an OAuthError; both are plain JSON objects.
    content = cast(TokenResponse, body)
    return Response(content, status_code=status, headers=dict(response_headers) | NO_STORE)


def _oauth_error(status: int, error: str, description: str) -> Response[Any]:
    return Response(
        {"error": error, "error_description": description}, status_code=status, headers=NO_STORE
    )


@get(
    "/.well-known/jwks.json",
    summary="The public signing keys (next, active, previous)",
    tags=["oauth"],
    media_type="application/jwk-set+json",
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
)
async def metadata(state: State) -> dict[str, Any]:
    issuer: str = state.settings.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "scopes_supported": list(CLIENT_SCOPES),
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
    }


route_handlers = [token, jwks, metadata]
