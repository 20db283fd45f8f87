"""Plans, subscriptions, invoices and Stripe: subscribing creates the Stripe customer and a
metered subscription (the real SDK against a loopback stand-in); Stripe's webhooks are
verified, stored once and applied in order, with dunning; the preview is the final
invoice to the cent; plan limits answer 429 and 402 problems; tenants stay apart."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bpo.audit.models import AuditEvent
from bpo.billing import accounts, stripe_sync
from bpo.billing.gateway import StripeGateway
from bpo.billing.models import Invoice, Plan, PlanPrice, StripeEvent, Subscription
from bpo.billing.pricing import draft_invoice, plan_terms
from bpo.billing.quotas import reserve_usage
from bpo.billing.service import month_of, record_usage, roll_up
from bpo.core.db import Database
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import admin_of
from tests.support.billing import (
    backdate_subscription,
    invoice_object,
    signed,
    stripe_event,
    stripe_settings,
    subscribe_directly,
    subscription_object,
)
from tests.support.isolation import assert_cross_tenant_404
from tests.support.jobs import running_worker, wait_for
from tests.support.stripe_standin import stripe_standin
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
WEBHOOK = "/v1/billing/stripe/webhook"


async def test_subscribing_creates_the_stripe_customer_and_a_metered_subscription(
    db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "billing-firm")
    rival = await make_tenant(db, "rival-billing-firm")
    with stripe_standin() as standin:
        config = stripe_settings(settings, standin)
        async with AsyncTestClient(app=build_app(config)) as client:
            as_admin = await admin_of(db, config, firm)
            base = f"/v1/tenants/{firm.slug}/billing"
            plans = (await client.get(f"{base}/plans", headers=as_admin)).json()
            assert [p["key"] for p in plans] == ["starter", "growth"]
            starter = plans[0]
            assert starter["base_fee"] == 4900 and starter["limits"]["api_calls_per_minute"] == 600

            unknown = await client.post(
                f"{base}/subscription", json={"plan": "platinum"}, headers=as_admin
            )
            assert unknown.status_code == 422 and "platinum" in unknown.json()["detail"]
            extra = await client.post(
                f"{base}/subscription", json={"plan": "starter", "coupon": "x"}, headers=as_admin
            )
            assert extra.status_code in (400, 422) and "coupon" in extra.text
            assert (await client.get(f"{base}/subscription", headers=as_admin)).status_code == 404

            created = await client.post(
                f"{base}/subscription", json={"plan": "starter"}, headers=as_admin
            )
            assert created.status_code == 201, created.text
            assert created.json()["status"] == "pending" and not created.json()["stripe_connected"]

            async def connected() -> bool:
                shown = await client.get(f"{base}/subscription", headers=as_admin)
                return bool(shown.json()["stripe_connected"])

            async with running_worker(config):
                await wait_for(connected, timeout=30)
            shown = (await client.get(f"{base}/subscription", headers=as_admin)).json()
            assert shown["status"] == "active" and shown["plan"]["key"] == "starter"

            portal = await client.post(
                f"{base}/portal",
                json={"return_url": "https://firm.example/billing"},
                headers=as_admin,
            )
            assert portal.status_code == 201 and portal.json()["url"].startswith(
                "https://billing.stripe.test/"
            )
            change = await client.post(
                f"{base}/subscription", json={"plan": "growth"}, headers=as_admin
            )
            assert change.status_code == 409 and "portal" in change.json()["detail"]

            as_rival = await admin_of(db, config, rival)
            paths = ["subscription", "preview", "portal", "plans", "invoices", "subscription"]
            for method, path in zip(
                ["GET", "GET", "POST", "GET", "GET", "POST"], paths, strict=True
            ):
                await assert_cross_tenant_404(
                    client, method, f"{base}/{path}", headers=as_rival, json={"plan": "growth"}
                )

    state = standin.state
    meters = {r.params["event_name"]: r for r in state.sent("/v1/billing/meters")}
    assert set(meters) == {
        "bpo_api_calls", "bpo_tasks_completed", "bpo_staff_minutes",
        "bpo_documents_gb_month", "bpo_statement_lines", "bpo_entries_posted", "bpo_screenings",
        "bpo_ledger_lines", "bpo_records_stored", "bpo_storage_gb_month",
    }  # fmt: skip
    assert meters["bpo_api_calls"].params["default_aggregation"] == {"formula": "sum"}
    assert meters["bpo_documents_gb_month"].params["default_aggregation"] == {"formula": "last"}
    assert all(r.idempotency_key == f"bpo-meter-{name}" for name, r in meters.items())
    meter_ids = {o["event_name"]: o["id"] for o in state.of("billing.meter")}

    prices = state.sent("/v1/prices")
    metered = {
        r.params["metadata"]["bpo_meter"]: r for r in prices if "bpo_meter" in r.params["metadata"]
    }
    assert len(metered) == 10 and len(prices) == 11
    calls = metered["api_calls"].params
    assert calls["recurring"] == {
        "interval": "month", "usage_type": "metered", "meter": meter_ids["bpo_api_calls"]
    }  # fmt: skip
    assert (calls["billing_scheme"], calls["tiers_mode"]) == ("tiered", "graduated")
    assert calls["tiers"] == [
        {"up_to": "100000", "unit_amount_decimal": "0"},
        {"up_to": "inf", "unit_amount_decimal": "0.05"},
    ]
    assert metered["tasks_completed"].params["tiers"][1] == {
        "up_to": "110",
        "unit_amount_decimal": "500",
    }

    [customer] = state.sent("/v1/customers")
    assert customer.idempotency_key == f"bpo-customer-{firm.tenant_id}"
    assert customer.params["metadata"]["bpo_tenant"] == str(firm.tenant_id)
    [subscription] = state.sent("/v1/subscriptions")
    assert subscription.idempotency_key.startswith(f"bpo-subscription-{firm.tenant_id}-starter-")
    assert len(subscription.params["items"]) == 11  # the base fee and ten metered prices
    _, next_month = month_of(datetime.now(UTC))
    assert int(subscription.params["billing_cycle_anchor"]) == int(next_month.timestamp())
    [portal_request] = state.sent("/v1/billing_portal/sessions")
    assert portal_request.params["return_url"] == "https://firm.example/billing"


async def _inbox(db: Database) -> list[StripeEvent]:
    async with db.sessionmaker() as session:
        return list((await session.scalars(select(StripeEvent))).all())


async def _subscription(db: Database, tenant: TenantContext) -> Subscription:
    async with db.sessionmaker() as session:
        return await session.get_one(Subscription, tenant.tenant_id)


async def _audited(db: Database, action: str) -> int:
    async with db.sessionmaker() as session:
        query = select(func.count()).where(AuditEvent.action == action)
        return int(await session.scalar(query) or 0)


async def test_stripe_webhooks_are_verified_stored_once_and_applied_in_order(
    db: Database, settings: Settings
) -> None:
    config = stripe_settings(settings)
    firm = await make_tenant(db, "dunned-firm")
    await subscribe_directly(db, firm, "starter", "cus_dunned")
    start, end = accounts.previous_month(datetime.now(UTC))
    failed_invoice = invoice_object("cus_dunned", start, end, amount_due=4900, amount_paid=0)
    failed = stripe_event("invoice.payment_failed", failed_invoice)
    body, headers = signed(failed)
    async with AsyncTestClient(app=build_app(config)) as client:
        refused = [
            signed(failed, secret="whsec_someone_else"),
            signed(failed, at=int(time.time()) - 301),  # past the 300 s tolerance
            (body + b" ", headers),  # the body changed after signing
            (body, {"Content-Type": "application/json"}),  # no signature at all
        ]
        for bad_body, bad_headers in refused:
            answer = await client.post(WEBHOOK, content=bad_body, headers=bad_headers)
            assert answer.status_code == 400, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
        assert await _inbox(db) == []

        answers = await asyncio.gather(
            *(client.post(WEBHOOK, content=body, headers=headers) for _ in range(100))
        )
        assert [a.status_code for a in answers] == [200] * 100
        assert sum(not a.json()["duplicate"] for a in answers) == 1

        async def all_applied() -> bool:
            return all(e.applied_at is not None for e in await _inbox(db))

        newer = stripe_event(
            "customer.subscription.updated", subscription_object("cus_dunned", "past_due")
        )
        older = stripe_event(
            "customer.subscription.updated",
            subscription_object("cus_dunned", "canceled"),
            created=newer["created"] - 100,
        )
        async with running_worker(config):
            await wait_for(all_applied)
            for event in (newer, older):
                response = await client.post(
                    WEBHOOK, content=signed(event)[0], headers=signed(event)[1]
                )
                assert response.status_code == 200
                await wait_for(all_applied)

        inbox = {e.id: e for e in await _inbox(db)}
        assert len(inbox) == 3 and inbox[older["id"]].outcome.startswith("stale")
        assert (await _subscription(db, firm)).status == "past_due"
        assert await _audited(db, "invoice.payment_failed") == 1
        async with db.sessionmaker() as session:
            invoice = await session.scalar(
                select(Invoice).where(Invoice.tenant_id == firm.tenant_id)
            )
        assert invoice is not None and invoice.status == "payment_failed"
        assert invoice.stripe_invoice == failed_invoice["id"] and invoice.period_start == start

        # Dunning: past the grace period the tenant is suspended; payment resumes it.
        async with db.sessionmaker.begin() as session:
            assert await accounts.suspend_overdue(session, datetime.now(UTC), timedelta(0)) == [
                firm.slug
            ]
        as_admin = await admin_of(db, config, firm)
        blocked = await client.get(f"/v1/tenants/{firm.slug}/users", headers=as_admin)
        assert blocked.status_code == 403 and "suspended" in blocked.json()["detail"]
        # Billing stays open, so the firm can see what it owes and pay.
        owed = await client.get(f"/v1/tenants/{firm.slug}/billing/invoices", headers=as_admin)
        assert owed.status_code == 200 and owed.json()["items"][0]["status"] == "payment_failed"
        paid_invoice = failed_invoice | {"status": "paid", "amount_paid": 4900, "amount_due": 4900}
        paid = stripe_event("invoice.paid", paid_invoice)
        late_failure = stripe_event(
            "invoice.payment_failed", failed_invoice, created=paid["created"]
        )
        async with running_worker(config):
            for event in (paid, late_failure):
                answer = await client.post(
                    WEBHOOK, content=signed(event)[0], headers=signed(event)[1]
                )
                assert answer.status_code == 200
                await wait_for(all_applied)
        resumed = await client.get(f"/v1/tenants/{firm.slug}/billing/invoices", headers=as_admin)
        assert resumed.status_code == 200
        [shown] = resumed.json()["items"]
        assert (shown["status"], shown["amount_paid"]) == ("paid", 4900)
    subscription = await _subscription(db, firm)
    assert subscription.status == "active" and subscription.past_due_since is None
    assert not subscription.suspended_for_payment


def _at(moment: datetime, hours: int) -> datetime:
    return moment + timedelta(hours=hours)


async def test_the_preview_equals_the_final_invoice_to_the_cent(
    client: Client, db: Database, settings: Settings
) -> None:
    """Tiers, included quantities, a max meter, half-cent rounding, and late usage for a
    finalized period (billed as adjustments on the next invoice)."""
    firm = await make_tenant(db, "priced-firm")
    rival = await make_tenant(db, "rival-priced-firm")
    await subscribe_directly(db, firm, "starter")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    p2_end = now - timedelta(hours=1)
    p2_start = p2_end - timedelta(days=10)
    p1_start = p2_start - timedelta(days=10)

    async def usage(rows: list[tuple[str, str, datetime]], prefix: str) -> None:
        async with db.engine.begin() as conn:
            for n, (meter, quantity, at) in enumerate(rows):
                await record_usage(conn, firm, meter, Decimal(quantity), f"{prefix}-{n}", at)

    await usage(
        [("tasks_completed", "50", _at(p1_start, 3)), ("api_calls", "100500", _at(p1_start, 4)),
         ("staff_minutes", "30.5", _at(p1_start, 5))], "p1",
    )  # fmt: skip
    async with db.engine.begin() as conn:
        await roll_up(conn)
    async with db.sessionmaker.begin() as session:
        first = await accounts.finalize_period(session, firm.tenant_id, p1_start, p2_start)
        assert first is not None
        first_total = first.total
    # 4,900 base + 40 tasks x 500 + 500 calls x 0.05 + 30.5 minutes x 150
    assert first_total == 4900 + 20000 + 25 + 4575

    await usage(
        [("tasks_completed", "70", _at(p1_start, 30)), ("api_calls", "33", _at(p1_start, 31))],
        "late",
    )
    p2 = [
        ("tasks_completed", "5", 2),
        ("api_calls", "99999", 2),
        ("staff_minutes", "7.25", 3),
        ("documents_gb_month", "3", 4),
        ("documents_gb_month", "7.5", 5),
        ("documents_gb_month", "6", 6),
        ("statement_lines", "1001", 7),
        ("entries_posted", "1003", 8),
        ("screenings", "501", 9),
    ]
    await usage([(meter, qty, _at(p2_start, hours)) for meter, qty, hours in p2], "p2")
    async with db.engine.begin() as conn:
        await roll_up(conn, limit=4)  # some rolled up, the rest still pending
    async with db.sessionmaker() as session:
        terms = await plan_terms(session, "starter")
        preview = await draft_invoice(session, firm.tenant_id, terms, p2_start, p2_end)
    async with db.engine.begin() as conn:
        await roll_up(conn)
    async with db.sessionmaker.begin() as session:
        final = await accounts.finalize_period(session, firm.tenant_id, p2_start, p2_end)
        assert final is not None
        final_lines, final_total = final.lines, final.total

    expected = {
        ("base_fee", None): 4900,
        ("usage", "tasks_completed"): 0,  # 5 of 10 included
        ("usage", "api_calls"): 0,  # 99,999 of 100,000 included
        ("usage", "staff_minutes"): 1088,  # 7.25 x 150 = 1,087.5, half up
        ("usage", "documents_gb_month"): 63,  # max 7.5 - 5 included = 2.5 x 25 = 62.5
        ("usage", "statement_lines"): 1,
        ("usage", "entries_posted"): 2,  # 3 x 0.5 = 1.5, half up
        ("usage", "ledger_lines"): 0,  # none posted
        ("usage", "records_stored"): 0,  # none stored
        ("usage", "storage_gb_month"): 0,
        ("usage", "screenings"): 2,  # 501 - 500 included = 1 x 2
        # Late usage for the first period: 120 tasks = 100 x 500 + 10 x 400, 20,000 billed.
        ("adjustment", "tasks_completed"): 54000 - 20000,
        ("adjustment", "api_calls"): 27 - 25,  # 533 x 0.05 = 26.65 -> 27, 25 billed
    }
    previewed = {(line.kind, line.meter): line.amount for line in preview.lines}
    finalized = {(line["kind"], line.get("meter")): line["amount"] for line in final_lines}
    assert previewed == finalized == expected
    assert preview.total == final_total == sum(expected.values()) == 40058

    async with db.sessionmaker() as session:  # nothing late is left to bill twice
        later = await draft_invoice(session, firm.tenant_id, terms, p2_end, now)
    assert [line.kind for line in later.lines if line.kind == "adjustment"] == []

    as_admin = await admin_of(db, settings, firm)
    listed = (
        await client.get(f"/v1/tenants/{firm.slug}/billing/invoices", headers=as_admin)
    ).json()
    assert [i["total"] for i in listed["items"]] == [40058, first_total]
    current = (
        await client.get(f"/v1/tenants/{firm.slug}/billing/preview", headers=as_admin)
    ).json()
    async with db.sessionmaker() as session:
        expected_now = await draft_invoice(
            session, firm.tenant_id, terms, *month_of(datetime.now(UTC))
        )
    assert current["total"] == expected_now.total and current["plan"] == "starter"
    invoice_url = f"/v1/tenants/{firm.slug}/billing/invoices/{listed['items'][0]['id']}"
    one = (await client.get(invoice_url, headers=as_admin)).json()
    assert one["lines"][0] == {"kind": "base_fee", "description": "Starter plan", "amount": 4900}
    as_rival = await admin_of(db, settings, rival)
    rival_url = f"/v1/tenants/{rival.slug}/billing/invoices/{listed['items'][0]['id']}"
    await assert_cross_tenant_404(client, "GET", rival_url, headers=as_rival)
    no_plan = await client.get(f"/v1/tenants/{rival.slug}/billing/preview", headers=as_rival)
    assert no_plan.status_code == 409 and "subscribe" in no_plan.json()["detail"]


@pytest.fixture
async def tiny_plan(db: Database) -> Any:
    async with db.sessionmaker.begin() as session:
        session.add(Plan(key="tiny", name="Tiny", base_fee=100, limits={
            "api_calls_per_minute": 5}))  # fmt: skip
        await session.flush()
        session.add(
            PlanPrice(plan="tiny", meter="api_calls", tiers=[{"up_to": None, "unit_amount": "1"}])
        )
        session.add(
            PlanPrice(plan="tiny", meter="documents_gb_month", tiers=[], quota=1, quota_kind="hard")
        )
    yield "tiny"
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM platform.subscriptions WHERE plan = 'tiny'"))
        await conn.execute(text("DELETE FROM platform.invoices WHERE plan = 'tiny'"))
        await conn.execute(text("DELETE FROM platform.plan_changes WHERE plan = 'tiny'"))
        await conn.execute(text("DELETE FROM platform.plan_prices WHERE plan = 'tiny'"))
        await conn.execute(text("DELETE FROM platform.plans WHERE key = 'tiny'"))


async def test_plan_limits_answer_429_and_402_saying_which_limit_and_when_it_resets(
    client: Client, db: Database, settings: Settings, tiny_plan: str
) -> None:
    firm = await make_tenant(db, "limited-firm")
    other = await make_tenant(db, "unlimited-firm")
    await subscribe_directly(db, firm, tiny_plan)
    as_admin = await admin_of(db, settings, firm)
    as_other = await admin_of(db, settings, other)
    users = f"/v1/tenants/{firm.slug}/users"
    assert (await client.get(users, headers=as_admin)).status_code == 200
    await asyncio.sleep(1.5)  # the counter's flush reads the tenant's plan limit
    statuses, refused = [], None
    for _ in range(12):
        answer = await client.get(users, headers=as_admin)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            refused = answer
    assert refused is not None and statuses.count(200) <= 10, statuses
    problem = refused.json()
    assert problem["limit"] == "api_calls_per_minute" and problem["allowed"] == 5
    assert "resets" in problem["detail"] and datetime.fromisoformat(
        problem["resets_at"]
    ) > datetime.now(UTC)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    for _ in range(8):  # another firm, without the plan, is not held back
        assert (
            await client.get(f"/v1/tenants/{other.slug}/users", headers=as_other)
        ).status_code == 200

    # documents_gb_month is a level (max): each report is checked against the quota itself.
    now = datetime.now(UTC)
    async with tenant_session(db.engine, firm) as session:
        await reserve_usage(session, firm, "documents_gb_month", Decimal("0.8"), "docs-1", now)
    async with tenant_session(db.engine, firm) as session:
        with pytest.raises(Problem) as quota:
            await reserve_usage(session, firm, "documents_gb_month", Decimal("1.5"), "docs-2", now)
    assert quota.value.status == 402
    _, period_end = month_of(now)
    assert quota.value.extensions["meter"] == "documents_gb_month"
    assert (quota.value.extensions["allowed"], quota.value.extensions["used"]) == ("1", "0.8")
    assert quota.value.extensions["resets_at"] == period_end.isoformat()


async def _events_sent(db: Database, event_type: str) -> int:
    async with db.engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM platform.outbox"
            " WHERE actor = 'fan_out_event' AND args ->> 1 = :type"
        )
        return int(await conn.scalar(query, {"type": event_type}) or 0)


async def test_reconciliation_audits_and_announces_any_difference_with_stripe(
    db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "reconciled-firm")
    await subscribe_directly(db, firm, "starter", "cus_reconciled")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with stripe_standin() as standin:
        gateway = StripeGateway(stripe_settings(settings, standin))
        meter_id = await gateway.create_meter("bpo_api_calls", "API calls", "sum")
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE platform.meters SET stripe_meter_id = :id WHERE key = 'api_calls'"),
                {"id": meter_id},
            )
            await record_usage(
                conn, firm, "api_calls", 120, "calls-1", hour - timedelta(minutes=90)
            )
            await roll_up(conn)
        pushed = await stripe_sync.push_usage(db.engine, gateway)
        assert (pushed.sent, pushed.unavailable) == (1, 0)
        [sent] = standin.state.sent("/v2/billing/meter_event_stream")
        [event] = sent.params["events"]
        assert event["identifier"].startswith(f"{firm.tenant_id}:api_calls:")
        assert event["payload"] == {"stripe_customer_id": "cus_reconciled", "value": "120"}

        window = (hour - timedelta(hours=3), hour)
        assert await stripe_sync.reconcile(db.sessionmaker, gateway, *window) == []
        assert await _audited(db, "usage.mismatch") == 0
        stray = dict(standin.state.meter_events[event["identifier"]])
        stray["payload"] = {"stripe_customer_id": "cus_reconciled", "value": "5"}
        standin.state.meter_events["sent-by-someone-else"] = stray
        found = await stripe_sync.reconcile(db.sessionmaker, gateway, *window)
    assert [(d.meter, d.ours, d.stripe) for d in found] == [("api_calls", 120, 125)]
    assert await _audited(db, "usage.mismatch") == 1
    assert await _events_sent(db, "billing.usage.mismatch") == 1


async def test_periods_close_once_for_every_tenant_subscribed_then(db: Database) -> None:
    firm = await make_tenant(db, "closing-firm")
    newcomer = await make_tenant(db, "new-firm")
    await subscribe_directly(db, firm, "growth")
    await subscribe_directly(db, newcomer, "starter")
    start, end = accounts.previous_month(datetime.now(UTC))
    await backdate_subscription(db, firm, start - timedelta(days=3))
    async with db.sessionmaker.begin() as session:
        assert await accounts.close_periods(session, datetime.now(UTC)) == 1
    async with db.sessionmaker.begin() as session:
        assert await accounts.close_periods(session, datetime.now(UTC)) == 0
        invoices = (await session.scalars(select(Invoice))).all()
    assert [(i.tenant_id, i.period_start, i.period_end, i.total) for i in invoices] == [
        (firm.tenant_id, start, end, 49_900)
    ]
    assert await _events_sent(db, "billing.invoice.finalized") == 1


async def test_late_usage_adjustments_reach_stripe_as_invoice_items_once(
    db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "adjusted-firm")
    await subscribe_directly(db, firm, "starter", "cus_adjusted")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = (hour - timedelta(days=6), hour - timedelta(days=3))
    second = (first[1], hour)
    async with db.sessionmaker.begin() as session:
        await accounts.finalize_period(session, firm.tenant_id, *first)
    async with db.engine.begin() as conn:  # late: 20 tasks for the finalized period
        await record_usage(
            conn, firm, "tasks_completed", 30, "late-tasks", first[0] + timedelta(hours=1)
        )
    async with db.sessionmaker.begin() as session:
        invoice = await accounts.finalize_period(session, firm.tenant_id, *second)
        assert invoice is not None
        invoice_id = invoice.id
    adjustments = [line for line in invoice.lines if line["kind"] == "adjustment"]
    assert [(a["meter"], a["quantity"], a["amount"]) for a in adjustments] == [
        ("tasks_completed", "30.000000", 20 * 500)
    ]
    async with db.engine.connect() as conn:
        queued = await conn.scalar(
            text("SELECT count(*) FROM platform.outbox WHERE actor = 'bill_adjustments'")
        )
    assert queued == 1
    with stripe_standin() as standin:
        gateway = StripeGateway(stripe_settings(settings, standin))
        for _ in range(2):  # a job run twice sends the same item twice: Stripe keeps one
            assert await stripe_sync.bill_adjustments(db.sessionmaker, gateway, invoice_id) == 1
    items = standin.state.sent("/v1/invoiceitems")
    assert [r.idempotency_key for r in items] == [f"bpo-adjustment-{invoice_id}-0"] * 2
    assert items[0].params["customer"] == "cus_adjusted" and items[0].params["amount"] == "10000"
    assert len(standin.state.of("invoiceitem")) == 1


@pytest.mark.parametrize(
    "table",
    ["plans", "plan_prices", "subscriptions", "invoices", "billed_usage", "usage_pushes",
     "stripe_events", "usage_rollups", "plan_changes"],
)  # fmt: skip
async def test_tenant_roles_cannot_read_billing_tables(db: Database, table: str) -> None:
    firm = await make_tenant(db, f"curious-firm-{table.replace('_', '-')}")
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(db.engine, firm) as session:
            await session.execute(text(f"SELECT count(*) FROM platform.{table}"))
