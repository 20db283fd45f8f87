"""Running the two Alembic tracks: `platform` once, then `tenant` once per tenant schema.

The pieces live below: one track at a time in `core.tracks`, the tenant track at scale in
`core.tenant_migrations`; this module puts them in order (and names them for callers)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.core.db import Database
from bpo.core.tenant_migrations import MigrationReport, upgrade_schema_sync, upgrade_tenants
from bpo.core.tracks import (
    alembic_config,
    current_revision,
    head_revision,
    include_platform_name,
    migrations_root,
    platform_drift,
    platform_drift_on,
    upgrade_platform,
)

__all__ = [
    "alembic_config",
    "current_revision",
    "head_revision",
    "include_platform_name",
    "migrate_all",
    "migrate_database",
    "migrations_root",
    "platform_drift",
    "platform_drift_on",
    "upgrade_platform",
    "upgrade_tenant",
]


async def upgrade_tenant(engine: AsyncEngine, schema: str) -> str:
    """Replay the tenant track on one schema (see core.tenant_migrations for many)."""
    async with engine.begin() as conn:
        return await conn.run_sync(upgrade_schema_sync, schema)


async def migrate_all(engine: AsyncEngine) -> MigrationReport:
    """Upgrade `platform`, then every tenant schema in parallel (failures are reported)."""
    await upgrade_platform(engine)
    return await upgrade_tenants(engine)


async def migrate_database(url: str) -> MigrationReport:
    """`migrate_all` on a short-lived engine for `url` (CLI, test and benchmark set-up)."""
    db = Database(url)
    try:
        return await migrate_all(db.engine)
    finally:
        await db.dispose()
