"""The usage ledger: each key counts once, batches answer new vs duplicate, late events
update their hour, rollups equal an independent oracle, api_calls are counted without a
write per request, and tenants are kept apart by the database."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bpo.billing.models import UsageEvent
from bpo.billing.service import month_of, period_usage, record_usage, roll_up
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.jobs.outbox import enqueue
from bpo.settings import Settings
from tests.support.auth import admin_of, bearer, make_user, staff_admin_token, user_token
from tests.support.isolation import assert_cross_tenant_404
from tests.support.jobs import running_worker, wait_for
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
HOUR = timedelta(hours=1)


async def events_of(db: Database, tenant: TenantContext) -> int:
    async with db.sessionmaker() as session:
        query = select(func.count()).where(UsageEvent.tenant_id == tenant.tenant_id)
        return int(await session.scalar(query) or 0)


async def api_calls_of(db: Database, tenant: TenantContext) -> Decimal:
    async with db.sessionmaker() as session:
        query = select(func.coalesce(func.sum(UsageEvent.quantity), 0)).where(
            UsageEvent.tenant_id == tenant.tenant_id, UsageEvent.meter == "api_calls"
        )
        return Decimal(await session.scalar(query) or 0)


async def test_a_key_counts_once_and_tenant_roles_record_their_own_usage_only(
    db: Database,
) -> None:
    firm = await make_tenant(db, "usage-firm")
    rival = await make_tenant(db, "other-usage-firm")
    async with tenant_session(db.engine, firm) as session:  # the tenant role's path
        assert await record_usage(session, firm, "tasks_completed", 1, "task-1:done")
        assert not await record_usage(session, firm, "tasks_completed", 1, "task-1:done")
        assert await record_usage(session, firm, "staff_minutes", Decimal("12.5"), "task-1:done")
    assert await events_of(db, firm) == 2
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(db.engine, firm) as session:
            await record_usage(session, rival, "tasks_completed", 1, "forged")
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(db.engine, firm) as session:
            await session.execute(text("SELECT count(*) FROM platform.usage_events"))
    old = datetime.now(UTC) - timedelta(days=36)
    async with tenant_session(db.engine, firm) as session:
        with pytest.raises(ValueError, match="35 days"):
            await record_usage(session, firm, "tasks_completed", 1, "ancient", old)
    assert await events_of(db, rival) == 0


async def test_staff_batches_say_what_was_new_and_refuse_bad_events_whole(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "batch-firm")
    as_staff_admin = bearer(await staff_admin_token(db, settings))
    now = datetime.now(UTC).replace(microsecond=0)

    def event(key: str, **extra: Any) -> dict[str, Any]:
        body = {"tenant": firm.slug, "meter": "staff_minutes", "quantity": "30", "key": key}
        return {**body, "at": now.isoformat(), **extra}

    first = await client.post(
        "/v1/staff/usage",
        json={"events": [event("a"), event("b"), event("a")]},  # "a" twice in one batch
        headers=as_staff_admin,
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 3, "recorded": 2, "duplicates": 1}
    again = await client.post(
        "/v1/staff/usage", json={"events": [event("b"), event("c")]}, headers=as_staff_admin
    )
    assert again.json() == {"received": 2, "recorded": 1, "duplicates": 1}
    assert await events_of(db, firm) == 3

    bad = [
        event("d", meter="parking"),
        event("e", tenant="nobody"),
        event("f", quantity="-1"),
        event("g", at=(now - timedelta(days=40)).isoformat()),
        event("h", at=(now + timedelta(days=1)).isoformat()),
    ]
    refused = await client.post(
        "/v1/staff/usage", json={"events": [event("ok"), *bad]}, headers=as_staff_admin
    )
    assert refused.status_code == 422
    pointers = {e["pointer"] for e in refused.json()["errors"]}
    assert pointers == {
        "#/events/1/meter",
        "#/events/2/tenant",
        "#/events/3",
        "#/events/4",
        "#/events/5",
    }
    too_many = await client.post(
        "/v1/staff/usage",
        json={"events": [event(f"k{i}") for i in range(1001)]},
        headers=as_staff_admin,
    )
    assert too_many.status_code == 422
    assert await events_of(db, firm) == 3  # nothing of the refused batches

    member = await admin_of(db, settings, firm)
    denied = await client.post("/v1/staff/usage", json={"events": [event("x")]}, headers=member)
    assert denied.status_code == 403


async def test_rollups_and_late_events_equal_an_independent_oracle(db: Database) -> None:
    firm = await make_tenant(db, "oracle-firm")
    rng = random.Random(7)
    now = datetime.now(UTC)
    start, end = now.replace(minute=0, second=0, microsecond=0) - 40 * 24 * HOUR, now + HOUR
    oracle: dict[str, list[tuple[datetime, Decimal]]] = defaultdict(list)
    meters = ["api_calls", "staff_minutes", "documents_gb_month"]
    async with db.engine.begin() as conn:
        for n in range(600):
            meter = rng.choice(meters)
            at = now - timedelta(minutes=rng.randrange(0, 34 * 24 * 60))  # up to 34 days late
            quantity = Decimal(rng.randrange(0, 5000)) / 100
            key = f"e{n % 500}"  # 100 repeats: duplicates must not count
            if await record_usage(conn, firm, meter, quantity, key, at):
                oracle[meter].append((at, quantity))
    async with db.engine.connect() as conn:
        unrolled = {u.meter: u for u in await period_usage(conn, firm.tenant_id, start, end)}
    async with db.engine.begin() as conn:
        while await roll_up(conn, limit=97):
            pass
    async with db.engine.connect() as conn:
        rolled = {u.meter: u for u in await period_usage(conn, firm.tenant_id, start, end)}
        pending = await conn.scalar(
            text("SELECT count(*) FROM platform.usage_events WHERE pending")
        )
    assert pending == 0
    for meter in meters:
        values = oracle[meter]
        expected = {
            "sum": sum((q for _, q in values), Decimal(0)),
            "max": max((q for _, q in values), default=Decimal(0)),
        }["max" if meter == "documents_gb_month" else "sum"]
        assert rolled[meter].quantity == expected, meter
        assert rolled[meter].events == len(values)
        assert unrolled[meter].quantity == expected  # pending events count before rollup too
    # A late event (33 days back) lands in its own hour, and the period moves by it.
    late = now - timedelta(days=33)
    async with db.engine.begin() as conn:
        await record_usage(conn, firm, "api_calls", 1000, "late-1", late)
        await roll_up(conn)
        hour = await conn.scalar(
            text(
                "SELECT total FROM platform.usage_rollups WHERE tenant_id = :t AND meter ="
                " 'api_calls' AND hour = date_trunc('hour', CAST(:at AS timestamptz), 'UTC')"
            ),
            {"t": firm.tenant_id, "at": late},
        )
        assert hour is not None and hour >= 1000
        after = {u.meter: u for u in await period_usage(conn, firm.tenant_id, start, end)}
    assert after["api_calls"].quantity == rolled["api_calls"].quantity + 1000


async def test_api_calls_are_counted_per_tenant_without_a_write_per_request(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "busy-api-firm")
    rival = await make_tenant(db, "quiet-api-firm")
    as_admin = await admin_of(db, settings, firm)
    for _ in range(7):
        assert (
            await client.get(f"/v1/tenants/{firm.slug}/users", headers=as_admin)
        ).status_code == 200
    usage_url = f"/v1/tenants/{firm.slug}/billing/usage"

    async def seven_written() -> bool:  # by the counter's own one-second flush
        return await api_calls_of(db, firm) == 7

    await wait_for(seven_written, timeout=10)
    shown = (await client.get(usage_url, headers=as_admin)).json()
    by_meter = {m["meter"]: m for m in shown["meters"]}
    # The 7 calls, and perhaps this very call if its count was flushed before the read.
    assert Decimal(by_meter["api_calls"]["quantity"]) in (7, 8)
    assert set(by_meter) >= {
        "api_calls",
        "tasks_completed",
        "staff_minutes",
        "documents_gb_month",
        "statement_lines",
        "entries_posted",
    }
    start, _ = month_of(datetime.now(UTC))
    assert shown["period_start"].startswith(start.strftime("%Y-%m-%dT00:00:00"))
    assert await events_of(db, rival) == 0

    as_rival = await admin_of(db, settings, rival)
    await assert_cross_tenant_404(client, "GET", usage_url, headers=as_rival)
    bad = await client.get(usage_url, params={"start": "2026-11-01T10:30:00Z"}, headers=as_admin)
    assert bad.status_code == 400 and "whole hour" in bad.json()["detail"]


async def test_staff_working_a_firms_queue_are_not_the_firms_api_calls(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "served-firm")
    staff_id = await make_user(db, "sam@provider.example", staff_role="staff", assigned=[firm])
    as_staff = bearer(await user_token(db, settings, staff_id, staff_role="staff"))
    for _ in range(5):
        answer = await client.get(f"/v1/tenants/{firm.slug}/work/requests", headers=as_staff)
        assert answer.status_code == 200, answer.text
    as_admin = await admin_of(db, settings, firm)
    assert (await client.get(f"/v1/tenants/{firm.slug}/users", headers=as_admin)).status_code == 200

    async def one_written() -> bool:  # the firm's own call, flushed by the counter
        return await api_calls_of(db, firm) >= 1

    await wait_for(one_written, timeout=10)
    await asyncio.sleep(1.5)  # another flush: the staff calls would have arrived by now
    assert await api_calls_of(db, firm) == 1


async def test_the_rollup_job_folds_pending_usage(settings: Settings, db: Database) -> None:
    firm = await make_tenant(db, "rolled-firm")
    async with db.engine.begin() as conn:
        for n in range(5):
            await record_usage(conn, firm, "tasks_completed", 1, f"t{n}")
    async with running_worker(settings):
        async with db.sessionmaker.begin() as session:
            await enqueue(session, "roll_up_usage", tenant=None)

        async def folded() -> bool:
            async with db.engine.connect() as conn:
                total = await conn.scalar(
                    text(
                        "SELECT sum(total) FROM platform.usage_rollups"
                        " WHERE tenant_id = :t AND meter = 'tasks_completed'"
                    ),
                    {"t": firm.tenant_id},
                )
            return total == 5

        await wait_for(folded)
