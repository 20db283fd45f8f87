"""reconcilable ledger accounts: their lines become open items in settlements

Revision ID: t0008
Revises: t0007
Create Date: 2026-12-05 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "t0008"
down_revision: str | None = "t0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str:
    # Column and constraint DDL is not translated from the `tenant` placeholder (table DDL
    # is): name the real schema the connection routes the placeholder to.
    routes = op.get_bind().get_execution_options()["schema_translate_map"]
    return str(routes["tenant"])


def upgrade() -> None:
    op.add_column(
        "ledger_accounts",
        sa.Column("reconcilable", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema=_schema(),
    )
    op.add_column(
        "settlements_items", sa.Column("ledger_line_id", sa.BigInteger(), nullable=True),
        schema=_schema(),
    )  # fmt: skip
    op.create_unique_constraint(
        op.f("uq_settlements_items_ledger_line_id"), "settlements_items", ["ledger_line_id"],
        schema=_schema(),
    )  # fmt: skip
    op.drop_constraint(op.f("ck_settlements_items_kind"), "settlements_items", schema=_schema())
    op.create_check_constraint(
        op.f("ck_settlements_items_kind"), "settlements_items",
        "kind IN ('invoice', 'bill', 'expected', 'ledger')", schema=_schema(),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_constraint(op.f("ck_settlements_items_kind"), "settlements_items", schema=_schema())
    items = sa.table("settlements_items", sa.column("kind"), schema=_schema())
    op.execute(items.delete().where(items.c.kind == "ledger"))
    op.create_check_constraint(
        op.f("ck_settlements_items_kind"), "settlements_items",
        "kind IN ('invoice', 'bill', 'expected')", schema=_schema(),
    )  # fmt: skip
    op.drop_constraint(
        op.f("uq_settlements_items_ledger_line_id"), "settlements_items", schema=_schema()
    )
    op.drop_column("settlements_items", "ledger_line_id", schema=_schema())
    op.drop_column("ledger_accounts", "reconcilable", schema=_schema())
