"""compliance: obligations, deadlines, filings (maker-checker), counterparties, screening hits

Revision ID: t0009
Revises: t0008
Create Date: 2026-12-05 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "t0009"
down_revision: str | None = "t0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "compliance_hits",
    "compliance_counterparties",
    "compliance_filings",
    "compliance_deadlines",
    "compliance_obligations",
    "compliance_settings",
)


def upgrade() -> None:
    op.create_table(
        "compliance_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_compliance_settings_one_row")),
        sa.CheckConstraint(
            "threshold IS NULL OR threshold BETWEEN 0.5 AND 1",
            name=op.f("ck_compliance_settings_threshold"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_settings")),
        schema="tenant",
    )
    op.create_table(
        "compliance_obligations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("regulator", sa.String(length=200), nullable=False),
        sa.Column("jurisdiction", sa.String(length=10), nullable=False),
        sa.Column("form", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("rrule", sa.String(length=500), nullable=False),
        sa.Column("anchor", sa.Date(), nullable=False),
        sa.Column("offset_days", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("offset_months", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("roll", sa.String(length=20), server_default="following", nullable=False),
        sa.Column("lead_days", sa.Integer(), server_default=sa.text("14"), nullable=False),
        sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column(
            "evidence_classes",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("open_request", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=10), server_default="active", nullable=False),
        sa.Column("horizon_until", sa.Date(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "roll IN ('following', 'preceding', 'modified_following', 'none')",
            name=op.f("ck_compliance_obligations_roll"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'retired')", name=op.f("ck_compliance_obligations_status")
        ),
        sa.CheckConstraint(
            "lead_days BETWEEN 0 AND 366", name=op.f("ck_compliance_obligations_lead_days")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_obligations")),
        schema="tenant",
    )
    op.create_table(
        "compliance_deadlines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("obligation_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("nominal", sa.Date(), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("rolled", sa.String(length=200), nullable=True),
        sa.Column("remind_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="upcoming", nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("filing_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('upcoming', 'due_soon', 'overdue', 'filed', 'cancelled')",
            name=op.f("ck_compliance_deadlines_status"),
        ),
        sa.ForeignKeyConstraint(
            ["obligation_id"],
            ["tenant.compliance_obligations.id"],
            name=op.f("fk_compliance_deadlines_obligation_id_compliance_obligations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_deadlines")),
        sa.UniqueConstraint(
            "obligation_id", "period", name=op.f("uq_compliance_deadlines_obligation_id_period")
        ),
        schema="tenant",
    )
    op.create_index(
        "ix_compliance_deadlines_due",
        "compliance_deadlines",
        ["due", "status"],
        unique=False,
        schema="tenant",
    )
    op.create_table(
        "compliance_filings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("obligation_id", sa.Uuid(), nullable=True),
        sa.Column("deadline_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("period", sa.Date(), nullable=True),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=10), server_default="draft", nullable=False),
        sa.Column("maker", sa.String(length=200), nullable=False),
        sa.Column("submitted_hash", sa.String(length=64), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checker", sa.String(length=200), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "rejections",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("regulator_reference", sa.String(length=200), nullable=True),
        sa.Column("filed_on", sa.Date(), nullable=True),
        sa.Column("filed_by", sa.String(length=200), nullable=True),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'submitted', 'approved', 'rejected', 'filed', 'locked')",
            name=op.f("ck_compliance_filings_status"),
        ),
        sa.CheckConstraint(
            "checker IS NULL OR checker <> maker", name=op.f("ck_compliance_filings_four_eyes")
        ),
        sa.ForeignKeyConstraint(
            ["deadline_id"],
            ["tenant.compliance_deadlines.id"],
            name=op.f("fk_compliance_filings_deadline_id_compliance_deadlines"),
        ),
        sa.ForeignKeyConstraint(
            ["obligation_id"],
            ["tenant.compliance_obligations.id"],
            name=op.f("fk_compliance_filings_obligation_id_compliance_obligations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_filings")),
        schema="tenant",
    )
    op.create_table(
        "compliance_counterparties",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column(
            "aliases",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("birth_date", sa.String(length=10), nullable=True),
        sa.Column(
            "identifiers",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("screened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("screened_version", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('person', 'organization')", name=op.f("ck_compliance_counterparties_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_counterparties")),
        schema="tenant",
    )
    op.create_table(
        "compliance_hits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("counterparty_id", sa.Uuid(), nullable=False),
        sa.Column("list_version", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=100), nullable=False),
        sa.Column("entry_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("listed_name", sa.String(length=500), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("explanation", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('open', 'true_match', 'false_positive')",
            name=op.f("ck_compliance_hits_status"),
        ),
        sa.ForeignKeyConstraint(
            ["counterparty_id"],
            ["tenant.compliance_counterparties.id"],
            name=op.f("fk_compliance_hits_counterparty_id_compliance_counterparties"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_hits")),
        sa.UniqueConstraint(
            "counterparty_id",
            "source_id",
            "entry_fingerprint",
            name=op.f("uq_compliance_hits_counterparty_id_source_id_entry_fingerprint"),
        ),
        schema="tenant",
    )
    op.create_index(
        "ix_compliance_hits_status",
        "compliance_hits",
        ["status", "created_at"],
        unique=False,
        schema="tenant",
    )


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table, schema="tenant")
