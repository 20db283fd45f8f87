"""Record keeping's jobs: text extraction for search, the store's locks, exports, and the
daily disposal and storage snapshot, which walk the live firms each in its own
transaction as its own role."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import func, select, text

from bpo.billing.service import record_usage
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.jobs.context import current_job, worker_database, worker_settings
from bpo.jobs.registry import job
from bpo.platform.tenants import service as tenants
from bpo.records import disposal, exports, service
from bpo.records.holds import holds_on
from bpo.records.models import Document, Version
from bpo.records.retention import today
from bpo.records.storage import Corrupted, Lock, Store, content_key, store_for

log = structlog.get_logger("bpo.records")
STORAGE_GB_MONTH = "storage_gb_month"
DISPOSAL_BATCH = 500


def _tenant() -> TenantContext:
    tenant = current_job().tenant
    if tenant is None:
        raise RuntimeError("this job runs for a tenant")
    return tenant


@job(queue="default", name=service.EXTRACT_JOB, max_retries=3, time_limit=600_000)
async def extract_text(document_id: str, number: int) -> None:
    """Read a version's text for full-text search (the latest version's text wins)."""
    tenant, db, store = _tenant(), worker_database(), store_for(worker_settings())
    async with tenant_session(db.engine, tenant, "worker") as session:
        doc = await session.get(Document, uuid.UUID(document_id))
        version = await session.get(Version, (uuid.UUID(document_id), number))
        if doc is None or version is None or doc.status != "active":
            return
        if doc.current_version != number:
            return
    try:
        fetched = await store.fetch(version.storage_key, version.storage_version, version.sha256)
    except Corrupted as exc:
        async with tenant_session(db.engine, tenant, "worker") as session:
            await service.record_corruption(session, tenant, doc, version, str(exc))
        return
    try:
        found = exports.extract_text(fetched.path, version.declared_type, version.sniffed_type)
    finally:
        fetched.close()
    async with tenant_session(db.engine, tenant, "worker") as session:
        await session.execute(
            text(
                "UPDATE records_documents SET extracted_text = :t"
                " WHERE id = :id AND current_version = :n AND status = 'active'"
            ),
            {"t": found, "id": doc.id, "n": number},
        )


@job(queue="default", name=service.PROTECT_JOB, max_retries=5, time_limit=3_600_000)
async def protect(document_ids: list[str]) -> None:
    """Bring the store's Object Lock in line with the documents' retention and holds."""
    tenant, db, store = _tenant(), worker_database(), store_for(worker_settings())
    ids = [uuid.UUID(i) for i in document_ids]
    async with tenant_session(db.engine, tenant, "worker") as session:
        docs = {
            d.id: d
            for d in await session.scalars(
                select(Document).where(Document.id.in_(ids), Document.status != "disposed")
            )
        }
        held = await holds_on(session, ids)
        versions = list(
            await session.scalars(
                select(Version).where(
                    Version.document_id.in_(list(docs)), Version.content_removed_at.is_(None)
                )
            )
        )
    for v in versions:
        d = docs[v.document_id]
        await store.protect(
            v.storage_key, v.storage_version, Lock(d.mode, d.retain_until, bool(held.get(d.id)))
        )


@job(queue="default", name=exports.EXPORT_JOB, max_retries=2, time_limit=6 * 3_600_000)
async def build_export(export_id: str) -> None:
    settings = worker_settings()
    await exports.build(
        worker_database().engine,
        store_for(settings),
        _tenant(),
        uuid.UUID(export_id),
        settings.records_export_hours,
    )


@job(queue="default", max_retries=1, every=timedelta(days=1), time_limit=6 * 3_600_000)
async def dispose_expired() -> None:
    """Dispose of every document whose retention ended and that no hold covers."""
    done = await dispose_all(worker_database(), store_for(worker_settings()))
    if done:
        log.info("records_disposed", documents=done)


async def dispose_all(db: Database, store: Store) -> int:
    async def one(tenant: TenantContext) -> int:
        count = 0
        while True:
            async with tenant_session(db.engine, tenant, "worker") as session:
                due = list(
                    await session.scalars(
                        select(Document)
                        .where(Document.status != "disposed", Document.retain_until < today())
                        .order_by(Document.retain_until)
                        .limit(DISPOSAL_BATCH)
                        .with_for_update(skip_locked=True)
                    )
                )
                held = await holds_on(session, [d.id for d in due])
                free = [d for d in due if not held.get(d.id)]
                if not free:
                    return count
                _, blobs = await disposal.dispose(
                    session,
                    store,
                    tenant,
                    "system:records-disposal",
                    free,
                    "retention period ended",
                )
            await disposal.purge(store, blobs)
            count += len(free)
            if len(due) < DISPOSAL_BATCH:
                return count

    return await _each_firm(db, one)


@job(queue="default", max_retries=1, every=timedelta(days=1), time_limit=3_600_000)
async def snapshot_storage() -> None:
    """Meter each firm's stored GB for the day (`storage_gb_month`, a level: the month is
    billed at its peak). Content shared by versions counts once."""
    await snapshot_all(worker_database(), today())


async def snapshot_all(db: Database, day: date) -> int:
    async def one(tenant: TenantContext) -> int:
        async with tenant_session(db.engine, tenant, "worker") as session:
            stored = await session.scalar(
                select(func.coalesce(func.sum(text("size")), 0)).select_from(
                    select(Version.sha256, func.max(Version.size).label("size"))
                    .where(Version.content_removed_at.is_(None))
                    .group_by(Version.sha256)
                    .subquery()
                )
            )
            gb = (Decimal(stored or 0) / Decimal(1 << 30)).quantize(Decimal("1e-6"))
            at = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
            await record_usage(
                session, tenant, STORAGE_GB_MONTH, gb, f"storage:{day.isoformat()}", at
            )
        return 1

    return await _each_firm(db, one)


@job(queue="default", max_retries=1, every=timedelta(hours=1), time_limit=3_600_000)
async def sweep_exports() -> None:
    """Exports past their time: marked expired, their archives removed from the store."""
    db, store = worker_database(), store_for(worker_settings())

    async def one(tenant: TenantContext) -> int:
        async with tenant_session(db.engine, tenant, "worker") as session:
            rows = await exports.expired(session)
            for row in rows:
                row.status = "expired"
            keys = [r.sha256 for r in rows if r.sha256]
        for sha in keys:
            await disposal.purge(store, [disposal.Blob(content_key(tenant.tenant_id, sha), None)])
        return len(rows)

    await _each_firm(db, one)


async def _each_firm(db: Database, work: Callable[[TenantContext], Awaitable[int]]) -> int:
    """Run `work` for each live firm whose schema has records; sum what it returns."""
    async with db.sessionmaker() as session:
        firms = await tenants.live_tenants(session, active_only=True)
    total = 0
    for firm in firms:
        tenant = issue_tenant_context(firm.id, firm.slug)
        async with db.engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT to_regclass(:t) IS NOT NULL"),
                {"t": f'"{tenant.schema}".records_documents'},
            )
        if not found:
            continue
        try:
            total += await work(tenant)
        except Exception:  # one firm's failure must not stop the others
            log.exception("records_job_failed", tenant=firm.slug)
    return total
