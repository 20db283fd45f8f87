"""Many open requests and tasks at once, for the concurrency test and benchmarks/work.py.

Rows are written as the service writes them (a request, its task with SLA instants, the
task's queue index row, in the tenant's own transaction) but in bulk, so 10,000 take a
second rather than a minute. Claims on them then go through the real claim path.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.ids import uuid7
from bpo.identity.guards import Principal
from bpo.work.models import QueueEntry, Task, WorkRequest


async def seed_open_tasks(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    count: int,
    *,
    service_key: str = "bookkeeping",
    skills: tuple[str, ...] = ("accounting",),
    seed: int = 7,
) -> list[uuid.UUID]:
    """`count` one-task requests with varied priorities and due times; returns task ids."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    requests, tasks = [], []
    for n in range(count):
        request_id, priority = uuid7(), rng.randint(0, 100)
        due = now + timedelta(minutes=rng.randint(30, 60 * 24 * 5))
        requests.append(
            {"id": request_id, "service_key": service_key, "service_version": 1,
             "title": f"Request {n}", "payload": {}, "priority": priority, "status": "open",
             "requested_by": "seed", "created_at": now, "updated_at": now}
        )  # fmt: skip
        tasks.append(
            {"id": uuid7(), "request_id": request_id, "step": 1, "title": f"Task {n}",
             "service_key": service_key, "skills": list(skills), "priority": priority,
             "review_required": False, "bill_per_task": True, "bill_per_minute": False,
             "status": "open", "response_goal_min": 240, "resolution_goal_min": 960,
             "response_due_at": due, "response_warn_at": due - timedelta(minutes=20),
             "resolution_due_at": due + timedelta(days=1), "resolution_warn_at": due,
             "created_at": now, "updated_at": now}
        )  # fmt: skip
    await session.execute(insert(WorkRequest), requests)
    await session.execute(insert(Task), tasks)
    columns = ["task_id", "tenant_id", "service_key", "skills", "priority", "status",
               "response_due_at", "resolution_due_at", "next_check_at", "created_at"]  # fmt: skip
    await session.execute(
        insert(QueueEntry).from_select(
            columns,
            select(
                Task.id, literal(tenant_id), Task.service_key, Task.skills, Task.priority,
                Task.status, Task.response_due_at, Task.resolution_due_at, Task.response_warn_at,
                Task.created_at,
            ).where(~select(QueueEntry.task_id).where(QueueEntry.task_id == Task.id).exists()),
        )
    )  # fmt: skip
    return [t["id"] for t in tasks]


def staff_principal(user_id: uuid.UUID) -> Principal:
    """A staff caller as the guard loads one from a token (see identity.guards)."""
    return Principal(
        kind="staff",
        subject=str(user_id),
        client_id="bpo-console",
        scopes=frozenset({"work:read", "work:write"}),
        role="staff",
        user_id=user_id,
        jti=uuid.uuid4().hex,
        expires_at=0,
    )
