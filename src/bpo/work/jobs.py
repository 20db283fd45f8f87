"""Work's periodic jobs: SLA warnings and breaches, and leases that ran out.

Both find their tasks in the queue index (one indexed query across tenants), then open only
the tenants concerned, each in its own transaction as its own role.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.jobs.context import worker_database
from bpo.jobs.registry import job
from bpo.platform.tenants import service as tenants
from bpo.work import clocks, queue, service

log = structlog.get_logger("bpo.work")


@job(queue="default", max_retries=3, every=timedelta(minutes=1))
async def check_slas() -> None:
    """Raise each SLA warning and breach once: event, webhook, audit, staff admin flag."""
    raised = await check_due_slas(worker_database())
    if raised:
        log.info("sla_crossings", raised=raised)


@job(queue="default", max_retries=3, every=timedelta(minutes=1))
async def return_expired_leases() -> None:
    """Tasks whose lease ran out go back to the queue (claims already treat them as free)."""
    returned = await return_all_expired(worker_database())
    if returned:
        log.info("leases_expired", returned=returned)


TenantWork = Callable[[AsyncSession, TenantContext, Sequence[uuid.UUID]], Awaitable[int]]
JOB_BATCH = 1000


async def _per_tenant(
    db: Database, found: dict[uuid.UUID, list[uuid.UUID]], work: TenantWork
) -> int:
    """Open only the tenants concerned, as their own role, one transaction per task: a
    transition holds its tenant's audit head to the commit, so two in one transaction
    could deadlock with a staff member's transition on a sibling task."""
    if not found:
        return 0
    async with db.sessionmaker() as session:
        slugs = await tenants.slugs_of(session, set(found))
    done = 0
    for tenant_id, task_ids in found.items():
        if tenant_id in slugs:
            tenant = issue_tenant_context(tenant_id, slugs[tenant_id])
            for task_id in task_ids:
                async with tenant_session(db.engine, tenant, "worker") as session:
                    done += await work(session, tenant, [task_id])
    return done


async def check_due_slas(db: Database) -> int:
    async with db.autocommit() as conn:
        found = await queue.due_for_check(conn, JOB_BATCH)
    return await _per_tenant(db, found, clocks.check_slas)


async def return_all_expired(db: Database) -> int:
    async with db.autocommit() as conn:
        found = await queue.expired_leases(conn, JOB_BATCH)
    return await _per_tenant(db, found, service.return_expired)
