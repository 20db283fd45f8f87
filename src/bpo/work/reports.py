"""A tenant's work report for a period: volume, SLA attainment, breaches, resolution time,
minutes by staff member. Four aggregate queries in the tenant's own schema."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.work.models import Task, TimeEntry, WorkRequest
from bpo.work.schemas import ReportOut, ServiceVolume, StaffMinutes


def _within(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _volume(start: datetime, end: datetime) -> Select[str, int, int]:
    created = _within(WorkRequest.created_at, start, end)
    closed = and_(WorkRequest.status == "completed", _within(WorkRequest.closed_at, start, end))
    return (
        select(
            WorkRequest.service_key,
            func.count().filter(created),
            func.count().filter(closed),
        )
        .where(or_(created, _within(WorkRequest.closed_at, start, end)))
        .group_by(WorkRequest.service_key)
        .order_by(WorkRequest.service_key)
    )


def _resolved(start: datetime, end: datetime) -> Select[int, int, Any]:
    """Attainment: tasks resolved in the period that met both goals, over all resolved."""
    minutes = extract("epoch", Task.resolved_at - Task.created_at) / 60
    return select(
        func.count(),
        func.count().filter(
            and_(Task.resolution_met.is_(True), func.coalesce(Task.response_met, True))
        ),
        func.percentile_cont(0.5).within_group(minutes),
    ).where(Task.status == "done", _within(Task.resolved_at, start, end))


def _breaches(start: datetime, end: datetime) -> Select[int, int]:
    response = _within(Task.response_breached_at, start, end)
    resolution = _within(Task.resolution_breached_at, start, end)
    return select(func.count().filter(response), func.count().filter(resolution)).where(
        or_(response, resolution)
    )


def _minutes(start: datetime, end: datetime) -> Select[uuid.UUID, Decimal, int]:
    return (
        select(TimeEntry.staff_id, func.sum(TimeEntry.minutes), func.sum(TimeEntry.billed_minutes))
        .where(TimeEntry.deleted_at.is_(None), _within(TimeEntry.worked_at, start, end))
        .group_by(TimeEntry.staff_id)
        .order_by(func.sum(TimeEntry.minutes).desc(), TimeEntry.staff_id)
    )


async def report(session: AsyncSession, start: datetime, end: datetime) -> ReportOut:
    volume = (await session.execute(_volume(start, end))).all()
    resolved, met, median = (await session.execute(_resolved(start, end))).one()
    response_breaches, resolution_breaches = (await session.execute(_breaches(start, end))).one()
    minutes = (await session.execute(_minutes(start, end))).all()
    return ReportOut(
        period_start=start,
        period_end=end,
        volume=[ServiceVolume(service=k, requested=r, completed=c) for k, r, c in volume],
        tasks_resolved=resolved,
        sla_attainment_pct=round(100 * met / resolved, 2) if resolved else None,
        response_breaches=response_breaches,
        resolution_breaches=resolution_breaches,
        median_resolution_minutes=round(float(median), 2) if median is not None else None,
        minutes_by_staff=[
            StaffMinutes(staff_id=str(s), minutes=Decimal(m), billed_minutes=int(b))
            for s, m, b in minutes
        ],
    )
