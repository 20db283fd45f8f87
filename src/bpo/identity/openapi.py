"""The OpenAPI document says how to authenticate: an OAuth 2 security scheme with both
flows, and on each guarded operation the scopes its guard requires. The OAuth endpoints
get their form bodies and one shared `OAuthError` component (RFC 6749's shape, not RFC
9457's: every OAuth client reads it)."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OAuthFlow,
    OAuthFlows,
    OpenAPI,
    OpenAPIMediaType,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute

from bpo.identity.schemas import OAuthError
from bpo.identity.scopes import CLIENT_SCOPES, USER_SCOPES

SCHEME = "oauth2"
TOKEN_URL = "/oauth/token"  # noqa: S105 (a path, not a secret)
FORM = "application/x-www-form-urlencoded"


def _text(description: str, enum: list[str] | None = None) -> Schema:
    return Schema(type=OpenAPIType.STRING, description=description, enum=enum)


_CLIENT_AUTH = {
    "client_id": _text("The client, unless it authenticates with HTTP Basic"),
    "client_secret": _text("A confidential client's secret, unless HTTP Basic"),
}
Properties = dict[str, Schema | Reference]
_TOKEN_HINT: Properties = {
    **_CLIENT_AUTH,
    "token": _text("The access or refresh token"),
    "token_type_hint": _text("Where to look first", ["access_token", "refresh_token"]),
}
# Each OAuth endpoint's form (RFC 6749 §4.1.3, §4.4.2, §6; RFC 7662 §2.1; RFC 7009 §2.1).
_FORMS: dict[str, tuple[str, list[str], Properties]] = {
    TOKEN_URL: (
        "TokenRequest",
        ["grant_type"],
        {
            "grant_type": _text(
                "The grant", ["client_credentials", "authorization_code", "refresh_token"]
            ),
            "scope": _text("Space-separated scopes (client_credentials, refresh_token)"),
            "code": _text("authorization_code: the code from the redirect"),
            "redirect_uri": _text("authorization_code: the redirect URI of the request"),
            "code_verifier": _text("authorization_code: the PKCE verifier (S256)"),
            "refresh_token": _text("refresh_token: the refresh token (rotated on use)"),
            **_CLIENT_AUTH,
        },
    ),
    "/oauth/introspect": ("IntrospectionRequest", ["token"], _TOKEN_HINT),
    "/oauth/revoke": ("RevocationRequest", ["token"], _TOKEN_HINT),
}
_OAUTH_ERROR = Schema(
    title=OAuthError.__name__,
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={
        "error": _text(
            "RFC 6749 §5.2 code: invalid_request, invalid_client, invalid_grant, "
            "unauthorized_client, unsupported_grant_type, invalid_scope; RFC 7009's "
            "unsupported_token_type"
        ),
        "error_description": _text("For the developer, not for end users"),
    },
    description="An OAuth error (RFC 6749 §5.2), not an RFC 9457 problem",
    examples=[{"error": "invalid_grant", "error_description": "The code has expired"}],
)


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
    _document_oauth_endpoints(schema)
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


def _document_oauth_endpoints(schema: OpenAPI) -> None:
    """The form each OAuth endpoint reads (the handlers parse it themselves, so Litestar
    cannot see it), each as a component, and the shared error shape without Litestar's
    random examples."""
    components = schema.components or Components()
    schemas = components.schemas or {}
    schemas[OAuthError.__name__] = _OAUTH_ERROR
    for path, (name, required, properties) in _FORMS.items():
        operation = (schema.paths or {}).get(path)
        if operation is None or operation.post is None:
            continue
        schemas[name] = Schema(
            title=name, type=OpenAPIType.OBJECT, required=required, properties=properties
        )
        operation.post.request_body = RequestBody(
            content={FORM: OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{name}"))},
            required=True,
        )
    components.schemas = schemas
    schema.components = components
