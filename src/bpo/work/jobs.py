"""Work's periodic jobs: SLA warnings and breaches, and leases that ran out.

Both find their tasks in the queue index (one indexed query across tenants), then open only
the tenants concerned, each in its own transaction as its own role.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.jobs.context import worker_database
from bpo.jobs.registry import job
from bpo.platform.models import Tenant
from bpo.work import queue, service

log = structlog.get_logger("bpo.work")
BATCH = 1000

TenantWork = Callable[[AsyncSession, TenantContext, Sequence[uuid.UUID]], Awaitable[int]]


async def _per_tenant(found: dict[uuid.UUID, list[uuid.UUID]], work: TenantWork) -> int:
    db = worker_database()
    if not found:
        return 0
    async with db.sessionmaker() as session:
        slugs = dict(
            (
                await session.execute(select(Tenant.id, Tenant.slug).where(Tenant.id.in_(found)))
            ).all()
        )
    done = 0
    for tenant_id, task_ids in found.items():
        if tenant_id not in slugs:
            continue
        tenant = issue_tenant_context(tenant_id, slugs[tenant_id])
        async with tenant_session(db.engine, tenant, "worker") as session:
            done += await work(session, tenant, task_ids)
    return done


@job(queue="default", max_retries=3, every=timedelta(minutes=1))
async def check_slas() -> None:
    """Raise each SLA warning and breach once: event, webhook, audit, staff admin flag."""
    async with worker_database().engine.connect() as conn:
        found = await queue.due_for_check(conn, BATCH)
    raised = await _per_tenant(found, service.check_slas)
    if raised:
        log.info("sla_crossings", raised=raised)


@job(queue="default", max_retries=3, every=timedelta(minutes=1))
async def return_expired_leases() -> None:
    """Tasks whose lease ran out go back to the queue (claims already treat them as free)."""
    async with worker_database().engine.connect() as conn:
        found = await queue.expired_leases(conn, BATCH)
    returned = await _per_tenant(found, service.return_expired)
    if returned:
        log.info("leases_expired", returned=returned)
