"""Billing tables (platform): meters, usage and rollups; plans, subscriptions, invoices;
what was pushed to Stripe and what Stripe told us.

Usage lives in `platform`, one ledger for every tenant, because it is aggregated across
tenants (the push to Stripe, the provider's reports) and written from platform and tenant
connections alike; tenant roles may insert their own tenant's events only (row-level
security, see the migration) and read none.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase

Quantity = Numeric(20, 6)  # GB-months and minutes are fractional; never a float


class Meter(PlatformBase):
    """What bpo bills by, defined by the provider (seeded by the migration)."""

    __tablename__ = "meters"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(40))
    aggregation: Mapped[str] = mapped_column(String(10))  # sum | count | max | last
    stripe_meter: Mapped[str] = mapped_column(String(100))  # the Stripe meter's event_name
    stripe_meter_id: Mapped[str | None] = mapped_column(String(100))  # set when created there


class UsageEvent(PlatformBase):
    """One billable quantity. (tenant, meter, key) is unique: a retry is never counted twice."""

    __tablename__ = "usage_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID]
    meter: Mapped[str] = mapped_column(ForeignKey("meters.key"))
    key: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when the usage happened
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Cleared by the rollup job when it has added the event to its hour.
    pending: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    __table_args__ = (
        UniqueConstraint("tenant_id", "meter", "key"),
        Index("ix_usage_events_pending", "id", postgresql_where=text("pending")),
        # No RETURNING of the new id: tenant roles may insert usage but never read it.
        {"implicit_returning": False},
    )


class UsageRollup(PlatformBase):
    """Per tenant, meter and hour: enough to aggregate any period by any aggregation."""

    __tablename__ = "usage_rollups"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    meter: Mapped[str] = mapped_column(ForeignKey("meters.key"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    total: Mapped[Decimal] = mapped_column(Quantity)
    events: Mapped[int] = mapped_column(BigInteger)
    maximum: Mapped[Decimal] = mapped_column(Quantity)
    last_value: Mapped[Decimal] = mapped_column(Quantity)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Plan(PlatformBase):
    """What a tenant subscribes to, defined by the provider. Amounts are in minor units
    (cents); unit amounts may be fractional (0.2 cents per API call)."""

    __tablename__ = "plans"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), server_default="usd")
    base_fee: Mapped[int] = mapped_column(BigInteger)  # per period, minor units
    # Rate limits: "api_calls_per_minute" answers 429. Absent: unlimited. (Quotas per period
    # are per meter: `PlanPrice.quota`.)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    stripe_product: Mapped[str | None] = mapped_column(String(100))
    stripe_base_price: Mapped[str | None] = mapped_column(String(100))


class PlanPrice(PlatformBase):
    """A plan's price for one meter: the first `included` units are free, the rest are
    priced by graduated tiers: [{"up_to": "10000" | null, "unit_amount": "0.2"}]."""

    __tablename__ = "plan_prices"

    plan: Mapped[str] = mapped_column(ForeignKey("plans.key"), primary_key=True)
    meter: Mapped[str] = mapped_column(ForeignKey("meters.key"), primary_key=True)
    included: Mapped[Decimal] = mapped_column(Quantity, server_default="0")
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    stripe_price: Mapped[str | None] = mapped_column(String(100))
    # A quota per period: "hard" refuses what would pass it (402, nothing written); "soft"
    # lets it through, the units past the included ones billed by the tiers as ever.
    quota: Mapped[Decimal | None] = mapped_column(Quantity)
    quota_kind: Mapped[str | None] = mapped_column(String(4))  # hard | soft


QUOTA_KINDS = ("hard", "soft")


class PlanChange(PlatformBase):
    """A tenant's plan from `effective_at` (a whole hour, UTC) until its next change: what
    invoices and previews price each part of a period at. A tenant's first row also covers
    the time before it in its first period (the first plan is billed for the whole month)."""

    __tablename__ = "plan_changes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    plan: Mapped[str] = mapped_column(ForeignKey("plans.key"))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when asked
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # billed from

    __table_args__ = (Index("ix_plan_changes_tenant_effective", "tenant_id", "effective_at"),)


SUBSCRIPTION_STATUSES = ("pending", "active", "past_due", "canceled")


class Subscription(PlatformBase):
    """A tenant's plan and its Stripe customer and subscription. Periods are calendar
    months (UTC) for every tenant, so usage, previews and invoices line up."""

    __tablename__ = "subscriptions"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    plan: Mapped[str] = mapped_column(ForeignKey("plans.key"))
    status: Mapped[str] = mapped_column(String(20), server_default="pending")
    stripe_customer: Mapped[str | None] = mapped_column(String(100), unique=True)
    stripe_subscription: Mapped[str | None] = mapped_column(String(100), unique=True)
    # `created` of the newest Stripe subscription event applied: an older one changes nothing.
    stripe_state_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    past_due_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when dunning suspended the tenant, so payment resumes only what dunning suspended.
    suspended_for_payment: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


INVOICE_STATUSES = ("finalized", "open", "paid", "payment_failed", "void", "uncollectible")


class Invoice(PlatformBase):
    """One period's invoice as bpo priced it (lines, total), with Stripe's status and
    amounts once Stripe has invoiced the same period."""

    __tablename__ = "invoices"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    plan: Mapped[str] = mapped_column(ForeignKey("plans.key"))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    total: Mapped[int] = mapped_column(BigInteger)  # minor units
    status: Mapped[str] = mapped_column(String(20), server_default="finalized")
    finalized_at: Mapped[datetime] = _now()
    stripe_invoice: Mapped[str | None] = mapped_column(String(100), unique=True)
    amount_due: Mapped[int | None] = mapped_column(BigInteger)
    amount_paid: Mapped[int | None] = mapped_column(BigInteger)
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(500))
    stripe_state_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("tenant_id", "period_start"),)


class BilledUsage(PlatformBase):
    """What has been invoiced for a period and meter, adjustments included: late usage is
    billed as the difference on the next invoice."""

    __tablename__ = "billed_usage"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    meter: Mapped[str] = mapped_column(ForeignKey("meters.key"), primary_key=True)
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units


class UsagePush(PlatformBase):
    """One Stripe meter event, fixed when the rollup formed it: its identifier
    (tenant:meter:window) and value never change, so a resend is always the same event."""

    __tablename__ = "usage_pushes"

    identifier: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[uuid.UUID]
    meter: Mapped[str] = mapped_column(ForeignKey("meters.key"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the event's timestamp
    value: Mapped[Decimal] = mapped_column(Quantity)
    status: Mapped[str] = mapped_column(String(12), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = _now()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_usage_pushes_pending", "created_at", postgresql_where=text("status = 'pending'")),
        Index("ix_usage_pushes_tenant_at", "tenant_id", "meter", "at"),
    )


class StripeEvent(PlatformBase):
    """The Stripe webhook inbox: one row per event id, however often Stripe sends it."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = _now()
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(200))
