"""Idempotency-Key on POSTs (draft-ietf-httpapi-idempotency-key-header): a retried create
makes one resource and gets the first answer back; a reused key with another request, or
while the first still runs, is refused; keys are per caller."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from joserfc import jws
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.identity.keys import KeyRing
from bpo.identity.models import ApiClient
from bpo.identity.service import deny_jti
from bpo.settings import Settings
from bpo.webhooks.models import WebhookEndpoint
from tests.conftest import build_app
from tests.support import asgi
from tests.support.auth import (
    PASSWORD,
    admin_of,
    bearer,
    make_user,
    ring,
    user_token,
)
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[Client]:
    allow = dataclasses.replace(settings, webhook_allowlist=("127.0.0.1",))
    async with AsyncTestClient(app=build_app(allow)) as client:
        yield client


async def clients_of(db: Database, tenant: TenantContext) -> int:
    async with db.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(ApiClient)
                .where(ApiClient.tenant_id == tenant.tenant_id)
            )
            or 0
        )


async def test_a_retried_create_makes_one_resource_and_replays_the_answer(
    api: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "retry-firm")
    headers = {**await admin_of(db, settings, firm), "Idempotency-Key": "create-erp-1"}
    body = {"name": "ERP", "scopes": ["ledger:read"]}
    first = await api.post(f"/v1/tenants/{firm.slug}/clients", json=body, headers=headers)
    again = await api.post(f"/v1/tenants/{firm.slug}/clients", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()  # the same client, its secret included
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await clients_of(db, firm) == 1

    other = await api.post(
        f"/v1/tenants/{firm.slug}/clients",
        json={"name": "Payroll", "scopes": ["ledger:read"]},
        headers=headers,
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert await clients_of(db, firm) == 1
    fresh = await api.post(
        f"/v1/tenants/{firm.slug}/clients",
        json=body,
        headers={**headers, "Idempotency-Key": "create-erp-2"},
    )
    assert fresh.status_code == 201 and fresh.json()["client_id"] != first.json()["client_id"]


async def test_concurrent_retries_run_once(api: Client, db: Database, settings: Settings) -> None:
    firm = await make_tenant(db, "race-firm")
    headers = {**await admin_of(db, settings, firm), "Idempotency-Key": "hook-1"}
    body = {"url": "http://127.0.0.1:9/h"}
    url = f"/v1/tenants/{firm.slug}/webhooks/endpoints"
    answers = await asyncio.gather(*(api.post(url, json=body, headers=headers) for _ in range(10)))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    made = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(made) == 1
    for busy in (a for a in answers if a.status_code == 409):
        assert busy.json()["type"].endswith("/idempotency-key-in-use")
        assert busy.headers["retry-after"] == "1"
    async with tenant_session(db.engine, firm) as session:
        count = await session.scalar(select(func.count()).select_from(WebhookEndpoint))
    assert count == 1


async def test_a_failed_request_frees_its_key_and_keys_are_per_caller(
    api: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "fix-firm")
    rival = await make_tenant(db, "same-key-firm")
    mine = {**await admin_of(db, settings, firm), "Idempotency-Key": "k-1"}
    theirs = {**await admin_of(db, settings, rival), "Idempotency-Key": "k-1"}
    bad = await api.post(f"/v1/tenants/{firm.slug}/clients", json={"name": "x"}, headers=mine)
    assert bad.status_code == 422  # a validation problem, not kept
    good: Any = {"name": "x", "scopes": ["ledger:read"]}
    fixed = await api.post(f"/v1/tenants/{firm.slug}/clients", json=good, headers=mine)
    assert fixed.status_code == 201, fixed.text
    # Another caller's identical key is another key.
    theirs_made = await api.post(f"/v1/tenants/{rival.slug}/clients", json=good, headers=theirs)
    assert theirs_made.status_code == 201
    assert "idempotent-replayed" not in theirs_made.headers
    assert await clients_of(db, firm) == await clients_of(db, rival) == 1
    too_long = await api.post(
        f"/v1/tenants/{firm.slug}/clients",
        json=good,
        headers={**mine, "Idempotency-Key": "x" * 256},
    )
    assert too_long.status_code == 400


# --- replays need a verified caller (issue: a stored answer replayed to a forged token) ------


def forged(token: str) -> str:
    """The issue's attack: the real token's claims under a signature that is not ours."""
    _, payload, _ = token.split(".")
    return f"x.{payload}.forged"


def expired_like(token: str, signing_ring: KeyRing) -> str:
    """The same claims, properly signed, but expired an hour ago."""
    _, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims |= {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 3900}
    claims["nbf"] = claims["iat"]
    assert signing_ring.signing_key is not None
    header = {"alg": "ES256", "typ": "at+jwt", "kid": signing_ring.active_kid}
    return jws.serialize_compact(
        header, json.dumps(claims).encode(), signing_ring.signing_key, algorithms=["ES256"]
    )


SECRET_FIELDS = {"client_secret", "secret", "token"}


async def _secret_posts(
    api: Client, db: Database, settings: Settings
) -> list[tuple[str, dict[str, Any], str, str]]:
    """(path, body, a token of its own, secret field) for every POST whose answer carries a
    secret that is shown once."""
    firm = await make_tenant(db, "secret-firm")
    admin_id = await make_user(db, "admin@secret-firm.example", tenants={firm: "tenant_admin"})
    boss_id = await make_user(db, "boss@provider.example", staff_role="staff_admin")
    person_id = await make_user(db, "pat@secret-firm.example", tenants={firm: "tenant_member"})

    async def admin() -> str:
        return await user_token(db, settings, admin_id, tenant=firm, role="tenant_admin")

    made = await api.post(
        f"/v1/tenants/{firm.slug}/clients",
        json={"name": "Existing", "scopes": ["ledger:read"]},
        headers=bearer(await admin()),
    )
    existing = made.json()["client_id"]
    base = f"/v1/tenants/{firm.slug}"
    return [
        (
            f"{base}/clients",
            {"name": "ERP", "scopes": ["ledger:read"]},
            await admin(),
            "client_secret",
        ),
        (f"{base}/clients/{existing}/rotate", {}, await admin(), "client_secret"),
        (f"{base}/webhooks/endpoints", {"url": "http://127.0.0.1:9/h"}, await admin(), "secret"),
        (f"{base}/users/invites", {"email": "new@secret-firm.example"}, await admin(), "token"),
        (
            "/v1/staff/invites",
            {"email": "new@provider.example"},
            await user_token(db, settings, boss_id, staff_role="staff_admin"),
            "token",
        ),
        (
            "/v1/me/totp",
            {"password": PASSWORD},
            await user_token(db, settings, person_id, tenant=firm),
            "secret",
        ),
    ]


async def test_no_stored_secret_is_replayed_to_a_forged_expired_or_revoked_token(
    settings: Settings, db: Database
) -> None:
    local = dataclasses.replace(
        settings, environment="development", webhook_allowlist=("127.0.0.1",)
    )
    async with AsyncTestClient(app=build_app(local)) as api:
        signing_ring = await ring(db)
        for path, body, token, field in await _secret_posts(api, db, settings):
            headers = {**bearer(token), "Idempotency-Key": f"key-{path}"}
            first = await api.post(path, json=body, headers=headers)
            assert first.status_code in (200, 201), (path, first.text)
            assert first.json()[field], path  # the answer does hold a secret
            attempts = [forged(token), expired_like(token, signing_ring)]
            for attempt in attempts:
                refused = await api.post(path, json=body, headers={**headers, **bearer(attempt)})
                assert refused.status_code == 401, (path, refused.status_code, refused.text)
                assert "idempotent-replayed" not in refused.headers
                assert not SECRET_FIELDS & set(refused.json()), path
                assert first.json()[field] not in refused.text
            # The genuine caller still gets the first answer back.
            again = await api.post(path, json=body, headers=headers)
            assert again.headers.get("idempotent-replayed") == "true", path
            assert again.json() == first.json()
            # Revoked: the signature is good, the token is not.
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
            async with db.sessionmaker.begin() as session:
                await deny_jti(session, claims["jti"], claims["exp"])
            revoked = await api.post(path, json=body, headers=headers)
            assert revoked.status_code == 401, (path, revoked.text)
            assert first.json()[field] not in revoked.text


async def test_keys_are_claimed_only_after_authentication_and_bodies_are_bounded(
    settings: Settings, db: Database
) -> None:
    small = dataclasses.replace(settings, max_body_bytes=4096)
    async with AsyncTestClient(app=build_app(small)) as api:
        firm = await make_tenant(db, "bounded-firm")
        path = f"/v1/tenants/{firm.slug}/clients"
        big = b'{"name": "' + b"x" * 100_000 + b'", "scopes": []}'
        anonymous = await api.post(
            path, content=big, headers={"Idempotency-Key": "k", "Content-Type": "application/json"}
        )
        assert anonymous.status_code == 401  # the body was never read
        headers = {
            **await admin_of(db, settings, firm),
            "Idempotency-Key": "k",
            "Content-Type": "application/json",
        }
        too_big = await api.post(path, content=big, headers=headers)
        assert too_big.status_code == 413, too_big.text
        assert too_big.json()["type"].endswith("/payload-too-large")

        # No Content-Length, a chunked body: the limit holds on the running total.
        chunked = list(headers.items())
        answer = await asgi.call(api, "POST", path, chunked, chunks=[b"x" * 1000] * 50)
        assert answer.status == 413
        assert answer.chunks_read < 10  # stopped soon after the limit, not at the end
    async with db.engine.connect() as conn:
        kept = await conn.scalar(text("SELECT count(*) FROM platform.idempotency_keys"))
    assert kept == 0  # neither the anonymous nor the oversized request claimed the key
    assert await clients_of(db, firm) == 0
