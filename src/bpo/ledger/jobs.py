"""The ledger's jobs: CSV journal imports, the month-end FX revaluation, the weekly verify.

The periodic ones walk the live tenants, each in its own transaction as its own role.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import structlog
from sqlalchemy import text

from bpo import audit
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.jobs.context import current_job, worker_database
from bpo.jobs.registry import job
from bpo.ledger import imports, periods, revaluation, verify
from bpo.platform.tenants import service as tenants
from bpo.webhooks.service import record_events

log = structlog.get_logger("bpo.ledger")


@job(queue="default", name=imports.IMPORT_JOB, max_retries=3, time_limit=600_000)
async def import_journal(import_id: str, actor: str) -> None:
    """Check and post an uploaded CSV journal (all or nothing)."""
    context = current_job()
    tenant = context.tenant
    if tenant is None:
        raise RuntimeError("a journal import runs for a tenant")
    await imports.run(context.session, tenant, uuid.UUID(import_id), actor)


@job(queue="default", max_retries=3, every=timedelta(hours=6), time_limit=3_600_000)
async def revalue_last_month() -> None:
    """Post last month's unrealised FX revaluation where it is due (once per firm)."""
    month = periods.next_month(datetime.now(UTC).date().replace(day=1) - timedelta(days=1))
    last = (month - timedelta(days=1)).replace(day=1)
    done = await revalue_all(worker_database(), last)
    if done:
        log.info("fx_revaluations_posted", month=periods.period_id(last), firms=done)


async def revalue_all(db: Database, month: date) -> int:
    async def one(tenant: TenantContext) -> bool:
        async with tenant_session(db.engine, tenant, "worker") as session:
            return await revaluation.revalue(session, tenant, month) is not None

    return await _each_firm(db, one)


@job(queue="default", max_retries=1, every=timedelta(days=7), time_limit=3_600_000)
async def verify_books() -> None:
    """Recompute every firm's balances and hashes; a firm whose books drifted gets the
    event `ledger.verify.drifted` (so a webhook) and an audit event."""
    drifted = await verify_all(worker_database())
    if drifted:
        log.warning("ledger_drift", firms=drifted)


async def verify_all(db: Database) -> int:
    async def one(tenant: TenantContext) -> bool:
        verdict = await verify.verify(db.engine, tenant)
        if verdict.ok:
            return False
        first = verdict.first_broken or verdict.differences[0]
        summary = {
            "differences": len(verdict.differences),
            "first": first.detail,
            "entry_number": first.entry_number,
            "account": first.account,
        }
        async with tenant_session(db.engine, tenant, "worker") as session:
            await record_events(session, tenant, [("ledger.verify.drifted", summary)])
            await audit.record(
                session,
                tenant.tenant_id,
                actor="system:ledger-verify",
                action="ledger.verify.drifted",
                target="ledger",
                after=summary,
            )
        return True

    return await _each_firm(db, one)


async def _each_firm(db: Database, work: Callable[[TenantContext], Awaitable[bool]]) -> int:
    """Run `work` for each live firm whose schema holds the ledger; count the True ones."""
    async with db.sessionmaker() as session:
        firms = await tenants.live_tenants(session, active_only=True)
    count = 0
    for firm in firms:
        tenant = issue_tenant_context(firm.id, firm.slug)
        if not await _has_ledger(db, tenant):
            continue
        try:
            count += await work(tenant)
        except Exception:  # one firm's failure must not stop the others
            log.exception("ledger_job_failed", tenant=firm.slug)
    return count


async def _has_ledger(db: Database, tenant: TenantContext) -> bool:
    async with db.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f'"{tenant.schema}".ledger_lines'}
        )
    return bool(found)
