"""billing: the `statement_lines` meter (bank statement lines imported) with its prices

Revision ID: p0016
Revises: p0015
Create Date: 2026-12-05 17:30:00.000000

Every statement line imported counts once (issue 23); a line skipped as a duplicate of one
imported before does not.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "p0016"
down_revision: str | None = "p0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO platform.meters (key, name, unit, aggregation, stripe_meter) VALUES"
        " ('statement_lines', 'Bank statement lines imported', 'line', 'sum',"
        " 'bpo_statement_lines') ON CONFLICT (key) DO NOTHING"
    )
    # Unit amounts in minor units of the plan's currency (as every price), per line.
    op.execute(
        """
        INSERT INTO platform.plan_prices (plan, meter, included, tiers)
        SELECT v.plan, 'statement_lines', v.included, CAST(v.tiers AS jsonb)
          FROM (VALUES ('starter', 2000, '[{"up_to": null, "unit_amount": "0.2"}]'),
                       ('growth', 100000, '[{"up_to": null, "unit_amount": "0.05"}]'))
               AS v(plan, included, tiers)
         WHERE v.plan IN (SELECT key FROM platform.plans)
        ON CONFLICT (plan, meter) DO NOTHING
        """
    )


def downgrade() -> None:
    op.execute("DELETE FROM platform.plan_prices WHERE meter = 'statement_lines'")
    op.execute("DELETE FROM platform.meters WHERE key = 'statement_lines'")
