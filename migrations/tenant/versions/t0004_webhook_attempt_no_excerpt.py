"""webhook attempts keep the answer's status and timing only (no response excerpt)

Revision ID: t0004
Revises: t0003
Create Date: 2026-12-04 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "t0004"
down_revision: str | None = "t0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str:
    # Column DDL is not translated from the `tenant` placeholder (table DDL is): name the
    # real schema the connection routes the placeholder to.
    routes = op.get_bind().get_execution_options()["schema_translate_map"]
    return str(routes["tenant"])


def upgrade() -> None:
    # A receiver's answer shown back to the firm made internal services readable (SSRF).
    op.drop_column("webhook_attempts", "response_excerpt", schema=_schema())


def downgrade() -> None:
    op.add_column(
        "webhook_attempts",
        sa.Column("response_excerpt", sa.Text(), server_default="", nullable=False),
        schema=_schema(),
    )
