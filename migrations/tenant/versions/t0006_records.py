"""records: record classes, documents and their versions, legal holds, erasures, exports

Revision ID: t0006
Revises: t0005
Create Date: 2026-12-05 12:00:00.000000

The tables, then the functions and triggers that hold record keeping's rules in the
database (`bpo.records.ddl.statements`; a later change to them comes in its own revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from bpo.records import ddl

revision: str = "t0006"
down_revision: str | None = "t0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "records_exports",
    "records_erasures",
    "records_versions",
    "records_holds",
    "records_documents",
    "records_classes",
)
_FUNCTIONS = (
    "records_document_guard()",
    "records_version_guard()",
    "records_hold_guard()",
    "records_class_guard()",
    "records_search()",
)


def _schema() -> str:
    routes = op.get_bind().get_execution_options()["schema_translate_map"]
    return str(routes["tenant"])


def upgrade() -> None:
    op.create_table(
        "records_classes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("retention_years", sa.Integer(), nullable=True),
        sa.Column(
            "retention_after", sa.String(length=16), server_default="document_date", nullable=False
        ),
        sa.Column("fiscal_year_end", sa.String(length=5), server_default="12-31", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
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
            "fiscal_year_end ~ '^[0-1][0-9]-[0-3][0-9]$'",
            name=op.f("ck_records_classes_fiscal_year_end"),
        ),
        sa.CheckConstraint(
            "mode IN ('governance', 'compliance')", name=op.f("ck_records_classes_mode")
        ),
        sa.CheckConstraint(
            "retention_after IN ('document_date', 'fiscal_year_end', 'received')",
            name=op.f("ck_records_classes_retention_after"),
        ),
        sa.CheckConstraint(
            "retention_years IS NULL OR retention_years BETWEEN 0 AND 200",
            name=op.f("ck_records_classes_years"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_classes")),
        sa.UniqueConstraint("code", name=op.f("uq_records_classes_code")),
        schema="tenant",
    )
    op.create_table(
        "records_erasures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column(
            "erased", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column(
            "blocked", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_erasures")),
        schema="tenant",
    )
    op.create_table(
        "records_exports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="queued", nullable=False),
        sa.Column("selection", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("documents", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("size", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_exports")),
        schema="tenant",
    )
    op.create_table(
        "records_documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=64), server_default="", nullable=False),
        sa.Column("counterparty", sa.String(length=300), nullable=True),
        sa.Column("document_date", sa.Date(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column(
            "tags", postgresql.ARRAY(sa.String(length=64)), server_default="{}", nullable=False
        ),
        sa.Column(
            "custom_fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "links", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("retain_until", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("current_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("extracted_text", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "search", postgresql.TSVECTOR(), server_default=sa.text("''::tsvector"), nullable=False
        ),
        sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disposal_reason", sa.Text(), nullable=True),
        sa.Column("certificate_id", sa.Uuid(), nullable=True),
        sa.Column("redacted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
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
            "mode IN ('governance', 'compliance')", name=op.f("ck_records_documents_mode")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'disposed')", name=op.f("ck_records_documents_status")
        ),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["tenant.records_classes.id"],
            name=op.f("fk_records_documents_class_id_records_classes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_documents")),
        schema="tenant",
    )
    op.create_index(
        "ix_records_documents_class_date",
        "records_documents",
        ["class_id", "document_date"],
        unique=False,
        schema="tenant",
    )
    op.create_index(
        "ix_records_documents_counterparty",
        "records_documents",
        ["counterparty"],
        unique=False,
        schema="tenant",
    )
    op.create_index(
        "ix_records_documents_links",
        "records_documents",
        ["links"],
        unique=False,
        schema="tenant",
        postgresql_using="gin",
    )
    op.create_index(
        "ix_records_documents_retain_until",
        "records_documents",
        ["retain_until"],
        unique=False,
        schema="tenant",
    )
    op.create_index(
        "ix_records_documents_search",
        "records_documents",
        ["search"],
        unique=False,
        schema="tenant",
        postgresql_using="gin",
    )
    op.create_index(
        "ix_records_documents_tags",
        "records_documents",
        ["tags"],
        unique=False,
        schema="tenant",
        postgresql_using="gin",
    )
    op.create_table(
        "records_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("document_ids", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("counterparty", sa.String(length=300), nullable=True),
        sa.Column("class_id", sa.Uuid(), nullable=True),
        sa.Column("date_from", sa.Date(), nullable=True),
        sa.Column("date_to", sa.Date(), nullable=True),
        sa.Column("placed_by", sa.String(length=200), nullable=False),
        sa.Column(
            "placed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=200), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "cardinality(document_ids) > 0 OR counterparty IS NOT NULL OR class_id IS NOT NULL OR date_from IS NOT NULL OR date_to IS NOT NULL",
            name=op.f("ck_records_holds_scope"),
        ),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["tenant.records_classes.id"],
            name=op.f("fk_records_holds_class_id_records_classes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_holds")),
        schema="tenant",
    )
    op.create_table(
        "records_versions",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("declared_type", sa.String(length=200), nullable=False),
        sa.Column("sniffed_type", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=True),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("storage_version", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("content_removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["tenant.records_documents.id"],
            name=op.f("fk_records_versions_document_id_records_documents"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("document_id", "number", name=op.f("pk_records_versions")),
        schema="tenant",
    )
    op.create_index(
        "ix_records_versions_sha256", "records_versions", ["sha256"], unique=False, schema="tenant"
    )

    for statement in ddl.statements(_schema()):
        op.execute(statement)


def downgrade() -> None:
    schema = _schema()
    # The functions first (with their triggers): one takes a document row as its argument.
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".records_holds_on CASCADE')
    for function in _FUNCTIONS:
        op.execute(f'DROP FUNCTION IF EXISTS "{schema}".{function} CASCADE')
    for table in _TABLES:
        op.drop_table(table, schema="tenant")
