"""tenancy: warm pool, per-tenant migration status, immutable slugs, the tenants group role

Revision ID: p0002
Revises: p0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "p0002"
down_revision: str | None = "p0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLUG_PATTERN = "^[a-z][a-z0-9-]{1,38}[a-z0-9]$"


def upgrade() -> None:
    op.create_table(
        "tenant_migrations",
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("revision", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("migrated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("schema_name", name=op.f("pk_tenant_migrations")),
        schema="platform",
    )
    op.create_table(
        "tenant_schema_pool",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_schema_pool")),
        schema="platform",
    )
    op.add_column(
        "tenants",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        schema="platform",
    )
    op.add_column(
        "tenants",
        sa.Column("last_export_at", sa.DateTime(timezone=True), nullable=True),
        schema="platform",
    )
    op.add_column(
        "tenants",
        sa.Column("last_export_sha256", sa.String(length=64), nullable=True),
        schema="platform",
    )
    # Slugs: start with a letter, 3-40 characters; never change once given.
    op.drop_constraint("ck_tenants_slug_format", "tenants", schema="platform")
    op.create_check_constraint(
        op.f("ck_tenants_slug_format"), "tenants", f"slug ~ '{SLUG_PATTERN}'", schema="platform"
    )
    op.execute(
        """
        CREATE FUNCTION platform.refuse_slug_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'a tenant slug is immutable (% -> %)', OLD.slug, NEW.slug
                USING ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER slug_is_immutable BEFORE UPDATE OF slug ON platform.tenants
            FOR EACH ROW WHEN (OLD.slug IS DISTINCT FROM NEW.slug)
            EXECUTE FUNCTION platform.refuse_slug_change();
        """
    )
    # Tenant roles are members of this group; it grants nothing yet. Roles are cluster-wide,
    # so it may exist already (another database on the same server).
    op.execute(
        """
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bpo_tenants') THEN
                CREATE ROLE bpo_tenants NOLOGIN;
            END IF;
        END $$
        """
    )
    op.execute("REVOKE ALL ON SCHEMA platform FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP TRIGGER slug_is_immutable ON platform.tenants")
    op.execute("DROP FUNCTION platform.refuse_slug_change()")
    op.drop_constraint("ck_tenants_slug_format", "tenants", schema="platform")
    op.create_check_constraint(
        op.f("ck_tenants_slug_format"),
        "tenants",
        "slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'",
        schema="platform",
    )
    op.drop_column("tenants", "last_export_sha256", schema="platform")
    op.drop_column("tenants", "last_export_at", schema="platform")
    op.drop_column("tenants", "updated_at", schema="platform")
    op.drop_table("tenant_schema_pool", schema="platform")
    op.drop_table("tenant_migrations", schema="platform")
