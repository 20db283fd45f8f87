"""Audit APIs: a tenant's chain for its admins, the platform's for staff admins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from litestar import get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, Parameter
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.audit import service
from bpo.audit.models import PLATFORM_CHAIN, AuditEvent
from bpo.audit.schemas import AuditEventOut, AuditPage, BrokenLink, VerifyOut
from bpo.core.ratelimit import Limit as RateLimit
from bpo.core.ratelimit import RateLimiter
from bpo.core.tenancy import TenantContext
from bpo.identity.guards import STAFF_ADMIN, TENANT_ADMIN

Text = Annotated[str | None, Parameter(max_length=300)]
Cursor = Annotated[str | None, Parameter(max_length=32)]
Limit = Annotated[int, Parameter(ge=1, le=500)]


def event_out(event: AuditEvent) -> AuditEventOut:
    # Every committed event is linked (its commit linked it): number and hashes are set.
    assert event.seq is not None and event.prev_hash is not None and event.hash is not None
    return AuditEventOut(
        id=str(event.id),
        seq=event.seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        target=event.target,
        before_digest=event.before_digest,
        after_digest=event.after_digest,
        request_id=event.request_id,
        prev_hash=event.prev_hash.hex(),
        hash=event.hash.hex(),
    )


async def _page(
    session: AsyncSession,
    chain_id: uuid.UUID,
    filters: service.EventFilter,
    limit: int,
    cursor: str | None,
) -> AuditPage:
    rows, next_cursor = await service.list_events(
        session, chain_id, filters, limit=limit, cursor=cursor
    )
    return AuditPage(items=[event_out(e) for e in rows], next_cursor=next_cursor)


# A verification walks the whole chain: a few per minute per chain is plenty.
VERIFY_LIMIT = 6


async def _verify(state: State, chain_id: uuid.UUID) -> VerifyOut:
    limiter: RateLimiter = state.limiter
    await limiter.enforce(
        RateLimit("audit verifications of this chain", f"audit:verify:{chain_id}", VERIFY_LIMIT, 60)
    )
    verdict = await service.verify(state.db.engine, chain_id)
    broken = None
    if not verdict.ok:
        assert verdict.first_broken_seq is not None and verdict.reason is not None
        broken = BrokenLink(
            seq=verdict.first_broken_seq,
            event_id=str(verdict.first_broken_id) if verdict.first_broken_id else None,
            reason=verdict.reason,
        )
    return VerifyOut(verdict.ok, verdict.events_checked, verdict.head_seq, broken)


@get(
    "/v1/tenants/{slug:str}/audit/events",
    guards=[TENANT_ADMIN],
    tags=["audit"],
    summary="The firm's audit trail, newest first",
    operation_id="listAuditEvents",
)
async def tenant_events(
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    action: Text = None,
    actor: Text = None,
    target: Text = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AuditPage:
    filters = service.EventFilter(action, actor, target, since, until)
    return await _page(db_session, tenant.tenant_id, filters, limit, cursor)


@post(
    "/v1/tenants/{slug:str}/audit/verify",
    guards=[TENANT_ADMIN],
    tags=["audit"],
    status_code=200,
    summary="Walk the firm's chain; report the first broken link",
    operation_id="verifyAuditChain",
)
async def tenant_verify(tenant: NamedDependency[TenantContext], state: State) -> VerifyOut:
    return await _verify(state, tenant.tenant_id)


@get(
    "/v1/staff/audit/events",
    guards=[STAFF_ADMIN],
    tags=["audit"],
    summary="The platform's audit trail (provider admin actions), newest first",
    operation_id="listPlatformAuditEvents",
)
async def platform_events(
    db_session: NamedDependency[AsyncSession],
    action: Text = None,
    actor: Text = None,
    target: Text = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AuditPage:
    filters = service.EventFilter(action, actor, target, since, until)
    return await _page(db_session, PLATFORM_CHAIN, filters, limit, cursor)


@post(
    "/v1/staff/audit/verify",
    guards=[STAFF_ADMIN],
    tags=["audit"],
    status_code=200,
    summary="Walk the platform's chain; report the first broken link",
    operation_id="verifyPlatformAuditChain",
)
async def platform_verify(state: State) -> VerifyOut:
    return await _verify(state, PLATFORM_CHAIN)


route_handlers: list[ControllerRouterHandler] = [
    tenant_events,
    tenant_verify,
    platform_events,
    platform_verify,
]
