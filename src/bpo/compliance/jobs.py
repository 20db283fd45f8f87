"""Compliance jobs: the daily sweep of every firm's deadlines, a new sanctions list version
re-screening every firm's counterparties (with progress on the version's row), and a firm's
batch screening."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.compliance import sanctions, screening, service
from bpo.compliance.models import Counterparty
from bpo.compliance.schemas import CounterpartyIn
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.jobs.context import current_job, worker_database
from bpo.jobs.registry import job
from bpo.platform.tenants import service as tenants

log = structlog.get_logger("bpo.compliance")
RESCREEN_JOB = "compliance.rescreen_firms"
BATCH_JOB = "compliance.screen_batch"


@job(queue="default", max_retries=1, every=timedelta(days=1), time_limit=3_600_000)
async def sweep_deadlines() -> None:
    """Generate deadlines ahead, send reminders, escalate what became overdue."""
    db = worker_database()

    async def one(tenant: TenantContext) -> int:
        async with tenant_session(db.engine, tenant, "worker") as session:
            done = await service.sweep(session, tenant, datetime.now(UTC).date())
        return sum(done.values())

    await each_firm(db, one)


@job(queue="default", name=RESCREEN_JOB, max_retries=3, time_limit=6 * 3_600_000)
async def rescreen_firms(list_id: str, actor: str) -> None:
    """Screen every firm's counterparties against the current versions (a new version
    raises only new hits); progress is counted on the version's row."""
    db = worker_database()
    async with db.sessionmaker() as session:
        firms = await tenants.live_tenants(session, active_only=True)
    done = 0

    async def one(tenant: TenantContext) -> int:
        nonlocal done
        async with tenant_session(db.engine, tenant, "worker") as session:
            raised = await screening.rescreen_all(session, tenant, actor)
        done += 1
        async with db.sessionmaker.begin() as session:
            await sanctions.mark_progress(session, uuid.UUID(list_id), len(firms), done)
        return raised

    raised = await each_firm(db, one)
    async with db.sessionmaker.begin() as session:
        await sanctions.mark_progress(session, uuid.UUID(list_id), len(firms), len(firms))
    log.info("sanctions_rescreened", list_id=list_id, firms=len(firms), hits=raised)


@job(queue="default", name=BATCH_JOB, max_retries=3, time_limit=3_600_000)
async def screen_batch(names: list[dict[str, Any]], actor: str) -> None:
    """Add the batch's names as counterparties (a name, kind and country seen before is
    that counterparty) and screen them; or re-screen every counterparty when none given."""
    context = current_job()
    if context.tenant is None:
        raise RuntimeError("a batch screening runs for a tenant")
    async with context.session() as session:
        if not names:
            await screening.rescreen_all(session, context.tenant, actor)
            return
        parties = []
        for raw in names:
            data = msgspec.convert(raw, CounterpartyIn)
            known = await session.scalar(
                select(Counterparty).where(
                    Counterparty.name == data.name, Counterparty.kind == data.kind,
                    Counterparty.country.is_not_distinct_from(data.country),
                )
            )  # fmt: skip
            if known is None:
                known = Counterparty(
                    name=data.name, kind=data.kind, aliases=data.aliases, country=data.country,
                    birth_date=data.birth_date, identifiers=data.identifiers,
                    reference=data.reference, created_by=actor[:200],
                )  # fmt: skip
                session.add(known)
            parties.append(known)
        await session.flush()
        for at in range(0, len(parties), screening.BATCH):
            await screening.screen_parties(
                session, context.tenant, actor, parties[at : at + screening.BATCH]
            )


async def each_firm(db: Database, work: Callable[[TenantContext], Awaitable[int]]) -> int:
    """Run `work` for each live firm whose schema has compliance tables; sum the results."""
    async with db.sessionmaker() as session:
        firms = await tenants.live_tenants(session, active_only=True)
    total = 0
    for firm in firms:
        tenant = issue_tenant_context(firm.id, firm.slug)
        if not await has_compliance(db.engine, tenant):
            continue
        try:
            total += await work(tenant)
        except Exception:  # one firm's failure must not stop the others
            log.exception("compliance_job_failed", tenant=firm.slug)
    return total


async def has_compliance(engine: AsyncEngine, tenant: TenantContext) -> bool:
    """Whether the firm's schema is migrated as far as compliance (during a rollout)."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT to_regclass(:t) IS NOT NULL"),
            {"t": f'"{tenant.schema}".compliance_counterparties'},
        )
    return bool(found)
