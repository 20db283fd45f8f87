"""Requests that two readers could read two ways are refused before anything runs: a header
that may appear once appearing twice (on every route), and an OAuth parameter repeated
(RFC 6749 §3.1, §3.2) on the token, authorize, introspection and revocation endpoints."""

from __future__ import annotations

import dataclasses
import json
import re
from urllib.parse import urlencode

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from bpo.core.db import Database
from bpo.identity.models import TokenEvent
from bpo.settings import Settings
from tests.support import asgi
from tests.support.auth import admin_of, make_user
from tests.support.clients import make_client
from tests.support.oauth import Pkce, authorize_params, hidden_fields, register_app
from tests.support.tenants import make_tenant
from tests.test_oauth_tokens import serving

Client = AsyncTestClient[Litestar]


def every_route(app: Litestar) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            path = route.path.replace("{slug:str}", "amb-firm")
            path = re.sub(r"\{\w+:uuid\}", "01a208a4-da87-7210-9237-8243a1bfe003", path)
            path = re.sub(r"\{\w+:(str|path)\}", "x", path)
            found += [(m, path) for m in handler.http_methods if m not in ("OPTIONS", "HEAD")]
    return found


async def test_two_authorization_headers_are_a_400_on_every_route(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "amb-firm")
    valid = (await admin_of(db, settings, firm))["Authorization"]
    routes = every_route(client.app)
    assert len(routes) > 60
    for method, path in routes:
        for second in ("Bearer anything", valid, "Basic eDp5"):
            headers = [("Authorization", valid), ("Authorization", second)]
            answer = await asgi.call(client, method, path, headers)
            assert answer.status == 400, (method, path, answer.status, answer.body)
            problem = json.loads(answer.body)
            assert problem["type"].endswith("/ambiguous-request")
            assert "Authorization" in problem["detail"]
    # One header: the same token is served.
    fine = await client.get(f"/v1/tenants/{firm.slug}/users", headers={"Authorization": valid})
    assert fine.status_code == 200


@pytest.mark.parametrize("name", ["Idempotency-Key", "Content-Type", "Content-Length"])
async def test_other_fields_that_may_appear_once(client: Client, name: str) -> None:
    value = {"Idempotency-Key": "k", "Content-Type": "application/json", "Content-Length": "2"}
    headers = [(name, value[name])] * 2
    answer = await asgi.call(client, "POST", "/v1/tenants/amb-firm/clients", headers, [b"{}"])
    assert answer.status == 400
    assert name in json.loads(answer.body)["detail"]


REPEATS = [
    "grant_type=client_credentials&grant_type=password",
    "grant_type=client_credentials&scope=ledger:read&scope=admin",
    "grant_type=client_credentials&client_id=a&client_id=b",
]


@pytest.mark.parametrize("body", REPEATS)
async def test_a_repeated_token_parameter_is_invalid_request(
    client: Client, db: Database, body: str
) -> None:
    firm = await make_tenant(db, "amb-firm")
    secret = await make_client(db, firm, "amb-client", ["ledger:read"])
    answer = await client.post(
        "/oauth/token",
        content=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("amb-client", secret),
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    name = body.split("&")[-1].split("=")[0]
    assert f"the parameter {name} is repeated" == answer.json()["error_description"]
    assert "access_token" not in answer.json()
    async with db.sessionmaker() as session:
        issued = await session.scalar(
            select(func.count()).select_from(TokenEvent).where(TokenEvent.error.is_(None))
        )
    assert issued == 0


@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
async def test_introspection_and_revocation_refuse_repeated_parameters(
    client: Client, db: Database, endpoint: str
) -> None:
    firm = await make_tenant(db, "amb-firm")
    secret = await make_client(db, firm, "amb-client", ["ledger:read"])
    answer = await client.post(
        endpoint,
        content=b"token=a&token=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("amb-client", secret),
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": "the parameter token is repeated",
    }


async def test_the_authorization_endpoint_refuses_repeated_parameters(
    client: Client, db: Database
) -> None:
    await register_app(db)
    params = authorize_params(Pkce.new())
    query = urlencode(params) + "&redirect_uri=https%3A%2F%2Fattacker.example%2Fcb"
    page = await client.get(f"/oauth/authorize?{query}")
    assert page.status_code == 400
    assert "redirect_uri is repeated" in page.text
    assert "location" not in page.headers  # never redirected anywhere

    await make_user(db, "amb@firm.example")
    good = await client.get(f"/oauth/authorize?{urlencode(params)}")
    assert good.status_code == 200
    form = [
        *hidden_fields(good.text).items(),
        ("email", "amb@firm.example"),
        ("password", "one"),
        ("password", "two"),
    ]
    posted = await client.post(
        "/oauth/authorize",
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 400
    assert "password is repeated" in posted.text


async def test_a_real_server_refuses_two_authorization_headers(
    db: Database, settings: Settings
) -> None:
    """Over the wire, through Granian, as two header lines."""
    firm = await make_tenant(db, "amb-firm")
    with serving(settings) as base:
        as_served = dataclasses.replace(settings, public_base_url=base)
        valid = (await admin_of(db, as_served, firm))["Authorization"]
        async with httpx.AsyncClient(base_url=base) as http:
            path = f"/v1/tenants/{firm.slug}/users"
            one = await http.get(path, headers={"Authorization": valid})
            assert one.status_code == 200, one.text
            two = await http.get(
                path, headers=[("Authorization", valid), ("Authorization", "Bearer x")]
            )
            assert two.status_code == 400, two.text
            assert two.json()["type"].endswith("/ambiguous-request")
