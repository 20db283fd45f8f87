"""Request and response types of the usage APIs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

import msgspec

Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
MeterKey = Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
UsageKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class UsageIn(msgspec.Struct, forbid_unknown_fields=True):
    tenant: Slug
    meter: MeterKey
    quantity: Decimal
    key: UsageKey  # unique per tenant and meter: a repeated key is a duplicate, not new usage
    at: datetime


class UsageBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[UsageIn], msgspec.Meta(min_length=1, max_length=1000)]


class UsageBatchResult(msgspec.Struct):
    received: int
    recorded: int  # new events
    duplicates: int  # keys recorded before (or twice in this batch)


class MeterUsageOut(msgspec.Struct):
    meter: str
    name: str
    unit: str
    aggregation: str
    quantity: Decimal
    events: int
    # Against the plan in force now (null without a plan, or when it does not say):
    included: Decimal | None = None  # free units per period
    limit: Decimal | None = None  # the quota per period
    limit_kind: str | None = None  # hard (402 past it) | soft (allowed, billed as overage)
    remaining: Decimal | None = None  # limit - quantity, never below 0


class UsageOut(msgspec.Struct):
    period_start: datetime
    period_end: datetime
    meters: list[MeterUsageOut]
    plan: str | None = None  # the plan in force now


class DayUsageOut(msgspec.Struct):
    day: date  # a UTC day
    quantity: Decimal  # by the meter's aggregation
    events: int


class DailyUsageOut(msgspec.Struct):
    meter: str
    name: str
    unit: str
    aggregation: str
    days: list[DayUsageOut]  # oldest first, today last


PlanKey = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class SubscribeIn(msgspec.Struct, forbid_unknown_fields=True):
    plan: PlanKey


class TierOut(msgspec.Struct):
    up_to: int | None  # billable units (past the included ones); None: and beyond
    unit_amount: Decimal  # minor units per unit


class PriceOut(msgspec.Struct):
    meter: str
    included: Decimal
    tiers: list[TierOut]
    quota: Decimal | None = None  # per period; null: none
    quota_kind: str | None = None  # hard (402 past it) | soft (allowed, billed as overage)


class PlanOut(msgspec.Struct):
    key: str
    name: str
    currency: str
    base_fee: int  # minor units per period
    limits: dict[str, int | float]
    prices: list[PriceOut]


class SubscriptionOut(msgspec.Struct):
    plan: PlanOut
    status: str  # pending | active | past_due | canceled
    stripe_connected: bool
    period_start: datetime
    period_end: datetime
    past_due_since: datetime | None
    suspended_for_payment: bool


class LineOut(msgspec.Struct, omit_defaults=True):
    kind: str  # base_fee | usage | adjustment
    description: str
    amount: int  # minor units
    meter: str | None = None
    quantity: Decimal | None = None
    included: Decimal | None = None
    period_start: datetime | None = None  # adjustments: the earlier period; else the part
    period_end: datetime | None = None  # of a period (the plan changed) the line prices
    plan: str | None = None  # a part's plan


class PreviewOut(msgspec.Struct):
    period_start: datetime
    period_end: datetime
    plan: str
    currency: str
    lines: list[LineOut]
    total: int


class InvoiceOut(msgspec.Struct):
    id: str
    period_start: datetime
    period_end: datetime
    plan: str
    currency: str
    status: str  # finalized | open | paid | payment_failed | void | uncollectible
    total: int  # as bpo priced it, minor units
    lines: list[LineOut]
    finalized_at: datetime
    stripe_invoice: str | None
    amount_due: int | None  # Stripe's figures once Stripe has invoiced the period
    amount_paid: int | None
    hosted_invoice_url: str | None


class InvoiceList(msgspec.Struct):
    items: list[InvoiceOut]
    next_cursor: str | None = None


class PortalIn(msgspec.Struct, forbid_unknown_fields=True):
    return_url: Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://")] | None = None


class PortalOut(msgspec.Struct):
    url: str


class WebhookAck(msgspec.Struct):
    received: bool
    duplicate: bool
