"""identity: signing keys, token events, API client scopes and secret rotation

Revision ID: p0003
Revises: p0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "p0003"
down_revision: str | None = "p0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=10), server_default="ES256", nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('next', 'active', 'previous', 'retired')",
            name=op.f("ck_signing_keys_status"),
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
        schema="platform",
    )
    op.create_index(
        "uq_signing_keys_live_status",
        "signing_keys",
        ["status"],
        unique=True,
        schema="platform",
        postgresql_where=sa.text("status <> 'retired'"),
    )
    op.create_table(
        "token_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("result", sa.String(length=10), nullable=False),
        sa.Column("grant_type", sa.String(length=60), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("jti", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=60), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.CheckConstraint("result IN ('issued', 'refused')", name=op.f("ck_token_events_result")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_events")),
        schema="platform",
    )
    op.create_index(
        "ix_token_events_client_at", "token_events", ["client_id", "at"], schema="platform"
    )
    op.add_column(
        "api_clients",
        sa.Column("previous_secret_digest", sa.LargeBinary(length=32), nullable=True),
        schema="platform",
    )
    op.add_column(
        "api_clients",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        schema="platform",
    )
    op.add_column(
        "api_clients",
        sa.Column(
            "scopes", postgresql.ARRAY(sa.String(length=40)), server_default="{}", nullable=False
        ),
        schema="platform",
    )
    op.add_column(
        "api_clients",
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        schema="platform",
    )


def downgrade() -> None:
    for column in ("status", "scopes", "previous_secret_expires_at", "previous_secret_digest"):
        op.drop_column("api_clients", column, schema="platform")
    op.drop_index("ix_token_events_client_at", table_name="token_events", schema="platform")
    op.drop_table("token_events", schema="platform")
    op.drop_index("uq_signing_keys_live_status", table_name="signing_keys", schema="platform")
    op.drop_table("signing_keys", schema="platform")
