"""jobs: the outbox keeps the W3C trace context of the request that enqueued a job

Revision ID: p0018
Revises: p0017
Create Date: 2026-12-06 02:30:00.000000

With traces on (BPO_OTEL_ENDPOINT), a job's span continues the request's trace (issue 25).
NULL when the request was not traced. Adding a nullable column rewrites nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "p0018"
down_revision: str | None = "p0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column("trace_context", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="platform",
    )


def downgrade() -> None:
    op.drop_column("outbox", "trace_context", schema="platform")
