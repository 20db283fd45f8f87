"""Applying Stripe's webhook events, from the inbox, one at a time per tenant.

Stripe sends events more than once and out of order. The inbox (unique event id) makes a
repeat a no-op; the newest applied event's `created` is kept on the subscription and on
each invoice, so an older event arriving later changes nothing; and a paid invoice stays
paid whatever arrives after it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.billing.accounts import finalize_period, invoice_summary, settle
from bpo.billing.models import Invoice, StripeEvent, Subscription
from bpo.billing.service import month_of
from bpo.webhooks.service import record_event

log = structlog.get_logger("bpo.billing")

# Stripe subscription statuses as bpo's.
_SUBSCRIPTION_STATUS = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "past_due",
    "incomplete": "pending",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
    "paused": "past_due",
}
_INVOICE_STATUS = {
    "invoice.created": None,  # links the Stripe invoice; status unchanged
    "invoice.finalized": "open",
    "invoice.paid": "paid",
    "invoice.payment_failed": "payment_failed",
}
HANDLED = (*_INVOICE_STATUS, "customer.subscription.updated", "customer.subscription.deleted")


async def store(session: AsyncSession, event: Any) -> bool:
    """Put a verified event in the inbox; False if it was there already."""
    created = datetime.fromtimestamp(int(event["created"]), UTC)
    stored = await session.scalar(
        pg_insert(StripeEvent)
        .values(id=event["id"], type=event["type"], created=created, payload=event)
        .on_conflict_do_nothing()
        .returning(StripeEvent.id)
    )
    return stored is not None


def _stale(newest: datetime | None, event_at: datetime) -> bool:
    return newest is not None and event_at < newest


async def apply(session: AsyncSession, event_id: str) -> str:
    """Apply one inbox event; returns what happened (kept as the event's outcome)."""
    event = await session.get(StripeEvent, event_id, with_for_update=True)
    if event is None:
        return "unknown event"
    if event.applied_at is not None:
        return event.outcome or "applied"
    obj = event.payload.get("data", {}).get("object", {})
    subscription = await _subscription_for(session, obj)
    if event.type not in HANDLED:
        outcome = "not handled"
    elif subscription is None:
        outcome = "no bpo subscription for this customer"
    elif event.type.startswith("customer.subscription."):
        outcome = await _subscription_changed(session, event, subscription, obj)
    else:
        outcome = await _invoice_changed(session, event, subscription, obj)
    event.applied_at = datetime.now(UTC)
    event.outcome = outcome
    log.info("stripe_event_applied", stripe_event=event.id, type=event.type, outcome=outcome)
    return outcome


async def _subscription_for(session: AsyncSession, obj: dict[str, Any]) -> Subscription | None:
    customer = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
    if not isinstance(customer, str):
        return None
    return await session.scalar(
        select(Subscription).where(Subscription.stripe_customer == customer).with_for_update()
    )


async def _subscription_changed(
    session: AsyncSession, event: StripeEvent, sub: Subscription, obj: dict[str, Any]
) -> str:
    if _stale(sub.stripe_state_at, event.created):
        return "stale: a newer subscription event was applied"
    if sub.stripe_subscription and obj.get("id") not in (None, sub.stripe_subscription):
        return "ignored: not the tenant's current subscription"
    before = {"status": sub.status}
    if event.type == "customer.subscription.deleted":
        status = "canceled"
    else:
        status = _SUBSCRIPTION_STATUS.get(str(obj.get("status")), sub.status)
    sub.status = status
    sub.stripe_state_at = event.created
    sub.updated_at = datetime.now(UTC)
    if status == "canceled" and sub.canceled_at is None:
        sub.canceled_at = event.created
    if status == "past_due" and sub.past_due_since is None:
        sub.past_due_since = event.created
    after = {"status": status, "stripe_event": event.id}
    await audit.record(
        session, sub.tenant_id, actor="stripe", action="subscription.updated",
        target=str(sub.stripe_subscription), before=before, after=after,
    )  # fmt: skip
    await record_event(session, sub.tenant_id, "billing.subscription.updated", after)
    return f"subscription {status}"


async def _invoice_changed(
    session: AsyncSession, event: StripeEvent, sub: Subscription, obj: dict[str, Any]
) -> str:
    invoice = await _invoice_for(session, sub, obj)
    if invoice is None:
        return "no bpo invoice for this period yet"
    if _stale(invoice.stripe_state_at, event.created):
        return "stale: a newer invoice event was applied"
    status = _INVOICE_STATUS[event.type]
    if invoice.status == "paid" and status != "paid":
        return "ignored: the invoice is paid"
    invoice.stripe_invoice = str(obj.get("id") or invoice.stripe_invoice)
    invoice.stripe_state_at = event.created
    for field in ("amount_due", "amount_paid"):
        if isinstance(obj.get(field), int):
            setattr(invoice, field, obj[field])
    if obj.get("hosted_invoice_url"):
        invoice.hosted_invoice_url = str(obj["hosted_invoice_url"])[:500]
    if status is not None:
        invoice.status = status
    if status == "payment_failed":
        sub.status = "past_due"
        sub.past_due_since = sub.past_due_since or event.created
    await session.flush()
    if status == "paid":
        await settle(session, sub)
    if status is not None:
        summary = invoice_summary(invoice) | {"stripe_invoice": invoice.stripe_invoice}
        await audit.record(
            session, sub.tenant_id, actor="stripe", action=f"invoice.{status}",
            target=str(invoice.id), after=summary,
        )  # fmt: skip
        await record_event(session, sub.tenant_id, f"billing.invoice.{status}", summary)
    return f"invoice {status or 'linked'}"


async def _invoice_for(
    session: AsyncSession, sub: Subscription, obj: dict[str, Any]
) -> Invoice | None:
    """The bpo invoice a Stripe invoice belongs to: linked before, or the same period
    (finalized now if that period has ended and bpo had not yet)."""
    if obj.get("id"):
        linked = await session.scalar(select(Invoice).where(Invoice.stripe_invoice == obj["id"]))
        if linked is not None:
            return linked
    start, end = obj.get("period_start"), obj.get("period_end")
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    period_start = datetime.fromtimestamp(start, UTC)
    period_end = datetime.fromtimestamp(end, UTC)
    # bpo's periods are calendar months; Stripe's first (anchoring) invoice is not one.
    if month_of(period_start) != (period_start, period_end) or period_end > datetime.now(UTC):
        return None
    return await finalize_period(session, sub.tenant_id, period_start, period_end)
