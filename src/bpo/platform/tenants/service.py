"""The tenant registry's rules: slugs, signup, status changes, deletion."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bpo.audit import service as audit
from bpo.core.errors import Problem
from bpo.core.pagination import bad_cursor
from bpo.core.tenancy import role_name, schema_name
from bpo.core.tenant_migrations import TenantMigration
from bpo.jobs.models import FailedJob, OutboxMessage
from bpo.platform.models import SLUG_PATTERN, Tenant
from bpo.platform.tenants.provisioning import claim_pooled_id, provision_cold

_SLUG_RE = re.compile(SLUG_PATTERN)
RESERVED_SLUGS = frozenset(
    {
        "admin", "api", "app", "billing", "bpo", "docs", "health", "help", "information-schema",
        "metrics", "pg", "platform", "public", "root", "schema", "staff", "static", "status",
        "support", "system", "tenant", "tenants", "www",
    }
)  # fmt: skip
EXPORT_FRESH_FOR = timedelta(hours=24)
DROP_BATCH = 20  # tables dropped per transaction while deleting, to keep each lock set small


@dataclass(frozen=True, slots=True)
class CreatedTenant:
    tenant: Tenant
    from_pool: bool


def slug_problem(slug: str) -> str | None:
    """Why `slug` cannot name a tenant, or None if it can."""
    if not 3 <= len(slug) <= 40:
        return "must be 3 to 40 characters long"
    if slug != slug.lower():
        return "must be lowercase"
    if not _SLUG_RE.fullmatch(slug):
        return "must start with a letter and hold only a-z, 0-9 and inner hyphens"
    if slug in RESERVED_SLUGS or slug.startswith(("pg-", "pg_")):
        return "is reserved"
    return None


def _invalid(pointer: str, detail: str) -> Problem:
    return Problem(
        422,
        "validation-error",
        f"{pointer.removeprefix('#/')}: {detail}",
        errors=[{"pointer": pointer, "detail": detail}],
    )


async def create_tenant(session: AsyncSession, slug: str, name: str) -> CreatedTenant:
    """Register a tenant with its schema and role, from the warm pool when it can."""
    if (reason := slug_problem(slug)) is not None:
        raise _invalid("#/slug", f"{slug!r} {reason}")
    name = name.strip()
    if not name:
        raise _invalid("#/name", "must not be blank")
    if await session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise Problem(409, "conflict", f"the slug {slug!r} is taken")
    pooled = await claim_pooled_id(session)
    tenant_id = pooled or await provision_cold(session)
    tenant = Tenant(id=tenant_id, slug=slug, name=name, status="active")
    session.add(tenant)
    await session.flush()
    await session.refresh(tenant)
    return CreatedTenant(tenant=tenant, from_pool=pooled is not None)


async def get_tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise Problem(404, "not-found", f"no tenant {slug!r}")
    return tenant


def active_tenant_ids() -> Select[uuid.UUID]:
    """The ids of active tenants, as a subquery other domains filter by in their own
    statement (the token endpoint's client loader, a person's sign-in)."""
    return select(Tenant.id).where(Tenant.status == "active")


async def live_tenant(session: AsyncSession, slug: str) -> Tenant:
    """A tenant that exists and is not being deleted (404 otherwise)."""
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None or tenant.status == "deleting":
        raise Problem(404, "not-found", f"no tenant {slug!r}")
    return tenant


async def live_tenants(
    session: AsyncSession, ids: set[uuid.UUID] | None = None, *, active_only: bool = False
) -> list[Tenant]:
    """Tenants not being deleted (only `ids`, when given; only active ones, when asked), by
    slug."""
    query = select(Tenant).where(Tenant.status != "deleting").order_by(Tenant.slug)
    if ids is not None:
        query = query.where(Tenant.id.in_(ids))
    if active_only:
        query = query.where(Tenant.status == "active")
    return list(await session.scalars(query))


async def tenant_by_id(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def ids_of(session: AsyncSession, slugs: list[str]) -> dict[str, uuid.UUID]:
    rows = await session.execute(select(Tenant.slug, Tenant.id).where(Tenant.slug.in_(slugs)))
    return {row.slug: row.id for row in rows}


async def change_status(
    session: AsyncSession, tenant_id: uuid.UUID, status: str, *, only_from: str
) -> Tenant | None:
    """Set the status of a tenant whose status is `only_from` now (dunning suspends active
    tenants and resumes only suspended ones); the tenant, or None if it was not."""
    tenant = await session.get(Tenant, tenant_id, with_for_update=True)
    if tenant is None or tenant.status != only_from:
        return None
    tenant.status = status
    await session.flush()
    return tenant


async def slugs_of(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await session.execute(select(Tenant.id, Tenant.slug).where(Tenant.id.in_(ids)))
    return {row.id: row.slug for row in rows}


async def list_tenants(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Tenant], str | None]:
    """Tenants in creation order (ids are time-ordered), `limit` at a time."""
    query = select(Tenant).order_by(Tenant.id).limit(limit + 1)
    if cursor:
        query = query.where(Tenant.id > _decode_cursor(cursor))
    rows = list(await session.scalars(query))
    next_cursor = _encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def set_status(session: AsyncSession, slug: str, status: str) -> Tenant:
    """Suspend or resume. A deleting tenant cannot change status."""
    tenant = await get_tenant(session, slug)
    if tenant.status == "deleting":
        raise Problem(409, "conflict", f"tenant {slug!r} is being deleted")
    if tenant.status != status:
        tenant.status = status
        await session.flush()
        await session.refresh(tenant)
    return tenant


async def delete_tenant(engine: AsyncEngine, slug: str, *, force: bool = False) -> bool:
    """Drop the tenant's data, schema and role, then its registry row. Idempotent.

    Needs an export from the last 24 hours unless forced. Marks the tenant `deleting` first,
    so a crash part-way leaves a tenant that refuses traffic and a re-run that resumes.
    Returns False when there was nothing (left) to delete.
    """
    async with AsyncSession(engine) as session, session.begin():
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug).with_for_update())
        if tenant is None:
            return False
        if tenant.status != "deleting":
            exported = tenant.last_export_at
            fresh = exported is not None and datetime.now(UTC) - exported < EXPORT_FRESH_FOR
            if not (force or fresh):
                raise Problem(
                    409,
                    "export-required",
                    f"export tenant {slug!r} first (an export from the last 24 hours), "
                    "or force the deletion",
                    title="A fresh export is required",
                )
            tenant.status = "deleting"
        tenant_id = tenant.id
    await drop_schema_and_role(engine, tenant_id)
    async with engine.begin() as conn:
        await conn.execute(
            delete(TenantMigration).where(TenantMigration.schema_name == schema_name(tenant_id))
        )
        # Its platform rows: the audit chain (exported first), jobs not yet sent, failures.
        await audit.forget_chain(conn, tenant_id)
        await conn.execute(
            delete(OutboxMessage).where(
                OutboxMessage.tenant_id == tenant_id, OutboxMessage.sent_at.is_(None)
            )
        )
        await conn.execute(delete(FailedJob).where(FailedJob.tenant_id == tenant_id))
        await conn.execute(delete(Tenant).where(Tenant.id == tenant_id))
    return True


async def drop_schema_and_role(engine: AsyncEngine, tenant_id: uuid.UUID) -> None:
    """Drop the schema's tables a batch per transaction, then the schema, then the role."""
    schema, role = schema_name(tenant_id), role_name(tenant_id)
    while True:
        async with engine.begin() as conn:
            tables = (
                (
                    await conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = :s LIMIT :n"),
                        {"s": schema, "n": DROP_BATCH},
                    )
                )
                .scalars()
                .all()
            )
            if not tables:
                break
            await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            for table in tables:
                await conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{schema}"."{table}" CASCADE')
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
            await conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            await conn.exec_driver_sql(f'DROP ROLE "{role}"')


def _encode_cursor(tenant_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(tenant_id.bytes).decode().rstrip("=")


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise bad_cursor() from None
