"""billing: the `ledger_lines` meter (posted journal lines) with its prices

Revision ID: p0014
Revises: p0013
Create Date: 2026-12-05 08:00:00.000000

Every posted line counts (issue 21): a firm's books cost what they hold, a batch of a
thousand entries as much as a thousand single postings.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "p0014"
down_revision: str | None = "p0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO platform.meters (key, name, unit, aggregation, stripe_meter)"
        " VALUES ('ledger_lines', 'Ledger lines posted', 'line', 'sum', 'bpo_ledger_lines')"
        " ON CONFLICT (key) DO NOTHING"
    )
    # Unit amounts in minor units of the plan's currency (as every price), per line.
    op.execute(
        """
        INSERT INTO platform.plan_prices (plan, meter, included, tiers)
        SELECT v.plan, 'ledger_lines', v.included, CAST(v.tiers AS jsonb)
          FROM (VALUES ('starter', 2000, '[{"up_to": null, "unit_amount": "0.25"}]'),
                       ('growth', 100000, '[{"up_to": null, "unit_amount": "0.1"}]'))
               AS v(plan, included, tiers)
         WHERE v.plan IN (SELECT key FROM platform.plans)
        ON CONFLICT (plan, meter) DO NOTHING
        """
    )


def downgrade() -> None:
    op.execute("DELETE FROM platform.plan_prices WHERE meter = 'ledger_lines'")
    op.execute("DELETE FROM platform.meters WHERE key = 'ledger_lines'")
