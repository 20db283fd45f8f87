"""Usage APIs: staff admins record usage in batches; tenant admins read their period's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.models import PLATFORM_CHAIN
from bpo.billing import service
from bpo.billing.models import Meter
from bpo.billing.schemas import MeterUsageOut, UsageBatch, UsageBatchResult, UsageOut
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.identity.guards import STAFF_ADMIN, TENANT_ADMIN, Principal
from bpo.platform.models import Tenant


@post(
    "/v1/staff/usage",
    guards=[STAFF_ADMIN],
    tags=["billing"],
    status_code=200,
    summary="Record usage done outside bpo (up to 1,000 events; each key counts once)",
)
async def record_batch(
    data: JSONBody[UsageBatch],
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
) -> UsageBatchResult:
    usage = await _checked(db_session, data)
    connection = await db_session.connection()
    recorded = await service.record_usage_batch(connection, usage)
    received = len(data.events)
    await audit.record(
        db_session,
        PLATFORM_CHAIN,
        actor=principal,
        action="usage.recorded",
        target="usage",
        after={"received": received, "recorded": recorded},
    )
    return UsageBatchResult(received=received, recorded=recorded, duplicates=received - recorded)


async def _checked(session: AsyncSession, data: UsageBatch) -> list[service.Usage]:
    """The batch as usage events, or a 422 naming every bad event (nothing recorded)."""
    slugs = sorted({e.tenant for e in data.events})
    found = await session.execute(select(Tenant.slug, Tenant.id).where(Tenant.slug.in_(slugs)))
    tenants: dict[str, uuid.UUID] = {str(slug): ident for slug, ident in found.all()}
    meters = set((await session.scalars(select(Meter.key))).all())
    now = datetime.now(UTC)
    errors, usage = [], []
    for n, event in enumerate(data.events):
        where = f"#/events/{n}"
        if event.tenant not in tenants:
            errors.append({"pointer": f"{where}/tenant", "detail": f"no tenant {event.tenant!r}"})
        if event.meter not in meters:
            errors.append({"pointer": f"{where}/meter", "detail": f"no meter {event.meter!r}"})
        try:
            service.check_usage(event.quantity, event.at, now)
        except service.UsageRefused as exc:
            errors.append({"pointer": where, "detail": str(exc)})
        if not errors:
            tenant_id = tenants[event.tenant]
            usage.append(service.Usage(tenant_id, event.meter, event.quantity, event.key, event.at))
    if errors:
        raise Problem(
            422,
            "validation-error",
            f"{len(errors)} problem(s) in the batch; nothing was recorded",
            errors=errors[:100],
        )
    return usage


@get(
    "/v1/tenants/{slug:str}/billing/usage",
    guards=[TENANT_ADMIN],
    tags=["billing"],
    summary="Usage per meter in the current period (the calendar month, UTC) or a given one",
)
async def current_usage(
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    start: FromQuery[datetime | None] = None,
    end: FromQuery[datetime | None] = None,
) -> UsageOut:
    default_start, default_end = service.month_of(datetime.now(UTC))
    period_start, period_end = start or default_start, end or default_end
    for name, value in (("start", period_start), ("end", period_end)):
        if value.tzinfo is None or value.minute or value.second or value.microsecond:
            raise Problem(
                400,
                "malformed-request",
                f"{name} must be a whole hour with a time zone, such as 2026-11-01T00:00:00Z",
                errors=[{"parameter": name, "location": "query", "detail": "not a whole hour"}],
            )
    if period_end <= period_start:
        raise Problem(400, "malformed-request", "end must come after start")
    rows = await service.period_usage(db_session, tenant.tenant_id, period_start, period_end)
    return UsageOut(
        period_start=period_start,
        period_end=period_end,
        meters=[
            MeterUsageOut(r.meter, r.name, r.unit, r.aggregation, r.quantity, r.events)
            for r in rows
        ],
    )


route_handlers: list[ControllerRouterHandler] = [record_batch, current_usage]
