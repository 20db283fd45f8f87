"""compliance: sanctions list versions and their entries (shared by every firm, read-only
to tenant roles); the `screenings` meter

Revision ID: p0017
Revises: p0016
Create Date: 2026-12-05 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "p0017"
down_revision: str | None = "p0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sanctions_lists",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("published_on", sa.Date(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("aliases", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("changed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("removed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="current", nullable=False),
        sa.Column("firms_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("firms_screened", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("loaded_by", sa.String(length=200), nullable=False),
        sa.Column(
            "loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('current', 'superseded')", name=op.f("ck_sanctions_lists_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sanctions_lists")),
        schema="platform",
    )
    op.create_index(
        "ix_sanctions_lists_source",
        "sanctions_lists",
        ["source", "loaded_at"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "sanctions_entries",
        sa.Column("list_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column(
            "aliases",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "countries",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "birth_dates",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "identifiers",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "programs",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("remarks", sa.Text(), server_default="", nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["platform.sanctions_lists.id"],
            name=op.f("fk_sanctions_entries_list_id_sanctions_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "source_id", name=op.f("pk_sanctions_entries")),
        schema="platform",
    )
    # Every firm screens against the same lists: its role reads them, never writes.
    op.execute(
        "GRANT SELECT ON platform.sanctions_lists, platform.sanctions_entries TO bpo_tenants"
    )
    op.execute(
        "INSERT INTO platform.meters (key, name, unit, aggregation, stripe_meter) VALUES"
        " ('screenings', 'Counterparty screenings', 'screening', 'sum', 'bpo_screenings')"
        " ON CONFLICT (key) DO NOTHING"
    )
    op.execute(
        """
        INSERT INTO platform.plan_prices (plan, meter, included, tiers)
        SELECT v.plan, 'screenings', v.included, CAST(v.tiers AS jsonb)
          FROM (VALUES ('starter', 500, '[{"up_to": null, "unit_amount": "2"}]'),
                       ('growth', 20000, '[{"up_to": null, "unit_amount": "0.5"}]'))
               AS v(plan, included, tiers)
         WHERE v.plan IN (SELECT key FROM platform.plans)
        ON CONFLICT (plan, meter) DO NOTHING
        """
    )


def downgrade() -> None:
    op.execute("DELETE FROM platform.plan_prices WHERE meter = 'screenings'")
    op.execute("DELETE FROM platform.meters WHERE key = 'screenings'")
    op.drop_table("sanctions_entries", schema="platform")
    op.drop_table("sanctions_lists", schema="platform")
