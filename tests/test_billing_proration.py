"""A plan change mid-period: each part of the period is priced at the plan in force during
it (base fee by the hour, usage by when it happened, included quantities and tier widths
prorated), one line per part; switching down before the close does not price the month
at the cheaper plan; late usage is re-priced by the same parts; the preview is the final
invoice to the cent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from bpo.billing import accounts
from bpo.billing.models import PlanChange
from bpo.billing.plan_history import Segment, billed_from, plan_segments, record_plan_change
from bpo.billing.pricing import draft_invoice, plan_terms
from bpo.billing.service import month_of, record_usage, roll_up
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext
from bpo.settings import Settings
from tests.support.auth import admin_of
from tests.support.billing import custom_plan, subscribe_directly
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


async def _change(db: Database, tenant: TenantContext, plan: str, at: datetime) -> None:
    async with db.sessionmaker.begin() as session:
        await record_plan_change(session, tenant.tenant_id, plan, at)


async def _usage(
    db: Database, tenant: TenantContext, rows: list[tuple[str, str, datetime]]
) -> None:
    async with db.engine.begin() as conn:
        for n, (meter, quantity, at) in enumerate(rows):
            key = f"{meter}-{at.isoformat()}-{n}"
            await record_usage(conn, tenant, meter, Decimal(quantity), key, at)


def _window() -> tuple[datetime, datetime]:
    """30 days of whole hours that end an hour ago (usage may be 35 days old at most)."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - HOUR
    return end - 30 * DAY, end


async def test_each_part_of_a_period_is_priced_at_its_plan_to_the_cent(db: Database) -> None:
    firm = await make_tenant(db, "upgraded-firm")
    await subscribe_directly(db, firm, "growth")
    start, end = _window()
    cut = start + 10 * DAY  # a third of the period on starter, two thirds on growth
    await _change(db, firm, "starter", start - 2 * DAY)
    await _change(db, firm, "growth", cut - timedelta(minutes=30))  # billed from the hour
    await _usage(db, firm, [
        ("tasks_completed", "40", start + 5 * HOUR), ("tasks_completed", "150", cut + 2 * DAY),
        ("staff_minutes", "7.25", start + 6 * HOUR), ("staff_minutes", "30", cut + 5 * DAY),
        ("documents_gb_month", "3", start + HOUR), ("documents_gb_month", "7.5", cut + 10 * DAY),
    ])  # fmt: skip
    async with db.engine.begin() as conn:
        await roll_up(conn, limit=3)  # some rolled up, the rest still pending
    async with db.sessionmaker() as session:
        fallback = await plan_terms(session, "growth")
        preview = await draft_invoice(session, firm.tenant_id, fallback, start, end)
    async with db.engine.begin() as conn:
        await roll_up(conn)
    async with db.sessionmaker.begin() as session:
        invoice = await accounts.finalize_period(session, firm.tenant_id, start, end)
        assert invoice is not None
        lines, total, plan = invoice.lines, invoice.total, invoice.plan

    expected = {
        ("base_fee", None, "starter"): 1633,  # 4,900 / 3 = 1,633.33
        ("base_fee", None, "growth"): 33267,  # 49,900 x 2/3 = 33,266.67
        # 40 tasks, 10/3 included: 100/3 x 500 + 10/3 x 400 = 18,000
        ("usage", "tasks_completed", "starter"): 18000,
        # 150 tasks, 400/3 included: 50/3 x 400 = 6,666.67
        ("usage", "tasks_completed", "growth"): 6667,
        ("usage", "staff_minutes", "starter"): 1088,  # 7.25 x 150 = 1,087.5
        ("usage", "staff_minutes", "growth"): 0,  # 30 of 400 included
        # The period's level, 7.5 GB: (7.5 - 5) x 25 = 62.5 for a third of the time
        ("usage", "documents_gb_month", "starter"): 21,
        ("usage", "documents_gb_month", "growth"): 0,  # 100 GB included
    }
    finalized = {(x["kind"], x.get("meter"), x["plan"]): x["amount"] for x in lines}
    previewed = {(x.kind, x.meter, x.plan): x.amount for x in preview.lines}
    assert {k: finalized[k] for k in expected} == expected
    assert sum(finalized.values()) == sum(expected.values())  # every other line is 0
    assert previewed == finalized and preview.total == total == 60676
    assert plan == "growth" and preview.plan.key == "growth"
    [starter_fee] = [x for x in lines if x["kind"] == "base_fee" and x["plan"] == "starter"]
    assert starter_fee["period_start"] == start.isoformat()
    assert starter_fee["period_end"] == cut.isoformat()
    assert "Starter plan" in starter_fee["description"]
    [tasks] = [x for x in lines if x.get("meter") == "tasks_completed" and x["plan"] == "growth"]
    assert (tasks["quantity"], tasks["included"]) == ("150.000000", "133.333333")

    # Late usage in the growth part is re-priced there: 210 tasks, 76.67 billable x 400.
    await _usage(db, firm, [("tasks_completed", "60", cut + 3 * DAY)])
    async with db.sessionmaker() as session:
        later = await draft_invoice(session, firm.tenant_id, fallback, end, end + HOUR)
    [late] = [x for x in later.lines if x.kind == "adjustment"]
    assert (late.meter, late.quantity, late.amount) == ("tasks_completed", 60, 30667 - 6667)


async def test_switching_down_before_the_close_does_not_price_the_month_cheaper(
    db: Database,
) -> None:
    firm = await make_tenant(db, "downgrading-firm")
    await subscribe_directly(db, firm, "starter")
    start, end = _window()
    await _change(db, firm, "growth", start - DAY)
    await _change(db, firm, "starter", end - DAY)  # the day before the close
    await _usage(db, firm, [("staff_minutes", "580", start + DAY)])  # on growth: included
    async with db.sessionmaker.begin() as session:
        invoice = await accounts.finalize_period(session, firm.tenant_id, start, end)
        assert invoice is not None
    fees = {x["plan"]: x["amount"] for x in invoice.lines if x["kind"] == "base_fee"}
    assert fees == {"growth": 48237, "starter": 163}  # 49,900 x 29/30 and 4,900 / 30
    minutes = {x["plan"]: x["amount"] for x in invoice.lines if x.get("meter") == "staff_minutes"}
    assert minutes == {"growth": 0, "starter": 0}  # at starter's 150 it would be 87,000
    assert invoice.total == 48400 and invoice.plan == "starter"


async def test_plan_history_rules(db: Database) -> None:
    firm = await make_tenant(db, "history-firm")
    start, end = _window()

    async def parts(fallback: str = "starter") -> list[tuple[str, datetime, datetime]]:
        async with db.sessionmaker() as session:
            found = await plan_segments(session, firm.tenant_id, start, end, fallback)
        return [(s.plan, s.start, s.end) for s in found]

    assert await parts("growth") == [("growth", start, end)]  # no history: the fallback
    await _change(db, firm, "growth", start + 3 * DAY)
    assert await parts() == [("growth", start, end)]  # the first plan covers its first period
    await _change(db, firm, "starter", start + 5 * DAY + timedelta(minutes=10))
    await _change(db, firm, "growth", start + 5 * DAY + timedelta(minutes=40))
    assert await parts() == [("growth", start, end)]  # within one hour: the last one counts
    await _change(db, firm, "starter", start + 7 * DAY)
    await _change(db, firm, "starter", start + 8 * DAY)
    assert await parts() == [("growth", start, start + 7 * DAY), ("starter", start + 7 * DAY, end)]
    assert billed_from(start + timedelta(seconds=1)) == start + HOUR
    assert billed_from(start) == start
    assert Segment("starter", start, end).plan == "starter"


async def test_changing_plans_over_the_api_keeps_the_history_and_splits_the_preview(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "switching-firm")
    as_admin = await admin_of(db, settings, firm)
    base = f"/v1/tenants/{firm.slug}/billing"
    for plan in ("starter", "growth", "growth"):  # the same plan again changes nothing
        answer = await client.post(f"{base}/subscription", json={"plan": plan}, headers=as_admin)
        assert answer.status_code == 201, answer.text
    async with db.sessionmaker() as session:
        history = (await session.scalars(select(PlanChange).order_by(PlanChange.changed_at))).all()
    assert [h.plan for h in history] == ["starter", "growth"]
    assert all(h.effective_at == billed_from(h.changed_at) for h in history)
    preview = (await client.get(f"{base}/preview", headers=as_admin)).json()
    fees = [x.get("plan") for x in preview["lines"] if x["kind"] == "base_fee"]
    _, period_end = month_of(datetime.now(UTC))
    split = history[1].effective_at < period_end  # else the change is billed from next month
    assert fees == (["starter", "growth"] if split else [None])
    assert preview["plan"] == "growth"

    async with custom_plan(db, "euro", {}, currency="eur"):
        refused = await client.post(f"{base}/subscription", json={"plan": "euro"}, headers=as_admin)
    assert refused.status_code == 409 and "EUR" in refused.json()["detail"]
