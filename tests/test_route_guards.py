"""Every route declares who may call it. A route with no guard fails this test unless it is
on the short public list below; adding one there is a decision a reviewer sees."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from bpo.app import create_app
from bpo.identity.guards import PUBLIC
from bpo.settings import Settings

PUBLIC_ROUTES = {
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("POST", "/oauth/token"),  # client authentication, not a bearer token
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/revoke"),
    ("GET", "/oauth/authorize"),  # the sign-in page
    ("POST", "/oauth/authorize"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("POST", "/v1/invites/accept"),  # the invite token is the credential
    ("POST", "/v1/billing/stripe/webhook"),  # Stripe's signature is the credential
}
DOCS_PREFIX = "/schema"  # the OpenAPI document and its viewers (BPO_DOCS_ENABLED)
# The console's pages: the sealed session cookie is their credential, and each read or
# change they make is an API call with the person's token through the guards above
# (tests/test_console.py proves a page without a session signs in first). /static: the
# stylesheet and htmx.
NOT_API = ("/console", "/static/")


def unguarded_routes(app: Litestar) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            methods = set(handler.http_methods) - {"OPTIONS", "HEAD"}
            guarded = any(hasattr(guard, "access") for guard in handler.resolve_guards())
            skipped = route.path.startswith((DOCS_PREFIX, *NOT_API))
            if route.path.startswith(NOT_API):
                assert handler.opt.get(PUBLIC), route.path
            if methods and not guarded and not skipped:
                found |= {(method, route.path) for method in methods}
                assert handler.opt.get(PUBLIC) or route.path in {p for _, p in PUBLIC_ROUTES}
    return found


def test_every_route_has_a_guard_or_is_on_the_public_list(settings: Settings) -> None:
    assert unguarded_routes(create_app(settings)) == PUBLIC_ROUTES


async def test_no_token_on_every_guarded_route_is_a_401(settings: Settings, db: object) -> None:
    app = create_app(settings)
    guarded = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if any(hasattr(g, "access") for g in handler.resolve_guards()):
                path = route.path.replace("{slug:str}", "acme-firm")
                path = re.sub(r"\{\w+:uuid\}", "01a208a4-da87-7210-9237-8243a1bfe003", path)
                path = path.replace("{client_id:str}", "c")
                guarded += [(m, path) for m in handler.http_methods if m not in ("OPTIONS", "HEAD")]
    assert len(guarded) > 20
    async with AsyncTestClient(app=app) as client:
        for method, path in guarded:
            response = await client.request(method, path)
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == 'Bearer realm="bpo"'
        preflight = await client.options("/v1/tenants/acme-firm/users")
        assert preflight.status_code == 204  # OPTIONS needs no token
