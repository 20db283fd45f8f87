"""Obligations and their deadlines: each obligation's rule expanded over a rolling horizon
(`calendar`), one deadline row per occurrence (generating again adds only what is new)."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import date, timedelta
from typing import Any

import msgspec
from sqlalchemy import Select, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.compliance import calendar
from bpo.compliance.models import Deadline, Obligation
from bpo.compliance.schemas import (
    DeadlineOut,
    ObligationIn,
    ObligationOut,
    TemplateApply,
    TemplateOut,
)
from bpo.core.errors import Problem, invalid
from bpo.core.ids import uuid7
from bpo.core.pagination import bad_cursor, uuid_cursor
from bpo.core.tenancy import TenantContext

HORIZON_DAYS = 550  # deadlines kept ahead of today (18 months)
MAX_QUERY_DAYS = 3_700  # a deadlines query spans at most ~10 years


def schedule_of(o: Obligation | ObligationIn) -> calendar.Schedule:
    return calendar.Schedule(
        rrule=o.rrule, anchor=o.anchor, offset_days=o.offset_days,
        offset_months=o.offset_months, roll=o.roll, jurisdiction=o.jurisdiction,  # type: ignore[arg-type]
    )  # fmt: skip


def check(data: ObligationIn) -> None:
    try:
        calendar.check(schedule_of(data))
    except calendar.RuleError as exc:
        raise invalid(f"#/{exc.field}", exc.detail) from None
    try:
        zoneinfo.ZoneInfo(data.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise invalid("#/time_zone", f"{data.time_zone!r} is not an IANA time zone") from None


def obligation_out(o: Obligation) -> ObligationOut:
    return ObligationOut(
        id=str(o.id), regulator=o.regulator, jurisdiction=o.jurisdiction, form=o.form,
        title=o.title, rrule=o.rrule, anchor=o.anchor, offset_days=o.offset_days,
        offset_months=o.offset_months, roll=o.roll, lead_days=o.lead_days,
        time_zone=o.time_zone, owner=o.owner, evidence_classes=list(o.evidence_classes),
        open_request=o.open_request, template=o.template, status=o.status,
        horizon_until=o.horizon_until, created_at=o.created_at,
    )  # fmt: skip


def template_out(t: calendar.Template) -> TemplateOut:
    return TemplateOut(
        key=t.key, regulator=t.regulator, jurisdiction=t.jurisdiction, form=t.form,
        title=t.title, rrule=t.rrule, offset_days=t.offset_days, offset_months=t.offset_months,
        roll=t.roll, lead_days=t.lead_days, evidence=list(t.evidence),
    )  # fmt: skip


def deadline_out(d: Deadline, o: Obligation) -> DeadlineOut:
    return DeadlineOut(
        id=str(d.id), obligation=str(o.id), regulator=o.regulator, form=o.form,
        period=d.period, nominal=d.nominal, due=d.due, due_at=calendar.due_at(d.due, o.time_zone),
        rolled=d.rolled, remind_on=d.remind_on, status=d.status,
        filing=str(d.filing_id) if d.filing_id else None,
        request=str(d.request_id) if d.request_id else None,
    )  # fmt: skip


async def create(
    session: AsyncSession, tenant: TenantContext, who: Any, data: ObligationIn, today: date
) -> Obligation:
    check(data)
    o = Obligation(
        id=uuid7(), regulator=data.regulator, jurisdiction=data.jurisdiction, form=data.form,
        title=data.title or f"{data.regulator} {data.form}", rrule=data.rrule,
        anchor=data.anchor, offset_days=data.offset_days, offset_months=data.offset_months,
        roll=data.roll, lead_days=data.lead_days, time_zone=data.time_zone, owner=data.owner,
        evidence_classes=list(dict.fromkeys(data.evidence_classes)),
        open_request=data.open_request, created_by=actor_of(who)[:200],
    )  # fmt: skip
    session.add(o)
    await session.flush()
    await extend(session, o, today)
    await session.refresh(o)
    await audit.record(
        session, tenant.tenant_id, actor=who, action="compliance.obligation.created",
        target=f"compliance.obligation:{o.id}", after=msgspec.to_builtins(obligation_out(o)),
    )  # fmt: skip
    return o


async def apply_template(
    session: AsyncSession, tenant: TenantContext, who: Any, data: TemplateApply, today: date
) -> Obligation:
    t = calendar.TEMPLATES.get(data.template)
    if t is None:
        raise invalid("#/template", f"no template {data.template!r} (GET /obligations/templates)")
    anchor = data.anchor or date(today.year - 1, 1, 1)
    made = ObligationIn(
        regulator=t.regulator, jurisdiction=t.jurisdiction, form=t.form, rrule=t.rrule,
        anchor=anchor, title=t.title, offset_days=t.offset_days, offset_months=t.offset_months,
        roll=t.roll, lead_days=t.lead_days, owner=data.owner,
        evidence_classes=list(t.evidence), open_request=data.open_request,
    )  # fmt: skip
    o = await create(session, tenant, who, made, today)
    o.template = t.key
    await session.flush()
    return o


async def extend(session: AsyncSession, o: Obligation, today: date) -> int:
    """Generate `o`'s deadlines up to the horizon (each occurrence once); how many were new."""
    until = today + timedelta(days=HORIZON_DAYS)
    start = o.horizon_until + timedelta(days=1) if o.horizon_until else o.anchor
    if o.status != "active" or start > until:
        return 0
    schedule = schedule_of(o)
    found: list[calendar.Deadline] = []
    step = calendar.MAX_HORIZON_DAYS - 1
    at = start
    while at <= until:  # the calendar takes bounded spans
        end = min(until, at + timedelta(days=step))
        found += calendar.deadlines(schedule, at, end)
        at = end + timedelta(days=1)
    rows = [
        {
            "id": uuid7(),
            "obligation_id": o.id,
            "period": d.period,
            "nominal": d.nominal,
            "due": d.due,
            "rolled": (d.rolled or "")[:200] or None,
            "remind_on": calendar.remind_on(d, o.lead_days),
        }
        for d in found
    ]
    added = 0
    for at_row in range(0, len(rows), 2_000):
        done = await session.execute(
            insert(Deadline).values(rows[at_row : at_row + 2_000]).on_conflict_do_nothing()
            .returning(Deadline.id)
        )  # fmt: skip
        added += len(done.all())
    o.horizon_until = until
    return added


async def get(session: AsyncSession, obligation_id: str) -> Obligation:
    try:
        key = uuid.UUID(obligation_id)
    except ValueError:
        raise Problem(404, "not-found", f"no obligation {obligation_id}") from None
    found = await session.get(Obligation, key)
    if found is None:
        raise Problem(404, "not-found", f"no obligation {obligation_id}")
    return found


def _deadlines_query(start: date, end: date, status: str | None) -> Select[Deadline, Obligation]:
    if end < start:
        raise invalid("#/to", "`to` is before `from`")
    if (end - start).days > MAX_QUERY_DAYS:
        raise invalid("#/to", f"at most {MAX_QUERY_DAYS} days at a time")
    query = (
        select(Deadline, Obligation)
        .join(Obligation, Obligation.id == Deadline.obligation_id)
        .where(Deadline.due >= start, Deadline.due <= end)
        .order_by(Deadline.due, Obligation.regulator, Deadline.id)
    )
    return query.where(Deadline.status == status) if status else query


async def deadlines_between(
    session: AsyncSession, start: date, end: date, status: str | None = None
) -> list[DeadlineOut]:
    """Every deadline due in the window (for summaries; the API pages with `deadline_page`)."""
    rows = await session.execute(_deadlines_query(start, end, status).limit(5_000))
    return [deadline_out(d, o) for d, o in rows.all()]


async def deadline_page(
    session: AsyncSession,
    start: date,
    end: date,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[DeadlineOut], str | None]:
    """One page in due-date order; the cursor is the last shown deadline's id, whose due date
    and regulator are the keyset to continue after (so a cursor stays short)."""
    query = _deadlines_query(start, end, status)
    after = uuid_cursor(cursor)
    if after is not None:
        last = (
            await session.execute(
                select(Deadline.due, Obligation.regulator)
                .join(Obligation, Obligation.id == Deadline.obligation_id)
                .where(Deadline.id == after)
            )
        ).first()
        if last is None:
            raise bad_cursor()
        key = tuple_(Deadline.due, Obligation.regulator, Deadline.id)
        query = query.where(
            key > tuple_(literal(last.due), literal(last.regulator), literal(after))
        )
    rows = (await session.execute(query.limit(limit + 1))).all()
    more, rows = len(rows) > limit, rows[:limit]
    return [deadline_out(d, o) for d, o in rows], str(rows[-1][0].id) if more else None
