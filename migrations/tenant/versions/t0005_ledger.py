"""ledger: chart of accounts, journal, maintained balances, periods, rates, imports

Revision ID: t0005
Revises: t0004
Create Date: 2026-12-05 08:00:00.000000

The tables, then the functions and triggers that hold the ledger's invariants in the
database (`bpo.ledger.ddl.statements`; a later change to them comes in its own revision,
with CREATE OR REPLACE).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from bpo.ledger import ddl

revision: str = "t0005"
down_revision: str | None = "t0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "ledger_imports",
    "ledger_rates",
    "ledger_periods",
    "ledger_totals",
    "ledger_balances",
    "ledger_lines",
    "ledger_settings",
    "ledger_entries",
    "ledger_accounts",
)


def _schema() -> str:
    routes = op.get_bind().get_execution_options()["schema_translate_map"]
    return str(routes["tenant"])


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("status", sa.String(length=10), server_default="active", nullable=False),
        sa.Column("min_balance", sa.BigInteger(), nullable=True),
        sa.Column("max_balance", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
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
            "status IN ('active', 'closed')", name=op.f("ck_ledger_accounts_status")
        ),
        sa.CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'income', 'expense')",
            name=op.f("ck_ledger_accounts_type"),
        ),
        sa.CheckConstraint(
            "min_balance IS NULL OR max_balance IS NULL OR min_balance <= max_balance",
            name=op.f("ck_ledger_accounts_condition"),
        ),
        sa.CheckConstraint("parent_id <> id", name=op.f("ck_ledger_accounts_not_own_parent")),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_ledger_accounts_parent_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
        schema="tenant",
    )
    op.create_index(
        op.f("ix_ledger_accounts_parent_id"),
        "ledger_accounts",
        ["parent_id"],
        unique=False,
        schema="tenant",
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=20), server_default="api", nullable=False),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        sa.Column("draft_lines", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("posting_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
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
            "(status = 'posted') = (booked_at IS NOT NULL AND content_hash IS NOT NULL AND posting_id IS NOT NULL)",
            name=op.f("ck_ledger_entries_posted_fields"),
        ),
        sa.CheckConstraint(
            "source IN ('api', 'import', 'settlement', 'revaluation', 'reversal', 'opening', 'adjustment')",
            name=op.f("ck_ledger_entries_source"),
        ),
        sa.CheckConstraint("status IN ('draft', 'posted')", name=op.f("ck_ledger_entries_status")),
        sa.CheckConstraint("reverses_id <> id", name=op.f("ck_ledger_entries_not_own_reversal")),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["tenant.ledger_entries.id"],
            name=op.f("fk_ledger_entries_reverses_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("number", name=op.f("uq_ledger_entries_number")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_ledger_entries_reverses_id")),
        schema="tenant",
    )
    op.create_index(
        "ix_ledger_entries_effective_on_number",
        "ledger_entries",
        ["effective_on", "number"],
        unique=False,
        schema="tenant",
    )
    op.create_index(
        op.f("ix_ledger_entries_posting_id"),
        "ledger_entries",
        ["posting_id"],
        unique=False,
        schema="tenant",
    )
    op.create_index(
        op.f("ix_ledger_entries_reference"),
        "ledger_entries",
        ["reference"],
        unique=False,
        schema="tenant",
    )
    op.create_table(
        "ledger_imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="queued", nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("rows_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("rows_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("entries_posted", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
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
            "status IN ('queued', 'running', 'posted', 'failed')",
            name=op.f("ck_ledger_imports_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_imports")),
        schema="tenant",
    )
    op.create_table(
        "ledger_periods",
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_ledger_periods_status")),
        sa.CheckConstraint(
            "extract(day FROM starts_on) = 1", name=op.f("ck_ledger_periods_first_of_month")
        ),
        sa.PrimaryKeyConstraint("starts_on", name=op.f("pk_ledger_periods")),
        schema="tenant",
    )
    op.create_table(
        "ledger_rates",
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("rate", sa.Numeric(precision=24, scale=12), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("rate > 0", name=op.f("ck_ledger_rates_positive")),
        sa.PrimaryKeyConstraint("currency", "on_date", name=op.f("pk_ledger_rates")),
        schema="tenant",
    )
    op.create_table(
        "ledger_balances",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("debit", sa.BigInteger(), nullable=False),
        sa.Column("credit", sa.BigInteger(), nullable=False),
        sa.Column("functional", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_ledger_balances_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "currency", "on_date", name=op.f("pk_ledger_balances")
        ),
        schema="tenant",
    )
    op.create_index(
        "ix_ledger_balances_on_date", "ledger_balances", ["on_date"], unique=False, schema="tenant"
    )
    op.create_table(
        "ledger_lines",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("functional_amount", sa.BigInteger(), nullable=False),
        sa.Column("memo", sa.String(length=500), nullable=True),
        sa.Column("counterparty", sa.String(length=200), nullable=True),
        sa.Column(
            "tags",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "amount <> 0 OR functional_amount <> 0", name=op.f("ck_ledger_lines_not_empty")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_ledger_lines_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["tenant.ledger_entries.id"],
            name=op.f("fk_ledger_lines_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_lines")),
        schema="tenant",
    )
    op.create_index(
        "ix_ledger_lines_account_id_effective_on",
        "ledger_lines",
        ["account_id", "effective_on", "id"],
        unique=False,
        schema="tenant",
    )
    op.create_index(
        "ix_ledger_lines_entry_id_line_no",
        "ledger_lines",
        ["entry_id", "line_no"],
        unique=True,
        schema="tenant",
    )
    op.create_table(
        "ledger_settings",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("functional_currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column(
            "fiscal_year_start", sa.SmallInteger(), server_default=sa.text("1"), nullable=False
        ),
        sa.Column("lock_date", sa.Date(), nullable=True),
        sa.Column("fx_gain_account_id", sa.Uuid(), nullable=True),
        sa.Column("fx_loss_account_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "fiscal_year_start BETWEEN 1 AND 12", name=op.f("ck_ledger_settings_fiscal_year_start")
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_ledger_settings_single_row")),
        sa.ForeignKeyConstraint(
            ["fx_gain_account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_ledger_settings_fx_gain_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["fx_loss_account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_ledger_settings_fx_loss_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_settings")),
        schema="tenant",
    )
    op.create_table(
        "ledger_totals",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debit", sa.BigInteger(), nullable=False),
        sa.Column("credit", sa.BigInteger(), nullable=False),
        sa.Column("functional", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["tenant.ledger_accounts.id"],
            name=op.f("fk_ledger_totals_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", "currency", name=op.f("pk_ledger_totals")),
        schema="tenant",
    )

    for statement in ddl.statements(_schema()):
        op.execute(statement)


def downgrade() -> None:
    schema = _schema()
    for table in _TABLES:
        op.drop_table(table, schema="tenant")
    for function in ddl.FUNCTIONS:
        op.execute(f'DROP FUNCTION IF EXISTS "{schema}".{function}()')
