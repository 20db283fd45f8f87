"""What compliance does each day and what it shows: deadlines kept generated ahead,
reminders at the lead time (`deadline.upcoming`, and a work request when the obligation
asks for one), overdue deadlines escalated once (`deadline.overdue`), and the dashboard."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.compliance import obligations, sanctions
from bpo.compliance.models import Counterparty, Deadline, Filing, Hit, Obligation
from bpo.compliance.schemas import Dashboard, FirmCompliance
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.webhooks.service import record_events
from bpo.work import service as work

FILING_SERVICE = "regulatory-filing"
OPEN = ("upcoming", "due_soon")


async def sweep(session: AsyncSession, tenant: TenantContext, today: date) -> dict[str, int]:
    """The day's work for one firm; what it did (for the log and the tests)."""
    active = list(await session.scalars(select(Obligation).where(Obligation.status == "active")))
    added = sum([await obligations.extend(session, o, today) for o in active])
    by_id = {o.id: o for o in active}
    reminded = await _remind(session, tenant, today, by_id)
    overdue = await _escalate(session, tenant, today, by_id)
    return {"deadlines_added": added, "reminded": reminded, "overdue": overdue}


async def _remind(
    session: AsyncSession, tenant: TenantContext, today: date, by_id: dict[Any, Obligation]
) -> int:
    due = list(
        await session.scalars(
            select(Deadline)
            .where(Deadline.status == "upcoming", Deadline.remind_on <= today,
                   Deadline.due >= today)
            .with_for_update(skip_locked=True)
        )
    )  # fmt: skip
    events = []
    for d in due:
        o = by_id.get(d.obligation_id)
        if o is None:
            continue
        d.status, d.reminded_at = "due_soon", datetime.now(UTC)
        if o.open_request and d.request_id is None:
            d.request_id = await _request(session, tenant, o, d)
        events.append(("deadline.upcoming", _event(o, d)))
    await session.flush()
    await record_events(session, tenant, events)
    return len(events)


async def _escalate(
    session: AsyncSession, tenant: TenantContext, today: date, by_id: dict[Any, Obligation]
) -> int:
    late = list(
        await session.scalars(
            select(Deadline)
            .where(Deadline.status.in_(OPEN), Deadline.due < today, Deadline.escalated_at.is_(None))
            .with_for_update(skip_locked=True)
        )
    )
    events = []
    for d in late:
        o = by_id.get(d.obligation_id)
        if o is None:
            continue
        d.status, d.escalated_at = "overdue", datetime.now(UTC)
        events.append(("deadline.overdue", _event(o, d)))
    await session.flush()
    await record_events(session, tenant, events)
    return len(events)


async def _request(session: AsyncSession, tenant: TenantContext, o: Obligation, d: Deadline) -> Any:
    payload = {"regulator": o.regulator[:200], "form": o.form[:200], "due": d.due.isoformat(),
               "deadline": str(d.id)}  # fmt: skip
    try:
        request = await work.request_service(
            session, tenant, "system:compliance", FILING_SERVICE, payload,
            f"{o.regulator} {o.form} due {d.due.isoformat()}",
        )  # fmt: skip
    except Problem:
        return None  # the provider's catalog does not offer it: the reminder still goes out
    return request.id


def _event(o: Obligation, d: Deadline) -> dict[str, Any]:
    return {"deadline_id": str(d.id), "obligation_id": str(o.id), "regulator": o.regulator,
            "form": o.form, "period": d.period.isoformat(), "due": d.due.isoformat(),
            "owner": o.owner}  # fmt: skip


async def dashboard(session: AsyncSession, today: date) -> Dashboard:
    soon = await obligations.deadlines_between(session, today, today + timedelta(days=60))
    overdue = await obligations.deadlines_between(
        session, today - timedelta(days=3_000), today - timedelta(days=1)
    )
    counts = await session.execute(select(Filing.status, func.count()).group_by(Filing.status))
    open_hits = await session.scalar(
        select(func.count()).select_from(Hit).where(Hit.status == "open")
    )
    last = await session.scalar(select(func.max(Counterparty.screened_at)))
    versions = await sanctions.current(session)
    return Dashboard(
        upcoming=[d for d in soon if d.status in OPEN][:50],
        overdue=[d for d in overdue if d.status in (*OPEN, "overdue")][:50],
        filings=dict(counts.all()), open_hits=int(open_hits or 0), last_screening=last,
        list_version=sanctions.list_out(versions[0]) if versions else None,
    )  # fmt: skip


async def firm_summary(session: AsyncSession, slug: str, name: str, today: date) -> FirmCompliance:
    """A firm's deadlines, filings waiting for a checker and open hits, in counts."""
    month = today + timedelta(days=30)
    row = (
        await session.execute(
            select(
                func.count().filter(Deadline.status.in_(OPEN), Deadline.due.between(today, month)),
                func.count().filter(Deadline.status.in_((*OPEN, "overdue")), Deadline.due < today),
                func.min(Deadline.due).filter(Deadline.status.in_(OPEN), Deadline.due >= today),
            ).select_from(Deadline)
        )
    ).one()
    waiting = await session.scalar(
        select(func.count()).select_from(Filing).where(Filing.status == "submitted")
    )
    hits = await session.scalar(select(func.count()).select_from(Hit).where(Hit.status == "open"))
    return FirmCompliance(slug, name, row[0], row[1], int(waiting or 0), int(hits or 0), row[2])
