"""Both Alembic tracks reach head, match the models, and re-run as no-ops."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from bpo.core.db import Database
from bpo.core.migrations import (
    current_revision,
    head_revision,
    platform_drift,
    platform_drift_on,
    upgrade_platform,
    upgrade_tenant,
)


async def test_platform_is_at_head(db: Database) -> None:
    head = head_revision("platform")
    assert head is not None
    assert await current_revision(db.engine) == head
    await upgrade_platform(db.engine)  # again: nothing to do, no error
    assert await current_revision(db.engine) == head


async def test_platform_models_and_migrations_do_not_drift(db: Database) -> None:
    assert await platform_drift(db.engine) == []


async def test_drift_is_detected_when_a_column_is_missing(db: Database) -> None:
    async with db.engine.connect() as conn:
        trans = await conn.begin()
        await conn.execute(text("ALTER TABLE platform.users DROP COLUMN status"))
        diffs = await conn.run_sync(platform_drift_on)
        await trans.rollback()
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "users", "status")]
    assert await platform_drift(db.engine) == []


async def test_tenant_track_builds_a_schema_at_head(db: Database) -> None:
    schema = f"tenant_{uuid.uuid4().hex}"
    try:
        await upgrade_tenant(db.engine, schema)
        await upgrade_tenant(db.engine, schema)  # idempotent
        assert await current_revision(db.engine, schema) == head_revision("tenant")
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def test_tenant_track_refuses_a_schema_name_not_derived_from_an_id(db: Database) -> None:
    import pytest

    with pytest.raises(ValueError, match="not a tenant schema name"):
        await upgrade_tenant(db.engine, "public; DROP SCHEMA platform")
    assert await current_revision(db.engine) == head_revision("platform")
