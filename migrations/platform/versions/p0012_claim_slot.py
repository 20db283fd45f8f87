"""claims: a staff member's capacity enforced in the claiming transaction (claim_slot)

Revision ID: p0012
Revises: p0011
Create Date: 2026-12-04 18:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "p0012"
down_revision: str | None = "p0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Claims of one staff member queue on a transaction lock (across tenants, so the count
    # crosses row-level security: SECURITY DEFINER). The count then runs with a fresh
    # snapshot (a volatile function's statement sees what committed before it began), so it
    # includes every claim that committed while this one waited: two claims arriving
    # together cannot both take the last place.
    op.execute(
        """
        CREATE FUNCTION platform.claim_slot(p_staff uuid) RETURNS integer
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $$
        DECLARE
            held integer;
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtextextended('bpo-claim:' || p_staff, 0));
            -- Status and lease are filters, not conditions: the only index that fits is
            -- the staff member's own (ix_work_queue_claimed_by); with the conditions, a
            -- stale statistic made the whole lease index look cheaper (1 ms at 5,000).
            SELECT count(*) FILTER (WHERE status IN ('in_progress', 'in_review')
                                      AND lease_until > now()) INTO held
              FROM platform.work_queue WHERE claimed_by = p_staff;
            RETURN held;
        END $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION platform.claim_slot(uuid) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION platform.claim_slot(uuid) TO bpo_tenants")


def downgrade() -> None:
    op.execute("DROP FUNCTION platform.claim_slot(uuid)")
