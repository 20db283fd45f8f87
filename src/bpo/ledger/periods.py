"""Periods of the books: monthly periods of fiscal years, closed and reopened one by one,
and the lock date (nothing posts on or before it).

A close, a reopen or a lock-date change takes the firm's advisory lock exclusively
(`ddl.lock_key`); every posting takes it shared in the database (`ledger_entries_posted`). So a
change waits for the postings in flight and the next postings see it: no entry slips into a
period in the instant it closes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.ledger import ddl
from bpo.ledger.accounts import Who, invalid, settings_of
from bpo.ledger.models import Period
from bpo.ledger.schemas import PeriodOut
from bpo.webhooks.service import record_events


def month_of(period_id: str) -> date:
    """The first day of a period named YYYY-MM (a 404 for anything else)."""
    try:
        year, month = period_id.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError(period_id)
        return date(int(year), int(month), 1)
    except ValueError:
        raise Problem(
            404, "not-found", f"no period {period_id!r} (periods are named YYYY-MM)"
        ) from None


def period_id(first: date) -> str:
    return first.strftime("%Y-%m")


def next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def fiscal_year_of(day: date, start_month: int) -> int:
    """The fiscal year a day falls in, named by the calendar year it ends in."""
    return day.year + 1 if start_month > 1 and day.month >= start_month else day.year


def months_of_fiscal_year(year: int, start_month: int) -> list[date]:
    first = date(year - 1 if start_month > 1 else year, start_month, 1)
    months = [first]
    while len(months) < 12:
        months.append(next_month(months[-1]))
    return months


async def closed_among(session: AsyncSession, months: set[date]) -> set[date]:
    if not months:
        return set()
    rows = await session.scalars(
        select(Period.starts_on).where(Period.starts_on.in_(months), Period.status == "closed")
    )
    return set(rows)


class HasLockDate(Protocol):
    lock_date: date | None


def check_open(settings: HasLockDate, closed: set[date], day: date, pointer: str) -> None:
    """A 422 `period-locked` naming the lock date or the closed period, if `day` is in one."""
    if settings.lock_date is not None and day <= settings.lock_date:
        detail = f"the books are locked up to {settings.lock_date.isoformat()}: post after it"
        raise Problem(
            422,
            "period-locked",
            f"{pointer}: {detail}",
            lock_date=settings.lock_date.isoformat(),
            errors=[{"pointer": pointer, "detail": detail}],
        )
    if day.replace(day=1) in closed:
        name = period_id(day.replace(day=1))
        detail = f"the period {name} is closed: reopen it or post in an open period"
        raise Problem(
            422,
            "period-locked",
            f"{pointer}: {detail}",
            period=name,
            errors=[{"pointer": pointer, "detail": detail}],
        )


async def list_periods(session: AsyncSession, fiscal_year: int | None) -> list[PeriodOut]:
    settings = await settings_of(session)
    start = settings.fiscal_year_start
    year = fiscal_year or fiscal_year_of(datetime.now(UTC).date(), start)
    months = months_of_fiscal_year(year, start)
    rows = await session.scalars(select(Period).where(Period.starts_on.in_(months)))
    known = {p.starts_on: p for p in rows}
    out = []
    for first in months:
        ends = next_month(first) - timedelta(days=1)
        row = known.get(first)
        status = row.status if row else "open"
        if settings.lock_date is not None and ends <= settings.lock_date:
            status = "locked"
        out.append(
            PeriodOut(
                period_id(first),
                year,
                first,
                ends,
                status,
                row.changed_by if row else None,
                row.changed_at if row else None,
            )
        )
    return out


async def _exclusive(session: AsyncSession, tenant: TenantContext) -> None:
    """Wait for postings in flight; postings after this wait for the commit."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:k)"), {"k": ddl.lock_key(tenant.schema)}
    )


async def set_status(
    session: AsyncSession, tenant: TenantContext, who: Who, period: str, status: str
) -> PeriodOut:
    """Close or reopen a period (audited, announced as ledger.period.closed/reopened)."""
    first = month_of(period)
    await _exclusive(session, tenant)
    settings = await settings_of(session)
    if status == "open" and settings.lock_date is not None and first <= settings.lock_date:
        raise Problem(
            409,
            "period-locked",
            f"the period {period} is on or before the lock date "
            f"{settings.lock_date.isoformat()}: move the lock date first",
            lock_date=settings.lock_date.isoformat(),
        )
    row = await session.get(Period, first, with_for_update=True)
    before = row.status if row else "open"
    if before != status:
        if row is None:
            row = Period(starts_on=first, status=status, changed_by=actor_of(who)[:200])
            session.add(row)
        else:
            row.status, row.changed_by = status, actor_of(who)[:200]
            row.changed_at = datetime.now(UTC)
        await session.flush()
        verb = "closed" if status == "closed" else "reopened"
        await audit.record(
            session,
            tenant.tenant_id,
            actor=who,
            action=f"ledger.period.{verb}",
            target=f"ledger.period:{period}",
            before={"status": before},
            after={"status": status},
        )
        await record_events(session, tenant, [(f"ledger.period.{verb}", {"period": period})])
    ends = next_month(first) - timedelta(days=1)
    return PeriodOut(
        period,
        fiscal_year_of(first, settings.fiscal_year_start),
        first,
        ends,
        status,
        row.changed_by if row else None,
        row.changed_at if row else None,
    )


async def set_lock_date(
    session: AsyncSession, tenant: TenantContext, who: Who, lock_date: date | None
) -> date | None:
    """Move the lock date (forward or back; None lifts it). Audited and announced."""
    if lock_date is not None and lock_date > datetime.now(UTC).date() + timedelta(days=366):
        raise invalid("#/lock_date", "a lock date more than a year ahead is surely a mistake")
    await _exclusive(session, tenant)
    settings = await settings_of(session, lock=True)
    before = settings.lock_date
    if before != lock_date:
        settings.lock_date = lock_date
        settings.version += 1
        settings.updated_at = datetime.now(UTC)
        await session.flush()
        change: dict[str, Any] = {"lock_date": lock_date.isoformat() if lock_date else None}
        await audit.record(
            session,
            tenant.tenant_id,
            actor=who,
            action="ledger.lock_date.changed",
            target="ledger.lock_date",
            before={"lock_date": before.isoformat() if before else None},
            after=change,
        )
        await record_events(session, tenant, [("ledger.lock_date.changed", change)])
    return lock_date
