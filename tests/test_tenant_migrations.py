"""Migrations at scale: parallel, resumable, failures isolated and recorded; --check drift."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bpo.core.db import Database
from bpo.core.migrations import migrations_root
from bpo.core.tenant_migrations import (
    TenantMigration,
    check_drift,
    schema_revisions,
    tenant_head,
    upgrade_tenants,
)
from tests.support.tenants import make_tenant

NOTES_REVISION = '''"""add notes

Revision ID: t9001
Revises: {down}
"""
import sqlalchemy as sa
from alembic import op

revision = "t9001"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "notes",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        schema="tenant",
    )


def downgrade():
    op.drop_table("notes", schema="tenant")
'''

INDEX_REVISION = '''"""index notes

Revision ID: t9002
Revises: t9001
"""
from alembic import op

revision = "t9002"
down_revision = "t9001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_notes_body", "notes", ["body"], schema="tenant")


def downgrade():
    op.drop_index("ix_notes_body", table_name="notes", schema="tenant")
'''


@pytest.fixture
def track_with_two_more_revisions(tmp_path: Path) -> Path:
    """The real tenant track plus a two-operation change, in a scratch copy."""
    track = tmp_path / "tenant"
    shutil.copytree(migrations_root() / "tenant", track)
    down = tenant_head()
    (track / "versions" / "t9001_notes.py").write_text(NOTES_REVISION.format(down=down))
    (track / "versions" / "t9002_index.py").write_text(INDEX_REVISION)
    return track


async def test_a_failing_tenant_stops_neither_the_others_nor_the_rerun(
    db: Database, track_with_two_more_revisions: Path
) -> None:
    track = track_with_two_more_revisions
    tenants = [await make_tenant(db, f"firm-{i}") for i in range(5)]
    broken = tenants[2]
    # The cause: a table in the way of t9001 in one tenant only.
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f'CREATE TABLE "{broken.schema}".notes (x int)')

    drift = await check_drift(db.engine, track)
    assert set(drift.tenants_behind) == {t.schema for t in tenants}

    first = await upgrade_tenants(db.engine, concurrency=2, batch_size=2, location=track)
    assert first.head == "t9002"
    assert set(first.failed) == {broken.schema}
    assert "notes" in first.failed[broken.schema]
    assert set(first.upgraded) == {t.schema for t in tenants} - {broken.schema}
    revisions = await schema_revisions(db.engine)
    # Rolled back whole, not half-migrated: still at the real track's head.
    assert revisions[broken.schema] == tenant_head()
    assert all(revisions[t.schema] == "t9002" for t in tenants if t is not broken)
    async with db.sessionmaker() as session:
        status = await session.get(TenantMigration, broken.schema)
        assert status is not None
        assert status.last_error and "notes" in status.last_error
        assert status.migrated_at is None

    async with db.engine.begin() as conn:  # remove the cause
        await conn.exec_driver_sql(f'DROP TABLE "{broken.schema}".notes')

    second = await upgrade_tenants(db.engine, concurrency=2, batch_size=2, location=track)
    assert second.upgraded == [broken.schema]  # the others are skipped: already at head
    assert second.already_at_head == 4
    assert second.ok
    async with db.sessionmaker() as session:
        status = await session.get(TenantMigration, broken.schema)
        assert status is not None
        assert (status.revision, status.last_error) == ("t9002", None)
        rows = (await session.scalars(select(TenantMigration.revision))).all()
        assert rows == ["t9002"] * 5
    async with db.engine.connect() as conn:  # the index of t9002 really exists everywhere
        count = await conn.scalar(
            text("SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_notes_body'")
        )
    assert count == 5

    drift = await check_drift(db.engine, track)
    assert drift.tenants_behind == {}
    # The sample revisions add a table no model declares: the check names it.
    assert {d[0] for d in drift.tenant_model_drift} == {"remove_table", "remove_index"}
    assert "notes" in str(drift.tenant_model_drift)


async def test_check_changes_nothing(db: Database, track_with_two_more_revisions: Path) -> None:
    tenant = await make_tenant(db, "still-behind")
    before = await schema_revisions(db.engine)
    drift = await check_drift(db.engine, track_with_two_more_revisions)
    assert drift.tenants_behind == {tenant.schema: tenant_head()}
    assert not drift.clean
    assert await schema_revisions(db.engine) == before
    async with db.engine.connect() as conn:
        scratch = await conn.scalar(
            text("SELECT count(*) FROM pg_namespace WHERE nspname = :n"),
            {"n": "tenant_" + "0" * 32},
        )
    assert scratch == 0


async def test_tenant_models_and_track_agree(db: Database) -> None:
    drift = await check_drift(db.engine)
    assert drift.tenant_model_drift == []
    assert drift.platform_model_drift == []
    assert drift.platform_revision == drift.platform_head
