"""Time entries: the minutes staff log on tasks, and the `staff_minutes` they bill.

Rounding: each entry bills its minutes rounded up to the whole minute (12.2 -> 13), per
entry, never on a task's total. Billing is keyed by entry and version (`time:<id>:<v>`), so
a retried request bills nothing twice; an edit bills only the difference (a negative
correction when minutes go down, a deletion takes the entry's minutes back). An entry whose
month has been invoiced cannot be logged, edited or deleted.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.billing.quotas import reserve_usage
from bpo.billing.service import LATE_LIMIT
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.work.models import Task, TimeEntry
from bpo.work.schemas import TimeOut
from bpo.work.service import Who, now_utc

SKEW = timedelta(minutes=5)


def minutes_of(value: float) -> Decimal:
    """Minutes as stored (to the hundredth); 422 when that leaves nothing."""
    minutes = Decimal(str(value)).quantize(Decimal("0.01"))
    if minutes <= 0:
        raise Problem(
            422,
            "validation-error",
            "minutes must be at least 0.01",
            errors=[{"pointer": "#/minutes", "detail": "at least 0.01"}],
        )
    return minutes


def billed(minutes: Decimal) -> int:
    return int(minutes.to_integral_value(ROUND_CEILING))


def time_out(entry: TimeEntry) -> TimeOut:
    return TimeOut(
        id=str(entry.id),
        task_id=str(entry.task_id),
        staff_id=str(entry.staff_id),
        minutes=entry.minutes,
        billed_minutes=entry.billed_minutes,
        worked_at=entry.worked_at,
        note=entry.note,
        version=entry.version,
        deleted=entry.deleted_at is not None,
    )


def _refuse_invoiced(at: datetime) -> Problem:
    return Problem(
        409,
        "period-invoiced",
        f"the billing period holding {at.isoformat()} is invoiced; its time entries are final",
    )


def check_worked_at(task: Task, worked_at: datetime) -> None:
    now = now_utc()
    problem = None
    if worked_at.tzinfo is None:
        problem = "worked_at must carry a time zone (RFC 3339)"
    elif worked_at > now + SKEW:
        problem = "worked_at is in the future"
    elif worked_at < now - LATE_LIMIT:
        problem = "worked_at is more than 35 days ago; such time can no longer be billed"
    elif worked_at < task.created_at - SKEW:
        problem = "worked_at is before the task was created"
    if problem:
        raise Problem(
            422, "validation-error", problem, errors=[{"pointer": "#/worked_at", "detail": problem}]
        )


async def log_time(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    staff_id: uuid.UUID,
    task: Task,
    *,
    minutes: Decimal,
    worked_at: datetime,
    note: str,
    period_invoiced: bool,
) -> TimeEntry:
    if task.status == "canceled":
        raise Problem(409, "conflict", f"task {task.id} is canceled; no time can be logged")
    check_worked_at(task, worked_at)
    if period_invoiced:
        raise _refuse_invoiced(worked_at)
    entry = TimeEntry(
        task_id=task.id, staff_id=staff_id, minutes=minutes, billed_minutes=billed(minutes),
        worked_at=worked_at, note=note, version=1,
    )  # fmt: skip
    session.add(entry)
    await session.flush()
    await _bill(session, tenant, task, entry, entry.billed_minutes)
    await audit.record(session, tenant.tenant_id, actor=who, action="work.time.logged",
                       target=f"time:{entry.id}", after={"minutes": str(minutes)})  # fmt: skip
    return entry


async def get_entry(session: AsyncSession, task: Task, entry_id: uuid.UUID) -> TimeEntry:
    entry = await session.scalar(
        select(TimeEntry)
        .where(TimeEntry.id == entry_id, TimeEntry.task_id == task.id)
        .with_for_update()
    )
    if entry is None or entry.deleted_at is not None:
        raise Problem(404, "not-found", f"no time entry {entry_id} on task {task.id}")
    return entry


def _check_author(entry: TimeEntry, staff_id: uuid.UUID, is_admin: bool) -> None:
    if entry.staff_id != staff_id and not is_admin:
        raise Problem(
            403, "forbidden", "only who logged a time entry (or a staff admin) may change it"
        )


async def change_time(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    task: Task,
    entry: TimeEntry,
    *,
    staff_id: uuid.UUID,
    is_admin: bool,
    minutes: Decimal | None,
    note: str | None,
    delete: bool,
    period_invoiced: bool,
) -> TimeEntry:
    """Edit or delete an entry; billing follows by the difference, keyed by version."""
    _check_author(entry, staff_id, is_admin)
    if period_invoiced:
        raise _refuse_invoiced(entry.worked_at)
    before = {"minutes": str(entry.minutes), "note": entry.note}
    old = entry.billed_minutes
    if delete:
        entry.deleted_at, entry.billed_minutes = now_utc(), 0
    elif minutes is not None:
        entry.minutes, entry.billed_minutes = minutes, billed(minutes)
    if note is not None:
        entry.note = note
    entry.version += 1
    entry.updated_at = now_utc()
    await session.flush()
    await _bill(session, tenant, task, entry, entry.billed_minutes - old)
    after = {"minutes": str(entry.minutes), "deleted": delete}
    await audit.record(session, tenant.tenant_id, actor=who,
                       action="work.time.deleted" if delete else "work.time.changed",
                       target=f"time:{entry.id}", before=before, after=after)  # fmt: skip
    return entry


async def _bill(
    session: AsyncSession, tenant: TenantContext, task: Task, entry: TimeEntry, delta: int
) -> None:
    if task.bill_per_minute and delta:
        key = f"time:{entry.id}:{entry.version}"
        # Usage is dated when the work was done; past Stripe's 35 days, when it was changed.
        at = entry.worked_at if entry.worked_at > now_utc() - LATE_LIMIT + SKEW else now_utc()
        await reserve_usage(session, tenant, "staff_minutes", delta, key, at, correction=delta < 0)


async def entries_of(session: AsyncSession, task_id: uuid.UUID) -> list[TimeEntry]:
    query = select(TimeEntry).where(TimeEntry.task_id == task_id).order_by(TimeEntry.worked_at)
    return list(await session.scalars(query))
