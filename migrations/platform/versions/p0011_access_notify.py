"""access changes are announced: NOTIFY bpo_access at every commit that changes who may call

Revision ID: p0011
Revises: p0010
Create Date: 2026-12-04 18:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "p0011"
down_revision: str | None = "p0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table the guard's access statement reads (identity/guards.py). API processes cache
# its answers and empty the cache when this channel speaks (identity/standing.py).
TABLES = ("users", "api_clients", "memberships", "staff_assignments", "tenants", "revoked_tokens")


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION platform.announce_access_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('bpo_access', TG_TABLE_NAME);  -- delivered at commit, deduplicated
            RETURN NULL;
        END $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER access_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
            f" ON platform.{table} FOR EACH STATEMENT"
            f" EXECUTE FUNCTION platform.announce_access_change()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER access_changed ON platform.{table}")
    op.execute("DROP FUNCTION platform.announce_access_change()")
