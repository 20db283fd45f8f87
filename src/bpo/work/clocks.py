"""The SLA clocks of running tasks: moved when the firm's calendar changes, and watched for
warnings and breaches by the SLA job. Each move or breach is audited and announced."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.core.tenancy import TenantContext
from bpo.webhooks.service import record_event
from bpo.work import queue, service, sla
from bpo.work.calendar import BusinessCalendar
from bpo.work.models import Task
from bpo.work.service import Who

MAX_LISTED_MOVES = 500  # a replanning event lists this many moved tasks, and the count


async def replan_clocks(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    old: BusinessCalendar,
    new: BusinessCalendar,
) -> list[dict[str, Any]]:
    """A calendar change moves the clocks already running (a holiday added today counts for
    tasks open now), each move audited. Every open task is locked in id order, as cancel
    locks a request's tasks, then its index row: the documented lock order. Returns what
    moved."""
    now, moved = service.now_utc(), []
    tasks = await session.scalars(
        select(Task)
        .where(Task.status.not_in(("done", "canceled")))
        .order_by(Task.id)
        .with_for_update()
    )
    for task in tasks:
        before = {goal: task_due(task, goal) for goal in sla.GOALS}
        if not service.on_calendar(sla.replan, task, old, new, now):
            continue
        task.updated_at = now
        await queue.project(session, tenant.tenant_id, task)
        after = {goal: task_due(task, goal) for goal in sla.GOALS}
        moved.append({"task_id": str(task.id), "before": before, "after": after})
        await audit.record(session, tenant.tenant_id, actor=who, action="work.task.replanned",
                           target=f"task:{task.id}", before=before, after=after)  # fmt: skip
    if moved:  # the firm hears of due times that moved
        listed = {"tasks": moved[:MAX_LISTED_MOVES], "count": len(moved)}
        await record_event(session, tenant, "work.sla.replanned", listed)
    return moved


def task_due(task: Task, goal: str) -> str | None:
    due: datetime | None = getattr(task, f"{goal}_due_at")
    return due.isoformat() if due is not None else None


async def check_slas(
    session: AsyncSession, tenant: TenantContext, task_ids: Sequence[uuid.UUID]
) -> int:
    """The SLA job's work in one tenant: raise each warning and breach once."""
    now, raised = service.now_utc(), 0
    tasks = await session.scalars(
        select(Task).where(Task.id.in_(task_ids)).with_for_update(skip_locked=True)
    )
    for task in tasks:
        if task.status in ("done", "canceled"):  # finished since the index was read
            continue
        found = sla.crossings(task, now)
        for crossing in found:
            data = {
                "task_id": str(task.id),
                "request_id": str(task.request_id),
                "goal": crossing.goal,
                "due_at": crossing.due_at.isoformat(),
            }
            event = (
                "work.task.sla_breached" if crossing.kind == "breach" else "work.task.sla_warning"
            )
            await record_event(session, tenant, event, data)
            if crossing.kind == "breach":
                await audit.record(session, tenant.tenant_id, actor="system:sla",
                                   action=event, target=f"task:{task.id}", after=data)  # fmt: skip
        raised += len(found)
        await queue.project(session, tenant.tenant_id, task)  # next check, escalation flag
    return raised
