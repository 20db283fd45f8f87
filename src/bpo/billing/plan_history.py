"""Which plan was in force when: the history that invoices and previews price by.

A plan change is billed from the next whole hour (UTC): usage is rolled up by the hour, so
a part of a period is always whole hours of usage, and nothing done before a change is
ever priced at the plan chosen after it. Quotas follow the new plan at once. A tenant's
first plan also covers its first period from the start (as a subscription always has:
the first month is billed whole), so only later changes split a period.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.billing.models import PlanChange

HOUR = timedelta(hours=1)


def billed_from(at: datetime) -> datetime:
    """The whole hour from which a change made at `at` is billed: `at` itself when it is
    one, else the next."""
    hour = at.replace(minute=0, second=0, microsecond=0)
    return hour if hour == at else hour + HOUR


async def record_plan_change(
    session: AsyncSession, tenant_id: uuid.UUID, plan: str, at: datetime
) -> PlanChange:
    change = PlanChange(tenant_id=tenant_id, plan=plan, changed_at=at, effective_at=billed_from(at))
    session.add(change)
    await session.flush()
    return change


@dataclass(frozen=True, slots=True)
class Segment:
    plan: str
    start: datetime
    end: datetime


async def plan_segments(
    conn: AsyncConnection | AsyncSession,
    tenant_id: uuid.UUID,
    start: datetime,
    end: datetime,
    fallback: str,
) -> list[Segment]:
    """[start, end) cut where the plan changed, each part with its plan; `fallback` when
    the tenant has no history (a subscription made before it was kept)."""
    rows = (
        await conn.execute(
            select(PlanChange.plan, PlanChange.effective_at)
            .where(PlanChange.tenant_id == tenant_id, PlanChange.effective_at < end)
            .order_by(PlanChange.effective_at, PlanChange.changed_at, PlanChange.id)
        )
    ).all()
    if not rows:
        return [Segment(fallback, start, end)]
    current = rows[0].plan  # the first plan reaches back (see the module docstring)
    cuts: list[tuple[datetime, str]] = []
    for plan, effective_at in rows:
        if effective_at <= start:
            current = plan
        elif cuts and cuts[-1][0] == effective_at:
            cuts[-1] = (effective_at, plan)  # changed twice within an hour: the last one
        else:
            cuts.append((effective_at, plan))
    segments = [Segment(current, start, end)]
    for at, plan in cuts:
        last = segments[-1]
        if plan != last.plan:
            segments[-1] = Segment(last.plan, last.start, at)
            segments.append(Segment(plan, at, end))
    return segments
