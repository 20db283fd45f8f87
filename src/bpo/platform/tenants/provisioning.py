"""Making a tenant's schema and role, and keeping a warm pool of them ready for signups.

A signup takes a pooled schema with `FOR UPDATE SKIP LOCKED` (concurrent signups never wait
on each other) and turns the pool row's id into the tenant id. With the pool empty, the same
transaction builds schema and role itself (the cold path). Either way the tenant row, the
schema and the role commit together or not at all: PostgreSQL's DDL, CREATE ROLE included,
is transactional.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import await_only

from bpo.core.ids import uuid7
from bpo.core.tenancy import TENANTS_GROUP_ROLE, role_name, schema_name
from bpo.core.tenant_migrations import build_schema_sync, tenant_head
from bpo.platform.models import TenantSchemaPool

_FILL_LOCK = 0x62706F_706F6F6C  # "bpo" "pool": one pool filler at a time
_CLAIM = text(
    """
    DELETE FROM platform.tenant_schema_pool
    WHERE id = (
        SELECT id FROM platform.tenant_schema_pool
        WHERE revision = :head
        ORDER BY created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
    """
)


def create_tenant_objects_sync(conn: Connection, tenant_id: uuid.UUID) -> str:
    """Role + schema at head + grants, inside the caller's transaction. Returns the revision."""
    revision = build_schema_sync(conn, schema_name(tenant_id))
    grant_tenant_role_sync(conn, tenant_id)
    return revision


def grant_tenant_role_sync(conn: Connection, tenant_id: uuid.UUID) -> None:
    """The tenant's role and its grants on its built schema (a signup; a restore)."""
    schema, role = schema_name(tenant_id), role_name(tenant_id)
    statements = [
        f'CREATE ROLE "{role}" NOLOGIN IN ROLE {TENANTS_GROUP_ROLE}',
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
        f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
        # Tables that later migrations create (as this owner) are granted the same way.
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" '
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{role}"',
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" '
        f'GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "{role}"',
        # Only migrations move the schema's revision.
        f'REVOKE ALL ON "{schema}".alembic_version FROM "{role}"',
    ]
    if not conn.exec_driver_sql(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).scalar():
        # A non-superuser owner may only SET ROLE to roles it is a member of.
        version = int(conn.exec_driver_sql("SHOW server_version_num").scalar() or 0)
        option = " WITH INHERIT FALSE, SET TRUE" if version >= 160000 else ""
        statements.append(f'GRANT "{role}" TO CURRENT_USER{option}')
    # One round trip for the whole batch (simple query protocol).
    driver = conn.connection.driver_connection
    await_only(driver.execute(";\n".join(statements)))  # type: ignore[union-attr]


async def claim_pooled_id(session: AsyncSession) -> uuid.UUID | None:
    """Take one warm schema at head, or None when the pool is empty."""
    claimed = await session.scalar(_CLAIM, {"head": tenant_head()})
    return claimed if isinstance(claimed, uuid.UUID) else None


async def provision_cold(session: AsyncSession) -> uuid.UUID:
    """Build a new schema and role in the session's transaction; returns the new tenant id."""
    tenant_id = uuid7()
    conn = await session.connection()
    await conn.run_sync(create_tenant_objects_sync, tenant_id)
    return tenant_id


async def pool_size(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(TenantSchemaPool)
            .where(TenantSchemaPool.revision == tenant_head())
        )
    return int(count or 0)


async def fill_pool(engine: AsyncEngine, target: int) -> int:
    """Add warm schemas until `target` are waiting at head. Returns how many were added.

    One filler at a time (an advisory lock): several workers asked at once do not overfill.
    """
    added = 0
    async with engine.connect() as guard:
        if not await guard.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _FILL_LOCK}):
            return 0
        try:
            while await pool_size(engine) < target:
                tenant_id = uuid7()
                async with engine.begin() as conn:
                    revision = await conn.run_sync(create_tenant_objects_sync, tenant_id)
                    await conn.execute(
                        insert(TenantSchemaPool).values(id=tenant_id, revision=revision)
                    )
                added += 1
        finally:
            await guard.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _FILL_LOCK})
            await guard.commit()
    return added
