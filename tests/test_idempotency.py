"""Idempotency-Key on POSTs (draft-ietf-httpapi-idempotency-key-header): a retried create
makes one resource and gets the first answer back; a reused key with another request, or
while the first still runs, is refused; keys are per caller."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.platform.models import ApiClient
from bpo.settings import Settings
from bpo.webhooks.models import WebhookEndpoint
from tests.conftest import build_app
from tests.support.auth import admin_of
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
