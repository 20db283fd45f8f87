"""The token endpoint (client credentials), JWKS and metadata, against a real `bpo serve`
and Authlib's own client; every issuance and refusal recorded."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from bpo.core.db import Database
from bpo.core.security import secret_digest
from bpo.identity.models import TokenEvent
from bpo.platform.models import ApiClient
from bpo.platform.tenants.service import set_status
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.clients import make_client
from tests.support.processes import spawn_serve
from tests.support.tenants import make_tenant


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    process, base = spawn_serve(
        settings.database_url, settings.broker_url, BPO_SECRET_KEY=TEST_SECRET_KEY
    )
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


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
