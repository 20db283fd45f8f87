"""Tenant track base: an empty tenant schema with its own version table.

Revision ID: t0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "t0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The schema itself is created by env.py; domain tables arrive with their issues.
    pass


def downgrade() -> None:
    pass
