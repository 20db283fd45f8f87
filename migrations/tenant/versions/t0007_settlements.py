"""settlements: bank accounts, statement imports, statements and lines, open items, matches

Revision ID: t0007
Revises: t0006
Create Date: 2026-12-05 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "t0007"
down_revision: str | None = "t0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "settlements_matches",
    "settlements_lines",
    "settlements_statements",
    "settlements_items",
    "settlements_imports",
    "settlements_bank_accounts",
)


def upgrade() -> None:
    op.create_table(
        "settlements_bank_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("account_number", sa.String(length=34), nullable=True),
        sa.Column("identity", sa.String(length=34), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="unconfirmed", nullable=False),
        sa.Column("cash_account_id", sa.Uuid(), nullable=True),
        sa.Column("suspense_account_id", sa.Uuid(), nullable=True),
        sa.Column("fee_account_id", sa.Uuid(), nullable=True),
        sa.Column(
            "rules",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("csv_mapping", postgresql.JSONB(astext_type=Text()), nullable=True),
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
            "status = 'unconfirmed' OR (cash_account_id IS NOT NULL AND suspense_account_id IS NOT NULL)",
            name=op.f("ck_settlements_bank_accounts_confirmed_accounts"),
        ),
        sa.CheckConstraint(
            "status IN ('unconfirmed', 'active')", name=op.f("ck_settlements_bank_accounts_status")
        ),
        sa.CheckConstraint(
            "iban IS NOT NULL OR account_number IS NOT NULL",
            name=op.f("ck_settlements_bank_accounts_identity"),
        ),
        sa.ForeignKeyConstraint(
            ["cash_account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_settlements_bank_accounts_cash_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["fee_account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_settlements_bank_accounts_fee_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["suspense_account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_settlements_bank_accounts_suspense_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements_bank_accounts")),
        sa.UniqueConstraint(
            "identity", "currency", name=op.f("uq_settlements_bank_accounts_identity_currency")
        ),
        schema="tenant",
    )
    op.create_table(
        "settlements_imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_account_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=10), server_default="queued", nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("lines_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lines_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lines_imported", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lines_skipped", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "statement_ids",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "warnings",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_settlements_imports_status"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["tenant.settlements_bank_accounts.id"],
            name=op.f("fk_settlements_imports_bank_account_id_settlements_bank_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements_imports")),
        schema="tenant",
    )
    op.create_table(
        "settlements_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("counterparty", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("end_to_end_id", sa.String(length=100), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_min", sa.BigInteger(), nullable=True),
        sa.Column("amount_max", sa.BigInteger(), nullable=True),
        sa.Column("window_days", sa.Integer(), server_default=sa.text("10"), nullable=False),
        sa.Column("open_amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="open", nullable=False),
        sa.Column("bank_account_id", sa.Uuid(), nullable=True),
        sa.Column("control_account_id", sa.Uuid(), nullable=False),
        sa.Column("counter_account_id", sa.Uuid(), nullable=True),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
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
            "kind IN ('invoice', 'bill', 'expected')", name=op.f("ck_settlements_items_kind")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'partly_paid', 'paid', 'written_off', 'cancelled')",
            name=op.f("ck_settlements_items_status"),
        ),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_settlements_items_amount")),
        sa.CheckConstraint(
            "amount_min IS NULL OR amount_min <= amount_max",
            name=op.f("ck_settlements_items_range"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["tenant.settlements_bank_accounts.id"],
            name=op.f("fk_settlements_items_bank_account_id_settlements_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["control_account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_settlements_items_control_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["counter_account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_settlements_items_counter_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements_items")),
        schema="tenant",
    )
    op.create_index(
        "ix_settlements_items_number",
        "settlements_items",
        ["kind", "number"],
        unique=True,
        schema="tenant",
    )
    op.create_index(
        "ix_settlements_items_open",
        "settlements_items",
        ["status", "currency", "due_date"],
        unique=False,
        schema="tenant",
    )
    op.create_table(
        "settlements_matches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_account_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="suggested", nullable=False),
        sa.Column("rule", sa.String(length=30), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column(
            "reasons",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("lines", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("fee", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("write_off_account_id", sa.Uuid(), nullable=True),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.Column("reversal_entry_id", sa.Uuid(), nullable=True),
        sa.Column("auto", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('suggested', 'confirmed', 'rejected', 'undone')",
            name=op.f("ck_settlements_matches_status"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["tenant.settlements_bank_accounts.id"],
            name=op.f("fk_settlements_matches_bank_account_id_settlements_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["write_off_account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_settlements_matches_write_off_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements_matches")),
        schema="tenant",
    )
    op.create_index(
        "ix_settlements_matches_status",
        "settlements_matches",
        ["bank_account_id", "status"],
        unique=False,
        schema="tenant",
    )
    op.create_table(
        "settlements_statements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_account_id", sa.Uuid(), nullable=False),
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("bank_statement_id", sa.String(length=100), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("opening_balance", sa.BigInteger(), nullable=True),
        sa.Column("opening_date", sa.Date(), nullable=True),
        sa.Column("closing_balance", sa.BigInteger(), nullable=True),
        sa.Column("closing_date", sa.Date(), nullable=True),
        sa.Column("line_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("continuity", sa.String(length=10), server_default="unchecked", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "continuity IN ('first', 'continuous', 'gap', 'unchecked')",
            name=op.f("ck_settlements_statements_continuity"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["tenant.settlements_bank_accounts.id"],
            name=op.f("fk_settlements_statements_bank_account_id_settlements_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["tenant.settlements_imports.id"],
            name=op.f("fk_settlements_statements_import_id_settlements_imports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements_statements")),
        sa.UniqueConstraint(
            "bank_account_id",
            "fingerprint",
            name=op.f("uq_settlements_statements_bank_account_id_fingerprint"),
        ),
        schema="tenant",
    )
    op.create_table(
        "settlements_lines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_account_id", sa.Uuid(), nullable=False),
        sa.Column("statement_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("open_amount", sa.BigInteger(), nullable=False),
        sa.Column("bank_reference", sa.String(length=100), nullable=True),
        sa.Column("end_to_end_id", sa.String(length=100), nullable=True),
        sa.Column("creditor_reference", sa.String(length=100), nullable=True),
        sa.Column("counterparty_name", sa.String(length=200), nullable=True),
        sa.Column("counterparty_account", sa.String(length=100), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("reversal", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("return_code", sa.String(length=35), nullable=True),
        sa.Column("bank_code", sa.String(length=60), nullable=True),
        sa.Column("status", sa.String(length=15), server_default="unmatched", nullable=False),
        sa.Column("posted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('unmatched', 'partly_matched', 'matched', 'written_off')",
            name=op.f("ck_settlements_lines_status"),
        ),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_settlements_lines_amount")),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["tenant.settlements_bank_accounts.id"],
            name=op.f("fk_settlements_lines_bank_account_id_settlements_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["tenant.settlements_statements.id"],
            name=op.f("fk_settlements_lines_statement_id_settlements_statements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements_lines")),
        sa.UniqueConstraint(
            "bank_account_id",
            "fingerprint",
            name=op.f("uq_settlements_lines_bank_account_id_fingerprint"),
        ),
        schema="tenant",
    )
    op.create_index(
        "ix_settlements_lines_open",
        "settlements_lines",
        ["bank_account_id", "status", "booking_date"],
        unique=False,
        schema="tenant",
    )
    op.create_index(
        "ix_settlements_lines_statement",
        "settlements_lines",
        ["statement_id", "seq"],
        unique=False,
        schema="tenant",
    )


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table, schema="tenant")
