"""50 concurrent claimers over 10,000 tasks on one hot queue: no task is claimed twice,
none is lost. Claims go through the real claim-next path (the queue index, then the
tenant's own transaction with SKIP LOCKED), on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import func, select, text

from bpo.core.db import Database, DatabaseOptions
from bpo.core.errors import Problem
from bpo.core.tenancy import tenant_session
from bpo.settings import Settings
from bpo.work.claims import claim_next
from bpo.work.models import QueueEntry, Task
from tests.conftest import Services
from tests.support.bulk_work import seed_open_tasks, staff_principal
from tests.support.tenants import make_tenant
from tests.support.work import add_service, staff_member, task_path
from tests.test_oauth_tokens import serving

TASKS = 10_000
CLAIMERS = 50


async def test_fifty_claimers_take_ten_thousand_tasks_each_once(
    db: Database, settings: Settings, services: Services
) -> None:
    firm = await make_tenant(db, "hot-queue")
    await add_service(db)
    async with tenant_session(db.engine, firm) as session:
        seeded = set(await seed_open_tasks(session, firm.tenant_id, TASKS))
    async with db.engine.begin() as conn:  # statistics of the loaded queue (DESIGN §8)
        await conn.execute(text("ANALYZE platform.work_queue"))
        await conn.execute(text(f'ANALYZE "{firm.schema}".tasks'))
    staff = [(await staff_member(db, settings, [firm], capacity=1000))[0] for _ in range(CLAIMERS)]
    pool = Database(services.database_url, DatabaseOptions(pool_size=CLAIMERS, max_overflow=0))
    claims: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def claimer(user_id: uuid.UUID) -> None:
        principal = staff_principal(user_id)
        while (found := await claim_next(pool, principal, timedelta(minutes=30))) is not None:
            claims.append((found[0].id, user_id))

    try:
        await asyncio.gather(*(claimer(user_id) for user_id in staff))
    finally:
        await pool.dispose()

    taken = Counter(task_id for task_id, _ in claims)
    assert len(claims) == TASKS and set(taken) == seeded  # none lost
    assert taken.most_common(1)[0][1] == 1  # none twice
    assert len({who for _, who in claims}) > 1  # the claimers really ran side by side
    async with tenant_session(db.engine, firm) as session:
        stored = dict((await session.execute(select(Task.id, Task.claimed_by))).all())
        states = dict(
            (await session.execute(select(Task.status, func.count()).group_by(Task.status))).all()
        )
    assert stored == dict(claims) and states == {"in_progress": TASKS}
    async with db.sessionmaker() as session:
        indexed = dict(
            (await session.execute(select(QueueEntry.task_id, QueueEntry.claimed_by))).all()
        )
    assert indexed == dict(claims)


async def test_concurrent_claims_at_the_capacity_limit_take_only_the_last_place(
    db: Database, settings: Settings, services: Services
) -> None:
    """Capacity 3, two tasks held: ten claims at once (claim-next and claims by id, across
    two firms) take exactly one more. Held tasks are counted under the staff member's claim
    lock in the claiming transaction, not read beforehand."""
    firms = [await make_tenant(db, slug) for slug in ("cap-one", "cap-two")]
    await add_service(db)
    task_ids = {}
    for firm in firms:
        async with tenant_session(db.engine, firm) as session:
            task_ids[firm.slug] = await seed_open_tasks(session, firm.tenant_id, 20)
    user_id, _ = await staff_member(db, settings, firms, capacity=3)
    principal = staff_principal(user_id)
    pool = Database(services.database_url, DatabaseOptions(pool_size=12, max_overflow=0))
    try:
        for _ in range(2):  # two held already
            assert await claim_next(pool, principal, timedelta(minutes=30)) is not None

        async def one() -> str:
            try:
                found = await claim_next(pool, principal, timedelta(minutes=30))
            except Problem as problem:
                return problem.slug
            return "claimed" if found else "none"

        outcomes = Counter(await asyncio.gather(*(one() for _ in range(10))))
    finally:
        await pool.dispose()
    assert outcomes == {"claimed": 1, "at-capacity": 9}, outcomes
    async with db.engine.connect() as conn:
        held = await conn.scalar(
            select(func.count())
            .select_from(QueueEntry)
            .where(QueueEntry.claimed_by == user_id, QueueEntry.status == "in_progress")
        )
    assert held == 3


async def test_claims_by_id_at_the_capacity_limit_take_only_the_last_place(
    db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "cap-by-id")
    await add_service(db)
    async with tenant_session(db.engine, firm) as session:
        ids = await seed_open_tasks(session, firm.tenant_id, 12)
    with serving(settings) as base:
        token_settings = dataclasses.replace(settings, public_base_url=base)
        _, as_staff = await staff_member(db, token_settings, [firm], capacity=3)
        async with httpx.AsyncClient(base_url=base, headers=as_staff) as http:
            for task_id in ids[:2]:
                held = await http.post(task_path(firm, str(task_id), "claim"), json={})
                assert held.status_code == 200, held.text
            answers = await asyncio.gather(
                *(http.post(task_path(firm, str(t), "claim"), json={}) for t in ids[2:])
            )
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: 1, 409: 9}, statuses
    assert all(a.json()["type"].endswith("/at-capacity") for a in answers if a.status_code == 409)
