"""A tenant's billing account: its subscription, invoices and dunning (quotas: quotas.py).

Periods are calendar months (UTC) for every tenant. A period is finalized once, by
`finalize_period`, under a lock on the subscription row: the invoice's lines come from
`pricing.draft_invoice`, exactly what the preview showed for the same usage, and what it
billed goes into `billed_usage`, against which late usage becomes next period's adjustments.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.billing.models import BilledUsage, Invoice, Subscription
from bpo.billing.pricing import Draft, draft_invoice, plan_terms
from bpo.billing.service import month_of
from bpo.core.errors import Problem
from bpo.jobs.outbox import enqueue
from bpo.platform.tenants import service as tenants
from bpo.webhooks.service import record_event


def previous_month(now: datetime) -> tuple[datetime, datetime]:
    start, _ = month_of(now)
    return month_of(start - timedelta(seconds=1))


async def subscription_of(session: AsyncSession, tenant_id: uuid.UUID) -> Subscription | None:
    return await session.get(Subscription, tenant_id)


async def preview(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> Draft:
    """The current period priced as it stands: the final invoice's code, today's usage."""
    subscription = await subscription_of(session, tenant_id)
    if subscription is None or subscription.status == "canceled":
        raise Problem(409, "conflict", "the tenant has no plan: subscribe to one first")
    terms = await plan_terms(session, subscription.plan)
    return await draft_invoice(session, tenant_id, terms, *month_of(now))


async def finalize_period(
    session: AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime
) -> Invoice | None:
    """The tenant's invoice for [start, end), priced now if it was not yet; None if the
    tenant has no subscription. Concurrent callers wait on the subscription row."""
    subscription = await session.get(Subscription, tenant_id, with_for_update=True)
    if subscription is None:
        return None
    existing = await session.scalar(
        select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.period_start == start)
    )
    if existing is not None:
        return existing
    draft = await draft_invoice(
        session, tenant_id, await plan_terms(session, subscription.plan), start, end
    )
    invoice = Invoice(
        tenant_id=tenant_id,
        period_start=start,
        period_end=end,
        plan=draft.plan.key,
        currency=draft.plan.currency,
        lines=[line.as_json() for line in draft.lines],
        total=draft.total,
        status="finalized",
    )
    session.add(invoice)
    await session.flush()
    for period_start, period_end, meter, quantity, amount in draft.billed:
        await _add_billed(session, tenant_id, period_start, period_end, meter, quantity, amount)
    summary = invoice_summary(invoice)
    await audit.record(
        session, tenant_id, actor="bpo:billing", action="invoice.finalized",
        target=str(invoice.id), after=summary,
    )  # fmt: skip
    await record_event(session, tenant_id, "billing.invoice.finalized", summary)
    adjustments = [line for line in draft.lines if line.kind == "adjustment" and line.amount]
    if adjustments and subscription.stripe_customer:
        await enqueue(session, "bill_adjustments", str(invoice.id), tenant=None)
    return invoice


async def _add_billed(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    start: datetime,
    end: datetime,
    meter: str,
    quantity: Decimal,
    amount: int,
) -> None:
    row = {"tenant_id": tenant_id, "period_start": start, "period_end": end, "meter": meter}
    statement = pg_insert(BilledUsage).values(**row, quantity=quantity, amount=amount)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "period_start", "meter"],
            set_={
                "quantity": BilledUsage.quantity + statement.excluded.quantity,
                "amount": BilledUsage.amount + statement.excluded.amount,
            },
        )
    )


def invoice_summary(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": str(invoice.id),
        "period_start": invoice.period_start.isoformat(),
        "period_end": invoice.period_end.isoformat(),
        "total": invoice.total,
        "currency": invoice.currency,
        "status": invoice.status,
    }


async def close_periods(session: AsyncSession, now: datetime) -> int:
    """Finalize last month for every subscription that had it (subscribed before its end,
    not canceled before its start); returns how many were finalized now."""
    start, end = previous_month(now)
    due = (
        await session.scalars(
            select(Subscription.tenant_id).where(
                Subscription.created_at < end,
                Subscription.canceled_at.is_(None) | (Subscription.canceled_at > start),
                ~select(Invoice.id)
                .where(Invoice.tenant_id == Subscription.tenant_id, Invoice.period_start == start)
                .exists(),
            )
        )
    ).all()
    for tenant_id in due:
        await finalize_period(session, tenant_id, start, end)
    return len(due)


async def suspend_overdue(session: AsyncSession, now: datetime, grace: timedelta) -> list[str]:
    """Dunning: suspend every tenant whose payment has failed for longer than `grace`."""
    overdue = (
        await session.scalars(
            select(Subscription)
            .where(
                Subscription.past_due_since < now - grace,
                Subscription.suspended_for_payment.is_(False),
                Subscription.tenant_id.in_(tenants.active_tenant_ids()),
            )
            .with_for_update()
        )
    ).all()
    suspended = []
    for subscription in overdue:
        tenant = await tenants.change_status(
            session, subscription.tenant_id, "suspended", only_from="active"
        )
        if tenant is None:  # suspended or resumed meanwhile by someone else
            continue
        subscription.suspended_for_payment = True
        await audit.record(
            session, tenant.id, actor="bpo:billing", action="tenant.suspended",
            target=tenant.slug, after={"reason": "payment overdue",
                                       "past_due_since": str(subscription.past_due_since)},
        )  # fmt: skip
        suspended.append(tenant.slug)
    return suspended


async def settle(session: AsyncSession, subscription: Subscription) -> None:
    """Payment arrived: clear dunning and resume the tenant if dunning suspended it."""
    unpaid = await session.scalar(
        select(Invoice.id).where(
            Invoice.tenant_id == subscription.tenant_id, Invoice.status == "payment_failed"
        )
    )
    if unpaid is not None:
        return
    subscription.past_due_since = None
    if subscription.status == "past_due":
        subscription.status = "active"
    if subscription.suspended_for_payment:
        subscription.suspended_for_payment = False
        await tenants.change_status(
            session, subscription.tenant_id, "active", only_from="suspended"
        )
        await audit.record(
            session, subscription.tenant_id, actor="bpo:billing", action="tenant.resumed",
            target=str(subscription.tenant_id), after={"reason": "payment received"},
        )  # fmt: skip


def utcnow() -> datetime:
    return datetime.now(UTC)
