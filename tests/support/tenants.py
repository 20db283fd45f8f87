"""Tenants for tests, made through the real service (schema, role, grants)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, issue_tenant_context
from bpo.platform.tenants.service import create_tenant


async def make_tenant(db: Database, slug: str, name: str | None = None) -> TenantContext:
    async with db.sessionmaker.begin() as session:
        created = await create_tenant(session, slug, name or slug.title())
    return issue_tenant_context(created.tenant.id, slug)


async def add_notes_table(engine: AsyncEngine, ctx: TenantContext) -> None:
    """A table created by the owner after provisioning, as a later migration would: the
    tenant role gets access through the schema's default privileges, nothing else."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            f'CREATE TABLE "{ctx.schema}".notes ('
            "id bigserial PRIMARY KEY, tenant_slug text NOT NULL, body text NOT NULL)"
        )


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    """(tenant schemas, tenant roles, registry rows): to prove nothing was half-made.

    Roles are cluster-wide (other databases on the server may hold some): compare counts
    before and after, not absolute numbers.
    """
    async with engine.connect() as conn:
        row = (await conn.execute(_COUNTS)).one()
    return int(row[0]), int(row[1]), int(row[2])


_COUNTS = text(
    "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname ~ '^tenant_[0-9a-f]{32}$'),"
    " (SELECT count(*) FROM pg_roles WHERE rolname ~ '^tenant_[0-9a-f]{32}_app$'),"
    " (SELECT count(*) FROM platform.tenants)"
)
