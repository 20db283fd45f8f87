"""billing: the `records_stored` and `storage_gb_month` meters (issue 22) with their prices

Revision ID: p0015
Revises: p0014
Create Date: 2026-12-05 12:00:00.000000

Every stored document version counts once. `storage_gb_month` is a level, like issue 6's
`documents_gb_month` (which nothing feeds; this one supersedes it): a daily snapshot of the
GB a firm stores, the month billed at its peak (aggregation max), as GB-months.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "p0015"
down_revision: str | None = "p0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO platform.meters (key, name, unit, aggregation, stripe_meter) VALUES"
        " ('records_stored', 'Record versions stored', 'version', 'sum', 'bpo_records_stored'),"
        " ('storage_gb_month', 'Record storage', 'GB-month', 'max', 'bpo_storage_gb_month')"
        " ON CONFLICT (key) DO NOTHING"
    )
    # Unit amounts in minor units of the plan's currency (as every price).
    op.execute(
        """
        INSERT INTO platform.plan_prices (plan, meter, included, tiers)
        SELECT v.plan, v.meter, v.included, CAST(v.tiers AS jsonb)
          FROM (VALUES
                ('starter', 'records_stored', 500, '[{"up_to": null, "unit_amount": "1"}]'),
                ('growth', 'records_stored', 20000, '[{"up_to": null, "unit_amount": "0.5"}]'),
                ('starter', 'storage_gb_month', 5, '[{"up_to": null, "unit_amount": "25"}]'),
                ('growth', 'storage_gb_month', 100, '[{"up_to": null, "unit_amount": "20"}]'))
               AS v(plan, meter, included, tiers)
         WHERE v.plan IN (SELECT key FROM platform.plans)
        ON CONFLICT (plan, meter) DO NOTHING
        """
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM platform.plan_prices WHERE meter IN ('records_stored', 'storage_gb_month')"
    )
    op.execute("DELETE FROM platform.meters WHERE key IN ('records_stored', 'storage_gb_month')")
