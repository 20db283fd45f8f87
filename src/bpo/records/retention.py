"""Record classes and their retention rules: how long a document is kept, and what blocks
its deletion (its retain-until date, an open legal hold)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.identity.guards import Principal
from bpo.records.models import PERMANENT, Document, RecordClass
from bpo.records.schemas import ClassIn, ClassOut, ClassUpdate
from bpo.webhooks.service import record_events

ANCHOR_WORDS = {
    "document_date": "the document date",
    "fiscal_year_end": "the end of the fiscal year",
    "received": "the date received",
}


def today() -> date:
    return datetime.now(UTC).date()


def rule_words(c: RecordClass) -> str:
    if c.retention_years is None:
        return "permanent"
    unit = "year" if c.retention_years == 1 else "years"
    return f"{c.retention_years} {unit} after {ANCHOR_WORDS[c.retention_after]}"


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year + years, day=28)


def fiscal_year_end(day: date, month_day: str) -> date:
    """The end of the fiscal year `day` falls in (the year ends on `month_day`)."""
    month, dom = (int(p) for p in month_day.split("-"))
    end = _month_day(day.year, month, dom)
    return end if day <= end else _month_day(day.year + 1, month, dom)


def _month_day(year: int, month: int, dom: int) -> date:
    while True:
        try:
            return date(year, month, dom)
        except ValueError:  # "02-29" or "04-31": the month's last day
            dom -= 1


def retain_until(c: RecordClass, document_date: date, received_on: date) -> date:
    """The last day a document of class `c` is kept."""
    if c.retention_years is None:
        return PERMANENT
    if c.retention_after == "received":
        start = received_on
    elif c.retention_after == "fiscal_year_end":
        start = fiscal_year_end(document_date, c.fiscal_year_end)
    else:
        start = document_date
    return min(_add_years(start, c.retention_years), PERMANENT)


def class_out(c: RecordClass) -> ClassOut:
    return ClassOut(
        str(c.id),
        c.code,
        c.name,
        c.mode,
        c.retention_years,
        c.retention_after,
        c.fiscal_year_end,
        rule_words(c),
        c.description,
        c.created_at,
    )


async def class_by_code(session: AsyncSession, code: str, pointer: str) -> RecordClass:
    found = await session.scalar(select(RecordClass).where(RecordClass.code == code))
    if found is None:
        raise Problem(
            422,
            "validation-error",
            f"no record class {code!r}",
            errors=[{"pointer": pointer, "detail": f"no record class {code!r}"}],
        )
    return found


async def create_class(
    session: AsyncSession, tenant_id: uuid.UUID, who: Principal, data: ClassIn
) -> RecordClass:
    if await session.scalar(select(RecordClass.id).where(RecordClass.code == data.code)):
        raise Problem(409, "conflict", f"a record class {data.code!r} exists already")
    row = RecordClass(
        code=data.code,
        name=data.name,
        mode=data.mode,
        retention_years=data.retention_years,
        retention_after=data.retention_after,
        fiscal_year_end=data.fiscal_year_end,
        description=data.description,
        created_by=actor_of(who)[:200],
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        tenant_id,
        actor=who,
        action="records.class.created",
        target=f"records.class:{row.id}",
        after=_class_record(row),
    )
    return row


async def change_class(
    session: AsyncSession, tenant_id: uuid.UUID, who: Principal, row: RecordClass, data: ClassUpdate
) -> list[uuid.UUID]:
    """A new rule for the class, applied to its documents' retain-until dates. Compliance
    mode only extends (the database refuses the rest as well); in governance mode a
    provider admin (`staff_admin`) may shorten, with the reason audited. Returns the
    documents whose retention changed (the store's locks follow)."""
    before = _class_record(row)
    years = data.retention_years
    shorter = years is not None and (row.retention_years is None or years < row.retention_years)
    mode = data.mode or row.mode
    if row.mode == "compliance" and (shorter or mode != "compliance"):
        raise Problem(
            409,
            "retention-active",
            f"class {row.code!r} is in compliance mode: its retention is only ever extended",
        )
    if shorter and who.role != "staff_admin":
        raise Problem(403, "forbidden", "only a provider admin may shorten a retention period")
    if shorter:
        await session.execute(text("SET LOCAL bpo.records_override = 'governance'"))
    row.retention_years, row.mode, row.updated_at = years, mode, func.now()
    await session.flush()
    changed = await _recompute(session, row)
    await audit.record(
        session,
        tenant_id,
        actor=who,
        action="records.class.changed",
        target=f"records.class:{row.id}",
        before=before,
        after=_class_record(row) | {"reason": data.reason, "documents": len(changed)},
    )
    await record_events(
        session, tenant_id, [("record.class.changed", {"class": row.code, "rule": rule_words(row)})]
    )
    return changed


async def _recompute(session: AsyncSession, c: RecordClass) -> list[uuid.UUID]:
    docs = list(
        await session.scalars(
            select(Document).where(Document.class_id == c.id, Document.status != "disposed")
        )
    )
    changed = []
    for d in docs:
        until = retain_until(c, d.document_date, d.received_on)
        if until != d.retain_until or d.mode != c.mode:
            changed.append(d.id)
            await session.execute(
                update(Document)
                .where(Document.id == d.id)
                .values(retain_until=until, mode=c.mode, updated_at=func.now())
            )
    return changed


def _class_record(c: RecordClass) -> dict[str, object]:
    return {"code": c.code, "mode": c.mode, "rule": rule_words(c)}
