"""Plan quotas: a hard quota refuses (402, a problem naming the meter, what is allowed and
used and when it resets) and writes nothing; of 20 concurrent requests for the last unit
exactly one passes; a soft quota lets work through and the overage is billed; a tenant
sees its usage against its quotas; a tenant role reads no other tenant's quota."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bpo.billing.models import UsageEvent
from bpo.billing.quotas import quota_state, reserve_usage
from bpo.billing.service import month_of, record_usage
from bpo.core.db import Database
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.auth import admin_of
from tests.support.billing import custom_plan, price, subscribe_directly
from tests.support.jobs import wait_for
from tests.support.processes import spawn_serve
from tests.support.tenants import make_tenant
from tests.support.work import add_service, ask_for, staff_member, task_path

Client = AsyncTestClient[Litestar]
BODY = {"service": "bookkeeping", "payload": {"period": "2026-11"}}


async def _used(db: Database, tenant: TenantContext, meter: str) -> tuple[int, Decimal]:
    """How many usage events `meter` has for the tenant, and their sum."""
    async with db.sessionmaker() as session:
        count, total = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(UsageEvent.quantity), 0)).where(
                    UsageEvent.tenant_id == tenant.tenant_id, UsageEvent.meter == meter
                )
            )
        ).one()
    return int(count), Decimal(total)


async def _rows(db: Database, tenant: TenantContext, table: str) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {tenant.schema}.{table}")) or 0)


@asynccontextmanager
async def _gate(db: Database, count: int) -> AsyncIterator[None]:
    """Hold every reader of the subscriptions (the quota reads the plan first) until
    `count` transactions wait in front of the quota, then let them go at once: the race
    for the last unit, every time."""
    async with db.engine.connect() as conn, conn.begin():
        await conn.execute(text("LOCK TABLE platform.subscriptions IN ACCESS EXCLUSIVE MODE"))
        yield
        await wait_for(lambda: _waiting(db, count), timeout=30)


async def _waiting(db: Database, count: int) -> bool:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query LIKE '%quota_state%'"
    )
    async with db.engine.connect() as conn:
        return int(await conn.scalar(query) or 0) >= count


def _problem(answer: Any, meter: str) -> dict[str, Any]:
    assert answer.status_code == 402, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = answer.json()
    assert problem["type"].endswith("/quota-exceeded") and problem["meter"] == meter
    assert problem["resets_at"] == month_of(datetime.now(UTC))[1].isoformat()
    return problem


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """A real `bpo serve`: in-process test clients send one request at a time."""
    process, base = spawn_serve(
        settings.database_url, settings.broker_url, BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_DB_POOL_SIZE="30", BPO_LOG_LEVEL="WARNING", BPO_PUBLIC_URL=settings.public_url,
        BPO_BROKER_NAMESPACE=f"bpo-test-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_the_last_unit_goes_to_exactly_one_of_20_concurrent_requests(
    server: str, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "capped-firm")
    prices = {"tasks_completed": price("100", quota=5, kind="hard"),
              "staff_minutes": price("10", quota=10, kind="hard")}  # fmt: skip
    async with custom_plan(db, "capped", prices):
        await subscribe_directly(db, firm, "capped")
        await add_service(db)
        as_admin = await admin_of(db, settings, firm)
        async with db.engine.begin() as conn:  # 3 tasks billed, 1 open (held): 1 unit left
            for n in range(3):
                await record_usage(conn, firm, "tasks_completed", 1, f"done-{n}")
            await record_usage(conn, firm, "staff_minutes", 9, "minutes-0")
        url = f"/v1/tenants/{firm.slug}/work/requests"
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=server, limits=limits, timeout=60) as http:
            assert (await http.post(url, json=BODY, headers=as_admin)).status_code == 201
            async with _gate(db, 20):
                asking = [asyncio.create_task(http.post(url, json=BODY, headers=as_admin))
                          for _ in range(20)]  # fmt: skip
            answers = await asyncio.gather(*asking)
        assert sorted(a.status_code for a in answers) == [201] + [402] * 19
        problem = _problem(next(a for a in answers if a.status_code == 402), "tasks_completed")
        assert (problem["allowed"], problem["used"], problem["held"]) == ("5", "3", "2")
        assert problem["requested"] == "1" and "resets at" in problem["detail"]
        assert await _rows(db, firm, "work_requests") == 2
        assert await _rows(db, firm, "tasks") == 2
        assert await _used(db, firm, "tasks_completed") == (3, 3)

        async def reserve(n: int) -> Problem | None:  # the tenant role's path, a transaction each
            try:
                async with tenant_session(db.engine, firm) as session:
                    await reserve_usage(session, firm, "staff_minutes", 1, f"minutes-{n + 1}")
            except Problem as exc:
                return exc
            return None

        async with _gate(db, 15):  # the test's pool: 20 connections, the gate's among them
            reserving = [asyncio.create_task(reserve(n)) for n in range(15)]
        outcomes = await asyncio.gather(*reserving)
        assert outcomes.count(None) == 1
        assert {(p.status, p.extensions["used"]) for p in outcomes if p} == {(402, "10")}
        assert await _used(db, firm, "staff_minutes") == (2, 10)


async def test_a_hard_quota_refuses_with_a_problem_and_writes_nothing(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "hard-capped-firm")
    prices = {"tasks_completed": price("100", quota=1, kind="hard"),
              "staff_minutes": price("10", quota=30, kind="hard")}  # fmt: skip
    async with custom_plan(db, "hard-capped", prices):
        await subscribe_directly(db, firm, "hard-capped")
        await add_service(db, bill_per_minute=True)
        as_admin = await admin_of(db, settings, firm)
        _, as_staff = await staff_member(db, settings, [firm])
        url = f"/v1/tenants/{firm.slug}/work/requests"
        task_id = (await ask_for(client, firm, as_admin))["tasks"][0]["id"]
        refused = _problem(await client.post(url, json=BODY, headers=as_admin), "tasks_completed")
        assert (refused["allowed"], refused["used"], refused["held"]) == ("1", "0", "1")
        assert await _rows(db, firm, "work_requests") == 1 and await _rows(db, firm, "tasks") == 1

        claimed = await client.post(task_path(firm, task_id, "claim"), json={}, headers=as_staff)
        assert claimed.status_code == 200, claimed.text
        time_url = task_path(firm, task_id, "time")
        logged = await client.post(time_url, json={"minutes": 30}, headers=as_staff)
        assert logged.status_code == 201, logged.text
        over = await client.post(time_url, json={"minutes": 0.5}, headers=as_staff)
        problem = _problem(over, "staff_minutes")
        assert (problem["allowed"], problem["used"], problem["requested"]) == ("30", "30", "1")
        assert await _rows(db, firm, "time_entries") == 1
        assert await _used(db, firm, "staff_minutes") == (1, 30)

        # Accepted work is delivered and billed: its quota was held when it was requested.
        done = await client.post(
            task_path(firm, task_id, "complete"), json={"result": {}}, headers=as_staff
        )
        assert done.status_code == 200 and done.json()["status"] == "done", done.text
        assert await _used(db, firm, "tasks_completed") == (1, 1)
        again = _problem(await client.post(url, json=BODY, headers=as_admin), "tasks_completed")
        assert (again["used"], again["held"]) == ("1", "0")
        assert await _rows(db, firm, "work_requests") == 1


async def _complete(client: Client, firm: TenantContext, staff: dict[str, str], task: str) -> None:
    claimed = await client.post(task_path(firm, task, "claim"), json={}, headers=staff)
    assert claimed.status_code == 200, claimed.text
    done = await client.post(task_path(firm, task, "complete"), json={"result": {}}, headers=staff)
    assert done.status_code == 200, done.text


async def test_a_soft_quota_lets_work_through_and_bills_the_overage(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "soft-capped-firm")
    prices = {"tasks_completed": price("250", included=1, quota=2, kind="soft")}
    async with custom_plan(db, "soft-capped", prices, base_fee=1000):
        await subscribe_directly(db, firm, "soft-capped")
        await add_service(db)
        as_admin = await admin_of(db, settings, firm)
        _, as_staff = await staff_member(db, settings, [firm])
        for _ in range(3):
            task = (await ask_for(client, firm, as_admin))["tasks"][0]["id"]
            await _complete(client, firm, as_staff, task)
        base = f"/v1/tenants/{firm.slug}/billing"
        usage = (await client.get(f"{base}/usage", headers=as_admin)).json()
        assert usage["plan"] == "soft-capped"
        [tasks] = [m for m in usage["meters"] if m["meter"] == "tasks_completed"]
        amounts = ("quantity", "included", "limit", "remaining")
        assert [Decimal(tasks[k]) for k in amounts] == [3, 1, 2, 0]
        assert tasks["limit_kind"] == "soft"
        [calls] = [m for m in usage["meters"] if m["meter"] == "api_calls"]
        assert calls["limit"] is None and calls["included"] is None  # no price for it
        preview = (await client.get(f"{base}/preview", headers=as_admin)).json()
        lines = {(line["kind"], line.get("meter")): line["amount"] for line in preview["lines"]}
        assert lines == {("base_fee", None): 1000, ("usage", "tasks_completed"): 2 * 250}
        assert preview["total"] == 1500
        plans = (await client.get(f"{base}/plans", headers=as_admin)).json()
        assert all(p["key"] != "soft-capped" or p["prices"][0]["quota_kind"] == "soft"
                   for p in plans)  # fmt: skip


async def test_a_tenant_role_reads_only_its_own_quota(db: Database) -> None:
    firm = await make_tenant(db, "own-quota-firm")
    rival = await make_tenant(db, "rival-quota-firm")
    now = datetime.now(UTC)
    async with tenant_session(db.engine, firm) as session:
        mine = await quota_state(session, firm.tenant_id, "tasks_completed", now)
    assert (mine.plan, mine.kind) == (None, None)  # no plan: no quota
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(db.engine, firm) as session:
            await quota_state(session, rival.tenant_id, "tasks_completed", now)
