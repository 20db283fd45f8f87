"""50 concurrent claimers over 10,000 tasks on one hot queue: no task is claimed twice,
none is lost. Claims go through the real claim-next path (the queue index, then the
tenant's own transaction with SKIP LOCKED), on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select, text

from bpo.core.db import Database, DatabaseOptions
from bpo.core.tenancy import tenant_session
from bpo.settings import Settings
from bpo.work.dispatch import claim_next
from bpo.work.models import QueueEntry, Task
from tests.conftest import Services
from tests.support.bulk_work import seed_open_tasks, staff_principal
from tests.support.tenants import make_tenant
from tests.support.work import add_service, staff_member

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
