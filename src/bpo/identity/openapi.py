"""The OpenAPI document says how to authenticate: an OAuth 2 security scheme with both
flows, and on each guarded operation the scopes its guard requires."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityScheme
from litestar.routes import HTTPRoute

from bpo.identity.scopes import CLIENT_SCOPES, USER_SCOPES

SCHEME = "oauth2"
TOKEN_URL = "/oauth/token"  # noqa: S105 (a path, not a secret)


def document_security(app: Litestar) -> None:
    if app.openapi_config is None:
        return
    schema = app.openapi_schema
    components = schema.components or Components()
    components.security_schemes = {
        **(components.security_schemes or {}),
        SCHEME: SecurityScheme(
            type="oauth2",
            description="Access tokens are RFC 9068 JWTs (ES256, at most 10 minutes).",
            flows=OAuthFlows(
                client_credentials=OAuthFlow(token_url=TOKEN_URL, scopes=CLIENT_SCOPES),
                authorization_code=OAuthFlow(
                    authorization_url="/oauth/authorize",
                    token_url=TOKEN_URL,
                    refresh_url=TOKEN_URL,
                    scopes=USER_SCOPES,
                ),
            ),
        ),
    }
    schema.components = components
    paths = schema.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        item = paths[route.path_format]
        for handler in route.route_handlers:
            access = [g.access for g in handler.resolve_guards() if hasattr(g, "access")]
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if operation is not None and access:
                    operation.security = [{SCHEME: list(access[0].scopes)}]
