"""Keeping Stripe in step with the ledger: subscriptions, meter events, adjustments, and a
reconciliation of totals. Called from jobs; every Stripe call goes through the gateway.

A push row's identifier and value were fixed when the rollup formed it, so sending it
again after a crash, a timeout or a lost answer sends the same meter event, which Stripe
drops as a repeat of its identifier. Pushes go 100 to a request on Stripe's meter event
stream (v2): a month of one busy tenant's usage is tens of thousands of meter events.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bpo import audit
from bpo.billing.gateway import (
    STREAM_BATCH,
    MeterEvent,
    StripeGateway,
    StripeRefused,
    StripeUnavailable,
    Tier,
)
from bpo.billing.models import Invoice, Meter, Plan, PlanPrice, Subscription, UsagePush
from bpo.billing.pricing import tiers_of
from bpo.billing.service import month_of, period_usage
from bpo.platform.tenants import service as tenants
from bpo.webhooks.service import record_event

log = structlog.get_logger("bpo.billing")
PUSH_BATCH = 500
PUSH_CONCURRENCY = 8


def stripe_tiers(included: Decimal, tiers: Sequence[Tier]) -> list[Tier]:
    """bpo's tiers count units past the included ones; Stripe's count from zero, with the
    included units as a free first tier."""
    shift = int(included)
    out = [Tier(shift, Decimal(0))] if shift else []
    out += [Tier(None if t.up_to is None else t.up_to + shift, t.unit_amount) for t in tiers]
    return out


async def _stripe_meter(
    sessions: async_sessionmaker[AsyncSession], gw: StripeGateway, key: str
) -> str:
    async with sessions.begin() as session:
        meter = await session.get_one(Meter, key)
        if meter.stripe_meter_id:
            return meter.stripe_meter_id
        event_name, name, aggregation = meter.stripe_meter, meter.name, meter.aggregation
    meter_id = await gw.create_meter(event_name, name, aggregation)
    async with sessions.begin() as session:
        (await session.get_one(Meter, key)).stripe_meter_id = meter_id
    return meter_id


async def _plan_prices(
    sessions: async_sessionmaker[AsyncSession], gw: StripeGateway, plan_key: str
) -> tuple[str, list[str]]:
    """The plan's Stripe prices (base fee, metered), created on first use."""
    async with sessions.begin() as session:
        plan = await session.get_one(Plan, plan_key)
        prices = (await session.scalars(select(PlanPrice).where(PlanPrice.plan == plan_key))).all()
        base, name, currency, fee = plan.stripe_base_price, plan.name, plan.currency, plan.base_fee
        wanted = [(p.meter, p.stripe_price, Decimal(p.included), tiers_of(p.tiers)) for p in prices]
    if base is None:
        base = await gw.create_base_price(plan_key, name, currency, fee)
        async with sessions.begin() as session:
            (await session.get_one(Plan, plan_key)).stripe_base_price = base
    metered = []
    for meter, price_id, included, tiers in wanted:
        if price_id is None:
            meter_id = await _stripe_meter(sessions, gw, meter)
            price_id = await gw.create_metered_price(
                plan_key, meter, meter_id, currency, stripe_tiers(included, tiers)
            )
            async with sessions.begin() as session:
                (await session.get_one(PlanPrice, (plan_key, meter))).stripe_price = price_id
        metered.append(price_id)
    return base, metered


async def connect_subscription(
    sessions: async_sessionmaker[AsyncSession], gw: StripeGateway, tenant_id: uuid.UUID
) -> None:
    """Create the tenant's Stripe customer and subscription (each once, whatever retries)."""
    async with sessions.begin() as session:
        sub = await session.get(Subscription, tenant_id)
        tenant = await tenants.tenant_by_id(session, tenant_id)
        if sub is None or tenant is None or sub.stripe_subscription or sub.status == "canceled":
            return
        plan, customer, since = sub.plan, sub.stripe_customer, sub.updated_at
        slug, name = tenant.slug, tenant.name
    if customer is None:
        customer = await gw.create_customer(str(tenant_id), slug, name)
        async with sessions.begin() as session:
            (await session.get_one(Subscription, tenant_id)).stripe_customer = customer
    base, metered = await _plan_prices(sessions, gw, plan)
    _, next_period = month_of(since)
    created = await gw.create_subscription(
        customer,
        base,
        metered,
        anchor=next_period,
        key=f"bpo-subscription-{tenant_id}-{plan}-{int(since.timestamp())}",
        metadata={"bpo_tenant": str(tenant_id), "bpo_plan": plan},
    )
    async with sessions.begin() as session:
        sub = await session.get_one(Subscription, tenant_id, with_for_update=True)
        sub.stripe_subscription = created["id"]
        if sub.status == "pending":
            sub.status = "active"
        await audit.record(
            session, tenant_id, actor="bpo:billing", action="subscription.connected",
            target=created["id"], after={"customer": customer, "plan": plan},
        )  # fmt: skip


_CLAIM = text(
    """
    SELECT p.identifier, p.at, p.value, m.stripe_meter, s.stripe_customer
      FROM platform.usage_pushes p
      JOIN platform.subscriptions s ON s.tenant_id = p.tenant_id
      JOIN platform.meters m ON m.key = p.meter
     WHERE p.status = 'pending' AND s.stripe_customer IS NOT NULL
     ORDER BY p.created_at LIMIT :limit
       FOR UPDATE OF p SKIP LOCKED
    """
)


@dataclass(frozen=True, slots=True)
class PushRound:
    sent: int  # accepted by Stripe (which validates meter events after answering)
    refused: int  # the request was refused (4xx): kept with the error
    unavailable: int  # still pending: Stripe was down, slow or busy (429)

    @property
    def claimed(self) -> int:
        return self.sent + self.refused + self.unavailable


_EXPIRE = text(
    "UPDATE platform.usage_pushes SET status = 'refused',"
    " last_error = 'older than 35 days: Stripe takes no older meter events'"
    " WHERE status = 'pending' AND at < now() - interval '35 days'"
)
_MARK = text(
    "UPDATE platform.usage_pushes SET attempts = attempts + 1,"
    " status = CASE WHEN :status = 'unavailable' THEN 'pending' ELSE :status END,"
    " last_error = :error,"
    " delivered_at = CASE WHEN :status = 'delivered' THEN now() END"
    " WHERE identifier = ANY(:identifiers)"
)


async def push_usage(engine: AsyncEngine, gw: StripeGateway) -> PushRound:
    """Send one batch of pending meter events, 100 to a request on Stripe's meter event
    stream; rows stay locked while they are in flight, so two pushers never send the same
    row at once."""
    async with engine.begin() as conn:
        await conn.execute(_EXPIRE)
        rows = (await conn.execute(_CLAIM, {"limit": PUSH_BATCH})).all()
        events = [MeterEvent(name, ident, customer, value, at)
                  for ident, at, value, name, customer in rows]  # fmt: skip
        chunks = [events[n : n + STREAM_BATCH] for n in range(0, len(events), STREAM_BATCH)]
        gate = asyncio.Semaphore(PUSH_CONCURRENCY)

        async def send(chunk: list[MeterEvent]) -> tuple[list[MeterEvent], str, str | None]:
            async with gate:
                try:
                    await gw.send_meter_events(chunk)
                except StripeUnavailable as exc:
                    return chunk, "unavailable", str(exc)[:500]
                except StripeRefused as exc:
                    return chunk, "refused", str(exc)[:500]
            return chunk, "delivered", None

        results = await asyncio.gather(*(send(chunk) for chunk in chunks))
        for chunk, status, error in results:
            identifiers = [e.identifier for e in chunk]
            await conn.execute(
                _MARK, {"status": status, "error": error, "identifiers": identifiers}
            )
    counts = {k: sum(len(c) for c, s, _ in results if s == k)
              for k in ("delivered", "refused", "unavailable")}  # fmt: skip
    if counts["refused"]:
        log.warning("meter_events_refused", count=counts["refused"])
    return PushRound(counts["delivered"], counts["refused"], counts["unavailable"])


async def bill_adjustments(
    sessions: async_sessionmaker[AsyncSession], gw: StripeGateway, invoice_id: uuid.UUID
) -> int:
    """Put an invoice's adjustments on the customer's next Stripe invoice (once each)."""
    async with sessions.begin() as session:
        invoice = await session.get_one(Invoice, invoice_id)
        sub = await session.get_one(Subscription, invoice.tenant_id)
        lines = [line for line in invoice.lines if line["kind"] == "adjustment" and line["amount"]]
        customer, currency = sub.stripe_customer, invoice.currency
    if customer is None:
        return 0
    for n, line in enumerate(lines):
        await gw.add_invoice_item(
            customer, int(line["amount"]), currency, line["description"],
            key=f"bpo-adjustment-{invoice_id}-{n}",
        )  # fmt: skip
    return len(lines)


@dataclass(frozen=True, slots=True)
class Difference:
    tenant_id: uuid.UUID
    meter: str
    ours: Decimal
    stripe: Decimal


def reconciliation_window(now: datetime) -> tuple[datetime, datetime]:
    """Last month and this one, up to the last whole hour: late usage for last month
    still arrives, and the current hour is still being pushed."""
    start, _ = month_of(month_of(now)[0] - timedelta(seconds=1))
    return start, now.replace(minute=0, second=0, microsecond=0)


async def reconcile(
    sessions: async_sessionmaker[AsyncSession],
    gw: StripeGateway,
    start: datetime,
    end: datetime,
) -> list[Difference]:
    """Our totals against Stripe's meter event summaries over [start, end) (whole hours);
    every difference is audited and sent to the tenant as a webhook event."""
    async with sessions.begin() as session:
        accounts = (
            await session.execute(
                select(Subscription.tenant_id, Subscription.stripe_customer).where(
                    Subscription.stripe_customer.is_not(None)
                )
            )
        ).all()
        meters = (
            await session.execute(
                # Stripe sums these as bpo does; `max` and `last` meters have no like total.
                select(Meter.key, Meter.stripe_meter_id).where(
                    Meter.stripe_meter_id.is_not(None), Meter.aggregation.in_(("sum", "count"))
                )
            )
        ).all()
    differences = []
    for tenant_id, customer in accounts:
        async with sessions.begin() as session:
            ours = {u.meter: u.quantity for u in await period_usage(session, tenant_id, start, end)}
        for meter, meter_id in meters:
            theirs = await gw.metered_total(str(meter_id), str(customer), start, end)
            if theirs != ours.get(meter, Decimal(0)):
                differences.append(
                    Difference(tenant_id, meter, ours.get(meter, Decimal(0)), theirs)
                )
    for d in differences:
        detail = {"meter": d.meter, "bpo": str(d.ours), "stripe": str(d.stripe),
                  "period_start": start.isoformat(), "until": end.isoformat()}  # fmt: skip
        async with sessions.begin() as session:
            await audit.record(
                session, d.tenant_id, actor="bpo:billing", action="usage.mismatch",
                target=d.meter, after=detail,
            )  # fmt: skip
            await record_event(session, d.tenant_id, "billing.usage.mismatch", detail)
    return differences


async def pending_pushes(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(UsagePush).where(UsagePush.status == "pending")
        )
    return int(count or 0)
