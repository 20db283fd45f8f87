"""billing: hard and soft quotas per plan and meter, plan-change history, the quota lock

Revision ID: p0010
Revises: p0009
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bpo.core.ids import uuid7

revision: str = "p0010"
down_revision: str | None = "p0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "plan_prices",
        sa.Column("quota", sa.Numeric(precision=20, scale=6), nullable=True),
        schema="platform",
    )
    op.add_column(
        "plan_prices",
        sa.Column("quota_kind", sa.String(length=4), nullable=True),
        schema="platform",
    )
    op.create_check_constraint(
        "quota_known",
        "plan_prices",
        "(quota IS NULL) = (quota_kind IS NULL) AND quota_kind IN ('hard', 'soft') AND quota >= 0",
        schema="platform",
    )
    op.create_table(
        "plan_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("plan", sa.String(length=40), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan"], ["platform.plans.key"], name=op.f("fk_plan_changes_plan_plans")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["platform.tenants.id"],
            name=op.f("fk_plan_changes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_changes")),
        schema="platform",
    )
    op.create_index(
        "ix_plan_changes_tenant_effective",
        "plan_changes",
        ["tenant_id", "effective_at"],
        unique=False,
        schema="platform",
    )
    for statement in _UPGRADE_DATA + _QUOTA_LOCK:
        op.execute(statement)
    _backfill_plan_changes()


def _backfill_plan_changes() -> None:
    """Every existing subscription's plan, in force since it was created (no earlier
    history was kept); ids made in Python, time-ordered like every other."""
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT tenant_id, plan, created_at FROM platform.subscriptions"))
    for tenant_id, plan, created_at in rows.all():
        conn.execute(
            sa.text(
                "INSERT INTO platform.plan_changes (id, tenant_id, plan, changed_at, effective_at)"
                " VALUES (:id, :tenant, :plan, :at,"
                " date_trunc('hour', CAST(:at AS timestamptz), 'UTC'))"
            ),
            {"id": uuid7(), "tenant": tenant_id, "plan": plan, "at": created_at},
        )


_UPGRADE_DATA = [
    # A meter key in plans.limits was a hard quota: it becomes the plan price's quota (a
    # price row with no tiers if the plan had none for the meter), and leaves the limits.
    """
    INSERT INTO platform.plan_prices (plan, meter, included, tiers, quota, quota_kind)
    SELECT p.key, l.key, 0, '[]'::jsonb, l.value::text::numeric, 'hard'
      FROM platform.plans p, jsonb_each(p.limits) l
     WHERE l.key IN (SELECT key FROM platform.meters)
    ON CONFLICT (plan, meter) DO UPDATE
       SET quota = EXCLUDED.quota, quota_kind = EXCLUDED.quota_kind
    """,
    """
    UPDATE platform.plans SET limits = limits - ARRAY(SELECT key FROM platform.meters)
    """,
    # Soft quotas on the seeded plans: past them work goes on, billed as overage.
    """
    UPDATE platform.plan_prices SET quota = v.quota, quota_kind = 'soft'
      FROM (VALUES ('starter', 'tasks_completed', 100), ('growth', 'tasks_completed', 2000))
           AS v(plan, meter, quota)
     WHERE plan_prices.plan = v.plan AND plan_prices.meter = v.meter
       AND plan_prices.quota IS NULL
    """,
]

# The quota of a tenant, meter and period, read in the caller's transaction. Tenant roles
# may read none of the billing tables, so this runs as its owner (SECURITY DEFINER) and
# answers only for the caller's own tenant (the role set by SET LOCAL ROLE) or for the
# platform's own connections (no role set). On a hard quota it first takes a transaction
# lock on (tenant, meter, period): callers that would add to the same quota queue there,
# and each reads usage only once the previous one has committed (READ COMMITTED: each
# statement of a volatile function sees what committed before it began).
_QUOTA_LOCK = [
    """
    CREATE FUNCTION platform.quota_state(
        p_tenant uuid, p_meter text, p_key text, p_start timestamptz, p_end timestamptz
    ) RETURNS TABLE (
        plan text, quota numeric, kind text, aggregation text, used numeric, recorded boolean
    )
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        caller text := current_setting('role');
    BEGIN
        IF caller <> 'none' AND caller <> platform.tenant_role(p_tenant) THEN
            RAISE EXCEPTION 'permission denied for the quota of tenant %', p_tenant
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        SELECT s.plan, pp.quota, pp.quota_kind, m.aggregation
          INTO plan, quota, kind, aggregation
          FROM platform.subscriptions s
          JOIN platform.meters m ON m.key = p_meter
          LEFT JOIN platform.plan_prices pp ON pp.plan = s.plan AND pp.meter = p_meter
         WHERE s.tenant_id = p_tenant AND s.status <> 'canceled';
        IF kind IS DISTINCT FROM 'hard' THEN
            RETURN NEXT;
            RETURN;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended(
            'bpo-quota:' || p_tenant || ':' || p_meter || ':' || extract(epoch FROM p_start), 0));
        SELECT CASE aggregation WHEN 'sum' THEN coalesce(sum(u.total), 0)
                                WHEN 'count' THEN coalesce(sum(u.events), 0)
                                ELSE coalesce(max(u.maximum), 0) END
          INTO used
          FROM (SELECT r.total, r.events, r.maximum FROM platform.usage_rollups r
                 WHERE r.tenant_id = p_tenant AND r.meter = p_meter
                   AND r.hour >= p_start AND r.hour < p_end
                UNION ALL
                SELECT e.quantity, 1, e.quantity FROM platform.usage_events e
                 WHERE e.pending AND e.tenant_id = p_tenant AND e.meter = p_meter
                   AND e.at >= p_start AND e.at < p_end) u;
        recorded := p_key IS NOT NULL AND EXISTS (
            SELECT 1 FROM platform.usage_events e
             WHERE e.tenant_id = p_tenant AND e.meter = p_meter AND e.key = p_key);
        RETURN NEXT;
    END $$
    """,
    "REVOKE ALL ON FUNCTION platform.quota_state(uuid, text, text, timestamptz, timestamptz)"
    " FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION platform.quota_state(uuid, text, text, timestamptz, timestamptz)"
    " TO bpo_tenants",
]


def downgrade() -> None:
    op.execute("DROP FUNCTION platform.quota_state(uuid, text, text, timestamptz, timestamptz)")
    # Hard quotas go back into plans.limits; soft ones did not exist before.
    op.execute(
        """
        UPDATE platform.plans p SET limits = p.limits || coalesce((
            SELECT jsonb_object_agg(pp.meter, trim_scale(pp.quota)) FROM platform.plan_prices pp
             WHERE pp.plan = p.key AND pp.quota_kind = 'hard'), '{}'::jsonb)
        """
    )
    op.execute("DELETE FROM platform.plan_prices WHERE tiers = '[]'::jsonb AND included = 0")
    op.drop_index("ix_plan_changes_tenant_effective", table_name="plan_changes", schema="platform")
    op.drop_table("plan_changes", schema="platform")
    op.drop_constraint("quota_known", "plan_prices", schema="platform", type_="check")
    op.drop_column("plan_prices", "quota_kind", schema="platform")
    op.drop_column("plan_prices", "quota", schema="platform")
