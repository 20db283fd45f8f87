"""The token endpoint (client credentials), JWKS and metadata, against a real `bpo serve`
and Authlib's own client; every issuance and refusal recorded."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from bpo.core.db import Database
from bpo.core.security import secret_digest
from bpo.identity.models import ApiClient, RefreshToken, TokenEvent
from bpo.platform.tenants.service import set_status
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.auth import PASSWORD, make_user
from tests.support.clients import make_client
from tests.support.oauth import (
    REDIRECT,
    Pkce,
    authorize_params,
    exchange_code,
    hidden_fields,
    redirect_query,
    register_app,
    sign_in,
)
from tests.support.processes import spawn_serve
from tests.support.tenants import make_tenant


@contextmanager
def serving(settings: Settings, **extra: str) -> Iterator[str]:
    """A real `bpo serve`, with its own rate-limit namespace."""
    process, base = spawn_serve(
        settings.database_url,
        settings.broker_url,
        BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_BROKER_NAMESPACE=f"bpo-test-{uuid.uuid4().hex[:8]}",
        # Nobody reads the log pipe until the end: a log line per request would fill it.
        BPO_LOG_LEVEL="WARNING",
        **extra,
    )
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    with serving(settings) as base:
        yield base


async def events(db: Database) -> list[TokenEvent]:
    async with db.sessionmaker() as session:
        return list((await session.scalars(select(TokenEvent).order_by(TokenEvent.at))).all())


def segment(token: str, index: int) -> dict:  # type: ignore[type-arg]
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def test_authlib_client_gets_a_tenant_bound_at_jwt(server: str, db: Database) -> None:
    acme = await make_tenant(db, "acme-trading")
    secret = await make_client(db, acme, "acme-erp", ["ledger:read", "work:write"])
    async with AsyncOAuth2Client("acme-erp", secret, scope="ledger:read") as client:
        token = await client.fetch_token(f"{server}/oauth/token", grant_type="client_credentials")
        jwks = (await client.get(f"{server}/.well-known/jwks.json")).json()

    assert token["token_type"] == "Bearer"
    assert token["scope"] == "ledger:read"
    assert 0 < token["expires_in"] <= 600
    header = segment(token["access_token"], 0)
    assert (header["alg"], header["typ"]) == ("ES256", "at+jwt")
    verified = jwt.decode(token["access_token"], KeySet.import_key_set(jwks), algorithms=["ES256"])
    claims = verified.claims
    assert claims["tenant"] == str(acme.tenant_id)
    assert (claims["sub"], claims["client_id"]) == ("acme-erp", "acme-erp")
    assert claims["iss"] == claims["aud"] == server
    assert claims["exp"] - claims["iat"] <= 600
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}

    [event] = await events(db)
    assert (event.result, event.client_id, event.tenant_id) == (
        "issued",
        "acme-erp",
        acme.tenant_id,
    )
    assert (event.jti, event.scope, event.grant_type) == (
        claims["jti"],
        "ledger:read",
        "client_credentials",
    )


async def test_refusals_are_oauth_errors_and_recorded(server: str, db: Database) -> None:
    acme = await make_tenant(db, "acme-trading")
    secret = await make_client(db, acme, "acme-erp", ["ledger:read"])
    url = f"{server}/oauth/token"
    async with httpx.AsyncClient() as http:
        wrong = await http.post(
            url, data={"grant_type": "client_credentials"}, auth=("acme-erp", secret + "x")
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "invalid_client"
        assert wrong.headers["cache-control"] == "no-store"

        unknown = await http.post(
            url, data={"grant_type": "client_credentials"}, auth=("nobody", "x")
        )
        assert unknown.json()["error"] == "invalid_client"

        grant = await http.post(url, data={"grant_type": "password"}, auth=("acme-erp", secret))
        assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")

        scope = await http.post(
            url,
            data={"grant_type": "client_credentials", "scope": "ledger:write"},
            auth=("acme-erp", secret),
        )
        assert (scope.status_code, scope.json()["error"]) == (400, "invalid_scope")

        as_json = await http.post(
            url, json={"grant_type": "client_credentials"}, auth=("acme-erp", secret)
        )
        assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")

        posted = await http.post(
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": "acme-erp",
                "client_secret": secret,
            },
        )
        assert posted.status_code == 200, posted.text  # client_secret_post works too

    recorded = [(e.result, e.error) for e in await events(db)]
    assert recorded == [
        ("refused", "invalid_client"),
        ("refused", "invalid_client"),
        ("refused", "unsupported_grant_type"),
        ("refused", "invalid_scope"),
        ("issued", None),
    ]


async def test_suspended_tenant_and_rotated_secret(server: str, db: Database) -> None:
    acme = await make_tenant(db, "acme-trading")
    old = await make_client(db, acme, "acme-erp", ["ledger:read"])
    new = "n" * 43
    url = f"{server}/oauth/token"
    form = {"grant_type": "client_credentials"}
    async with db.sessionmaker.begin() as session:  # a rotation with one hour of overlap
        await session.execute(
            update(ApiClient)
            .where(ApiClient.client_id == "acme-erp")
            .values(
                secret_digest=secret_digest(TEST_SECRET_KEY, new),
                previous_secret_digest=secret_digest(TEST_SECRET_KEY, old),
                previous_secret_expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, data=form, auth=("acme-erp", old))).status_code == 200
        assert (await http.post(url, data=form, auth=("acme-erp", new))).status_code == 200
        async with db.sessionmaker.begin() as session:  # the overlap ends
            await session.execute(
                update(ApiClient).values(previous_secret_expires_at=datetime.now(UTC))
            )
        assert (await http.post(url, data=form, auth=("acme-erp", old))).status_code == 401
        async with db.sessionmaker.begin() as session:
            await set_status(session, "acme-trading", "suspended")
        assert (await http.post(url, data=form, auth=("acme-erp", new))).status_code == 401


async def test_metadata_names_the_endpoints(server: str, db: Database) -> None:
    async with httpx.AsyncClient() as http:
        meta = (await http.get(f"{server}/.well-known/oauth-authorization-server")).json()
        jwks = await http.get(meta["jwks_uri"])
    assert meta["issuer"] == server
    assert meta["token_endpoint"] == f"{server}/oauth/token"
    assert "client_credentials" in meta["grant_types_supported"]
    assert jwks.headers["content-type"].startswith("application/jwk-set+json")
    keys = jwks.json()["keys"]
    assert len(keys) == 2  # active and next on a fresh install
    assert all(key["kty"] == "EC" and "d" not in key for key in keys)


async def test_authlib_client_does_authorization_code_with_pkce(server: str, db: Database) -> None:
    tenant = await make_tenant(db, "acme-trading")
    await register_app(db)
    await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    verifier = Pkce.new().verifier
    async with AsyncOAuth2Client(
        "console",
        token_endpoint_auth_method="none",
        redirect_uri=REDIRECT,
        scope="work:read admin",
        code_challenge_method="S256",
    ) as client:
        url, state = client.create_authorization_url(
            f"{server}/oauth/authorize", code_verifier=verifier
        )
        async with httpx.AsyncClient(base_url=server) as browser:  # the person signing in
            page = await browser.get(url)
            form = hidden_fields(page.text) | {"email": "ana@acme.example", "password": PASSWORD}
            signed_in = await browser.post("/oauth/authorize", data=form)
        location = signed_in.headers["location"]
        token = await client.fetch_token(
            f"{server}/oauth/token", authorization_response=location, code_verifier=verifier
        )
        assert token["refresh_token"] and set(token["scope"].split()) == {"admin", "work:read"}
        members = await client.get(f"{server}/v1/tenants/{tenant.slug}/users")
        assert members.status_code == 200, members.text
        renewed = await client.refresh_token(f"{server}/oauth/token")
        assert renewed["refresh_token"] != token["refresh_token"]
        assert (await client.get(f"{server}/v1/me")).json()["email"] == "ana@acme.example"
    assert state in location


async def test_500_concurrent_refreshes_yield_exactly_one_pair(server: str, db: Database) -> None:
    tenant = await make_tenant(db, "acme-trading")
    await register_app(db)
    await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    pkce = Pkce.new()
    # No keep-alive: an idle connection the server closes (5 s) could race a queued request.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server, limits=limits, timeout=60) as http:
        query = redirect_query(
            await sign_in(http, authorize_params(pkce), "ana@acme.example", PASSWORD)
        )
        first = (await exchange_code(http, query["code"], pkce)).json()
        form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                "client_id": "console"}  # fmt: skip
        answers = await asyncio.gather(*(http.post("/oauth/token", data=form) for _ in range(500)))
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: 1, 400: 499}, statuses
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_grant"}
    async with db.sessionmaker() as session:
        family = (await session.scalars(select(RefreshToken))).all()
    assert len(family) == 2  # the first refresh token and the one pair issued from it


async def test_the_token_endpoint_limits_each_client_and_address(
    settings: Settings, db: Database
) -> None:
    acme = await make_tenant(db, "acme-trading")
    secrets = {name: await make_client(db, acme, name, ["ledger:read"]) for name in ("a", "b")}
    if time.time() % 60 > 55:  # the windows are per minute: start inside one
        await asyncio.sleep(61 - time.time() % 60)
    with serving(settings, BPO_TOKEN_RATE_PER_CLIENT="3", BPO_TOKEN_RATE_PER_IP="6") as base:
        async with httpx.AsyncClient(base_url=base) as http:

            async def token(name: str) -> httpx.Response:
                return await http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(name, secrets[name]),
                )

            assert [(await token("a")).status_code for _ in range(3)] == [200, 200, 200]
            limited = await token("a")  # the client's 4th in this minute
            assert limited.status_code == 429 and limited.json()["error"] == "slow_down"
            assert "client" in limited.json()["error_description"]
            assert 0 < int(limited.headers["retry-after"]) <= 60
            assert [(await token("b")).status_code for _ in range(2)] == [200, 200]
            by_address = await token("b")  # the address's 7th
            assert by_address.status_code == 429
            assert "address" in by_address.json()["error_description"]


async def test_concurrent_token_requests_each_get_their_own_answer_and_record(
    server: str, db: Database
) -> None:
    """Concurrent requests share their database and Redis round trips (bpo.core.coalesce):
    each must still get its own client's token, or its own refusal, and its own row."""
    acme, globex = await make_tenant(db, "acme-trading"), await make_tenant(db, "globex")
    tenants = {"acme-erp": acme.tenant_id, "globex-erp": globex.tenant_id}
    secrets = {
        "acme-erp": await make_client(db, acme, "acme-erp", ["ledger:read"]),
        "globex-erp": await make_client(db, globex, "globex-erp", ["work:read"]),
    }
    calls = [(name, secrets[name]) for name in tenants for _ in range(60)]
    calls += [("acme-erp", "wrong" + secrets["acme-erp"])] * 20 + [("nobody", "x" * 43)] * 10
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server, limits=limits, timeout=60) as http:
        answers = await asyncio.gather(
            *(
                http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=call)
                for call in calls
            )
        )
    jtis = set()
    for (name, secret), answer in zip(calls, answers, strict=True):
        if secret == secrets.get(name):
            assert answer.status_code == 200, answer.text
            claims = segment(answer.json()["access_token"], 1)
            assert (claims["sub"], claims["tenant"]) == (name, str(tenants[name]))
            jtis.add(claims["jti"])
        else:
            assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    recorded = await events(db)
    issued = [event for event in recorded if event.result == "issued"]
    assert {event.jti for event in issued} == jtis and len(issued) == 120
    refused = Counter(event.client_id for event in recorded if event.result == "refused")
    assert refused == {"acme-erp": 20, "nobody": 10}
